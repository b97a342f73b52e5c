-- Waiting visitors arrive or ask where they stand; many visitors per call, answered
-- as if each had called alone, in the order given. Idempotent per visitor id, so a
-- client retry after a lost reply neither takes a second place nor admits twice.
-- KEYS: see _room.lua.
-- ARGV: 1 grace ms; 2 session idle ms; 3 session max ms; then for each visitor:
--       visitor id, join ("1" takes a place at the back if the visitor holds none).
-- Returns {state_1, position_1, ..., state_n, position_n, admitted_total, now_ms}:
--   state 1 = admitted (position 0), 0 = waiting at 1-based position, 2 = in the
--   pre-queue before a scheduled start (position 0: the draw decides),
--   -1 = holds no place (join is "0", or the room is closed to new arrivals),
--   -2 = the place moved to another device (resume.lua): no new place either.
local grace_ms = tonumber(ARGV[1])
local idle_ms = tonumber(ARGV[2])
local max_ms = tonumber(ARGV[3])

local now = now_ms()
prune(now, grace_ms)
fill(now, grace_ms)
-- A closed room takes no new places; those in line are still let in, in order.
local closed = MODE == 'closed'

local function visit(id, join)
  if claim(id, now, idle_ms, max_ms) then return 1, 0 end
  local rank = redis.call('ZRANK', queue, id)  -- the common case first
  if not rank then
    local lane = redis.call('ZRANK', priority, id)
    if lane then  -- an invitee: its place is in the priority lane
      redis.call('ZADD', seen, now, id)
      return 0, lane + 1
    end
    if START_AT > 0 and redis.call('ZSCORE', prequeue, id) then  -- before the start
      redis.call('ZADD', seen, now, id)
      return 2, 0
    end
    -- Only ids holding no place get here: did theirs move to another device?
    if redis.call('EXISTS', string.sub(queue, 1, -6) .. 'moved:' .. id) == 1 then
      return -2, 0
    end
    if closed or not join then return -1, 0 end
    if until_start(now) > 0 then  -- the draw at the start decides the order
      redis.call('ZADD', prequeue, 0, id)
      redis.call('ZADD', seen, now, id)
      return 2, 0
    end
    redis.call('ZADD', queue, redis.call('INCR', seq), id)
    -- An arrival walks straight in only if everyone ahead fitted too (FCFS).
    fill(now, grace_ms)
    if claim(id, now, idle_ms, max_ms) then return 1, 0 end
    rank = redis.call('ZRANK', queue, id)
  end
  redis.call('ZADD', seen, now, id)
  return 0, rank + 1
end

local out = {}
for i = 4, #ARGV, 2 do
  local state, position = visit(ARGV[i], ARGV[i + 1] == '1')
  out[#out + 1] = state
  out[#out + 1] = position
end
out[#out + 1] = admitted_total()
out[#out + 1] = now
return out
