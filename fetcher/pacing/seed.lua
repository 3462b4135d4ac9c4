-- Restore what one process remembers of its own admissions into a pacing state that was lost
-- (Redis restarted empty): each admission as admit.lua recorded it, at its own time. Members
-- are the same tokens, so restoring twice (or what Redis still had) counts nothing twice.
-- Does nothing, and returns 0, if the epoch is no longer the one given (lost again meanwhile).
-- KEYS: 1 clock, 2 messages, 3 open, 4 hold, 5 total, 6 epoch, then for each admission i
--       (from 0): 7 + 2i identical, 8 + 2i contract
-- ARGV: 1 epoch, 2 ttl slack, 3 messages window, 4 open lease, 5 identical window,
--       6 contract window, 7 total window, 8 hold until (0: none), then for each admission:
--       token, at, small (1/0), weight, open (1/0)
if redis.call('GET', KEYS[6]) ~= ARGV[1] then
  return 0
end
local slack = tonumber(ARGV[2])
local messages_window, open_lease = tonumber(ARGV[3]), tonumber(ARGV[4])
local identical_window, contract_window = tonumber(ARGV[5]), tonumber(ARGV[6])
local total_window, hold_until = tonumber(ARGV[7]), tonumber(ARGV[8])

local function ttl_ms(window)
  return math.ceil((window + slack) * 1000)
end

local latest = tonumber(redis.call('GET', KEYS[1]) or '') or 0
local admissions = (#ARGV - 8) / 5
for r = 0, admissions - 1 do
  local token, at = ARGV[9 + 5 * r], ARGV[10 + 5 * r]
  local small, weight = ARGV[11 + 5 * r] == '1', tonumber(ARGV[12 + 5 * r])
  local identical, contract = KEYS[7 + 2 * r], KEYS[8 + 2 * r]
  if tonumber(at) > latest then latest = tonumber(at) end
  redis.call('ZADD', KEYS[2], at, token)
  if ARGV[13 + 5 * r] == '1' then
    redis.call('ZADD', KEYS[3], at, token)
  end
  if small then
    local last = tonumber(redis.call('GET', identical) or '')
    if last == nil or last < tonumber(at) then
      redis.call('SET', identical, at, 'PX', ttl_ms(identical_window))
    end
    count_small(contract, KEYS[5], at, token, weight, ttl_ms(contract_window))
  end
end
if hold_until > 0 then
  local current = tonumber(redis.call('GET', KEYS[4]) or '')
  if current == nil or current < hold_until then
    redis.call('SET', KEYS[4], string.format('%.17g', hold_until), 'PX',
      math.max(1, math.ceil((hold_until - latest) * 1000)) + ttl_ms(0))
  end
end
local longest = math.max(messages_window, open_lease, identical_window, contract_window, total_window)
if latest > 0 then
  redis.call('SET', KEYS[1], string.format('%.17g', latest), 'PX', ttl_ms(longest))
end
redis.call('PEXPIRE', KEYS[2], ttl_ms(messages_window))
redis.call('PEXPIRE', KEYS[3], ttl_ms(open_lease))
redis.call('PEXPIRE', KEYS[5], ttl_ms(total_window))
return 1
