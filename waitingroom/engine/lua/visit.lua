-- Waiting visitors arrive or ask where they stand; many visitors per call, answered
-- as if each had called alone, in the order given. A visitor who gives the arrival
-- number of the place it holds keeps it; one who gives none (or one no longer theirs)
-- takes a new place at the back if it joins.
-- One place per visitor: a call sent again because its reply was lost (the same call
-- id) gets its first answer back, and a known id that joins again within
-- JOIN_WINDOW_MS (two tabs after a session ended) gets the place it took then.
-- KEYS: see _room.lua.
-- ARGV: 1 grace ms; 2 session idle ms; 3 session max ms; 4 idle ms after a session's
--       first request (0: the same); 5 call id (unique per call); then for each
--       visitor: visitor id, arrival number held (0 if none), join: "0" asks only, "1"
--       takes a place at the back if the visitor holds none, "2" takes one for an id
--       never used before (the caller made it: nothing to look up); claim: "1" the
--       visitor's request goes on to the origin if admitted (its session starts), "0"
--       it is only told (a status poll or an event stream).
-- A visitor on standby (let in while away, see fill in _admit.lua) who asks again gets
-- the first free slot, before everyone else.
-- Returns {state_1, position_1, number_1, ..., admitted_total, now_ms}:
--   state 1 = admitted (position 0), 0 = waiting at 1-based position (number: its
--   arrival number in the line, 0 in a lane), 2 = in the pre-queue before a scheduled
--   start (position 0: the draw decides), -1 = holds no place (join is "0", or the
--   room is closed to new arrivals), -2 = the place moved to another device, -3 = no
--   place: the line is as long as ops allow (max_waiting), or there is no line
--   (method reject) and no free slot
--   (resume.lua): no new place either.
local JOIN_WINDOW_MS = 10000
local grace_ms = tonumber(ARGV[1])
local idle_ms = tonumber(ARGV[2])
local max_ms = tonumber(ARGV[3])
local first_idle_ms = tonumber(ARGV[4])
local room = string.sub(line, 1, -5)  -- 'wr:{room}:'
local call = room .. 'call:' .. ARGV[5]

local answered = redis.call('GET', call)
if answered then return cjson.decode(answered) end

local now = now_ms()
prune(now, grace_ms)
fill(now, grace_ms)
-- A closed room takes no new places; those in line are still let in, in order. A sold
-- out one takes none either, and lets nobody in until it is restocked.
local closed = MODE == 'closed' or SOLD_OUT
local joined_any = false

-- A new place at the back for ``id`` (or the pre-queue before a scheduled start).
-- Is ``id`` admitted? Its session claimed if ``claims``, else only told (see told).
local function admitted(id, claims)
  if claims then return claim(id, now, idle_ms, max_ms, first_idle_ms) end
  return told(id, now, grace_ms)
end

local function join(id, claims)
  if line_full() then return -3, 0, 0 end
  local rejects = METHOD == 'reject'
  if rejects and (active_count() >= CAPACITY or redis.call('ZCARD', priority) > 0
                  or waiting_at_least(1)) then
    return -3, 0, 0  -- no line: nobody is let in ahead of those already waiting
  end
  joined_any = true
  if until_start() > 0 then  -- the draw at the start decides the order
    redis.call('ZADD', prequeue, 0, id)
    redis.call('ZADD', seen, now, id)
    return 2, 0, 0
  end
  local n = join_line(id)
  -- An arrival walks straight in only if everyone ahead fitted too (FCFS), or holds a
  -- session already (a second place of its own was its turn).
  if (fill(now, grace_ms) > 0 or REPEATED[id]) and admitted(id, claims) then
    return 1, 0, 0
  end
  if rejects then  -- not let in at once (the rate, a start still to come): no place
    leave_line(n)
    return -3, 0, 0
  end
  return 0, rank_joined(n), n
end

local function visit(id, n, joins, claims)
  if joins == '2' then
    if closed then return -1, 0, 0 end
    return join(id, claims)
  end
  if admitted(id, claims) then return 1, 0, 0 end
  if n > 0 and in_line(id, n) then  -- the common case first
    heard_now(n)
    return 0, rank(n), n
  end
  if n > 0 and reseat(id, n) then return 0, rank(n), n end
  if come_back(id, now) then
    fill(now, grace_ms)
    if admitted(id, claims) then return 1, 0, 0 end
  end
  local lane = redis.call('ZRANK', priority, id)
  if lane then  -- an invitee, or back from standby: its place is in the priority lane
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
  if redis.call('EXISTS', room .. 'moved:' .. id) == 1 then return -2, 0, 0 end
  local joined = room .. 'joined:' .. id
  local taken = tonumber(redis.call('GET', joined))
  if taken and in_line(id, taken) then
    heard_now(taken)
    return 0, rank(taken), taken
  end
  if closed or joins ~= '1' then return -1, 0, 0 end
  local state, position, number = join(id, claims)
  if number > 0 then redis.call('SET', joined, number, 'PX', JOIN_WINDOW_MS) end
  return state, position, number
end

local out = {}
for i = 6, #ARGV, 4 do
  local state, position, number = visit(ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2],
                                        ARGV[i + 3] == '1')
  out[#out + 1] = state
  out[#out + 1] = position
  out[#out + 1] = number
end
out[#out + 1] = admitted_total()
out[#out + 1] = now
if joined_any then redis.call('SET', call, cjson.encode(out), 'PX', JOIN_WINDOW_MS) end
return out
