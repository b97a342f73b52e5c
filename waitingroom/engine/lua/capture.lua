-- Store a customer's captured details. Idempotent per reference: a double submit,
-- a client retry or a spool drain of the same record stores it once.
-- KEYS: 1..CORE see _room.lua; CORE+1 captures STREAM (arrival of submissions);
--       10 refs HASH reference -> stream entry id; CORE+3 this visitor's rate counter.
-- ARGV: 1 reference; 2 visitor id; 3 fields as JSON; 4 submissions allowed per
--       minute; 5 when submitted, ms (0 = now; a spool drain passes the original);
--       6 the visitor's arrival number in line (0 if none).
-- Returns {1, entry id} if stored (now or before), {0, ""} if rate-limited.
local captures, refs, rate = KEYS[CORE + 1], KEYS[CORE + 2], KEYS[CORE + 3]
local reference = ARGV[1]
local visitor = ARGV[2]
local per_minute = tonumber(ARGV[4])
local submitted_at = tonumber(ARGV[5])

local existing = redis.call('HGET', refs, reference)
if existing then return {1, existing} end

if submitted_at == 0 then  -- live submissions are rate-limited; spool drains are not
  local count = redis.call('INCR', rate)
  if count == 1 then redis.call('PEXPIRE', rate, 60000) end
  if count > per_minute then return {0, ''} end
  submitted_at = real_ms()
end
-- The visitor's arrival number keeps queue order; 0 = already admitted (ahead of all).
local n = tonumber(ARGV[6])
local place = 0
if n > 0 and in_line(visitor, n) then place = n end
local id = redis.call('XADD', captures, '*', 'reference', reference, 'visitor', visitor,
                      'place', place, 'submitted_at', submitted_at, 'fields', ARGV[3])
redis.call('HSET', refs, reference, id)
return {1, id}
