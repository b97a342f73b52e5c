-- Take adaptive capacity's decision for interval ARGV[1] (one caller wins, once; an
-- earlier interval is never decided after a later one). KEYS[1]: the room's adapt
-- hash. Returns the memory the last decision left ('' if none), or false if the
-- decision is someone else's. Not a room script: the room library is not loaded.
local last = tonumber(redis.call('HGET', KEYS[1], 'decided') or '-1')
if last >= tonumber(ARGV[1]) then return false end
redis.call('HSET', KEYS[1], 'decided', ARGV[1])
return redis.call('HGET', KEYS[1], 'memory') or ''
