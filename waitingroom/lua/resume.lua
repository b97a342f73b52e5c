-- A place in line moves to another device: the waiter's id is replaced by a new one
-- and its arrival number (so its position) is kept; the old id is marked as moved, so
-- the old device is told so and takes no new place. Idempotent per (old, new) pair.
-- KEYS: see _room.lua; KEYS[CORE + 1] the old id's "moved" marker.
-- ARGV: 1 old id; 2 new id; 3 grace ms; 4 marker lifetime, seconds.
-- Returns {position, admitted_total, now_ms}: position 1-based (0 in the pre-queue),
--   -1 if the old id holds no place in line.
local old, new = ARGV[1], ARGV[2]
local grace_ms = tonumber(ARGV[3])
local marker = KEYS[CORE + 1]

local now = now_ms()
prune(now, grace_ms)

local function position(lane, id)
  if lane == prequeue then return 0 end
  return redis.call('ZRANK', lane, id) + 1
end

if redis.call('GET', marker) == new then  -- a retry of a move already made
  for _, lane in ipairs({queue, priority, prequeue}) do
    if redis.call('ZSCORE', lane, new) then
      return {position(lane, new), admitted_total(), now}
    end
  end
end
for _, lane in ipairs({queue, priority, prequeue}) do
  local score = redis.call('ZSCORE', lane, old)
  if score then
    redis.call('ZREM', lane, old)
    redis.call('ZADD', lane, score, new)
    redis.call('ZREM', seen, old)
    redis.call('ZADD', seen, now, new)
    redis.call('SET', marker, new, 'EX', tonumber(ARGV[4]))
    return {position(lane, new), admitted_total(), now}
  end
end
return {-1, admitted_total(), now}
