-- A process's look at the line, twice a second. It answers waiting visitors' polls
-- from what this returns, and hands in the arrival numbers of those it heard from.
-- The call also does the room's upkeep: sweeps walk-aways, ends expired sessions and
-- admits the next in line into free slots.
-- KEYS: see _room.lua.
-- ARGV: 1 grace ms; 2 room time (ms) of this process's last look (0: none); then the
--       arrival numbers heard from since.
-- Returns {head, end, lanes ahead, admitted_total, now_ms, first byte, left, renamed}:
--   the line is the numbers head+1 .. end less those whose bit is set in ``left``
--   (the bitmap's bytes from ``first byte`` on, as one string); ``lanes ahead`` are served before
--   it; ``renamed``: numbers whose place moved to another device (ask Redis for those).
local grace_ms, heard_since = tonumber(ARGV[1]), tonumber(ARGV[2])
local heard_numbers = {}
for i = 3, #ARGV do heard_numbers[#heard_numbers + 1] = tonumber(ARGV[i]) end

local now = now_ms()
prune(now, grace_ms, heard_numbers, heard_since)
fill(now, grace_ms)
local head, last_n = line_head(), line_end()
local first_byte = math.floor((head + 1) / 8)
local bits = ''
if last_n > head then bits = bitmap_bytes(left, head + 1, last_n) end
redis.call('ZREMRANGEBYSCORE', renamed, '-inf', head)
return {head, last_n, lanes_ahead(), admitted_total(), now, first_byte, bits,
        redis.call('ZRANGE', renamed, 0, -1)}
