-- Plan the config file's timeline steps: each one not planned already and not marked
-- as applied or cancelled (so a restart, or a second process starting, adds nothing
-- twice, and a step done stays done). KEYS[CORE + 1]: the timeline (ZSET id -> due
-- ms); KEYS[CORE + 2]: steps (HASH id -> JSON); KEYS[CORE + 3]: the ids of config
-- steps applied or cancelled (SET). ARGV: id, due ms, JSON, for each step. Returns how
-- many were planned now.
local timeline, steps, planned = KEYS[CORE + 1], KEYS[CORE + 2], KEYS[CORE + 3]
local added = 0
for i = 1, #ARGV, 3 do
  local id = ARGV[i]
  if redis.call('SISMEMBER', planned, id) == 0 and redis.call('HSETNX', steps, id, ARGV[i + 2]) == 1 then
    redis.call('ZADD', timeline, ARGV[i + 1], id)
    added = added + 1
  end
end
return added
