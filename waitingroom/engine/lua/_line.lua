-- The line (after _room.lua, before _sweep.lua; prepended to every script): arrival
-- numbers, their buckets and bitmaps, positions, who was heard from, joining, leaving.

-- The line. Waiter n (its arrival number) is in line while head < n <= seq, bit n of
-- left is clear and its bucket names it; its position counts only those ahead who are
-- still in line, so walking away moves everyone behind up.
local function bucket(n)
  return line .. ':' .. math.floor(n / BUCKET)
end

-- The head and the end, read once per call (and kept up to date by what moves them).
local HEAD, END
local function line_head()
  HEAD = HEAD or tonumber(redis.call('HGET', stats, 'head')) or 0
  return HEAD
end

local function line_end()
  END = END or tonumber(redis.call('GET', seq)) or 0
  return END
end

-- Bitmaps by arrival number, in chunks: bitmap 'prefix' holds bit n in key
-- 'prefix:<n // CHUNK>' at n % CHUNK.
local function chunk(prefix, n)
  return prefix .. ':' .. math.floor(n / CHUNK), n % CHUNK
end

local function get_bit(prefix, n)
  local key, bit = chunk(prefix, n)
  return redis.call('GETBIT', key, bit)
end

-- Bits set in whole chunks, counted once per call: a batch of positions far down a
-- long line then costs two partial counts each. Forgotten when the chunk changes.
local WHOLE = {}

local function set_bit(prefix, n, value)
  local key, bit = chunk(prefix, n)
  redis.call('SETBIT', key, bit, value)
  WHOLE[key] = nil
end

-- Calls fn(key, first bit, last bit, first number) for each chunk of numbers a..b.
local function each_chunk(prefix, a, b, fn)
  for c = math.floor(a / CHUNK), math.floor(b / CHUNK) do
    local base = c * CHUNK
    fn(prefix .. ':' .. c, math.max(a, base) - base, math.min(b, base + CHUNK - 1) - base, base)
  end
end

-- Bits set among numbers a..b.
local function count_bits(prefix, a, b)
  local total = 0
  if b < a then return 0 end
  each_chunk(prefix, a, b, function(key, lo, hi)
    if lo == 0 and hi == CHUNK - 1 then
      WHOLE[key] = WHOLE[key] or redis.call('BITCOUNT', key)
      total = total + WHOLE[key]
    else
      total = total + redis.call('BITCOUNT', key, lo, hi, 'BIT')
    end
  end)
  return total
end

-- The first number in a..b whose bit is clear, or nil. (BITPOS finds no clear bit past
-- a string's end, nor anywhere in a missing key: both count as clear here.)
local function first_clear(prefix, a, b)
  if b < a then return nil end
  for c = math.floor(a / CHUNK), math.floor(b / CHUNK) do
    local base = c * CHUNK
    local key = prefix .. ':' .. c
    local lo, hi = math.max(a, base) - base, math.min(b, base + CHUNK - 1) - base
    local size = redis.call('STRLEN', key) * 8
    if size <= lo then return base + lo end
    local at = redis.call('BITPOS', key, 0, lo, math.min(hi, size - 1), 'BIT')
    if at >= 0 then return base + at end
    if size <= hi then return base + size end
  end
  return nil
end

-- Set every bit of numbers a..b.
local function set_bits(prefix, a, b)
  each_chunk(prefix, a, b, function(key, lo, hi)
    WHOLE[key] = nil
    while lo <= hi and lo % 8 ~= 0 do redis.call('SETBIT', key, lo, 1); lo = lo + 1 end
    while hi >= lo and hi % 8 ~= 7 do redis.call('SETBIT', key, hi, 1); hi = hi - 1 end
    if hi > lo then
      redis.call('SETRANGE', key, math.floor(lo / 8), string.rep('\255', math.floor((hi - lo + 1) / 8)))
    end
  end)
end

-- The bytes of bitmap 'prefix' holding numbers a..b (from byte a // 8), missing bytes
-- as zeros.
local function bitmap_bytes(prefix, a, b)
  local parts = {}
  each_chunk(prefix, a - a % 8, b, function(key, lo, hi)
    local first, last = math.floor(lo / 8), math.floor(hi / 8)
    local bytes = redis.call('GETRANGE', key, first, last)
    parts[#parts + 1] = bytes .. string.rep('\0', last - first + 1 - #bytes)
  end)
  return table.concat(parts)
end

local function in_line(id, n)
  return n > line_head() and n <= line_end() and get_bit(left, n) == 0
    and redis.call('HGET', bucket(n), n) == id
end

-- Those served before the line: the pre-queue, once the start has come.
local LANES  -- read once per call, forgotten when the pre-queue lane changes
local function lanes_ahead()
  if START_AT > 0 then return 0 end
  LANES = LANES or redis.call('ZCARD', prequeue)
  return LANES
end

-- 1-based position of waiter n, who is in line. Joins in one call come one after the
-- other: the next number's position is the last one's plus one while the head and the
-- lanes ahead stay put, so a batch of joins counts walk-aways once.
local RANKED = {}
local function rank(n)
  local head, lanes = line_head(), lanes_ahead()
  local r
  if RANKED.n == n - 1 and RANKED.head == head and RANKED.lanes == lanes then
    r = RANKED.rank + 1  -- n - 1 is in line (it just joined)
  else
    r = lanes + n - head - count_bits(left, head + 1, n - 1)
  end
  return r
end

-- Are at least k waiting in the line and the pre-queue? Counted exactly only when the
-- numbers handed out since the head could reach k (walk-aways make room).
local function waiting_at_least(k)
  local head, last = line_head(), line_end()
  local upper = last - head + redis.call('ZCARD', prequeue)
  return upper >= k and upper - count_bits(left, head + 1, last) >= k
end

-- Is the line as long as ops allow?
local function line_full()
  return MAX_WAITING > 0 and waiting_at_least(MAX_WAITING)
end

-- The position of waiter n, who just joined (remembered for the next join's rank).
local function rank_joined(n)
  local r = rank(n)
  RANKED = {n = n, head = line_head(), lanes = lanes_ahead(), rank = r}
  return r
end

-- The epoch now: a quarter of the grace long. A waiter is heard of in an epoch's
-- bitmap; one unheard of in the last EPOCHS epochs has walked away.
local EPOCH
local function heard_slot(epoch)
  return heard .. ':' .. (epoch % (EPOCHS + 1))
end

-- Are any waiters' pages gone (see hidden in _room.lua)? Read once per call.
local HIDING
local function hiding()
  if HIDING == nil then HIDING = redis.call('EXISTS', hidden) == 1 end
  return HIDING
end

local function heard_now(n)
  if n > line_head() and n <= line_end() then
    set_bit(heard_slot(EPOCH), n, 1)
    if hiding() then redis.call('ZREM', hidden, n) end
  end
end

-- heard_now for many numbers, heard since room time ``since`` (ms): one BITFIELD per
-- chunk rather than a SETBIT each.
local function heard_all(numbers, since)
  local head, last_n = line_head(), line_end()
  local by_chunk = {}
  for _, n in ipairs(numbers) do
    if n > head and n <= last_n then
      local c = math.floor(n / CHUNK)
      local ops = by_chunk[c]
      if not ops then ops = {}; by_chunk[c] = ops end
      local i = #ops
      ops[i + 1], ops[i + 2], ops[i + 3], ops[i + 4] = 'SET', 'u1', n - c * CHUNK, 1
    end
  end
  local slot = heard_slot(EPOCH)
  for c, ops in pairs(by_chunk) do redis.call('BITFIELD', slot .. ':' .. c, unpack(ops)) end
  if #numbers == 0 or not hiding() then return end
  -- Pages gone before ``since`` (when these began to be heard) are back; one gone since
  -- may have been heard just before it went, and stays gone until heard again.
  local gone, back = redis.call('ZMSCORE', hidden, unpack(numbers)), {}
  for i, n in ipairs(numbers) do
    if gone[i] and tonumber(gone[i]) < since then back[#back + 1] = n end
  end
  if #back > 0 then redis.call('ZREM', hidden, unpack(back)) end
end

-- The Redis server run this call runs on. A new one (a restart, a failover) may have
-- lost the last writes of the one before: numbers it handed out may come again.
local function server_run()
  return string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
end

-- After a possible loss, VOID numbers are skipped: nobody is ever given a number
-- another visitor may already hold. A holder of a lost number gets its place back
-- (see reseat).
local function void_lost_numbers()
  local run = server_run()
  local last = redis.call('HGET', stats, 'server')
  if last == run then return end
  redis.call('HSET', stats, 'server', run)
  if not last then return end
  local from = line_end()
  redis.call('SET', seq, from + VOID)
  END = from + VOID
  set_bits(left, from + 1, from + VOID)
  redis.call('HSET', stats, 'void_from', from, 'void_to', from + VOID)
end

local VOID_CHECKED = false
local function join_line(id)
  if not VOID_CHECKED then void_lost_numbers(); VOID_CHECKED = true end
  local n = redis.call('INCR', seq)
  END = n
  redis.call('HSET', bucket(n), n, id)
  set_bit(left, n, 0)  -- a walk-away sweep may have marked numbers ahead
  heard_now(n)
  return n
end

-- A ticket names number n, which Redis lost with the writes before a restart or a
-- failover: its holder takes its place back (nobody else was given it).
local function reseat(id, n)
  local from = tonumber(redis.call('HGET', stats, 'void_from')) or 0
  local to = tonumber(redis.call('HGET', stats, 'void_to')) or 0
  if n <= from or n > to or n <= line_head() or redis.call('HEXISTS', bucket(n), n) == 1 then
    return false
  end
  redis.call('HSET', bucket(n), n, id)
  set_bit(left, n, 0)
  heard_now(n)
  return true
end

local function leave_line(n)
  set_bit(left, n, 1)
  redis.call('HDEL', bucket(n), n)
end

-- Delete what the line keeps below its head: buckets and bitmap chunks. At most a
-- batch of them per call.
local function trim()
  local head = line_head()
  local done = tonumber(redis.call('HGET', stats, 'trimmed')) or 0
  local upto, budget = done, PRUNE_BATCH
  while upto + BUCKET <= head + 1 and budget > 0 do  -- bucket upto // BUCKET is behind
    local b = math.floor(upto / BUCKET)
    redis.call('DEL', line .. ':' .. b)
    if (b + 1) * BUCKET % CHUNK == 0 then  -- a whole chunk is behind too
      local c = math.floor(b * BUCKET / CHUNK)
      redis.call('DEL', left .. ':' .. c)
      for slot = 0, EPOCHS do redis.call('DEL', heard .. ':' .. slot .. ':' .. c) end
    end
    upto, budget = (b + 1) * BUCKET, budget - 1
  end
  if upto ~= done then redis.call('HSET', stats, 'trimmed', upto) end
end
