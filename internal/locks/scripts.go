package locks

import "github.com/redis/go-redis/v9"

// The lock value is "<token>:<fence>"; tokens are hex, so the first ':'
// separates them.

// acquireScript: KEYS[1] lock key, KEYS[2] fence key; ARGV[1] token, ARGV[2]
// TTL in ms. Returns {1, fence, pttl} when held by ARGV[1] afterwards,
// {0, fence, pttl} of the other holder otherwise. Fences are returned as
// strings so no Lua number formatting touches them.
var acquireScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
  local sep = string.find(v, ':', 1, true)
  local fence = sep and string.sub(v, sep + 1) or '0'
  if sep and string.sub(v, 1, sep - 1) == ARGV[1] then
    -- Our own earlier attempt ran but its reply was lost: same lease, same fence.
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {1, fence, tonumber(ARGV[2])}
  end
  return {0, fence, redis.call('PTTL', KEYS[1])}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local fence = string.format('%d', math.max(last + 1, now))
redis.call('SET', KEYS[2], fence)
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. fence, 'PX', ARGV[2])
return {1, fence, tonumber(ARGV[2])}
`)

// refreshScript: KEYS[1] lock key; ARGV[1] "<token>:<fence>", ARGV[2] TTL in
// ms. Returns 1 if extended, 0 if the value is not ours.
var refreshScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// releaseScript: KEYS[1] lock key; ARGV[1] "<token>:<fence>". Returns 1 if
// deleted, 0 if the value is not ours (and leaves it alone).
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// holderScript: KEYS[1] lock key. Returns {value, pttl}, or {} when free.
var holderScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return {} end
return {v, redis.call('PTTL', KEYS[1])}
`)
