-- A session ends now (the origin sent X-WaitingRoom-Release: 1); its slot goes to
-- the next in line. Idempotent: releasing an ended session changes nothing.
-- KEYS: see _room.lua.
-- ARGV: 1 session id; 2 grace ms.
-- Returns 1 if a session was ended, 0 if there was none.
local id = ARGV[1]
local grace_ms = tonumber(ARGV[2])

local now = now_ms()
local removed = redis.call('ZREM', active, id)
if removed == 1 then
  redis.call('HDEL', deadline, id)
  redis.call('HINCRBY', stats, 'released', 1)
end
prune(now, grace_ms)
fill(now, grace_ms)
return removed
