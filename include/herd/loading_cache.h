// Copyright 2026 The herd Authors.
//
// herd/loading_cache.h: a cache that loads what it misses through a loader
// bound at construction, shares each load among every caller of the key,
// and keeps serving when the backend stalls or fails.
//
//   herd::LoadingCache<Key, Value>  the cache
//   herd::CacheOptions<Key, Value>  expiry, refresh, fail-safe, size bound,
//                                   removal listener, clock, executor
//   herd::CacheStats                exact counters, from Stats()
//   herd::RemovalCause, WasEvicted  why a removal listener was called
//   herd::StaleReason               why a stale value was served
//
// Example:
//
//   herd::LoadingCache<int64_t, User> users(
//       {.ttl = std::chrono::minutes(5),
//        .refresh_after = std::chrono::minutes(4),
//        .stale_if_error = std::chrono::minutes(30),
//        .hard_timeout = std::chrono::seconds(2),
//        .max_entries = 100'000},
//       [&db](int64_t id) { return db.LoadUser(id); });
//   User u = users.Get(id);                 // on any number of threads
//   users.GetThen(id, [](const User* u, std::exception_ptr error) { ... });
//
// How Get(key) is answered, in order:
//   1. a fresh value (younger than its expiry) is returned. If it is older
//      than refresh_after, or XFetch picks this read (early_refresh_beta),
//      one background reload starts; readers keep the old value until the
//      reload lands (stale-while-revalidate);
//   2. a cached error (error_ttl) is rethrown;
//   3. otherwise the caller joins the key's load, or starts one: every
//      concurrent caller of a key shares one load, its value or exception.
//      Fail-safe: when that load fails (or soft_timeout / hard_timeout end
//      the wait) and the key's last value expired less than stale_if_error
//      ago, the caller gets that stale value instead, and for
//      fail_safe_backoff afterwards callers get it at once, without a load.
// Get(key, loader), GetAll and GetIfPresent follow the same steps (see each).
//
// Where loads run: a blocking caller (Get, GetAll) runs its load on its own
// thread, unless hard_timeout is set or soft_timeout may end its wait (a
// stale value exists): then on the executor, while it waits. A per-call
// loader (Get(key, loader)) and GetAll's batch always run on the calling
// thread. GetAsync, GetThen, Refresh and background refreshes run on the
// executor. Waiters are futures, callbacks or blocked threads (sleeping on
// the cache's clock), never extra threads.
//
// The read path. Reads of a fresh entry take no lock: each shard publishes
// its entries through an open-addressing index of atomic pointers to
// nodes, one per key, holding the key and its value inline; what a reader
// looks at never changes once published, and writers (under the shard's
// mutex) put a new node in the old one's place instead of changing it. A
// replaced node is reclaimed once no reader can hold it, by epoch-based
// reclamation (herd/internal/epoch.h): a reader announces itself with one
// atomic exchange on its own cache line. Stats
// are striped per thread, and a bounded cache records about one read in 4
// for its eviction policy in a striped, lossy buffer, replayed under the
// policy's lock (losing records costs the policy a little accuracy and
// nothing else). Why not a per-shard sequence lock: it would serve only
// trivially copyable values (a reader copies a value while it may be
// overwritten) and needs a second path for the rest; published nodes
// serve every Value the same way, and a Value copy constructor may call
// back into the cache. The price: every write allocates a new node (and
// copies the key into it). docs/loading_cache.md has the measurements,
// bytes per entry included.
//
// Time: every expiry, refresh and timeout is measured with options.clock.
// The default, Clock::Coarse(), reads the kernel's last tick: it lags real
// time by at most CoarseClock::Resolution() (4 ms on a HZ=250 kernel), so a
// value may be served up to that long past its expiry by real time, never
// past it by the cache's clock. Give Clock::Steady() for exact times.
//
// Thread safety: LoadingCache has internal synchronization and may be
// safely accessed concurrently from multiple threads.
//
// No lock is held while user code runs: the loaders, callbacks, listener,
// weigher, expire_after, the Clock, and every Key and Value copy, move,
// destructor, hash and equality run with no cache lock held. (Key hashing
// and equality run before a lock is taken; under it the cache compares
// stored hashes and pointers only.) A Value's copy constructor runs inside
// an epoch critical section (not a lock): it may call back into the cache,
// but while it runs, memory retired by every herd cache waits.
//
// Memory ordering: everything the thread that produced a value did before
// its loader returned (or before it called Put) is visible to every thread
// after it receives that value from any member function, or in a GetThen
// callback.
//
// Exception safety: a loader's exception reaches every caller of its load,
// type and payload intact. herd's own refusals are herd::Error subclasses:
// herd::RecursiveCall (a loader waits on its own key), herd::WaitTimeout
// (hard_timeout, no stale value), herd::Closed (the executor dropped a
// load). Any other exception, std::bad_alloc and throwing Key or Value
// copies included, leaves the cache consistent and usable, with no caller
// or key left waiting: the call that hit it throws it, or its load fails
// with it.
//
// Deadlocks: a loader that calls Get() for its own key on its own thread
// gets herd::RecursiveCall. One that waits on GetAsync()/GetThen() of its
// own key, or on work queued behind it on a busy executor, waits until
// hard_timeout (forever without one).

#ifndef HERD_LOADING_CACHE_H_
#define HERD_LOADING_CACHE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <optional>
#include <span>
#include <stop_token>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/hash/hash.h"
#include "herd/clock.h"
#include "herd/errors.h"
#include "herd/executor.h"

namespace herd {

// Why a removal listener was called.
enum class RemovalCause {
  kExplicit,  // Invalidate / InvalidateAll
  kReplaced,  // Put, or a load or refresh stored a new value over a fresh one
  kExpired,   // its expiry (and stale_if_error allowance) ran out, or it was
              // expired when it was replaced or invalidated
  kEvicted,   // removed to respect max_entries / max_weight
};

// True iff the cache removed the value by itself (kExpired, kEvicted), as
// Caffeine's RemovalCause.wasEvicted().
constexpr bool WasEvicted(RemovalCause cause) {
  return cause == RemovalCause::kExpired || cause == RemovalCause::kEvicted;
}

// Why a stale (expired) value was served; CacheStats counts each.
enum class StaleReason {
  kRefreshAhead,  // a value past refresh_after, while it reloads
  kLoadFailed,    // the reload failed, or is backing off after a failure
  kSoftTimeout,   // the reload took longer than soft_timeout
  kHardTimeout,   // the reload took longer than hard_timeout
};

template <class Key, class Value>
struct CacheOptions {
  // --- Expiry. Zero disables each rule; an entry expires at the earliest
  // enabled one. REQUIRES: each >= 0.
  std::chrono::nanoseconds ttl{0};                  // after each write
  std::chrono::nanoseconds expire_after_access{0};  // after the last read or
                                                    // write of the key
  // Per-entry lifetime after each write (load, refresh, Put), from key and
  // value; when set it replaces ttl. It is not asked on reads.
  // nanoseconds::max() means never; zero or negative means expired as soon
  // as written (the callers of its load still get the value). Runs with no
  // lock held; if it throws, the value is delivered but not stored (Put:
  // Put throws).
  std::function<std::chrono::nanoseconds(const Key&, const Value&)>
      expire_after{};

  // --- Refresh ahead (stale-while-revalidate). A read of a value at least
  // this old returns it at once and starts one background reload; readers
  // keep the value until the reload lands. A failed reload leaves it, and a
  // later read tries again. Needs a bound loader. 0 disables.
  // REQUIRES: >= 0, and < ttl when ttl > 0.
  std::chrono::nanoseconds refresh_after{0};
  // Probabilistic early refresh (XFetch: Vattani, Chierichetti, Lowenstein,
  // VLDB 2015). A read at `now` of a value expiring at `expiry` whose load
  // took `delta` starts the background reload when
  //   now - delta * beta * ln(u) >= expiry,   u uniform in (0, 1].
  // 1 is the paper's default; larger refreshes earlier. 0 disables.
  // REQUIRES: finite and >= 0.
  double early_refresh_beta = 0.0;

  // --- Failures.
  // Negative caching: a failed load's exception is cached this long, and
  // rethrown to readers without a load. 0 caches nothing. REQUIRES: >= 0.
  std::chrono::nanoseconds error_ttl{0};
  // Fail-safe: a value is kept this long past its expiry, and served in
  // place of a load that fails or times out (see soft/hard_timeout).
  // REQUIRES: >= 0.
  std::chrono::nanoseconds stale_if_error{0};
  // After a failure answered with a stale value, callers get that value at
  // once, and no load starts, for this long. REQUIRES: >= 0.
  std::chrono::nanoseconds fail_safe_backoff{std::chrono::seconds(1)};
  // When a stale value exists (stale_if_error), no caller waits for its
  // load longer than this after the load started: it gets the stale value;
  // the load goes on and its value is stored when it arrives. 0 disables.
  // REQUIRES: >= 0.
  std::chrono::nanoseconds soft_timeout{0};
  // No caller waits for a load longer than this after the load started:
  // the load is abandoned (its loader's std::stop_token is stopped, its
  // result will not be stored, the next caller starts a new load), and its
  // callers get the stale value if one exists, else herd::WaitTimeout. A
  // caller running a load on its own thread (Get(key, loader), GetAll's
  // batch) cannot be interrupted: only its token is stopped. 0 disables.
  // REQUIRES: >= 0.
  std::chrono::nanoseconds hard_timeout{0};

  // --- The loads, as herd::Share's flights (herd/share.h). A blocking
  // caller that joins a load runs one extra execution of it, on its own
  // thread, with this probability (the first success answers everyone);
  // not with hard_timeout set, which such a caller could not honour.
  // REQUIRES: in [0, 1].
  double extra_execution_rate = 0.0;
  // A caller that finds a load older than this starts a new one; the old
  // load still answers its callers, and its result is not stored. 0
  // disables. REQUIRES: >= 0.
  std::chrono::nanoseconds max_flight_age{0};

  // --- Size. 0 is unbounded. At most one of max_entries and max_weight.
  // Eviction is global (one W-TinyLFU policy for the whole cache, not LRU:
  // the value just stored may be the one evicted) and never touches an
  // entry with a load or refresh in progress: while every candidate has
  // one, the cache stays over its bound until one ends. A value heavier
  // than max_weight is evicted as soon as it is stored.
  uint64_t max_entries = 0;  // values held (each weighs 1)
  uint64_t max_weight = 0;   // total weigher() of the values held
  // REQUIRED iff max_weight > 0 (else unused). Runs with no lock held;
  // weights above 2^32 - 1 count as 2^32 - 1. If it throws, the value is
  // delivered but not stored (Put: Put throws).
  std::function<uint64_t(const Key&, const Value&)> weigher{};

  // Called exactly once per value that leaves the cache, with the cause,
  // on the thread whose call removed it (CleanUp(), Size() and writes
  // remove expired values), with no cache lock held. Cached errors, and the
  // result of a load that Put or Invalidate detached (never stored), are
  // not reported. Exceptions it throws are ignored.
  std::function<void(const Key&, const Value&, RemovalCause)>
      removal_listener{};

  // --- Machinery.
  // Independently locked shards for writers, rounded up to a power of two;
  // 0 picks 16. Readers never lock.
  size_t shards = 0;
  // Time source; nullptr means Clock::Coarse() (see "Time" above). Must
  // outlive the cache.
  const Clock* clock = nullptr;
  // Runs loads of GetAsync/GetThen/Refresh and background refreshes. Empty
  // means a pool of two threads the cache starts on first use and owns.
  // Must outlive the cache; it may refuse tasks by throwing (their callers
  // get that exception) or drop them (callers get herd::Closed).
  ExecutorRef executor{};
  // Seeds the eviction policy and XFetch draws; 0 seeds from
  // std::random_device.
  uint64_t seed = 0;
};

// Counters since construction. Each is exact; Stats() adds per-thread
// stripes one after another, so a snapshot taken under load is not atomic.
// Every lookup (Get, Get(key, loader), GetAsync, GetThen, GetIfPresent, and
// each key of GetAll) counts exactly one hit or one miss.
struct CacheStats {
  uint64_t hits = 0;           // answered from a fresh value or a cached
                               // error (GetIfPresent: a fresh value only)
  uint64_t misses = 0;         // every other lookup
  uint64_t negative_hits = 0;  // hits that rethrew a cached error
  uint64_t load_successes = 0;  // loader executions that returned a value
                                // (a batch-loader call counts once)
  uint64_t load_failures = 0;   // ...that threw
  uint64_t loads = 0;           // load_successes + load_failures
  uint64_t total_load_time_ns = 0;  // summed over both, by options.clock
  uint64_t refreshes = 0;        // loader executions for a refresh (refresh
                                 // ahead, XFetch, Refresh()), within loads
  uint64_t early_refreshes = 0;  // ...of which XFetch started
  uint64_t refresh_failures = 0;  // refreshes that threw, or were never run
  uint64_t stale_served = 0;      // the four below, summed
  uint64_t stale_refresh_ahead = 0;  // hits of values past refresh_after
  uint64_t stale_load_failed = 0;    // calls answered with an expired value
                                     // after a failure (or in its backoff)
  uint64_t stale_soft_timeout = 0;   // ...after soft_timeout
  uint64_t stale_hard_timeout = 0;   // ...after hard_timeout
  uint64_t evictions = 0;        // values removed by the size bound
  uint64_t eviction_weight = 0;  // their summed weight
  uint64_t expirations = 0;      // values removed because they expired

  // hits / (hits + misses), or 1 with no lookups (as Caffeine).
  double hit_rate() const;
  // misses / (hits + misses), or 0 with no lookups.
  double miss_rate() const;
  // total_load_time_ns / loads, or 0 with no loads.
  double average_load_penalty_ns() const;
};

namespace internal {
// herd/internal/loading_cache_impl.h
template <class Key, class Value, class Hash, class Eq, class Policy>
class CacheCore;
struct DefaultCachePolicy;
}  // namespace internal

template <class Key, class Value, class Hash = absl::Hash<Key>,
          class Eq = std::equal_to<Key>>
class LoadingCache {
 public:
  using key_type = Key;
  using value_type = Value;
  using Options = CacheOptions<Key, Value>;
  // What GetThen() calls, once: (value, nullptr) or (nullptr, exception).
  using Callback =
      absl::AnyInvocable<void(const Value*, std::exception_ptr) &&>;
  using Map = absl::flat_hash_map<Key, Value, Hash, Eq>;

  // Binds `loader`, `Value(const Key&)` or `Value(const Key&,
  // std::stop_token)`, for every miss and refresh; it is called from many
  // threads at once. The token is stopped when hard_timeout abandons the
  // load, or when the cache is destroyed.
  // Throws: std::invalid_argument for an empty loader (std::function, null
  // pointer), or if the options break a REQUIRES above.
  template <class Loader>
  LoadingCache(Options options, Loader loader);

  // Also binds `batch_loader`, `Map(std::span<const Key>)` or `Map(std::
  // span<const Key>, std::stop_token)`, which GetAll() calls for the keys
  // it misses. Keys it leaves out of its result are not stored.
  template <class Loader, class BatchLoader>
  LoadingCache(Options options, Loader loader, BatchLoader batch_loader);

  // No bound loader: Get(key, loader), GetIfPresent, Put, Invalidate, ...
  // work; Get(key), GetAsync, GetThen, GetAll and Refresh throw
  // std::logic_error.
  explicit LoadingCache(Options options);

  LoadingCache(const LoadingCache&) = delete;
  LoadingCache& operator=(const LoadingCache&) = delete;

  // Stops the tokens of loads in progress, then waits until every task the
  // cache gave its executor has run or been destroyed (GetThen callbacks
  // still pending run before it returns). Removal listeners are not called
  // for the values it destroys. REQUIRES: no other thread is inside a
  // member function.
  ~LoadingCache();

  // Returns `key`'s value, as the file comment says.
  // Throws: the load's exception, or the cached one; herd::WaitTimeout
  // (hard_timeout, no stale value); herd::RecursiveCall; std::logic_error
  // with no bound loader; whatever a Value copy throws.
  Value Get(const Key& key);

  // As Get(key), with `loader` for this call's load: `Value()`,
  // `Value(std::stop_token)`, `Value(const Key&)` or `Value(const Key&,
  // std::stop_token)`. It runs on this thread (or, as an extra execution,
  // on the thread of another caller of this key) and is never kept past
  // this call: refreshes of the key use the bound loader, if any.
  // Throws: as Get(); std::invalid_argument for an empty loader.
  template <class L>
  Value Get(const Key& key, L&& loader);

  // As Get(), without blocking: a ready future on a hit, else the future of
  // the key's load (run on the executor). Errors are in the future.
  // Throws: std::logic_error with no bound loader; std::bad_alloc.
  std::shared_future<Value> GetAsync(const Key& key);

  // As GetAsync(), with a callback, called exactly once: inline before
  // GetThen returns on a hit; otherwise on the thread that ends the load's
  // wait (an executor thread, a caller running the load, or the cache's
  // timer thread for soft/hard timeouts), with no lock held. The value
  // pointer is valid during the call only. `callback` must not throw
  // (std::terminate).
  // Throws: std::logic_error with no bound loader; std::bad_alloc (the
  // callback is then never called).
  template <class Cb>
  void GetThen(const Key& key, Cb&& callback);

  // The values of `keys`, each looked up as Get() would. The keys that miss
  // and have no load in progress load together in one call of the batch
  // loader (on this thread), or one by one with the loader if none is
  // bound (every one of them, even after one fails); the others join their
  // key's load. Keys the batch loader leaves out are absent from the result
  // (their other callers get std::out_of_range); keys it adds are ignored
  // (not returned, not stored). Duplicate keys count once.
  // Throws: the first load error met (a cached one included), once every
  // load this call started has ended; herd::WaitTimeout; std::logic_error
  // with no bound loader.
  Map GetAll(std::span<const Key> keys);

  // Reloads `key` now, on the executor; readers keep its current value
  // until the reload lands. Returns the reload's future. Concurrent
  // Refresh() calls, and a load already in progress, share one load. The
  // reload is stored when it lands even if the value expired meanwhile (as
  // Guava; Caffeine drops it), unless Put or Invalidate detached it; a
  // failed one leaves a fresh value in place.
  // Throws: std::logic_error with no bound loader; std::bad_alloc.
  std::shared_future<Value> Refresh(const Key& key);

  // Returns `key`'s value iff it is fresh; never loads, never waits, never
  // refreshes. A cached error, a stale value or a load in progress reads as
  // absent (a miss).
  std::optional<Value> GetIfPresent(const Key& key);

  // Stores `value` as fresh. A load of `key` in progress still answers its
  // own callers, but its result is not stored, and later callers do not
  // join it. Throws what the weigher, expire_after or a Key copy throws,
  // with nothing stored.
  void Put(const Key& key, Value value);

  // Removes `key`'s value or cached error, and detaches its load: the load
  // still answers its own callers, its result is not stored, and callers
  // arriving after Invalidate returns start a new one. Returns true iff the
  // key had a value (fresh or kept for stale_if_error), a cached error or a
  // load in progress.
  bool Invalidate(const Key& key);

  // Invalidate() for every key, or for each of `keys`.
  void InvalidateAll();
  void InvalidateAll(std::span<const Key> keys);

  // The number of keys whose GetIfPresent() would return a value now:
  // expired values are removed first (listeners run on this thread).
  size_t Size() const;
  // The summed weight of those values (weigher, else 1 each).
  uint64_t Weight() const;

  // Removes every expired value now (listeners run on this thread), applies
  // pending eviction, and frees memory no reader can reach any more.
  void CleanUp();

  CacheStats Stats() const;

 private:
  internal::CacheCore<Key, Value, Hash, Eq, internal::DefaultCachePolicy> core_;
};

}  // namespace herd

#include "herd/internal/loading_cache_impl.h"  // IWYU pragma: export

#endif  // HERD_LOADING_CACHE_H_
