-- Ask for one of the half-open breaker's probe requests. If the last round of probes
-- went unanswered for a whole cooldown (a prober died), a new round is handed out.
-- KEYS: 1..CORE see _room.lua; CORE+1 breaker HASH (see breaker.lua).
-- ARGV: 1 probes per round; 2 cooldown ms.
-- Returns 1 if the caller may send its request to the origin as a probe, else 0.
local breaker = KEYS[CORE + 1]
local probes, cooldown_ms = tonumber(ARGV[1]), tonumber(ARGV[2])

if redis.call('HGET', breaker, 'state') ~= 'half' then return 0 end
local now = real_ms()
if now - (tonumber(redis.call('HGET', breaker, 'half_at')) or 0) >= cooldown_ms then
  redis.call('HSET', breaker, 'half_at', now, 'probes_taken', 0)
end
if redis.call('HINCRBY', breaker, 'probes_taken', 1) <= probes then return 1 end
return 0
