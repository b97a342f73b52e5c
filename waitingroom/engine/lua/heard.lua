-- Waiters a process heard from, beyond what one look hands in (see watch.lua): a
-- bounded batch per call, however many asked.
-- KEYS: see _room.lua.
-- ARGV: 1 grace ms; then arrival numbers heard from.
local grace_ms = tonumber(ARGV[1])
local numbers = {}
for i = 2, #ARGV do numbers[#numbers + 1] = tonumber(ARGV[i]) end
prune(now_ms(), grace_ms, numbers)
return #numbers
