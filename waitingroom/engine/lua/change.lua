-- Change the room's live config and audit it, in one step (engine/room_change.py
-- checked the values). KEYS[CORE + 1]: the room's audit stream.
-- ARGV: who, action, audit ('1': write the entry; '' for the origin's stream of stock
-- reports, audited apart), the audit's length, then N and N field/value conditions
-- (the change is made only if each field holds that value now: adaptive capacity
-- yields to ops who pinned the cap meanwhile), then field/value pairs to write.
-- A message set is stamped (message_at), an empty one clears every language's; a stock
-- of '' stops counting; a stock run out or back from 0 is stamped (set_stock, in
-- _room.lua). The audit entry holds, of the room's config as ops read it
-- (RoomConfig), the fields that changed: before and after. Returns 1, or 0 if a
-- condition did not hold (nothing written).
local audit = KEYS[CORE + 1]
local who, action, audited, length = ARGV[1], ARGV[2], ARGV[3] == '1', ARGV[4]
local conditions = tonumber(ARGV[5])
for i = 6, 5 + 2 * conditions, 2 do
  if redis.call('HGET', config, ARGV[i]) ~= ARGV[i + 1] then return 0 end
end

-- The config hash as RoomConfig holds it (engine/rooms.py, RoomStore.config).
local NUMBERS = {capacity = 0, rate = 0, max_waiting = 0, capacity_min = 1, capacity_max = 0,
                 sales_per_session = 1, start_at = 0, message_at = 0, restocked_at = 0,
                 sold_out_at = 0}
local TEXTS = {mode = 'normal', message = '', capture = 'auto', method = 'fifo',
               capacity_mode = 'fixed'}
local function typed()
  local raw = redis.call('HGETALL', config)
  local hash = {}
  for i = 1, #raw, 2 do hash[raw[i]] = raw[i + 1] end
  local out = {paused = hash.paused == '1', messages = {}}
  for name, default in pairs(NUMBERS) do
    local field = string.sub(name, -3) == '_at' and name .. '_ms' or name
    out[field] = tonumber(hash[name]) or default
  end
  for name, default in pairs(TEXTS) do out[name] = hash[name] or default end
  out.stock = tonumber(hash.stock) or cjson.null
  for field, text in pairs(hash) do
    if string.sub(field, 1, 8) == 'message:' and text ~= '' then
      out.messages[string.sub(field, 9)] = text
    end
  end
  return out
end

local function same_messages(a, b)
  for lang, text in pairs(a) do if b[lang] ~= text then return false end end
  for lang, text in pairs(b) do if a[lang] ~= text then return false end end
  return true
end

local before = audited and typed()
local stock_before = tonumber(redis.call('HGET', config, 'stock'))
local stamp_message = false
for i = 6 + 2 * conditions, #ARGV, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  if field == 'stock' then
    set_stock(stock_before, tonumber(value))  -- '': stop counting
  elseif field == 'message' and value == '' then
    -- No message: in no language either (a translation given in this same change is
    -- written after, as RoomChange.as_config orders the fields).
    redis.call('HSET', config, 'message', '')
    for _, name in ipairs(redis.call('HKEYS', config)) do
      if string.sub(name, 1, 8) == 'message:' then redis.call('HDEL', config, name) end
    end
  else
    redis.call('HSET', config, field, value)
  end
  if field == 'message' or string.sub(field, 1, 8) == 'message:' then stamp_message = true end
end
if stamp_message then redis.call('HSET', config, 'message_at', real_ms()) end

if audited then
  local after = typed()
  local was, now = {}, {}
  for field, value in pairs(after) do
    local changed
    if field == 'messages' then
      changed = not same_messages(before.messages, value)
    else
      changed = before[field] ~= value
    end
    if changed then
      was[field], now[field] = before[field], value
    end
  end
  -- An empty object, not an array: cjson writes an empty table as {} (and '{}' here).
  redis.call('XADD', audit, 'MAXLEN', '~', length, '*', 'who', who, 'action', action,
             'before', next(was) and cjson.encode(was) or '{}',
             'after', next(now) and cjson.encode(now) or '{}')
end
return 1
