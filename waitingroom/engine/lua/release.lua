-- A session ends now (the origin sent X-WaitingRoom-Release: 1); its slot goes to
-- the next in line. Idempotent: releasing an ended session changes nothing.
-- KEYS: see _room.lua.
-- With a linger (the shopper's page said it is going: /_wr/leave), the session ends
-- that long from now unless it is used again meanwhile; ended so, the shopper gets the
-- first free slot if back within the grace (a trip to a payment provider's check).
-- ARGV: 1 session id; 2 grace ms; 3 linger ms (0: end now).
-- Returns 1 if a session was ended (or will be), 0 if there was none.
local id = ARGV[1]
local grace_ms = tonumber(ARGV[2])
local linger_ms = tonumber(ARGV[3]) or 0

local now = now_ms()
if linger_ms > 0 then
  if not redis.call('ZSCORE', active, id) then return 0 end
  redis.call('ZADD', active, 'XX', 'LT', now + linger_ms, id)
  local hard = tonumber(redis.call('HGET', deadline, id))
  if hard and hard > 0 then  -- ended so, it goes on standby: see prune
    redis.call('HSET', deadline, id, -hard)
  end
  return 1
end
local removed = redis.call('ZREM', active, id)
ACTIVE = nil
if removed == 1 then
  redis.call('HDEL', deadline, id)
  redis.call('HINCRBY', stats, 'released', 1)
end
prune(now, grace_ms)
fill(now, grace_ms)
return removed
