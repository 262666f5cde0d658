// Copyright 2026 The herd Authors.
//
// herd/redis/tier.h: typed keys and values over a herd::redis::Fleet. Call
// Load() once per local flight, and every process sharing the Redis server
// shares one database load per expiry.
//
//   herd::redis::TierOptions<Key, Value>  name space, TTLs, refresh-ahead
//   herd::redis::Tier<Key, Value>         Load / Fetch, Put, Invalidate
//   herd::redis::Loaded<Value>            a value and where it came from
//
// Example:
//
//   herd::redis::Fleet fleet({.host = "127.0.0.1", .port = 6379});
//   herd::redis::Tier<int64_t, std::string> rows(
//       fleet,
//       {.name = "row", .ttl = std::chrono::seconds(60),
//        .refresh_after = std::chrono::seconds(50)},
//       [&](int64_t id) { return db.Query(id); });
//   herd::Share<int64_t, std::string> share;     // coalesces this process
//   std::string row = share.Do(id, [&] { return rows.Load(id); });
//
// Why through a local flight: Load() sends Redis a constant number of
// commands (herd/redis/fleet.h says which), so the threads of a process
// must share one Load() per key for the process's commands per expiry to
// stay constant too. herd::Share and herd::LoadingCache do exactly that.
//
// Thread safety: Tier has internal synchronization and may be safely
// accessed concurrently from multiple threads. The loader runs with no lock
// held and no connection checked out; it may run on several threads at once
// (several keys, or a refresh beside a load), and a background refresh runs
// it on the executor.
//
// Memory ordering: everything the loader did before it returned is visible
// to the caller that receives its value (values from other processes come
// as bytes).
//
// Exception safety: a loader's exception reaches the caller of Load() /
// Fetch() unchanged (after the lease, if this call held it, is released).
// A value that cannot be encoded is returned but not stored. Redis being
// unreachable is never an error: the loader runs locally (FleetStats
// counts a fallback).

#ifndef HERD_REDIS_TIER_H_
#define HERD_REDIS_TIER_H_

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "herd/executor.h"
#include "herd/internal/invoke.h"
#include "herd/internal/tasks.h"
#include "herd/redis/codec.h"
#include "herd/redis/fleet.h"

namespace herd::redis {

template <class Key, class Value>
struct TierOptions {
  // Name space of the keys under the Fleet's prefix: tiers with different
  // key or value types need different names. REQUIRES: contains no ':'
  // (which ends the name inside a Redis key), so that different names never
  // share a Redis key.
  std::string name = "default";
  // How long Redis keeps a value after each write; 0 keeps it until it is
  // invalidated or overwritten. REQUIRES: >= 0.
  std::chrono::nanoseconds ttl{0};
  // Per value, replaces ttl: nanoseconds::max() keeps it, <= 0 does not
  // store it. Runs outside every lock.
  std::function<std::chrono::nanoseconds(const Key&, const Value&)>
      expire_after{};
  // Stale-while-revalidate across the fleet: a value older than this (by
  // Redis's clock) is returned at once, and exactly one process refreshes
  // it in the background. 0 disables. REQUIRES: >= 0, and < ttl if ttl > 0.
  std::chrono::nanoseconds refresh_after{0};
  // XFetch early refresh from the stored load time (0 disables; 1 is the
  // paper's default). REQUIRES: >= 0 and finite.
  double early_refresh_beta = 0.0;
  // Runs background refreshes; empty means the Fleet's own thread.
  ExecutorRef executor{};
};

// A value and how Fetch() got it.
template <class Value>
struct Loaded {
  Value value;
  Source source = Source::kRedis;
  bool stale = false;                 // past refresh_after, served at once
  std::chrono::nanoseconds age{0};    // since written (Redis's clock)
  // Until Redis drops it (nanoseconds::max(): never). A value loaded but
  // not stored, because its encoding threw: the ttl it would have had.
  std::chrono::nanoseconds expires_in = std::chrono::nanoseconds::max();
  // Until it turns stale: refresh_after - age when refresh_after is set,
  // else expires_in. Never negative. A local copy kept this long is never
  // staler than Redis's.
  std::chrono::nanoseconds fresh_for = std::chrono::nanoseconds::max();
};

template <class Key, class Value, class ValueCodec = Codec<Value>,
          class KeyCodecT = KeyCodec<Key>>
class Tier {
 public:
  using Options = TierOptions<Key, Value>;
  using Loader = std::function<Value(const Key&)>;

  // `loader` is called as Value(const Key&) for every load and refresh, and
  // copied into a std::function. `fleet` must outlive the Tier.
  // Throws: std::invalid_argument if an option breaks its REQUIRES or the
  // loader is empty.
  template <class L>
  Tier(Fleet& fleet, Options options, L loader);
  // Waits for the background refreshes this Tier started.
  ~Tier();
  Tier(const Tier&) = delete;
  Tier& operator=(const Tier&) = delete;

  // The value of `key`: from Redis, or loaded by this call under the lease,
  // or after waiting for another process's load, or loaded locally when
  // Redis is unavailable. Call once per local flight (see above).
  // Throws: what the loader throws.
  Value Load(const Key& key) { return std::move(Fetch(key).value); }
  Loaded<Value> Fetch(const Key& key);

  // Stores `value` as the key's value in Redis now (an in-flight load's
  // write is then rejected) and tells every other process (Listen()); a
  // value whose ttl (expire_after) is <= 0 deletes the key instead.
  // Returns true iff Redis was reached.
  // Throws: what the codec's Encode throws (before anything is sent).
  bool Put(const Key& key, const Value& value);

  // Deletes the key's value in Redis (an in-flight load's write is then
  // rejected) and tells every other process. Returns true iff Redis was
  // reached.
  bool Invalidate(const Key& key);

  // Calls on_key(key) for every Put / Invalidate of this tier's keys by
  // another process, and on_resync() when messages may have been missed;
  // both on the Fleet's subscription thread (see Fleet::Listen).
  std::unique_ptr<Fleet::Listener> Listen(
      std::function<void(const Key&)> on_key, std::function<void()> on_resync);

  // The Redis keys that hold `key`'s value and lease.
  KeyRef RedisKeys(const Key& key) const;

  Fleet& fleet() const { return fleet_; }
  const Options& options() const { return options_; }

 private:
  struct RefreshTask;

  std::chrono::nanoseconds TtlFor(const Key& key, const Value& value) const;
  // Runs the loader into `value`; returns the Payload to store (nullopt if
  // encoding threw: then *unstored_ttl, if given, is its ttl).
  std::optional<Payload> LoadPayload(
      const Key& key, std::optional<Value>& value, bool store,
      std::optional<std::chrono::nanoseconds>* unstored_ttl = nullptr) const;
  void StartRefresh(const Key& key, KeyRef keys, std::string token);

  Fleet& fleet_;
  const Options options_;
  const Loader loader_;
  const FetchPolicy policy_;
  herd::internal::TaskCounter tasks_;
};

}  // namespace herd::redis

#include "herd/redis/internal/tier_impl.h"

#endif  // HERD_REDIS_TIER_H_
