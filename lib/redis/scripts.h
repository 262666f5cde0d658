// Copyright 2026 The herd Authors.
//
// lib/redis/scripts.h: the Lua scripts of herd's fleet protocol. Each runs
// atomically in Redis (EVALSHA), so a check and the write it guards are one
// step. A value is stored as one string, its envelope:
//
//   H1 <written_ms> <id> <load_us> <tag> <len> <sum>\n<payload>
//
// written_ms comes from Redis's TIME inside WRITE / PUT (never a client
// clock); id is the writer's lease token; load_us the load's duration;
// tag, len and sum (16 hex digits each but len, decimal) let a reader reject
// a foreign, truncated or altered payload (lib/redis/envelope.h).

#ifndef HERD_LIB_REDIS_SCRIPTS_H_
#define HERD_LIB_REDIS_SCRIPTS_H_

namespace herd::redis::internal {

enum class Script { kRead, kWrite, kRenew, kRelease, kPut, kInvalidate };
inline constexpr int kScriptCount = 6;

// READ. KEYS: value, lease. ARGV: token, lease_ms, soft_ms (-1: never
// stale), xfetch factor (0: off; the value refreshes early once its PTTL is
// below load_ms * factor), forced (the id of a value to treat as missing:
// "" for an unparseable one, "-" for none).
// Returns {1, value, age_ms, pttl_ms, stale, won} for a value (age and pttl
// -1 when the value is not an envelope: the client judges it), {2} when the
// value is missing and the lease was taken, {3, lease_pttl_ms} when another
// holds the lease.
inline constexpr char kReadScript[] = R"lua(
local v = redis.call('GET', KEYS[1])
if v then
  local w, id, load = string.match(v, '^H1 (%d+) (%x+) (%d+) ')
  if (id or '') == ARGV[5] then
    v = false
  elseif w then
    local t = redis.call('TIME')
    local age = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(w)
    if age < 0 then age = 0 end
    local pttl = redis.call('PTTL', KEYS[1])
    local soft = tonumber(ARGV[3])
    local stale = soft >= 0 and age >= soft
    local f = tonumber(ARGV[4])
    local early = f > 0 and pttl >= 0 and pttl <= tonumber(load) / 1000 * f
    local won = 0
    if (stale or early) and redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
      won = 1
    end
    return {1, v, age, pttl, stale and 1 or 0, won}
  else
    return {1, v, -1, -1, 0, 0}
  end
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {2}
end
return {3, redis.call('PTTL', KEYS[2])}
)lua";

// WRITE, fenced. KEYS: value, lease. ARGV: token, the envelope after its
// written_ms field, px_ms ("0": no expiry), channel, message.
// Returns 1 iff the lease still held `token` (the value was stored, the
// lease deleted, the message published), else 0 and nothing changed.
inline constexpr char kWriteScript[] = R"lua(
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
local t = redis.call('TIME')
local v = 'H1 ' .. t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000)) .. ' ' .. ARGV[2]
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], v)
else
  redis.call('SET', KEYS[1], v, 'PX', ARGV[3])
end
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
)lua";

// RENEW. KEYS: lease. ARGV: token, lease_ms. Returns 1 iff the lease still
// held `token` and was extended.
inline constexpr char kRenewScript[] = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
)lua";

// RELEASE. KEYS: lease. ARGV: token, channel, message. Returns 1 iff the
// lease held `token` and was deleted (and its waiters told).
inline constexpr char kReleaseScript[] = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0
)lua";

// PUT, unconditional. KEYS: value, lease. ARGV: the envelope after its
// written_ms field, px_ms ("0": no expiry), channel, message. Deletes the
// lease, so an in-flight load's WRITE is rejected. Returns 1.
inline constexpr char kPutScript[] = R"lua(
local t = redis.call('TIME')
local v = 'H1 ' .. t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000)) .. ' ' .. ARGV[1]
if ARGV[2] == '0' then
  redis.call('SET', KEYS[1], v)
else
  redis.call('SET', KEYS[1], v, 'PX', ARGV[2])
end
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
)lua";

// INVALIDATE. KEYS: value, lease. ARGV: channel, message. Deletes both (an
// in-flight load's WRITE is then rejected). Returns the number of values
// deleted (0 or 1).
inline constexpr char kInvalidateScript[] = R"lua(
local n = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return n
)lua";

inline constexpr const char* kScripts[kScriptCount] = {
    kReadScript, kWriteScript,    kRenewScript,
    kReleaseScript, kPutScript, kInvalidateScript};

}  // namespace herd::redis::internal

#endif  // HERD_LIB_REDIS_SCRIPTS_H_
