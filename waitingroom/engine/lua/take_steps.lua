-- The room's timeline steps that are due, oldest first, each taken by one caller: its
-- time moves on by the lease (ARGV[1], ms) so that nobody else takes it meanwhile. The
-- caller removes it once applied (timeline.done); if the caller dies first, the step
-- comes due again when the lease runs out. Room time (a simulated clock too).
-- KEYS[CORE + 1]: the timeline (ZSET id -> due ms); KEYS[CORE + 2]: steps (HASH id ->
-- JSON). Returns the JSON of each step taken.
local timeline, steps = KEYS[CORE + 1], KEYS[CORE + 2]
local now = real_ms()
local taken = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', timeline, '-inf', now, 'LIMIT', 0, 20)) do
  local step = redis.call('HGET', steps, id)
  if step then
    redis.call('ZADD', timeline, now + tonumber(ARGV[1]), id)
    taken[#taken + 1] = step
  else
    redis.call('ZREM', timeline, id)
  end
end
return taken
