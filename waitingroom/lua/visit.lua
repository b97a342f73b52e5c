-- A waiting visitor arrives or asks where they stand. Idempotent per visitor id,
-- so a client retry after a lost reply neither takes a second place nor admits twice.
-- KEYS: see _room.lua.
-- ARGV: 1 visitor id; 2 join: "1" takes a place at the back if the visitor holds
--       none; 3 grace ms; 4 session idle ms; 5 session max ms.
-- Returns {state, position, admitted_total, now_ms}: state 1 = admitted (position 0),
--   0 = waiting at 1-based position, -1 = holds no place (only when join is "0").
local id = ARGV[1]
local join = ARGV[2] == '1'
local grace_ms = tonumber(ARGV[3])
local idle_ms = tonumber(ARGV[4])
local max_ms = tonumber(ARGV[5])

local now = now_ms()
prune(now, grace_ms)
fill(now, grace_ms)
if claim(id, now, idle_ms, max_ms) then return {1, 0, admitted_total(), now} end

local rank = redis.call('ZRANK', queue, id)
if not rank then
  if not join then return {-1, 0, admitted_total(), now} end
  redis.call('ZADD', queue, redis.call('INCR', seq), id)
  redis.call('ZADD', seen, now, id)
  -- An arrival walks straight in only if everyone ahead fitted too (FCFS).
  fill(now, grace_ms)
  if claim(id, now, idle_ms, max_ms) then return {1, 0, admitted_total(), now} end
  rank = redis.call('ZRANK', queue, id)
end
redis.call('ZADD', seen, now, id)
return {0, rank + 1, admitted_total(), now}
