-- Waiting visitors arrive or ask where they stand; many visitors per call, answered
-- as if each had called alone, in the order given. A visitor who gives the arrival
-- number of the place it holds keeps it; one who gives none (or one no longer theirs)
-- takes a new place at the back if it joins. One place per visitor id: a second join
-- within JOIN_WINDOW_MS (another tab before the first one's ticket arrived, a retry
-- whose first reply was lost) gets the place the first one took.
-- KEYS: see _room.lua.
-- ARGV: 1 grace ms; 2 session idle ms; 3 session max ms; then for each visitor:
--       visitor id, arrival number held (0 if none), join ("1" takes a place at the
--       back if the visitor holds none).
-- Returns {state_1, position_1, number_1, ..., admitted_total, now_ms}:
--   state 1 = admitted (position 0), 0 = waiting at 1-based position (number: its
--   arrival number in the line, 0 in a lane), 2 = in the pre-queue before a scheduled
--   start (position 0: the draw decides), -1 = holds no place (join is "0", or the
--   room is closed to new arrivals), -2 = the place moved to another device
--   (resume.lua): no new place either.
local JOIN_WINDOW_MS = 10000
local grace_ms = tonumber(ARGV[1])
local idle_ms = tonumber(ARGV[2])
local max_ms = tonumber(ARGV[3])

local now = now_ms()
prune(now, grace_ms)
fill(now, grace_ms)
-- A closed room takes no new places; those in line are still let in, in order.
local closed = MODE == 'closed'

local function visit(id, n, join)
  if claim(id, now, idle_ms, max_ms) then return 1, 0, 0 end
  if n > 0 and in_line(id, n) then  -- the common case first
    heard_now(n)
    return 0, rank(n), n
  end
  if n > 0 and reseat(id, n) then return 0, rank(n), n end
  local lane = redis.call('ZRANK', priority, id)
  if lane then  -- an invitee: its place is in the priority lane
    redis.call('ZADD', seen, now, id)
    return 0, lane + 1, 0
  end
  local drawn = redis.call('ZRANK', prequeue, id)
  if drawn then  -- came before the start: the draw decides, then a lane before the line
    redis.call('ZADD', seen, now, id)
    if START_AT > 0 then return 2, 0, 0 end
    return 0, drawn + 1, 0
  end
  -- Only ids holding no place get here: did theirs move to another device?
  if redis.call('EXISTS', string.sub(line, 1, -5) .. 'moved:' .. id) == 1 then
    return -2, 0, 0
  end
  local joined = string.sub(line, 1, -5) .. 'joined:' .. id
  local taken = tonumber(redis.call('GET', joined))
  if taken and in_line(id, taken) then
    heard_now(taken)
    return 0, rank(taken), taken
  end
  if closed or not join then return -1, 0, 0 end
  if until_start() > 0 then  -- the draw at the start decides the order
    redis.call('ZADD', prequeue, 0, id)
    redis.call('ZADD', seen, now, id)
    return 2, 0, 0
  end
  n = join_line(id)
  redis.call('SET', joined, n, 'PX', JOIN_WINDOW_MS)
  -- An arrival walks straight in only if everyone ahead fitted too (FCFS).
  fill(now, grace_ms)
  if claim(id, now, idle_ms, max_ms) then return 1, 0, 0 end
  return 0, rank(n), n
end

local out = {}
for i = 4, #ARGV, 3 do
  local state, position, number = visit(ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2] == '1')
  out[#out + 1] = state
  out[#out + 1] = position
  out[#out + 1] = number
end
out[#out + 1] = admitted_total()
out[#out + 1] = now
return out
