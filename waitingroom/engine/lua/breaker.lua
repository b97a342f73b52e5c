-- Report order-flow outcomes to the room's circuit breaker and move it on:
-- closed -> open when failures reach the ratio over the sliding window (with at
-- least min requests); open -> half after the cooldown; half -> closed after
-- enough good probes in a row, or back to open on any failure.
-- Every change of state is audited once, here, with the figures that caused it.
-- KEYS: 1..CORE see _room.lua; CORE+1 breaker HASH state, opened_at, half_at, probes_taken,
--       probes_ok; CORE+2 outcomes HASH "<second>:ok" / "<second>:fail" -> count;
--       CORE+3 the room's audit STREAM.
-- ARGV: 1 successes; 2 failures; 3 window s; 4 failure ratio; 5 min requests;
--       6 cooldown ms; 7 probes needed; 8 the audit stream's length.
-- Returns {state, opened_at ms}.
local breaker, outcomes, audit = KEYS[CORE + 1], KEYS[CORE + 2], KEYS[CORE + 3]
local ok, fail = tonumber(ARGV[1]), tonumber(ARGV[2])
local window, ratio, min_requests = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local cooldown_ms, probes = tonumber(ARGV[6]), tonumber(ARGV[7])


now_ms()  -- every process reports twice a second: this keeps the room's clock
local now = real_ms()
local second = math.floor(now / 1000)
local state = redis.call('HGET', breaker, 'state') or 'closed'
local opened_at = tonumber(redis.call('HGET', breaker, 'opened_at')) or 0

-- A change of state: in the audit log, and beside the state (when and why) for the
-- dashboard and the status page.
local function audited(from, to, why)
  local reason = cjson.encode(why)
  redis.call('XADD', audit, 'MAXLEN', '~', ARGV[8], '*', 'who', 'breaker',
             'action', 'breaker', 'before', cjson.encode({state = from}),
             'after', cjson.encode({state = to, why = why}))
  redis.call('HSET', breaker, 'changed_at', now, 'why', reason)
end

local function open(why)
  audited(state, 'open', why)
  state, opened_at = 'open', now
  redis.call('HSET', breaker, 'state', 'open', 'opened_at', now)
  redis.call('DEL', outcomes)
end

if state == 'open' and now - opened_at >= cooldown_ms then
  audited('open', 'half', {cooldown_seconds = cooldown_ms / 1000})
  state = 'half'
  redis.call('HSET', breaker, 'state', 'half', 'half_at', now, 'probes_taken', 0,
             'probes_ok', 0)
end

if state == 'half' then
  if fail > 0 then
    open({probe_failures = fail})
  elseif ok > 0 and redis.call('HINCRBY', breaker, 'probes_ok', ok) >= probes then
    audited('half', 'closed', {probes_ok = probes})
    state = 'closed'
    redis.call('HSET', breaker, 'state', 'closed')
    redis.call('DEL', outcomes)
  end
elseif state == 'closed' and ok + fail > 0 then
  if ok > 0 then redis.call('HINCRBY', outcomes, second .. ':ok', ok) end
  if fail > 0 then redis.call('HINCRBY', outcomes, second .. ':fail', fail) end
  local total, failures = 0, 0
  local counts = redis.call('HGETALL', outcomes)
  for i = 1, #counts, 2 do
    local at, kind = string.match(counts[i], '^(%d+):(%a+)$')
    if tonumber(at) <= second - window then
      redis.call('HDEL', outcomes, counts[i])
    else
      local n = tonumber(counts[i + 1])
      total = total + n
      if kind == 'fail' then failures = failures + n end
    end
  end
  if total >= min_requests and failures >= ratio * total then
    open({failures = failures, requests = total, window_seconds = window})
  end
end
return {state, opened_at}
