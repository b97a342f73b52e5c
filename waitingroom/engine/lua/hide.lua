-- A waiter's page went away (the queue page's pagehide, the browser saying no
-- navigation of its own: the tab was closed): until it asks again (a reload asks at
-- once), its turn goes by without holding a slot for it (standby, see fill). Its place
-- is kept for the grace, as anyone's. Idempotent.
-- KEYS: see _room.lua.
-- ARGV: 1 grace ms; 2 visitor id; 3 the arrival number of its place.
-- Returns 1 if the waiter holds that place, 0 if not.
local grace_ms = tonumber(ARGV[1])
local id, n = ARGV[2], tonumber(ARGV[3])

local now = now_ms()
prune(now, grace_ms)
if not in_line(id, n) then return 0 end
redis.call('ZADD', hidden, now, n)
return 1
