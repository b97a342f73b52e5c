-- Admitted visitors make requests: keep each session alive if it still exists.
-- Many sessions per call. Slots freed by expiry go to the next in line at once.
-- KEYS: see _room.lua.
-- ARGV: 1 grace ms; 2 session idle ms; 3 session max ms; 4 idle ms after a session's
--       first request (0: the same); 5 'use' (a request: the session goes on, see
--       claim) or 'hold' (its first request is still on its way, or just answered: the
--       first idle counts from now, and the session is still one of a request only);
--       6.. session ids.
-- Returns one entry per session id: 1 if alive (and extended), 0 if it has ended.
local grace_ms = tonumber(ARGV[1])
local idle_ms = tonumber(ARGV[2])
local max_ms = tonumber(ARGV[3])
local first_idle_ms = tonumber(ARGV[4])
local holds = ARGV[5] == 'hold'

local now = now_ms()
prune(now, grace_ms)
local out = {}
for i = 6, #ARGV do
  local id, alive = ARGV[i], false
  local hard = holds and tonumber(redis.call('HGET', deadline, id))
  if hard and hard < 0 then  -- still one request only: held, not made a session like any
    alive = redis.call('ZSCORE', active, id) ~= false
    if alive then
      redis.call('ZADD', active, 'XX', 'GT', math.min(now + first_idle_ms, -hard), id)
    end
  else
    alive = claim(id, now, idle_ms, max_ms, first_idle_ms)
  end
  out[#out + 1] = alive and 1 or 0
end
fill(now, grace_ms)
return out
