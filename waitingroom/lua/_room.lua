-- Shared by every room script (prepended at load time; not a script on its own).
--
-- KEYS, the same in every script, all under the room's {hash tag}:
--   1 queue    ZSET   waiting visitor id -> arrival number (FCFS order)
--   2 seen     ZSET   waiting visitor id -> last time the visitor asked, ms
--   3 active   ZSET   session id -> expiry, ms (the token counter: its size is
--                     the number of sessions; pruning by score heals it)
--   4 deadline HASH   session id -> hard end of the session, ms; set on claim
--   5 seq      STRING last arrival number handed out
--   6 config   HASH   capacity, paused ("1"), mode, message, rate (admissions per
--                     minute, 0 = no limit) -- ops-tunable, live; clock (see below)
--   7 stats    HASH   counters: admitted, abandoned, expired, released; and the
--                     rate's token bucket: bucket (tokens), bucket_at (ms)
--   8 priority ZSET   invited visitor id -> redemption number: a lane served
--                     before the queue (invitees never raise anyone's position)
--   9 prequeue ZSET   visitors who came before a scheduled start, all scored 0: ids
--                     are random, so their order is a fair draw (config start_at, ms)
-- A script's own keys follow these: KEYS[CORE + 1], ... (the loader defines CORE,
-- the number of keys above, from the same list the Python side builds them from).
-- Times are Redis server time in milliseconds, never a process's clock (or, in the
-- capacity planner only, its simulated time).
local queue, seen, active, deadline, seq, config, stats, priority, prequeue =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]

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

-- At the start, the pre-queue becomes the head of the line in its drawn order, and
-- the schedule is done with.
local function draw(now)
  if START_AT == 0 or START_AT > now then return end
  for _, id in ipairs(redis.call('ZRANGE', prequeue, 0, -1)) do
    redis.call('ZADD', queue, redis.call('INCR', seq), id)
  end
  redis.call('DEL', prequeue)
  redis.call('HSET', config, 'start_at', 0)
  START_AT = 0
end

-- Drop sessions past their expiry and waiters unseen for longer than the grace.
local function prune(now, grace_ms)
  draw(now)
  local expired = redis.call('ZRANGEBYSCORE', active, '-inf', now, 'LIMIT', 0, PRUNE_BATCH)
  if #expired > 0 then
    redis.call('ZREM', active, unpack(expired))
    redis.call('HDEL', deadline, unpack(expired))
    redis.call('HINCRBY', stats, 'expired', #expired)
  end
  local gone = redis.call('ZRANGEBYSCORE', seen, '-inf', now - grace_ms, 'LIMIT', 0, PRUNE_BATCH)
  if #gone > 0 then
    redis.call('ZREM', queue, unpack(gone))
    redis.call('ZREM', priority, unpack(gone))
    redis.call('ZREM', prequeue, unpack(gone))
    redis.call('ZREM', seen, unpack(gone))
    redis.call('HINCRBY', stats, 'abandoned', #gone)
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

-- Admit the longest-waiting live visitors into the free slots, in arrival order,
-- no faster than the admission rate. Each must claim its slot (see claim) within
-- the grace or it is released again.
local function fill(now, grace_ms)
  if PAUSED or until_start(now) > 0 then return end
  local allowed, tokens = rate_allowance(now)
  local free = math.min(CAPACITY - redis.call('ZCARD', active), allowed)
  local admitted = {}
  if free > 0 then  -- the priority lane first, then the queue, each in its order
    admitted = redis.call('ZRANGE', priority, 0, free - 1)
    if #admitted < free then
      for _, id in ipairs(redis.call('ZRANGE', queue, 0, free - #admitted - 1)) do
        admitted[#admitted + 1] = id
      end
    end
  end
  if allowed ~= math.huge then  -- charge the bucket for what was really admitted
    redis.call('HSET', stats, 'bucket', tokens - #admitted, 'bucket_at', now)
  end
  if #admitted == 0 then return end
  redis.call('ZREM', queue, unpack(admitted))
  redis.call('ZREM', priority, unpack(admitted))
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
