// Copyright 2026 The herd Authors.
//
// herd/redis/fleet_cache.h: a herd::LoadingCache in each process, a shared
// copy in Redis behind it, and one database load per expiry for the fleet.
//
//   herd::redis::FleetCacheOptions<Key, Value>  the tier in Redis, and the
//                                              bounds of each local copy
//   herd::redis::FleetCache<Key, Value>        Get, GetIfPresent, Put,
//                                              Invalidate, across processes
//
// Example:
//
//   herd::redis::Fleet fleet({.host = "127.0.0.1", .port = 6379,
//                             .prefix = "shop:"});
//   herd::redis::FleetCache<int64_t, std::string> products(
//       fleet,
//       {.tier = {.name = "product", .ttl = std::chrono::minutes(10),
//                 .refresh_after = std::chrono::minutes(8)},
//        .max_entries = 100000},
//       [&](const int64_t& id) { return db.LoadProduct(id); });
//   std::string p = products.Get(42);    // any thread, any process
//   products.Invalidate(42);             // every process drops its copy
//
// How Get() is answered:
//   * from this process's copy while it is fresh: it lives at most until
//     the Redis copy turns stale (refresh_after) or expires, so a local copy
//     is never staler than Redis's, and at most local_ttl when that is set;
//   * else the process's threads share one load of the local cache, which
//     asks the Redis tier once (herd/redis/tier.h): Redis's copy, or one
//     database load for the whole fleet under a lease, or, while Redis is
//     unreachable, a load of this process alone.
//
// Across processes: Put() and Invalidate() change Redis and tell every other
// process, whose local copy of the key is dropped within 100 ms (pub/sub;
// herd::redis::FleetStats::invalidations_received counts them). When the
// subscription was lost (Redis restarted, the network broke), every local
// copy is dropped once it is back, since messages may have been missed;
// so are the copies loaded before a new Fleet's first subscription.
//
// Thread safety: FleetCache has internal synchronization and may be safely
// accessed concurrently from multiple threads. No lock is held while the
// loader runs.
//
// Memory ordering: as herd::LoadingCache's; a value from another process
// arrives as bytes.
//
// Exception safety: a loader's exception reaches every caller of that load,
// in this process (another process's failed load makes its waiters retry:
// errors are not shared through Redis). Redis being unreachable is never an
// error.

#ifndef HERD_REDIS_FLEET_CACHE_H_
#define HERD_REDIS_FLEET_CACHE_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "herd/clock.h"
#include "herd/executor.h"
#include "herd/loading_cache.h"
#include "herd/redis/codec.h"
#include "herd/redis/fleet.h"
#include "herd/redis/tier.h"

namespace herd::redis {

template <class Key, class Value>
struct FleetCacheOptions {
  // The shared copy in Redis: name space, ttl / expire_after, refresh_after
  // (stale-while-revalidate for the fleet), early_refresh_beta (XFetch).
  // Its executor, when empty, is the one below.
  TierOptions<Key, Value> tier{};

  // Each process's copy. It lives until Redis's copy turns stale or
  // expires; local_ttl, when > 0, caps that. A copy served stale by Redis
  // (another process is refreshing it) is kept 1 ms. REQUIRES: >= 0.
  std::chrono::nanoseconds local_ttl{0};
  std::chrono::nanoseconds expire_after_access{0};  // 0 disables
  uint64_t max_entries = 0;                         // 0: unbounded
  size_t shards = 0;                                // 0: the cache's default
  const Clock* clock = nullptr;  // the local cache's; nullptr: its default
  // Background refreshes of the tier and of the local cache; empty: each
  // uses its own default (the Fleet's thread, the cache's pool).
  ExecutorRef executor{};
};

template <class Key, class Value, class ValueCodec = Codec<Value>,
          class KeyCodecT = KeyCodec<Key>>
class FleetCache {
 public:
  using Options = FleetCacheOptions<Key, Value>;

  // `loader` is called as Value(const Key&), at most once per expiry for
  // the fleet while Redis is reachable. `fleet` must outlive the cache.
  // Throws: std::invalid_argument if an option breaks its REQUIRES or the
  // loader is empty.
  template <class L>
  FleetCache(Fleet& fleet, Options options, L loader);
  // Stops listening, then waits for the local cache's and the tier's
  // background work.
  ~FleetCache() = default;
  FleetCache(const FleetCache&) = delete;
  FleetCache& operator=(const FleetCache&) = delete;

  // The key's value (see the file comment).
  // Throws: what the loader throws.
  Value Get(const Key& key) { return cache_.Get(key).value; }

  // This process's fresh copy, if any. Never loads, never asks Redis.
  std::optional<Value> GetIfPresent(const Key& key) {
    std::optional<Stamped> s = cache_.GetIfPresent(key);
    if (!s) return std::nullopt;
    return std::move(s->value);
  }

  // Stores `value` in Redis (an in-flight load's write is then rejected)
  // and in this process, and drops every other process's copy. Returns
  // true iff Redis was reached (this process's copy is set either way).
  bool Put(const Key& key, Value value);

  // Deletes the key in Redis (an in-flight load's result is then stored
  // nowhere) and in this process, and drops every other process's copy.
  // Returns true iff Redis was reached (this process's copy goes either
  // way).
  bool Invalidate(const Key& key);

  // Drops this process's copies only (Redis and the other processes keep
  // theirs).
  void InvalidateAllLocal() { cache_.InvalidateAll(); }

  CacheStats LocalStats() const { return cache_.Stats(); }
  Tier<Key, Value, ValueCodec, KeyCodecT>& tier() { return tier_; }

 private:
  // A value and how long this process may keep it.
  struct Stamped {
    Value value;
    std::chrono::nanoseconds keep;
  };

  static CacheOptions<Key, Stamped> LocalOptions(const Options& o);
  static TierOptions<Key, Value> TierOf(Options o);

  Tier<Key, Value, ValueCodec, KeyCodecT> tier_;
  LoadingCache<Key, Stamped> cache_;
  // Last: unregistered first, while cache_ still exists.
  std::unique_ptr<Fleet::Listener> listener_;
};

// --- Definitions ---------------------------------------------------------------

template <class Key, class Value, class ValueCodec, class KeyCodecT>
TierOptions<Key, Value> FleetCache<Key, Value, ValueCodec, KeyCodecT>::TierOf(
    Options o) {
  if (!o.tier.executor) o.tier.executor = o.executor;
  return std::move(o.tier);
}

template <class Key, class Value, class ValueCodec, class KeyCodecT>
CacheOptions<Key, typename FleetCache<Key, Value, ValueCodec, KeyCodecT>::Stamped>
FleetCache<Key, Value, ValueCodec, KeyCodecT>::LocalOptions(const Options& o) {
  if (o.local_ttl < std::chrono::nanoseconds::zero()) {
    throw std::invalid_argument("herd::redis::FleetCache: local_ttl < 0");
  }
  CacheOptions<Key, Stamped> c;
  const std::chrono::nanoseconds cap =
      o.local_ttl > std::chrono::nanoseconds::zero()
          ? o.local_ttl
          : std::chrono::nanoseconds::max();
  c.expire_after = [cap](const Key&, const Stamped& s) {
    return std::min(cap, s.keep);
  };
  c.expire_after_access = o.expire_after_access;
  c.max_entries = o.max_entries;
  c.shards = o.shards;
  c.clock = o.clock;
  c.executor = o.executor;
  return c;
}

template <class Key, class Value, class ValueCodec, class KeyCodecT>
template <class L>
FleetCache<Key, Value, ValueCodec, KeyCodecT>::FleetCache(Fleet& fleet,
                                                          Options options,
                                                          L loader)
    : tier_(fleet, TierOf(options), std::move(loader)),
      cache_(LocalOptions(options), [this](const Key& key) {
        Loaded<Value> got = tier_.Fetch(key);
        // Served stale (another process refreshes it): keep it 1 ms.
        const std::chrono::nanoseconds keep =
            std::max<std::chrono::nanoseconds>(got.fresh_for,
                                               std::chrono::milliseconds(1));
        return Stamped{std::move(got.value), keep};
      }),
      listener_(tier_.Listen([this](const Key& key) { cache_.Invalidate(key); },
                             [this] { cache_.InvalidateAll(); })) {}

template <class Key, class Value, class ValueCodec, class KeyCodecT>
bool FleetCache<Key, Value, ValueCodec, KeyCodecT>::Put(const Key& key,
                                                        Value value) {
  const bool reached = tier_.Put(key, value);
  const TierOptions<Key, Value>& t = tier_.options();
  std::chrono::nanoseconds keep = std::chrono::nanoseconds::max();
  if (t.expire_after) {
    keep = t.expire_after(key, value);
  } else if (t.ttl > std::chrono::nanoseconds::zero()) {
    keep = t.ttl;
  }
  if (t.refresh_after > std::chrono::nanoseconds::zero()) {
    keep = std::min(keep, t.refresh_after);
  }
  cache_.Put(key, Stamped{std::move(value), keep});
  return reached;
}

template <class Key, class Value, class ValueCodec, class KeyCodecT>
bool FleetCache<Key, Value, ValueCodec, KeyCodecT>::Invalidate(
    const Key& key) {
  // Redis first: a local load that starts after the local invalidation
  // must not find the old value there.
  const bool reached = tier_.Invalidate(key);
  cache_.Invalidate(key);
  return reached;
}

}  // namespace herd::redis

#endif  // HERD_REDIS_FLEET_CACHE_H_
