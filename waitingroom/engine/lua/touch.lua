-- Admitted visitors make requests: keep each session alive if it still exists.
-- Many sessions per call. Slots freed by expiry go to the next in line at once.
-- KEYS: see _room.lua.
-- ARGV: 1 grace ms; 2 session idle ms; 3 session max ms; 4 idle ms after a session's
--       first request (0: the same); 5.. session ids.
-- Returns one entry per session id: 1 if alive (and extended), 0 if it has ended.
local grace_ms = tonumber(ARGV[1])
local idle_ms = tonumber(ARGV[2])
local max_ms = tonumber(ARGV[3])
local first_idle_ms = tonumber(ARGV[4])

local now = now_ms()
prune(now, grace_ms)
local out = {}
for i = 5, #ARGV do
  out[#out + 1] = claim(ARGV[i], now, idle_ms, max_ms, first_idle_ms) and 1 or 0
end
fill(now, grace_ms)
return out
