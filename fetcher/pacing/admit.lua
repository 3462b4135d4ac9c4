-- Admission of one request, atomic across processes: either it breaks no rule, and it is
-- recorded everywhere it counts, or nothing is recorded and the answer is how long to wait.
-- `now` is never earlier than the latest admission (KEYS[1]): a process that read its clock
-- before another one was admitted cannot slip in behind it, so the recorded times stay ordered.
-- KEYS: 1 clock, 2 messages, 3 open, 4 hold, 5 identical, 6 contract, 7 total
-- ARGV: 1 now, 2 token, 3 small (1/0), 4 weight, 5 ttl slack,
--       6 messages max, 7 messages window, 8 max open, 9 open lease,
--       10 identical window, 11 contract max, 12 contract window, 13 total max, 14 total window
local now = tonumber(ARGV[1])
local latest = tonumber(redis.call('GET', KEYS[1]) or '')
if latest and latest > now then now = latest end
local token = ARGV[2]
local small = ARGV[3] == '1'
local weight = tonumber(ARGV[4])
local slack = tonumber(ARGV[5])
local messages_max, messages_window = tonumber(ARGV[6]), tonumber(ARGV[7])
local max_open, open_lease = tonumber(ARGV[8]), tonumber(ARGV[9])
local identical_window = tonumber(ARGV[10])
local contract_max, contract_window = tonumber(ARGV[11]), tonumber(ARGV[12])
local total_max, total_window = tonumber(ARGV[13]), tonumber(ARGV[14])

local function ttl_ms(window)
  return math.ceil((window + slack) * 1000)
end

-- Seconds until `w` more entries fit in the sorted set `key` (at most `max` in any `window`).
local function wait_for_room(key, window, max, w)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local n = redis.call('ZCARD', key)
  if n + w <= max then return 0 end
  local i = n + w - max - 1
  local leaving = redis.call('ZRANGE', key, i, i, 'WITHSCORES')
  if leaving[2] == nil then return window end
  return tonumber(leaving[2]) + window - now
end

local wait = math.max(
  wait_for_room(KEYS[2], messages_window, messages_max, 1),
  wait_for_room(KEYS[3], open_lease, max_open, 1))
if small then
  local hold = redis.call('GET', KEYS[4])
  if hold then wait = math.max(wait, tonumber(hold) - now) end
  local last = redis.call('GET', KEYS[5])
  if last then wait = math.max(wait, tonumber(last) + identical_window - now) end
  wait = math.max(wait, wait_for_room(KEYS[6], contract_window, contract_max, weight))
  wait = math.max(wait, wait_for_room(KEYS[7], total_window, total_max, weight))
end

local at = string.format('%.17g', now)
if wait > 0 then return {string.format('%.17g', wait), at} end

local longest = math.max(messages_window, open_lease, identical_window, contract_window, total_window)
redis.call('SET', KEYS[1], at, 'PX', ttl_ms(longest))
redis.call('ZADD', KEYS[2], at, token)
redis.call('PEXPIRE', KEYS[2], ttl_ms(messages_window))
redis.call('ZADD', KEYS[3], at, token)
redis.call('PEXPIRE', KEYS[3], ttl_ms(open_lease))
if small then
  redis.call('SET', KEYS[5], at, 'PX', ttl_ms(identical_window))
  for i = 1, weight do
    redis.call('ZADD', KEYS[6], at, token .. '#' .. i)
    redis.call('ZADD', KEYS[7], at, token .. '#' .. i)
  end
  redis.call('PEXPIRE', KEYS[6], ttl_ms(contract_window))
  redis.call('PEXPIRE', KEYS[7], ttl_ms(total_window))
end
return {'0', at}
