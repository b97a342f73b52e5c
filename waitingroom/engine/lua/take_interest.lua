-- Up to ARGV[1] of the details left to hear of more stock (KEYS[CORE + 1], the interest
-- stream) before the last restock and not yet told of it, oldest first, each taken by
-- one caller: the cursor (stats interest_told) moves past them. Returns their entries.
local interest = KEYS[CORE + 1]
local restocked = redis.call('HGET', config, 'restocked_at')
if not restocked then return {} end
local cursor = redis.call('HGET', stats, 'interest_told') or '0-0'
local entries = redis.call('XRANGE', interest, '(' .. cursor, restocked, 'COUNT', tonumber(ARGV[1]))
if #entries > 0 then redis.call('HSET', stats, 'interest_told', entries[#entries][1]) end
return entries
