-- A place in line moves to another device: the waiter's id is replaced by a new one
-- and its arrival number (so its position) is kept; the old id is marked as moved, so
-- the old device is told so and takes no new place. Idempotent per (old, new) pair.
-- KEYS: see _room.lua; KEYS[CORE + 1] the old id's "moved" marker.
-- ARGV: 1 old id; 2 its arrival number (0 if none); 3 new id; 4 grace ms;
--       5 marker lifetime, seconds.
-- Returns {position, number, admitted_total, now_ms}: position 1-based (0 in the
--   pre-queue before the start), -1 if the old id holds no place in line; number the
--   arrival number kept (0 in a lane).
local old, n, new = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local grace_ms = tonumber(ARGV[4])
local marker = KEYS[CORE + 1]

local now = now_ms()
prune(now, grace_ms)

local function lane_position(lane, id)
  if lane == prequeue and START_AT > 0 then return 0 end
  return redis.call('ZRANK', lane, id) + 1
end

local function moved(position, number)
  redis.call('SET', marker, new, 'EX', tonumber(ARGV[5]))
  return {position, number, admitted_total(), now}
end

local retry = redis.call('GET', marker) == new
if n > 0 and in_line(retry and new or old, n) then
  redis.call('HSET', bucket(n), n, new)
  redis.call('ZADD', renamed, n, n)
  heard_now(n)
  return moved(rank(n), n)
end
for _, lane in ipairs({priority, prequeue}) do
  local score = redis.call('ZSCORE', lane, retry and new or old)
  if score then
    redis.call('ZREM', lane, old)
    redis.call('ZADD', lane, score, new)
    redis.call('ZREM', seen, old)
    redis.call('ZADD', seen, now, new)
    return moved(lane_position(lane, new), 0)
  end
end
return {-1, 0, admitted_total(), now}
