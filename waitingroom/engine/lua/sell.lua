-- Units sold (the origin said so on an admitted shopper's answer): counted, and taken
-- off the stock when the room counts it, never below 0 (the moment it runs out is
-- stamped: sold_out_at).
-- ARGV: units. Returns the stock left, or -1 when the room does not count stock.
local units = tonumber(ARGV[1])
redis.call('HINCRBY', stats, 'sold', units)
local stock = tonumber(redis.call('HGET', config, 'stock'))
if not stock then return -1 end
local left = math.max(0, stock - units)
redis.call('HSET', config, 'stock', left)
if left == 0 and stock > 0 then redis.call('HSET', config, 'sold_out_at', real_ms()) end
return left
