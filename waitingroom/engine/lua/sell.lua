-- Units sold (the origin said so on an admitted shopper's answer): counted, and taken
-- off the stock when the room counts it, never below 0 (set_stock stamps the moment
-- it runs out).
-- ARGV: units. Returns the stock left, or -1 when the room does not count stock.
local units = tonumber(ARGV[1])
redis.call('HINCRBY', stats, 'sold', units)
local stock = tonumber(redis.call('HGET', config, 'stock'))
if not stock then return -1 end
local left = math.max(0, stock - units)
set_stock(stock, left)
return left
