-- Walk-aways (after _line.lua, before _admit.lua; prepended to every script): the
-- ring of "heard" bitmaps turned once per epoch, and those unheard of for the whole
-- grace marked as gone.

-- A new epoch: clear the ring's slots of epochs now past. True if one began and
-- walk-aways may be judged.
local function rotate()
  local last = tonumber(redis.call('HGET', stats, 'epoch'))
  if last == EPOCH then return false end
  redis.call('HSET', stats, 'epoch', EPOCH)
  if not last then return false end  -- a new room: nothing to judge yet
  local head, last_n = line_head(), line_end()
  local now_slot = heard_slot(EPOCH)
  if EPOCH - last > 1 then
    -- A whole epoch went by in which the room heard from nobody at all: no process
    -- was looking. Time in which nobody could be heard does not count against anyone:
    -- whoever was heard in the grace before it counts as heard now, and the judging
    -- starts again from here.
    if last_n > head then
      each_chunk(heard, head + 1, last_n, function(_, _, _, base)
        local c = ':' .. math.floor(base / CHUNK)
        local others = {}
        for slot = 0, EPOCHS do
          if heard .. ':' .. slot ~= now_slot then others[#others + 1] = heard .. ':' .. slot .. c end
        end
        redis.call('BITOP', 'OR', now_slot .. c, now_slot .. c, unpack(others))
        redis.call('DEL', unpack(others))
      end)
    end
    return false
  end
  if last_n > head then
    each_chunk(now_slot, head + 1, last_n, function(key) redis.call('DEL', key) end)
  end
  return true
end

-- Once per epoch: everyone in line unheard of for the whole grace (and not away with
-- a kept place) walked away. A few bitmap operations per chunk of the line.
local function sweep(now, grace_ms)
  local notify = string.sub(line, 1, -5) .. 'notify'
  local lapsed = redis.call('ZRANGEBYSCORE', notify .. ':until', '-inf', now - grace_ms,
                            'LIMIT', 0, PRUNE_BATCH)
  if #lapsed > 0 then  -- asked to be told, but their place lapsed long ago
    redis.call('HDEL', notify, unpack(lapsed))
    redis.call('ZREM', notify .. ':until', unpack(lapsed))
  end
  local head, last_n = line_head(), line_end()
  redis.call('ZREMRANGEBYSCORE', away, '-inf', '(' .. now)
  redis.call('ZREMRANGEBYSCORE', hidden, '-inf', now - grace_ms)  -- swept by now
  if last_n <= head then return end
  local kept = redis.call('ZRANGE', away, 0, -1)
  local staying = heard .. ':staying'
  local gone = 0
  each_chunk(left, head + 1, last_n, function(key, lo, hi, base)
    local c = ':' .. math.floor(base / CHUNK)
    local sources = {key}
    for slot = 0, EPOCHS do sources[#sources + 1] = heard .. ':' .. slot .. c end
    redis.call('BITOP', 'OR', staying, unpack(sources))
    for _, n in ipairs(kept) do
      n = tonumber(n)
      if n >= base + lo and n <= base + hi then redis.call('SETBIT', staying, n - base, 1) end
    end
    local size = math.floor(hi / 8) + 1  -- cover the range, so NOT marks all of it
    if redis.call('STRLEN', staying) < size then redis.call('SETRANGE', staying, size - 1, '\0') end
    local here = hi - lo + 1 - redis.call('BITCOUNT', staying, lo, hi, 'BIT')
    if here > 0 then  -- bits past the line's end get set too: join_line clears its own
      redis.call('BITOP', 'NOT', staying, staying)
      redis.call('BITOP', 'OR', key, key, staying)
      WHOLE[key] = nil
      gone = gone + here
    end
  end)
  redis.call('DEL', staying)
  if gone > 0 then redis.call('HINCRBY', stats, 'abandoned', gone) end
end
