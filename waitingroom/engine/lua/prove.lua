-- The origin served ARGV[1] sessions at once without trouble for an interval: keep the
-- most it ever has (the dashboard warns before capacity goes past it). KEYS[1]: the
-- room's adapt hash. Returns the most now. Not a room script: the library is not loaded.
local most = math.max(tonumber(redis.call('HGET', KEYS[1], 'proven') or '0'), tonumber(ARGV[1]))
redis.call('HSET', KEYS[1], 'proven', most)
return most
