-- Redeem an invite (staff, VIPs): use it up once and put the visitor in the priority
-- lane, which the next free slots serve before the queue (first come first served
-- among invitees). Never past the capacity, and nobody in the queue is moved back.
-- Idempotent per visitor: a retry or a second tab does not use the invite twice.
-- KEYS: 1..CORE see _room.lua; CORE+1 this invite's remaining uses (STRING, with a TTL).
-- ARGV: 1 visitor id; 2 its arrival number in line (0 if none); 3 grace ms;
--       4 session idle ms; 5 session max ms.
-- Returns {state, position, admitted_total, now_ms}: state 1 admitted, 0 waiting
--   (position in the priority lane), -1 the invite is used up, expired or unknown.
local uses = KEYS[CORE + 1]
local id, n = ARGV[1], tonumber(ARGV[2])
local grace_ms, idle_ms, max_ms = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])

local now = now_ms()
prune(now, grace_ms)
if claim(id, now, idle_ms, max_ms) then return {1, 0, admitted_total(), now} end
if not redis.call('ZSCORE', priority, id) then  -- not yet placed by an invite
  local remaining = tonumber(redis.call('GET', uses))
  if not remaining or remaining < 1 then return {-1, 0, admitted_total(), now} end
  redis.call('DECR', uses)
  if n > 0 and in_line(id, n) then leave_line(n) end  -- an ordinary place is given up
  redis.call('ZADD', priority, redis.call('HINCRBY', stats, 'invites', 1), id)
end
redis.call('ZADD', seen, now, id)
fill(now, grace_ms)
if claim(id, now, idle_ms, max_ms) then return {1, 0, admitted_total(), now} end
return {0, redis.call('ZRANK', priority, id) + 1, admitted_total(), now}
