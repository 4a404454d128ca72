-- The gateway's sliding-window limit, run atomically (see ratelimit/mod.rs).
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
-- Pushed as a string: a number is formatted anew for each argument it is passed as.
local stamp = string.format('%d', now)
local answers = {}
for i, key in ipairs(KEYS) do
  local wanted = tonumber(ARGV[2 + i])
  local cutoff = now - window
  local oldest = tonumber(redis.call('LINDEX', key, 0))
  if oldest and oldest <= cutoff then
    -- The first time still in the window, found by doubling then halving (times are
    -- in order): a few lookups near the front however many left, then one trim.
    local length = redis.call('LLEN', key)
    local low, high = 1, 1
    while high < length and tonumber(redis.call('LINDEX', key, high)) <= cutoff do
      low = high + 1
      high = math.min(high * 2, length)
    end
    while low < high do
      local middle = math.floor((low + high) / 2)
      if tonumber(redis.call('LINDEX', key, middle)) <= cutoff then
        low = middle + 1
      else
        high = middle
      end
    end
    redis.call('LTRIM', key, low, -1)
    oldest = tonumber(redis.call('LINDEX', key, 0))
  end
  local count = redis.call('LLEN', key)
  local admitted = math.min(wanted, math.max(limit - count, 0))
  if admitted > 0 then
    local times = {}
    for j = 1, admitted do times[j] = stamp end
    redis.call('RPUSH', key, unpack(times))
    redis.call('PEXPIRE', key, window)
  end
  answers[#answers + 1] = count
  answers[#answers + 1] = oldest or -1
end
answers[#answers + 1] = now
return answers
