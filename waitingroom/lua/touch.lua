-- An admitted visitor makes a request: keep their session alive if it still exists.
-- Slots freed by expiry go to the next in line at once.
-- KEYS: see _room.lua.
-- ARGV: 1 session id; 2 grace ms; 3 session idle ms; 4 session max ms.
-- Returns 1 if the session is alive (and was extended), 0 if it has ended.
local id = ARGV[1]
local grace_ms = tonumber(ARGV[2])
local idle_ms = tonumber(ARGV[3])
local max_ms = tonumber(ARGV[4])

local now = now_ms()
prune(now, grace_ms)
local alive = claim(id, now, idle_ms, max_ms)
fill(now, grace_ms)
if alive then return 1 end
return 0
