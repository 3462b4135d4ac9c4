-- A penalty only ever extends the hold: a short one must not cut a longer one short.
local current = tonumber(redis.call('GET', KEYS[1]) or '')
if current == nil or current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 0
