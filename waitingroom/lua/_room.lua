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
--                     number up to head has left the line; epoch: see heard; invites
--   8 priority ZSET   invited visitor id -> redemption number: a lane served
--                     before the queue (invitees never raise anyone's position)
--   9 prequeue ZSET   visitors who came before a scheduled start, all scored 0: ids
--                     are random, so their order is a fair draw (config start_at, ms).
--                     From the start it is a lane served before the line
--  10 left     STRING bitmap: bit n set = waiter n walked away (or took an invite)
--  11 heard    prefix of 'heard:<slot>' bitmaps, one per epoch (a quarter of the
--              grace), EPOCHS + 1 of them in a ring: bit n set = waiter n asked then
--  12 away     ZSET   arrival number -> until when (ms) the place is kept for a waiter
--                     who is away (asked to be notified)
--  13 renamed  ZSET   arrival numbers (scored by themselves) whose place moved to
--                     another device: processes answer those from Redis, not a copy
-- A script's own keys follow these: KEYS[CORE + 1], ... (the loader defines CORE,
-- the number of keys above, from the same list the Python side builds them from).
-- Times are Redis server time in milliseconds, never a process's clock (or, in the
-- capacity planner only, its simulated time).
-- Bitmaps need Redis 7 (BITCOUNT and BITPOS over BIT ranges).
local line, seen, active, deadline, seq, config, stats, priority, prequeue, left, heard, away,
  renamed = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9],
  KEYS[10], KEYS[11], KEYS[12], KEYS[13]

local BUCKET = 128  -- Redis keeps hashes of up to 128 short entries packed
local EPOCHS = 4    -- unheard of for this many epochs (the grace): walked away

-- Bound the work one call does; a backlog is worked off over the next calls.
local PRUNE_BATCH = 1000

-- The room's live config, read once per call. 'clock' exists only in the capacity
-- planner's private Redis (waitingroom simulate): simulated time, in ms.
local settings = redis.call('HMGET', config, 'capacity', 'paused', 'rate', 'start_at', 'mode',
                            'clock')
local CAPACITY = tonumber(settings[1]) or 0
local PAUSED = settings[2] == '1'
local RATE = tonumber(settings[3]) or 0
local START_AT = tonumber(settings[4]) or 0
local MODE = settings[5] or 'normal'
local CLOCK = tonumber(settings[6])

local function now_ms()
  if CLOCK then return CLOCK end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Ms until the scheduled start, or 0 if none is pending.
local function until_start(now)
  return math.max(0, START_AT - now)
end

-- At the start the schedule is done with: the pre-queue, in its drawn order, becomes
-- a lane served before the line (see fill).
local function draw(now)
  if START_AT == 0 or START_AT > now then return end
  redis.call('HSET', config, 'start_at', 0)
  START_AT = 0
end

-- The line. Waiter n (its arrival number) is in line while head < n <= seq, bit n of
-- left is clear and its bucket names it; its position counts only those ahead who are
-- still in line, so walking away moves everyone behind up.
local function bucket(n)
  return line .. ':' .. math.floor(n / BUCKET)
end

local function line_head()
  return tonumber(redis.call('HGET', stats, 'head')) or 0
end

local function line_end()
  return tonumber(redis.call('GET', seq)) or 0
end

local function in_line(id, n)
  return n > line_head() and n <= line_end() and redis.call('GETBIT', left, n) == 0
    and redis.call('HGET', bucket(n), n) == id
end

-- Those served before the line: the pre-queue, once the start has come.
local function lanes_ahead()
  if START_AT > 0 then return 0 end
  return redis.call('ZCARD', prequeue)
end

-- 1-based position of waiter n, who is in line.
local function rank(n)
  local head = line_head()
  local walked = 0
  if n - 1 > head then walked = redis.call('BITCOUNT', left, head + 1, n - 1, 'BIT') end
  return lanes_ahead() + n - head - walked
end

-- The epoch now: a quarter of the grace long. A waiter is heard of in an epoch's
-- bitmap; one unheard of in the last EPOCHS epochs has walked away.
local EPOCH
local function heard_now(n)
  redis.call('SETBIT', heard .. ':' .. (EPOCH % (EPOCHS + 1)), n, 1)
end

local function join_line(id)
  local n = redis.call('INCR', seq)
  redis.call('HSET', bucket(n), n, id)
  redis.call('SETBIT', left, n, 0)  -- a walk-away sweep may have marked numbers ahead
  heard_now(n)
  return n
end

local function leave_line(n)
  redis.call('SETBIT', left, n, 1)
  redis.call('HDEL', bucket(n), n)
end

-- A new epoch: clear the ring's slots of epochs now past. True if one began and
-- walk-aways may be judged.
local function rotate()
  local last = tonumber(redis.call('HGET', stats, 'epoch'))
  if last == EPOCH then return false end
  redis.call('HSET', stats, 'epoch', EPOCH)
  if not last then return false end  -- a new room: nothing to judge yet
  if EPOCH - last > 1 then
    -- A whole epoch went by in which the room heard from nobody at all: Redis was out
    -- of reach, or no process was looking. Time in which nobody could be heard does
    -- not count against anyone: whoever was heard in the grace before it counts as
    -- heard now, and the judging starts again from here.
    local now_slot, others = heard .. ':' .. (EPOCH % (EPOCHS + 1)), {}
    for slot = 0, EPOCHS do
      if slot ~= EPOCH % (EPOCHS + 1) then others[#others + 1] = heard .. ':' .. slot end
    end
    redis.call('BITOP', 'OR', now_slot, now_slot, unpack(others))
    redis.call('DEL', unpack(others))
    return false
  end
  redis.call('DEL', heard .. ':' .. (EPOCH % (EPOCHS + 1)))
  return true
end

-- Once per epoch: everyone in line unheard of for the whole grace (and not away with
-- a kept place) walked away. A few bitmap operations, however long the line.
local function sweep(now)
  local head, last_n = line_head(), line_end()
  redis.call('ZREMRANGEBYSCORE', away, '-inf', '(' .. now)
  if last_n <= head then return end
  local staying = heard .. ':staying'
  local sources = {left}
  for slot = 0, EPOCHS do sources[#sources + 1] = heard .. ':' .. slot end
  redis.call('BITOP', 'OR', staying, unpack(sources))
  for _, n in ipairs(redis.call('ZRANGE', away, 0, -1)) do
    redis.call('SETBIT', staying, n, 1)
  end
  redis.call('SETBIT', staying, last_n + 1, 1)  -- covers the whole line
  local gone = last_n - head - redis.call('BITCOUNT', staying, head + 1, last_n, 'BIT')
  if gone > 0 then  -- bits past the line's end get set too: join_line clears its own
    redis.call('BITOP', 'NOT', staying, staying)
    redis.call('BITOP', 'OR', left, left, staying)
    redis.call('HINCRBY', stats, 'abandoned', gone)
  end
  redis.call('DEL', staying)
end

-- Drop sessions past their expiry and waiters unheard of for longer than the grace.
-- ``heard`` (optional): arrival numbers of waiters who asked since the last call.
local function prune(now, grace_ms, heard_numbers)
  draw(now)
  EPOCH = math.floor(now / math.max(1, math.floor(grace_ms / EPOCHS)))
  local new_epoch = rotate()
  for _, n in ipairs(heard_numbers or {}) do heard_now(n) end
  if new_epoch then sweep(now) end
  local expired = redis.call('ZRANGEBYSCORE', active, '-inf', now, 'LIMIT', 0, PRUNE_BATCH)
  if #expired > 0 then
    redis.call('ZREM', active, unpack(expired))
    redis.call('HDEL', deadline, unpack(expired))
    redis.call('HINCRBY', stats, 'expired', #expired)
  end
  local gone = redis.call('ZRANGEBYSCORE', seen, '-inf', now - grace_ms, 'LIMIT', 0, PRUNE_BATCH)
  if #gone > 0 then
    redis.call('ZREM', priority, unpack(gone))
    redis.call('ZREM', prequeue, unpack(gone))
    redis.call('ZREM', seen, unpack(gone))
    redis.call('HINCRBY', stats, 'abandoned', #gone)
  end
end

-- Up to ``wanted`` ids from the head of the line, taken out of it, in order.
local function take_from_line(wanted, out)
  local head, last_n = line_head(), line_end()
  local n, steps = head, 0
  while #out < wanted and n < last_n and steps < PRUNE_BATCH do
    n, steps = n + 1, steps + 1
    local key = bucket(n)
    if redis.call('GETBIT', left, n) == 0 then
      local id = redis.call('HGET', key, n)
      if id then
        out[#out + 1] = id
        redis.call('HDEL', key, n)
        redis.call('ZREM', away, n)
      end
    end
    if n % BUCKET == BUCKET - 1 then redis.call('DEL', key) end  -- walk-aways' ids
  end
  if n ~= head then redis.call('HSET', stats, 'head', n) end
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

-- Admit the longest-waiting live visitors into the free slots, in arrival order,
-- no faster than the admission rate. Each must claim its slot (see claim) within
-- the grace or it is released again.
local function fill(now, grace_ms)
  if PAUSED or until_start(now) > 0 then return end
  local allowed, tokens = rate_allowance(now)
  local free = math.min(CAPACITY - redis.call('ZCARD', active), allowed)
  local admitted = {}
  if free > 0 then  -- the priority lane first, then the pre-queue, then the line
    admitted = redis.call('ZRANGE', priority, 0, free - 1)
    if #admitted < free then
      for _, id in ipairs(redis.call('ZRANGE', prequeue, 0, free - #admitted - 1)) do
        admitted[#admitted + 1] = id
      end
    end
    if #admitted < free then take_from_line(free, admitted) end
  end
  if allowed ~= math.huge then  -- charge the bucket for what was really admitted
    redis.call('HSET', stats, 'bucket', tokens - #admitted, 'bucket_at', now)
  end
  if #admitted == 0 then return end
  redis.call('ZREM', priority, unpack(admitted))
  redis.call('ZREM', prequeue, unpack(admitted))
  redis.call('ZREM', seen, unpack(admitted))
  local entries = {}
  for i, id in ipairs(admitted) do
    entries[2 * i - 1] = now + grace_ms
    entries[2 * i] = id
  end
  redis.call('ZADD', active, unpack(entries))
  redis.call('HINCRBY', stats, 'admitted', #admitted)
end

-- Keep a session alive: its expiry moves to now + idle, never past its hard end,
-- which is fixed the first time the session is used. False if there is no session.
local function claim(id, now, idle_ms, max_ms)
  if not redis.call('ZSCORE', active, id) then return false end
  local hard = tonumber(redis.call('HGET', deadline, id))
  if not hard then
    hard = now + max_ms
    redis.call('HSET', deadline, id, hard)
  end
  redis.call('ZADD', active, math.min(now + idle_ms, hard), id)
  return true
end

local function admitted_total()
  return tonumber(redis.call('HGET', stats, 'admitted')) or 0
end
