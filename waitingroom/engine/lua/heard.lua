-- Waiters a process heard from, beyond what one look hands in (see watch.lua): a
-- bounded batch per call, however many asked.
-- KEYS: see _room.lua.
-- ARGV: 1 grace ms; 2 room time (ms) they began to be heard (see watch.lua); then
--       arrival numbers heard from.
local grace_ms, since = tonumber(ARGV[1]), tonumber(ARGV[2])
local numbers = {}
for i = 3, #ARGV do numbers[#numbers + 1] = tonumber(ARGV[i]) end
prune(now_ms(), grace_ms, numbers, since)
return #numbers
