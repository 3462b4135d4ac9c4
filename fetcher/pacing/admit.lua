-- Admission of a batch of waiting requests, atomic across processes: each request either breaks
-- no rule, and is recorded everywhere it counts, or nothing is recorded for it and the answer is
-- how long it has to wait. Requests are tried in the order given (the order they began to wait).
-- Before that, the batch frees the open-request slots released since the last call, and applies
-- a pending penalty hold: one round trip carries everything a process has to say.
-- `now` (ARGV[1]; empty: the server's clock) is never earlier than the latest admission
-- (KEYS[1]): a process that read its clock before another one was admitted cannot slip in
-- behind it, so the recorded times stay ordered.
-- The state has an epoch (KEYS[6]), kept for a day after the last admission (ARGV[15]): the
-- other keys expire with their windows, so a missing epoch means Redis lost the state (it
-- restarted empty) or nothing was admitted for a day. A caller that names another epoch than the
-- current one (ARGV[13]) gets {at, {}, epoch} and nothing is done: it first restores what it
-- remembers (seed.lua), then asks again. An epoch made for a caller that knew the one before
-- (the state was lost, not new) holds small requests back for the settle time (ARGV[14]): long
-- enough for every process that remembers small requests of the last windows (each looks at
-- the epoch while it does) to restore them before any more go out.
-- KEYS: 1 clock, 2 messages, 3 open, 4 hold, 5 total, 6 epoch, then for each request i (from 0):
--       7 + 2i identical, 8 + 2i contract
-- ARGV: 1 now, 2 ttl slack, 3 messages max, 4 messages window, 5 max open, 6 open lease,
--       7 identical window, 8 contract max, 9 contract window, 10 total max, 11 total window,
--       12 hold seconds (0: none), 13 the epoch the caller knows ('' if none), 14 settle
--       seconds, 15 epoch seconds, 16 number of releases r, then r release tokens, then for
--       each request: token, small (1/0), weight
local now = tonumber(ARGV[1])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1e6
end
local latest = tonumber(redis.call('GET', KEYS[1]) or '')
if latest and latest > now then now = latest end
local slack = tonumber(ARGV[2])
local messages_max, messages_window = tonumber(ARGV[3]), tonumber(ARGV[4])
local max_open, open_lease = tonumber(ARGV[5]), tonumber(ARGV[6])
local identical_window = tonumber(ARGV[7])
local contract_max, contract_window = tonumber(ARGV[8]), tonumber(ARGV[9])
local total_max, total_window = tonumber(ARGV[10]), tonumber(ARGV[11])
local hold_s = tonumber(ARGV[12])
local settle_s, epoch_s = tonumber(ARGV[14]), tonumber(ARGV[15])
local releases = tonumber(ARGV[16])
local longest = math.max(messages_window, open_lease, identical_window, contract_window, total_window)

local function ttl_ms(window)
  return math.ceil((window + slack) * 1000)
end

local epoch = redis.call('GET', KEYS[6])
if not epoch then
  local t = redis.call('TIME')
  epoch = t[1] .. '.' .. t[2]
  redis.call('SET', KEYS[6], epoch, 'PX', ttl_ms(epoch_s))
  if ARGV[13] ~= '' and settle_s > 0 then
    redis.call('SET', KEYS[4], string.format('%.17g', now + settle_s), 'PX', ttl_ms(settle_s))
  end
end
if ARGV[13] ~= '' and ARGV[13] ~= epoch then
  return {string.format('%.17g', now), {}, epoch}
end

-- A penalty only ever extends the hold: a short one must not cut a longer one short.
if hold_s > 0 then
  local current = tonumber(redis.call('GET', KEYS[4]) or '')
  if current == nil or current < now + hold_s then
    redis.call('SET', KEYS[4], string.format('%.17g', now + hold_s), 'PX', ttl_ms(hold_s))
  end
end
for i = 1, releases do
  redis.call('ZREM', KEYS[3], ARGV[16 + i])
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

local at = string.format('%.17g', now)
local waits = {}
local admitted = 0
local first = 17 + releases
local requests = (#ARGV - first + 1) / 3
for r = 0, requests - 1 do
  local token = ARGV[first + 3 * r]
  local small = ARGV[first + 3 * r + 1] == '1'
  local weight = tonumber(ARGV[first + 3 * r + 2])
  local identical, contract = KEYS[7 + 2 * r], KEYS[8 + 2 * r]
  local wait = math.max(
    wait_for_room(KEYS[2], messages_window, messages_max, 1),
    wait_for_room(KEYS[3], open_lease, max_open, 1))
  if small then
    local hold = redis.call('GET', KEYS[4])
    if hold then wait = math.max(wait, tonumber(hold) - now) end
    local last = redis.call('GET', identical)
    if last then wait = math.max(wait, tonumber(last) + identical_window - now) end
    wait = math.max(wait, wait_for_room(contract, contract_window, contract_max, weight))
    wait = math.max(wait, wait_for_room(KEYS[5], total_window, total_max, weight))
  end
  if wait > 0 then
    waits[r + 1] = string.format('%.17g', wait)
  else
    waits[r + 1] = '0'
    admitted = admitted + 1
    redis.call('ZADD', KEYS[2], at, token)
    redis.call('ZADD', KEYS[3], at, token)
    if small then
      redis.call('SET', identical, at, 'PX', ttl_ms(identical_window))
      count_small(contract, KEYS[5], at, token, weight, ttl_ms(contract_window))
    end
  end
end
if admitted > 0 then
  redis.call('SET', KEYS[1], at, 'PX', ttl_ms(longest))
  redis.call('PEXPIRE', KEYS[6], ttl_ms(epoch_s))
  redis.call('PEXPIRE', KEYS[2], ttl_ms(messages_window))
  redis.call('PEXPIRE', KEYS[3], ttl_ms(open_lease))
  redis.call('PEXPIRE', KEYS[5], ttl_ms(total_window))
end
return {at, waits, epoch}
