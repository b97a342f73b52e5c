-- Shared by every room script (prepended at load time, then _line.lua, _sweep.lua and
-- _admit.lua; not a script on its own).
--
-- KEYS, the same in every script, all under the room's {hash tag}:
--   1 line     prefix of the line's buckets: 'line:<b>' HASH arrival number -> visitor
--              id, for numbers b*BUCKET .. b*BUCKET+BUCKET-1 still in line. Small
--              hashes, which Redis packs tightly: about 20 bytes a waiter
--   2 seen     ZSET   invitee or pre-queue id -> last time the visitor asked, ms
--   3 active   ZSET   session id -> expiry, ms (the token counter: its size is
--                     the number of sessions; pruning by score heals it)
--   4 deadline HASH   session id -> hard end of the session, ms; set on claim. Negative
--                     while the session may end early (it made one request only, or its
--                     page said it went): ended so, it goes on standby (see prune).
--                     Before the claim, 'h<ms>': how long telling may hold the slot
--   5 seq      STRING last arrival number handed out
--   6 config   HASH   capacity, paused ("1"), mode, message, rate (admissions per
--                     minute, 0 = no limit), stock (units left; none: not counted),
--                     max_waiting (the longest the line may grow; 0: no limit),
--                     method (fifo, passthrough or reject)
--                     -- ops-tunable, live; clock (see below)
--   7 stats    HASH   counters: admitted, abandoned, expired, released, sold; the rate's
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
--                     come within the claim window, or their session ended early; the
--                     slot went on, and the first free slot is theirs if they come back
--                     in time (see fill)
--  15 hidden   ZSET   arrival number -> when (ms) the waiter's page went away (the
--                     queue page's pagehide): not here to take a slot until it asks
--                     again; its place is kept for the grace as anyone's
-- A script's own keys follow these: KEYS[CORE + 1], ... (the loader defines CORE,
-- the number of keys above, from the same list the Python side builds them from).
-- Times are room time in milliseconds (see now_ms), never a process's clock.
-- Bitmaps need Redis 7 (BITCOUNT and BITPOS over BIT ranges).
local line, seen, active, deadline, seq, config, stats, priority, prequeue, left, heard, away,
  renamed, standby, hidden = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7],
  KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12], KEYS[13], KEYS[14], KEYS[15]

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
                            'clock', 'outage_ms', 'stock', 'max_waiting', 'method')
local CAPACITY = tonumber(settings[1]) or 0
local PAUSED = settings[2] == '1'
local RATE = tonumber(settings[3]) or 0
local START_AT = tonumber(settings[4]) or 0
local MODE = settings[5] or 'normal'
local CLOCK = tonumber(settings[6])
-- Units left to sell, when the room is told (ops, or the origin's answers): at 0 the
-- room is sold out: nobody more is let in and no new place is given, and the line
-- keeps its order for a restock.
local SOLD_OUT = (tonumber(settings[8]) or 1) <= 0
-- The longest the line may grow (0: no limit): past it, arrivals get no place.
local MAX_WAITING = tonumber(settings[9]) or 0
-- How the line works: 'fifo' (first come, first served), 'random' (a fair draw among
-- those waiting at each admission), 'passthrough' (sessions are counted but everyone is
-- let in at once) or 'reject' (no line: who cannot walk straight in gets no place).
local METHOD = settings[10] or 'fifo'
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

-- The stock, from `before` to `after` (nil: not counted), by ops or by a sale: the
-- moment it runs out (sold_out_at: older messages are then not shown) and the moment it
-- comes back from none (restocked_at: those who left their details are told) stamped.
local function set_stock(before, after)
  if after == nil then
    redis.call('HDEL', config, 'stock')
    return
  end
  redis.call('HSET', config, 'stock', after)
  if after == 0 and before ~= 0 then
    redis.call('HSET', config, 'sold_out_at', real_ms())
  elseif before == 0 and after > 0 then
    redis.call('HSET', config, 'restocked_at', real_ms())
  end
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
