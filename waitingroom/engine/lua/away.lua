-- A waiter who asked to be notified keeps its place while away from the page, until
-- a given time, and how to tell them is stored.
-- KEYS: 1..CORE see _room.lua; CORE+1 notify HASH visitor id -> how to tell them (and
--       CORE+1 ':until' ZSET visitor id -> until when away: see sweep).
-- ARGV: 1 visitor id; 2 its arrival number in line (0 if none); 3 how long away, ms;
--       4 how to tell them (JSON).
-- Returns 1 if the visitor holds a place (now kept), 0 if not.
local id, n = ARGV[1], tonumber(ARGV[2])
local until_ms = now_ms() + tonumber(ARGV[3])
if n > 0 and in_line(id, n) then
  redis.call('ZADD', away, until_ms, n)
elseif redis.call('ZSCORE', seen, id) then  -- in a lane (invited, or the pre-queue)
  redis.call('ZADD', seen, until_ms, id)
else
  return 0
end
redis.call('HSET', KEYS[CORE + 1], id, ARGV[4])
redis.call('ZADD', KEYS[CORE + 1] .. ':until', until_ms, id)  -- forgotten a grace after
return 1
