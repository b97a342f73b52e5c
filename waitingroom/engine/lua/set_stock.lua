-- Set the room's stock (ARGV[1]: units, or '' to stop counting). A restock (from 0 to
-- more) is stamped (config restocked_at, room time), so that those who left their
-- details before it are told once (take_interest.lua). Returns the stock before.
local before = tonumber(redis.call('HGET', config, 'stock'))
if ARGV[1] == '' then
  redis.call('HDEL', config, 'stock')
else
  local units = tonumber(ARGV[1])
  redis.call('HSET', config, 'stock', units)
  if before == 0 and units > 0 then redis.call('HSET', config, 'restocked_at', real_ms()) end
end
return before or -1
