-- Loaded ahead of admit.lua and seed.lua (one script each): what both record the same way.

-- A small request of `weight` counts `weight` times against its contract and the total.
local function count_small(contract, total, at, token, weight, contract_ttl_ms)
  for i = 1, weight do
    redis.call('ZADD', contract, at, token .. '#' .. i)
    redis.call('ZADD', total, at, token .. '#' .. i)
  end
  redis.call('PEXPIRE', contract, contract_ttl_ms)
end
