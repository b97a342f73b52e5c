-- Admission (after _sweep.lua; prepended to every script): expired sessions, who is
-- here, filling free slots, claiming and telling.


-- Drop sessions past their expiry and waiters unheard of for longer than the grace.
-- ``heard`` (optional): arrival numbers of waiters who asked since room time
-- ``heard_since`` (the process's last call).
local ACTIVE  -- sessions and held slots, read once per call and kept up to date
local function active_count()
  ACTIVE = ACTIVE or redis.call('ZCARD', active)
  return ACTIVE
end

local EPOCH_MS
local function prune(now, grace_ms, heard_numbers, heard_since)
  draw()
  EPOCH_MS = math.max(1, math.floor(grace_ms / EPOCHS))
  EPOCH = math.floor(now / EPOCH_MS)
  local new_epoch = rotate()
  if heard_numbers then heard_all(heard_numbers, heard_since) end
  if new_epoch then sweep(now, grace_ms) end
  trim()
  local expired = redis.call('ZRANGEBYSCORE', active, '-inf', now, 'LIMIT', 0, PRUNE_BATCH)
  if #expired > 0 then
    redis.call('ZREM', active, unpack(expired))
    ACTIVE = nil
    local hard = redis.call('HMGET', deadline, unpack(expired))
    -- A slot held for a visitor who did not come (no hard end), or a session that ended
    -- early (negative: one request only, or its page went; not one at its hard end),
    -- goes on standby: the first free slot is theirs if they come back within the grace.
    local counts, missed = {expired = 0, early = 0, missed = 0}, {}
    for i, id in ipairs(expired) do
      local hard_end = tonumber(hard[i])
      local kind = not hard_end and 'missed' or hard_end < 0 and now < -hard_end and 'early'
        or 'expired'
      counts[kind] = counts[kind] + 1
      if kind ~= 'expired' then missed[#missed + 1] = now + grace_ms; missed[#missed + 1] = id end
    end
    redis.call('HDEL', deadline, unpack(expired))
    if #missed > 0 then redis.call('ZADD', standby, unpack(missed)) end
    for kind, count in pairs(counts) do
      if count > 0 then redis.call('HINCRBY', stats, kind, count) end
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
-- near the head) and its page not gone since, or away with its place kept until told
-- (asked to be notified).
local function present(id, n, now)
  if n == 0 then
    local at = tonumber(redis.call('ZSCORE', seen, id))
    return at ~= nil and at >= now - 2 * EPOCH_MS
  end
  return (get_bit(heard_slot(EPOCH), n) == 1 or get_bit(heard_slot(EPOCH - 1), n) == 1)
      and not (hiding() and redis.call('ZSCORE', hidden, n))
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

-- The k-th waiter still in line (1-based, from the head): chunks skipped by their
-- counts, then the one found halved with BITCOUNT (16 steps at most).
local function kth_in_line(k)
  local found
  each_chunk(left, line_head() + 1, line_end(), function(key, lo, hi, base)
    if found then return end
    local here = hi - lo + 1 - redis.call('BITCOUNT', key, lo, hi, 'BIT')
    if k > here then k = k - here; return end
    local a, b = lo, hi
    while a < b do
      local mid = math.floor((a + b) / 2)
      if mid - lo + 1 - redis.call('BITCOUNT', key, lo, mid, 'BIT') >= k then b = mid
      else a = mid + 1 end
    end
    found = base + a
  end)
  return found
end

-- Up to ``wanted`` ids drawn at random from everyone in line (method 'random': each
-- draw is fair among those still in it), into ``out`` if present, else ``absent``;
-- each drawn leaves the line, and the head moves past those drawn at its front.
local function draw_from_line(wanted, out, absent, now)
  local t = redis.call('TIME')  -- else every call would draw the same sequence
  -- (a seed within a C int: Redis casts it)
  math.randomseed(tonumber(t[1]) % 1000 * 1000000 + tonumber(t[2]) + line_end() % 100000)
  local draws = 0
  while #out < wanted and draws < wanted + 16 do
    draws = draws + 1
    local head, last_n = line_head(), line_end()
    local waiting = last_n - head - count_bits(left, head + 1, last_n)
    if waiting <= 0 then break end
    local n = kth_in_line(math.random(waiting))
    if not n then break end
    local id = redis.call('HGET', bucket(n), n)
    leave_line(n)
    redis.call('ZREM', away, n)
    if id then
      if present(id, n, now) then out[#out + 1] = id else absent[#absent + 1] = id end
    end
  end
  local head, last_n = line_head(), line_end()
  local first = first_clear(left, head + 1, last_n)
  local moved = first and first - 1 or last_n
  if moved > head then
    redis.call('HSET', stats, 'head', moved)
    HEAD = moved
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
local HOLD_CLAIMS = 6  -- told again and again, a slot is held this many windows at most

-- Where this room's admissions are announced (PUBLISH): every process holding an
-- admitted visitor's event stream tells it at once.
local ANNOUNCE = string.sub(line, 1, -5) .. 'admitted'

-- Ids let in again by the last fill (a second place of an id already in): see visit.lua.
local REPEATED = {}

-- Admit the longest-waiting visitors who are here into the free slots, in arrival
-- order, no faster than the admission rate: the lanes first (priority, then the
-- pre-queue), then the line. Each must claim its slot within the claim window, or the
-- slot goes on (see prune). Those next in turn but not heard from lately take no slot:
-- they go on standby with their turn kept, and the first free slot is theirs if they
-- come back within the grace (visit.lua: back in the priority lane, before everyone).
-- Returns how many were let in.
local function fill(now, grace_ms)
  if PAUSED or SOLD_OUT or until_start() > 0 then return 0 end
  local allowed, tokens = rate_allowance(now)
  local free = math.min(CAPACITY - active_count(), allowed, ADMIT_BATCH)
  if METHOD == 'passthrough' then  -- everyone in, counted: no cap, no rate
    allowed, free = math.huge, ADMIT_BATCH
  end
  local admitted, absent = {}, {}
  if free > 0 then
    take_from_lane(priority, free, admitted, absent, now)
    if #admitted < free then take_from_lane(prequeue, free, admitted, absent, now) end
    if #admitted < free then
      if METHOD == 'random' then draw_from_line(free, admitted, absent, now)
      else take_from_line(free, admitted, absent, now) end
    end
  end
  -- One visitor, one session: a second place of an id already let in (a hello sent
  -- twice, a retried reload) takes no second slot, nor touches the first.
  local once, seen_ids = {}, {}
  for _, id in ipairs(admitted) do
    if seen_ids[id] or redis.call('ZSCORE', active, id) then REPEATED[id] = true
    else once[#once + 1] = id end
    seen_ids[id] = true
  end
  admitted = once
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
  local entries, caps, held_until = {}, {}, now + claim_window(grace_ms)
  for i, id in ipairs(admitted) do
    entries[2 * i - 1], entries[2 * i] = held_until, id
    caps[2 * i - 1], caps[2 * i] = id, 'h' .. (now + HOLD_CLAIMS * claim_window(grace_ms))
  end
  ACTIVE = active_count() + redis.call('ZADD', active, unpack(entries))
  redis.call('HSET', deadline, unpack(caps))  -- how long telling it can hold the slot
  redis.call('HINCRBY', stats, 'admitted', #admitted)
  redis.call('PUBLISH', ANNOUNCE, line_head() .. ' ' .. table.concat(admitted, ' '))
  return #admitted
end

-- Keep a session alive: its expiry moves to now + idle, never past its hard end,
-- which is fixed the first time the session is used (its first request: then the
-- idle time is ``first_idle_ms`` if given, for sessions that make no second request,
-- and the session may end early: its hard end is kept negative until the next).
-- False if there is no session.
local function claim(id, now, idle_ms, max_ms, first_idle_ms)
  if not redis.call('ZSCORE', active, id) then return false end
  local hard = tonumber(redis.call('HGET', deadline, id))
  if not hard then
    hard = now + max_ms
    if first_idle_ms and first_idle_ms > 0 and first_idle_ms < idle_ms then
      idle_ms = first_idle_ms
      redis.call('HSET', deadline, id, -hard)
    else
      redis.call('HSET', deadline, id, hard)
    end
  elseif hard < 0 then  -- a second request (or the page is back): a session like any
    hard = -hard
    redis.call('HSET', deadline, id, hard)
  end
  redis.call('ZADD', active, math.min(now + idle_ms, hard), id)
  return true
end

-- Is ``id`` admitted? Like claim, but for a visitor only told so (a status poll, an
-- event stream): a slot not yet claimed is held one more claim window (the visitor is
-- here, its page is on its way), up to HOLD_CLAIMS windows from when it was let in (a
-- client that asks and never comes holds nothing for long); a session's clock is not
-- touched.
local function told(id, now, grace_ms)
  if not redis.call('ZSCORE', active, id) then return false end
  local held = redis.call('HGET', deadline, id)
  if held and string.sub(held, 1, 1) == 'h' then
    local until_ms = math.min(now + claim_window(grace_ms), tonumber(string.sub(held, 2)))
    redis.call('ZADD', active, 'XX', 'GT', until_ms, id)
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
