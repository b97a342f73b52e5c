-- Shared by every room script (prepended at load time; not a script on its own).
--
-- KEYS, the same in every script, all under the room's {hash tag}:
--   1 line     prefix of the line's buckets: 'line:<b>' HASH arrival number -> visitor
--              id, for numbers b*BUCKET .. b*BUCKET+BUCKET-1 still in line. Small
--              hashes, which Redis packs tightly: about 20 bytes a waiter
--   2 seen     ZSET   invitee or pre-queue id -> last time the visitor asked, ms
--   3 active   ZSET   session id -> expiry, ms (the token counter: its size is
--                     the number of sessions; pruning by score heals it)
--   4 deadline HASH   session id -> hard end of the session, ms; set on claim
--   5 seq      STRING last arrival number handed out
--   6 config   HASH   capacity, paused ("1"), mode, message, rate (admissions per
--                     minute, 0 = no limit) -- ops-tunable, live; clock (see below)
--   7 stats    HASH   counters: admitted, abandoned, expired, released; the rate's
--                     token bucket: bucket (tokens), bucket_at (ms); head: every arrival
--                     number up to head has left the line; epoch: see heard; invites;
--                     trimmed: state below this number is deleted; the room's clock
--                     (clock_at, skipped); server: the Redis run that last handed out a
--                     number; void_from, void_to: numbers never used (see join_line)
--   8 priority ZSET   invited visitor id -> redemption number: a lane served
--                     before the queue (invitees never raise anyone's position)
--   9 prequeue ZSET   visitors who came before a scheduled start, all scored 0: ids
--                     are random, so their order is a fair draw (config start_at, ms).
--                     From the start it is a lane served before the line
--  10 left     prefix of 'left:<chunk>' bitmaps: bit n set = waiter n walked away (or
--              took an invite). Every bitmap indexed by arrival number is cut into
--              chunks of CHUNK numbers; chunks behind the head are deleted (trim)
--  11 heard    prefix of 'heard:<slot>:<chunk>' bitmaps, one slot per epoch (a quarter
--              of the grace), EPOCHS + 1 of them in a ring: bit n set = waiter n asked
--  12 away     ZSET   arrival number -> until when (ms) the place is kept for a waiter
--                     who is away (asked to be notified)
--  13 renamed  ZSET   arrival numbers (scored by themselves) whose place moved to
--                     another device: processes answer those from Redis, not a copy
--  14 standby  ZSET   visitor id -> until when (ms): let in while away, they did not
--                     come within the claim window; the slot went on, and the first
--                     free slot is theirs if they come back in time (see fill)
-- A script's own keys follow these: KEYS[CORE + 1], ... (the loader defines CORE,
-- the number of keys above, from the same list the Python side builds them from).
-- Times are room time in milliseconds (see now_ms), never a process's clock.
-- Bitmaps need Redis 7 (BITCOUNT and BITPOS over BIT ranges).
local line, seen, active, deadline, seq, config, stats, priority, prequeue, left, heard, away,
  renamed, standby = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8],
  KEYS[9], KEYS[10], KEYS[11], KEYS[12], KEYS[13], KEYS[14]

local BUCKET = 128  -- Redis keeps hashes of up to 128 short entries packed
local EPOCHS = 4    -- unheard of for this many epochs (the grace): walked away
local CHUNK = 65536 -- arrival numbers per bitmap chunk (8 KB)
-- Numbers set aside when Redis may have lost the last writes (a restart, a failover):
-- more than it can hand out in the second or two appendfsync everysec may lose.
local VOID = CHUNK

-- Bound the work one call does; a backlog is worked off over the next calls.
local PRUNE_BATCH = 250
local ADMIT_BATCH = 128  -- admissions per call (a capacity raised by more fills over calls)

-- The room's live config, read once per call. 'clock' exists only in the capacity
-- planner's private Redis (waitingroom simulate): simulated time, in ms.
local settings = redis.call('HMGET', config, 'capacity', 'paused', 'rate', 'start_at', 'mode',
                            'clock', 'outage_ms')
local CAPACITY = tonumber(settings[1]) or 0
local PAUSED = settings[2] == '1'
local RATE = tonumber(settings[3]) or 0
local START_AT = tonumber(settings[4]) or 0
local MODE = settings[5] or 'normal'
local CLOCK = tonumber(settings[6])
-- A gap longer than this between two calls for the room is an outage: nobody could
-- reach the room, so the time beyond it does not count. Every process serving the room
-- calls twice a second (its breaker report), so a real gap means Redis was down or out
-- of reach, or no process was running. Simulated time has no outages unless a test
-- asks for them.
local OUTAGE_MS = tonumber(settings[7]) or (CLOCK and math.huge or 1000)

-- Redis's own time (or the planner's simulated time): for what ops schedule by the
-- wall clock (the start) and records stamped with it.
local function real_ms()
  if CLOCK then return CLOCK end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Room time: Redis time less every outage, and never going back (a failover to a
-- server whose clock is behind). Waiters, reservations and sessions all age by it, so
-- an outage, however long, costs nobody their place or their session.
local NOW
local function now_ms()
  if NOW then return NOW end
  local real = real_ms()
  local last = redis.call('HMGET', stats, 'clock_at', 'skipped')
  local at, skipped = tonumber(last[1]), tonumber(last[2]) or 0
  if at and (real - at > OUTAGE_MS or real < at) then
    skipped = skipped + real - at - math.max(0, math.min(real - at, OUTAGE_MS))
  end
  redis.call('HSET', stats, 'clock_at', real, 'skipped', skipped)
  NOW = real - skipped
  return NOW
end

-- Ms until the scheduled start, or 0 if none is pending.
local function until_start()
  if START_AT == 0 then return 0 end
  return math.max(0, START_AT - real_ms())
end

-- At the start the schedule is done with: the pre-queue, in its drawn order, becomes
-- a lane served before the line (see fill).
local function draw()
  if START_AT == 0 or until_start() > 0 then return end
  redis.call('HSET', config, 'start_at', 0)
  START_AT = 0
end

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

local function heard_now(n)
  if n > line_head() and n <= line_end() then set_bit(heard_slot(EPOCH), n, 1) end
end

-- heard_now for many numbers: one BITFIELD per chunk rather than a SETBIT each.
local function heard_all(numbers)
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

-- Drop sessions past their expiry and waiters unheard of for longer than the grace.
-- ``heard`` (optional): arrival numbers of waiters who asked since the last call.
local ACTIVE  -- sessions and held slots, read once per call and kept up to date
local function active_count()
  ACTIVE = ACTIVE or redis.call('ZCARD', active)
  return ACTIVE
end

local EPOCH_MS
local function prune(now, grace_ms, heard_numbers)
  draw()
  EPOCH_MS = math.max(1, math.floor(grace_ms / EPOCHS))
  EPOCH = math.floor(now / EPOCH_MS)
  local new_epoch = rotate()
  if heard_numbers then heard_all(heard_numbers) end
  if new_epoch then sweep(now, grace_ms) end
  trim()
  local expired = redis.call('ZRANGEBYSCORE', active, '-inf', now, 'LIMIT', 0, PRUNE_BATCH)
  if #expired > 0 then
    redis.call('ZREM', active, unpack(expired))
    ACTIVE = nil
    local hard = redis.call('HMGET', deadline, unpack(expired))
    local ended, missed = {}, {}
    for i, id in ipairs(expired) do
      if hard[i] then
        ended[#ended + 1] = id
      else  -- a slot held for a visitor who did not come: on standby (see fill)
        missed[#missed + 1] = now + grace_ms
        missed[#missed + 1] = id
      end
    end
    if #ended > 0 then
      redis.call('HDEL', deadline, unpack(ended))
      redis.call('HINCRBY', stats, 'expired', #ended)
    end
    if #missed > 0 then
      redis.call('ZADD', standby, unpack(missed))
      redis.call('HINCRBY', stats, 'missed', #missed / 2)
    end
  end
  local lapsed = redis.call('ZRANGEBYSCORE', standby, '-inf', now, 'LIMIT', 0, PRUNE_BATCH)
  if #lapsed > 0 then  -- never came back
    redis.call('ZREM', standby, unpack(lapsed))
    redis.call('HINCRBY', stats, 'abandoned', #lapsed)
  end
  local gone = redis.call('ZRANGEBYSCORE', seen, '-inf', now - grace_ms, 'LIMIT', 0, PRUNE_BATCH)
  if #gone > 0 then
    redis.call('ZREM', priority, unpack(gone))
    redis.call('ZREM', prequeue, unpack(gone))
    redis.call('ZREM', seen, unpack(gone))
    redis.call('HINCRBY', stats, 'abandoned', #gone)
  end
end

-- Is waiter n (in line) or lane visitor id (n = 0) here to take a slot now? Heard from
-- this epoch or the last (a quarter to half the grace; polls come every few seconds
-- near the head), or away with its place kept until told (asked to be notified).
local function present(id, n, now)
  if n == 0 then
    local at = tonumber(redis.call('ZSCORE', seen, id))
    return at ~= nil and at >= now - 2 * EPOCH_MS
  end
  return get_bit(heard_slot(EPOCH), n) == 1 or get_bit(heard_slot(EPOCH - 1), n) == 1
    or redis.call('ZSCORE', away, n) ~= false
end

-- Up to ``wanted`` ids from the head of the line taken out of it, in order, into
-- ``out`` if present, else into ``absent``. Runs of walk-aways are skipped a chunk at a
-- time.
local function take_from_line(wanted, out, absent, now)
  local head, last_n = line_head(), line_end()
  local n, steps, taken = head, 0, {}
  while #out < wanted and n < last_n and steps < PRUNE_BATCH do
    steps = steps + 1
    local next_n = n + 1  -- most often the next one is still in line
    if get_bit(left, next_n) == 1 then next_n = first_clear(left, n + 1, last_n) end
    if not next_n then n = last_n; break end
    n = next_n
    local id = redis.call('HGET', bucket(n), n)  -- its bucket goes once behind (trim)
    if id then
      if present(id, n, now) then out[#out + 1] = id else absent[#absent + 1] = id end
      taken[#taken + 1] = n
    end
  end
  if #taken > 0 and redis.call('EXISTS', away) == 1 then redis.call('ZREM', away, unpack(taken)) end
  if n ~= head then
    redis.call('HSET', stats, 'head', n)
    HEAD = n
  end
end

-- Up to ``wanted`` ids from the front of a lane (the priority lane, the pre-queue) taken
-- out of it, as take_from_line.
local function take_from_lane(lane, wanted, out, absent, now)
  local steps = 0
  while #out < wanted and steps < PRUNE_BATCH do
    local ids = redis.call('ZRANGE', lane, 0, wanted - #out - 1)
    if #ids == 0 then return end
    steps = steps + #ids
    for _, id in ipairs(ids) do
      if present(id, 0, now) then out[#out + 1] = id else absent[#absent + 1] = id end
    end
    redis.call('ZREM', lane, unpack(ids))
    redis.call('ZREM', seen, unpack(ids))
    if lane == prequeue then LANES = nil end
  end
end

-- How many admissions the rate allows now: a token bucket refilled at rate/minute,
-- holding at most one second's worth (and at least one).
local function rate_allowance(now)
  local rate = RATE
  if rate <= 0 then return math.huge, 0 end
  local burst = math.max(1, math.ceil(rate / 60))
  local tokens = tonumber(redis.call('HGET', stats, 'bucket')) or burst
  local at = tonumber(redis.call('HGET', stats, 'bucket_at')) or now
  tokens = math.min(burst, tokens + (now - at) * rate / 60000)
  return math.floor(tokens), tokens
end

-- How long a slot is held for the visitor it was given to: a twelfth of the grace, 2
-- to 10 s (5 s at the default grace): a page load, or two polls at the head.
local function claim_window(grace_ms)
  return math.min(10000, math.max(2000, math.floor(grace_ms / 12)))
end

-- Where this room's admissions are announced (PUBLISH): every process holding an
-- admitted visitor's event stream tells it at once.
local ANNOUNCE = string.sub(line, 1, -5) .. 'admitted'

-- Admit the longest-waiting visitors who are here into the free slots, in arrival
-- order, no faster than the admission rate: the lanes first (priority, then the
-- pre-queue), then the line. Each must claim its slot within the claim window, or the
-- slot goes on (see prune). Those next in turn but not heard from lately take no slot:
-- they go on standby with their turn kept, and the first free slot is theirs if they
-- come back within the grace (visit.lua: back in the priority lane, before everyone).
-- Returns how many were let in.
local function fill(now, grace_ms)
  if PAUSED or until_start() > 0 then return 0 end
  local allowed, tokens = rate_allowance(now)
  local free = math.min(CAPACITY - active_count(), allowed, ADMIT_BATCH)
  local admitted, absent = {}, {}
  if free > 0 then
    take_from_lane(priority, free, admitted, absent, now)
    if #admitted < free then take_from_lane(prequeue, free, admitted, absent, now) end
    if #admitted < free then take_from_line(free, admitted, absent, now) end
  end
  if allowed ~= math.huge then  -- charge the bucket for what was really admitted
    redis.call('HSET', stats, 'bucket', tokens - #admitted, 'bucket_at', now)
  end
  if #absent > 0 then
    local entries = {}
    for i, id in ipairs(absent) do
      entries[2 * i - 1] = now + grace_ms
      entries[2 * i] = id
    end
    redis.call('ZADD', standby, unpack(entries))
    redis.call('HINCRBY', stats, 'missed', #absent)
  end
  if #admitted == 0 then return 0 end
  local entries, held_until = {}, now + claim_window(grace_ms)
  for i, id in ipairs(admitted) do
    entries[2 * i - 1] = held_until
    entries[2 * i] = id
  end
  ACTIVE = active_count() + redis.call('ZADD', active, unpack(entries))
  redis.call('HINCRBY', stats, 'admitted', #admitted)
  redis.call('PUBLISH', ANNOUNCE, line_head() .. ' ' .. table.concat(admitted, ' '))
  return #admitted
end

-- Keep a session alive: its expiry moves to now + idle, never past its hard end,
-- which is fixed the first time the session is used (its first request: then the
-- idle time is ``first_idle_ms`` if given, for sessions that make no second request).
-- False if there is no session.
local function claim(id, now, idle_ms, max_ms, first_idle_ms)
  if not redis.call('ZSCORE', active, id) then return false end
  local hard = tonumber(redis.call('HGET', deadline, id))
  if not hard then
    hard = now + max_ms
    redis.call('HSET', deadline, id, hard)
    if first_idle_ms and first_idle_ms > 0 then idle_ms = first_idle_ms end
  end
  redis.call('ZADD', active, math.min(now + idle_ms, hard), id)
  return true
end

-- Is ``id`` admitted? Like claim, but for a visitor only told so (a status poll, an
-- event stream): a slot not yet claimed is held one more claim window (the visitor is
-- here, its page is on its way), a session's clock is not touched.
local function told(id, now, grace_ms)
  if not redis.call('ZSCORE', active, id) then return false end
  if redis.call('HEXISTS', deadline, id) == 0 then
    redis.call('ZADD', active, 'XX', 'GT', now + claim_window(grace_ms), id)
  end
  return true
end

-- A visitor on standby (see fill) is back: the first free slot is theirs, before
-- anyone else's (the front of the priority lane, in the order they were let in).
-- False if ``id`` is not on standby.
local RETURNED = -1e13  -- below every invite's redemption number
local function come_back(id, now)
  local until_ms = redis.call('ZSCORE', standby, id)
  if not until_ms then return false end
  redis.call('ZREM', standby, id)
  redis.call('ZADD', priority, RETURNED + tonumber(until_ms), id)
  redis.call('ZADD', seen, now, id)
  return true
end

local function admitted_total()
  return tonumber(redis.call('HGET', stats, 'admitted')) or 0
end
