// Copyright 2026 The herd Authors.
//
// herd/loading_cache.h: a cache that keeps loaded values between loads and
// never lets a crowd of callers stampede the backend behind it.
//
//   herd::LoadingCache<Key, Value>  TTL cache; misses load through a
//                                   herd::Share, stale values refresh in the
//                                   background, early refresh by XFetch
//   herd::CacheOptions              ttl, refresh_after, early_refresh_beta,
//                                   error_ttl, max_entries, clock, executor
//   herd::CacheStats                counters, from LoadingCache::Stats()
//
// Example:
//
//   herd::LoadingCache<int64_t, User> users({.ttl = std::chrono::minutes(5),
//                                            .refresh_after =
//                                                std::chrono::minutes(4)});
//   // On any number of threads at once:
//   User u = users.Get(id, [id, &db] { return db.LoadUser(id); });
//   users.GetThen(id, [id, &db] { return db.LoadUser(id); },
//                 [](const User* u, std::exception_ptr error) { ... });
//
// How a call is answered:
//   * a fresh value (younger than ttl) is returned from the cache;
//   * a value older than refresh_after is still returned at once, and one
//     background reload is started on the executor (stale-while-revalidate);
//     with early_refresh_beta > 0 a reader may also start that reload early,
//     at random, shortly before expiry (XFetch; see CacheOptions);
//   * on a miss or after expiry, the caller loads through a herd::Share, so
//     every concurrent caller of the key shares one execution of a loader
//     and receives its value or its exception (type and payload intact).
// Get() runs the loader on the caller's thread; GetAsync() and GetThen() run
// it on the executor; refreshes always run on the executor. Each load
// occupies one executor thread for its duration, however many callers wait
// on it: waiters are futures or queued callbacks, never threads.
//
// Deadlocks: a loader that calls Get() on its own cache for the key it is
// loading gets herd::RecursiveCall; one that waits on GetAsync()/GetThen()
// of that key, or on any work queued behind it on a busy executor, blocks
// for ever. Bound such waits, or give loads an executor of their own.
//
// Loaders: a loader is invocable as `Value()` or `Value(std::stop_token)`
// (the token is never stopped by the cache today). A loader passed to Get()
// may be copied into a background refresh and run after Get() returned, and
// the loaders of GetAsync()/GetThen() always run later on the executor: when
// refreshes or the async calls are used, a loader must own what it uses or
// refer only to objects that outlive the cache (capture by value, not [&]).
//
// Thread safety: LoadingCache has internal synchronization and may be safely
// accessed concurrently from multiple threads. No lock is held while a
// loader or a callback runs.
//
// Memory ordering: everything the thread that loaded a value (or called
// Put() with it) did before the loader returned (or Put() was called) is
// visible to every thread after it receives that value from any member
// function, or in a GetThen() callback.
//
// Exception safety: a loader's exception reaches every caller of that load
// and is cached only when error_ttl > 0. A failed background refresh is
// counted and leaves the old value in place until it expires. Invalid
// options throw std::invalid_argument from the constructor. herd's own
// refusals (herd::RecursiveCall from a loader that asks its own cache for
// its own key; herd::Closed to GetAsync/GetThen callers when the executor
// refuses or drops a load task) are herd::Error subclasses.

#ifndef HERD_LOADING_CACHE_H_
#define HERD_LOADING_CACHE_H_

#include <bit>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/hash/hash.h"
#include "herd/clock.h"
#include "herd/errors.h"
#include "herd/internal/invoke.h"
#include "herd/internal/mutex.h"
#include "herd/share.h"
#include "herd/thread_pool.h"

namespace herd {

struct CacheOptions {
  // What the cache hands its executor: run it exactly once, or destroy it
  // without running it (the cache then treats the work as refused).
  using Task = absl::AnyInvocable<void() &&>;

  // How long a loaded (or Put) value stays fresh, from when it was written.
  // REQUIRES: > 0.
  std::chrono::nanoseconds ttl{0};

  // When positive, a read of a value at least this old returns it at once
  // and starts one background reload; readers during that reload start no
  // other. A reload that fails leaves the old value until it expires, and
  // the next read past refresh_after tries again. Zero disables it.
  // REQUIRES: 0 <= refresh_after < ttl.
  std::chrono::nanoseconds refresh_after{0};

  // When positive, probabilistic early refresh (XFetch: Vattani, Chierichetti
  // and Lowenstein, "Optimal Probabilistic Cache Stampede Prevention", VLDB
  // 2015). A read at time `now` of a value that expires at `expiry` and took
  // `delta` to load starts a background reload when
  //   now - delta * beta * ln(u) >= expiry,   u uniform in (0, 1],
  // so reloads of keys that expire together spread over the last few deltas
  // before expiry instead of piling up at it. 1 is the paper's default;
  // larger is earlier. Unlike the paper's reader, which recomputes inline,
  // the reader returns the current value and the reload runs on the
  // executor. Values written by Put() keep the key's last load time (a key
  // never loaded has none and is not refreshed early). Zero disables it.
  // REQUIRES: finite and >= 0.
  double early_refresh_beta = 0.0;

  // Negative caching. Zero (the default) caches no failure: the next caller
  // loads again. When positive, a load's exception is cached this long, and
  // readers within it get the same exception object without a load.
  // REQUIRES: >= 0.
  std::chrono::nanoseconds error_ttl{0};

  // When positive, the cache holds at most this many entries (values and
  // cached errors) and evicts the least recently used one. An entry whose
  // background refresh is in progress is never evicted; when every other
  // entry of its shard is being refreshed, a newly loaded value is returned
  // to its callers but not kept. LRU order is kept per shard (see `shards`),
  // so with several shards it approximates global LRU. Zero is unbounded.
  size_t max_entries = 0;

  // Number of independently locked shards, rounded up to a power of two.
  // Zero picks 16 for an unbounded cache and max_entries / 64 (at least 1,
  // at most 16) for a bounded one; a bounded cache never has more shards
  // than entries. max_entries is split evenly among the shards.
  size_t shards = 0;

  // Time source for every TTL, refresh and load-time measurement; nullptr
  // means Clock::Steady(). Must outlive the cache.
  const Clock* clock = nullptr;

  // Runs background refreshes and the loads of GetAsync()/GetThen(). Empty
  // means a pool of two threads that the cache starts on first use and owns.
  // To use a herd::ThreadPool of your own:
  //   options.executor = [&pool](CacheOptions::Task t) {
  //     pool.Schedule(std::move(t)); };
  // It is called from any thread, concurrently, never under a cache lock.
  // REQUIRES: every task it accepts runs or is destroyed eventually: the
  // cache's destructor waits for them. It may throw to refuse a task.
  std::function<void(Task)> executor{};

  // Seed of the early-refresh random draws; zero draws a seed from
  // std::random_device. Each shard has its own generator, so with
  // shards = 1 a single-threaded sequence of calls is reproducible.
  uint64_t seed = 0;
};

// Counters since construction. Each is exact, but Stats() reads the shards
// one after another, so a snapshot taken under load is not atomic.
struct CacheStats {
  uint64_t hits = 0;  // calls answered from the cache, without waiting
                      // for a load: fresh or stale values, cached errors
  uint64_t negative_hits = 0;  // ...of which rethrew a cached exception
  uint64_t stale_reads = 0;    // ...of which returned a value older than
                               // refresh_after
  uint64_t misses = 0;  // calls that found no usable entry (Get, GetAsync
                        // and GetThen then wait for a load)
  uint64_t loads = 0;   // loader executions for misses
  uint64_t load_failures = 0;     // ...that threw
  uint64_t refreshes = 0;         // loader executions for background refresh
  uint64_t early_refreshes = 0;   // ...that XFetch started before
                                  // refresh_after or expiry
  uint64_t refresh_failures = 0;  // refreshes that threw or could not be
                                  // scheduled
  uint64_t evictions = 0;         // entries removed to respect max_entries
};

template <class Key, class Value, class Hash = absl::Hash<Key>,
          class Eq = std::equal_to<Key>>
class LoadingCache {
  static_assert(std::is_copy_constructible_v<Value>,
                "herd::LoadingCache: Value must be copy constructible: the "
                "cache keeps a copy and hands out copies");
  static_assert(std::is_copy_constructible_v<Key>,
                "herd::LoadingCache: Key must be copy constructible");

 public:
  using key_type = Key;
  using value_type = Value;
  // What GetThen() stores: called once with (value, nullptr) or
  // (nullptr, exception).
  using Callback =
      absl::AnyInvocable<void(const Value*, std::exception_ptr) &&>;

  // Throws: std::invalid_argument if ttl <= 0, refresh_after < 0,
  // refresh_after >= ttl, early_refresh_beta is negative or not finite, or
  // error_ttl < 0.
  explicit LoadingCache(CacheOptions options);
  LoadingCache(const LoadingCache&) = delete;
  LoadingCache& operator=(const LoadingCache&) = delete;

  // Waits until every task the cache gave its executor has run or been
  // destroyed; GetThen() callbacks of loads still in progress run before it
  // returns. REQUIRES: no other thread is inside a member function.
  ~LoadingCache();

  // Returns `key`'s value: from the cache while fresh, otherwise from a load
  // shared with every concurrent caller of `key` (this thread runs `loader`
  // if no load is in progress). A value due for refresh is returned at once
  // and `loader` is copied into a background refresh.
  // Throws: whatever the load's loader threw, or the cached exception (see
  // error_ttl); herd::RecursiveCall if `loader` asks this cache for `key`;
  // std::invalid_argument if `loader` is an empty std::function or a null
  // pointer.
  template <class Loader>
  Value Get(const Key& key, Loader&& loader);

  // As Get(), without blocking: returns a ready future on a hit, otherwise
  // a future of a load run on the executor (callers of one load share one
  // future). Loader exceptions and cached errors are in the future.
  // Throws: std::invalid_argument for an empty loader.
  template <class Loader>
  std::shared_future<Value> GetAsync(const Key& key, Loader&& loader);

  // As Get(), with a callback: `callback(&value, nullptr)` or
  // `callback(nullptr, exception)`, exactly once. On a hit it runs inline,
  // on this thread, before GetThen() returns; otherwise on the executor
  // thread that ran (or joined) the load, once it has ended and its value,
  // if stored, is in the cache. The value pointer is valid only during the
  // call. Callbacks must not throw (std::terminate). Any number of
  // callbacks may wait on one load; they cost a vector slot each, not a
  // thread.
  // Throws: std::invalid_argument for an empty loader.
  template <class Loader, class Cb>
  void GetThen(const Key& key, Loader&& loader, Cb&& callback);

  // Returns `key`'s value iff it is cached and fresh. Never loads or
  // refreshes; a cached error reads as absent.
  std::optional<Value> GetIfPresent(const Key& key);

  // Stores `value` as fresh. A load or refresh of `key` in progress still
  // answers its own callers, but its result is not written over `value`,
  // and later callers do not join it.
  void Put(const Key& key, Value value);

  // Removes `key`'s entry. A load of `key` in progress still answers its own
  // callers, but its result is not stored, and callers arriving after
  // Invalidate() returns start a new load. Returns true iff `key` had an
  // entry or a load in progress.
  bool Invalidate(const Key& key);

  // Invalidate() for every key.
  void InvalidateAll();

  // Number of entries stored (values and cached errors). Expired entries
  // count until they are removed: when read, when evicted, or a few at a
  // time as new entries are inserted.
  size_t Size() const;

  CacheStats Stats() const;

  // Counters of the herd::Share that coalesces the loads (calls that
  // reached it, executions, shared results).
  ShareStats FlightStats() const { return share_.Stats(); }

 private:
  enum class LoadKind { kMiss, kRefresh, kEarlyRefresh };

  // Loads are coalesced per (key, ticket). A ticket is issued when a key's
  // miss, async request or refresh is registered, and every caller that
  // arrives while it is outstanding gets the same one; Put, Invalidate and
  // InvalidateAll withdraw it, so later callers get a new ticket and a new
  // flight, while the withdrawn flight still answers its own callers and
  // its result is not stored.
  struct FlightKey {
    Key key;
    uint64_t ticket;
  };
  struct FlightHash {
    size_t operator()(const FlightKey& f) const {
      return absl::Hash<std::pair<size_t, uint64_t>>{}(
          {Hash{}(f.key), f.ticket});
    }
  };
  struct FlightEq {
    bool operator()(const FlightKey& a, const FlightKey& b) const {
      return a.ticket == b.ticket && Eq{}(a.key, b.key);
    }
  };

  struct Entry {
    std::optional<Value> value;  // engaged iff error is null
    std::exception_ptr error;
    Clock::time_point written{};
    Clock::time_point expires{};
    Clock::duration load_time{};  // XFetch's delta
    uint64_t refresh_token = 0;   // the refresh's ticket while one is due
    // Order list: least recently used first when bounded, oldest write
    // first when not.
    Entry* prev = nullptr;
    Entry* next = nullptr;
    const Key* key = nullptr;  // the map's key; node_hash_map keeps it put
  };

  // Callers of GetAsync/GetThen waiting on one async load of a key.
  struct Waiters {
    uint64_t ticket = 0;
    // Guarded by the shard's mu until the load completes.
    std::vector<Callback> callbacks;
    std::optional<std::promise<Value>> promise;
    std::shared_future<Value> future;
  };

  struct alignas(64) Shard {
    internal::Mutex mu;  // protects everything below
    // Written on every lookup: on the mutex's cache line, so a lookup
    // dirties one line of the shard, not two.
    uint64_t hits ABSL_GUARDED_BY(mu) = 0;
    uint64_t misses ABSL_GUARDED_BY(mu) = 0;
    absl::node_hash_map<Key, Entry, Hash, Eq> entries ABSL_GUARDED_BY(mu);
    Entry* head ABSL_GUARDED_BY(mu) = nullptr;  // coldest
    Entry* tail ABSL_GUARDED_BY(mu) = nullptr;  // hottest
    // The outstanding ticket of a key: its load, when it ends, is stored.
    absl::flat_hash_map<Key, uint64_t, Hash, Eq> loading ABSL_GUARDED_BY(mu);
    absl::flat_hash_map<Key, std::shared_ptr<Waiters>, Hash, Eq> waiting
        ABSL_GUARDED_BY(mu);
    uint64_t next_ticket ABSL_GUARDED_BY(mu) = 0;
    uint64_t rng ABSL_GUARDED_BY(mu) = 0;  // splitmix64 state
    size_t capacity = 0;  // set before use, then constant; 0 = unbounded

    uint64_t negative_hits ABSL_GUARDED_BY(mu) = 0;
    uint64_t stale_reads ABSL_GUARDED_BY(mu) = 0;
    uint64_t loads ABSL_GUARDED_BY(mu) = 0;
    uint64_t load_failures ABSL_GUARDED_BY(mu) = 0;
    uint64_t refreshes ABSL_GUARDED_BY(mu) = 0;
    uint64_t early_refreshes ABSL_GUARDED_BY(mu) = 0;
    uint64_t refresh_failures ABSL_GUARDED_BY(mu) = 0;
    uint64_t evictions ABSL_GUARDED_BY(mu) = 0;
  };

  // What a lookup found.
  struct Lookup {
    enum Kind { kHit, kNegative, kMiss } kind = kMiss;
    std::optional<Value> value;        // kHit
    std::exception_ptr error;          // kNegative
    uint64_t ticket = 0;               // kMiss, or kHit: start a refresh
    bool early = false;                // ...started by XFetch
    std::shared_ptr<Waiters> waiters;  // kMiss, async: the load to join
    bool start_async = false;          // ...which this call must start
  };

  // A unit of work handed to the executor. Runs its body once, or abandons
  // it when destroyed unrun, and in both cases ends the cache's count of
  // outstanding tasks last, so the cache outlives every use of it.
  template <class Body>
  class Job {
   public:
    Job(LoadingCache* cache, Body body)
        : cache_(cache), body_(std::move(body)) {}
    Job(const Job&) = delete;
    Job& operator=(const Job&) = delete;
    ~Job() {
      if (!ran_) body_->Abandon(*cache_);
      body_.reset();
      cache_->EndTask();
    }
    void Run() {
      ran_ = true;
      body_->Run(*cache_);
    }

   private:
    LoadingCache* const cache_;
    std::optional<Body> body_;
    bool ran_ = false;
  };

  template <class Stored>
  struct RefreshBody {
    Shard* shard;
    Key key;
    Stored loader;
    uint64_t token;
    bool early;
    void Run(LoadingCache& c) {
      c.RunRefresh(*shard, key, loader, token, early);
    }
    void Abandon(LoadingCache& c) { c.AbandonRefresh(*shard, key, token); }
  };

  template <class Stored>
  struct AsyncLoadBody {
    Shard* shard;
    Key key;
    Stored loader;
    std::shared_ptr<Waiters> waiters;
    void Run(LoadingCache& c) { c.RunAsyncLoad(*shard, key, loader, waiters); }
    void Abandon(LoadingCache& c) {
      c.Withdraw(*shard, key, waiters->ticket);
      c.Complete(*shard, key, waiters, nullptr,
                 std::make_exception_ptr(Closed(
                     "herd::LoadingCache: the executor dropped a load")));
    }
  };

  template <class Loader>
  static void CheckLoader(const Loader& loader);

  Shard& ShardFor(const Key& key) const {
    const size_t h = Hash{}(key);
    // Low bits, so that shards do not follow Share's (which uses high ones).
    return shards_[(h ^ (h >> 29)) & shard_mask_];
  }

  // Looks `key` up at `now`, counting the hit or miss. A caller that
  // `has_loader` gets, on a miss, the key's ticket, and on a hit due for
  // refresh, the refresh's ticket. With `async` on a miss, joins or
  // registers the key's Waiters.
  void FindLocked(Shard& shard, const Key& key, Clock::time_point now,
                  bool has_loader, bool async, Lookup* r)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  bool EarlyRefreshLocked(Shard& shard, const Entry& e, Clock::time_point now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  // The key's outstanding ticket, issuing one if it has none.
  uint64_t TicketLocked(Shard& shard, const Key& key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  // Withdraws `ticket` if it is still the key's (for work that never ran).
  void Withdraw(Shard& shard, const Key& key, uint64_t ticket)
      ABSL_LOCKS_EXCLUDED(shard.mu);

  // Stores a value or an error for `key`, making it the hottest entry, and
  // trims the shard.
  void WriteLocked(Shard& shard, const Key& key, std::optional<Value> value,
                   std::exception_ptr error, Clock::time_point written,
                   Clock::duration load_time)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  // Drops expired entries at the cold end and evicts down to capacity,
  // never evicting an entry being refreshed; `fresh` goes last.
  void TrimLocked(Shard& shard, Entry* fresh, Clock::time_point now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  void LinkTailLocked(Shard& shard, Entry* e)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  void UnlinkLocked(Shard& shard, Entry* e)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  void RemoveLocked(Shard& shard, Entry* e)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  // A loader for share_.Do() that runs `loader` as a load of `kind` and
  // writes its result back. Takes a stop_token iff `loader` does.
  template <class L>
  auto Wrap(Shard& shard, const Key& key, L& loader, LoadKind kind,
            uint64_t token);

  template <class L>
  Value RunLoad(Shard& shard, const Key& key, L& loader, std::stop_token stop,
                LoadKind kind, uint64_t token) ABSL_LOCKS_EXCLUDED(shard.mu);

  // Records the end of a load and stores its outcome iff its ticket is
  // still the key's.
  void FinishLoad(Shard& shard, const Key& key, uint64_t ticket, LoadKind kind,
                  const Value* value, std::exception_ptr error,
                  Clock::time_point now, Clock::duration load_time)
      ABSL_LOCKS_EXCLUDED(shard.mu);

  template <class L>
  void ScheduleRefresh(Shard& shard, const Key& key, L&& loader, uint64_t token,
                       bool early) noexcept;
  template <class L>
  void RunRefresh(Shard& shard, const Key& key, L& loader, uint64_t token,
                  bool early);
  // Lets later reads start a refresh again, if the entry is still the one
  // that asked for refresh `token`.
  void EndRefresh(Shard& shard, const Key& key, uint64_t token)
      ABSL_LOCKS_EXCLUDED(shard.mu);
  void AbandonRefresh(Shard& shard, const Key& key, uint64_t token)
      ABSL_LOCKS_EXCLUDED(shard.mu);

  template <class L>
  void StartAsyncLoad(Shard& shard, const Key& key, L&& loader,
                      std::shared_ptr<Waiters> waiters) noexcept;
  template <class L>
  void RunAsyncLoad(Shard& shard, const Key& key, L& loader,
                    const std::shared_ptr<Waiters>& waiters);
  // Hands an async load's outcome to its waiters, outside the lock.
  void Complete(Shard& shard, const Key& key,
                const std::shared_ptr<Waiters>& waiters, const Value* value,
                std::exception_ptr error) ABSL_LOCKS_EXCLUDED(shard.mu);

  template <class Cb>
  static void Deliver(Cb& callback, const Value* value,
                      std::exception_ptr error) noexcept {
    std::move(callback)(value, std::move(error));
  }

  // Hands `body` to the executor as a Job. If the Job cannot be made or is
  // refused, the body is abandoned.
  template <class Body>
  void Submit(Body body) noexcept;
  void Execute(CacheOptions::Task task);
  void BeginTask() ABSL_LOCKS_EXCLUDED(tasks_mu_);
  void EndTask() ABSL_LOCKS_EXCLUDED(tasks_mu_);

  const CacheOptions options_;
  const Clock& clock_;
  const size_t shard_mask_;
  const std::unique_ptr<Shard[]> shards_;
  Share<FlightKey, Value, FlightHash, FlightEq> share_;

  internal::Mutex tasks_mu_;
  std::condition_variable tasks_done_;
  size_t tasks_ ABSL_GUARDED_BY(tasks_mu_) = 0;  // outstanding Jobs

  // The default executor, started on first use. Declared last: destroyed
  // (and joined) first, once the destructor has seen every Job end.
  std::once_flag pool_once_;
  std::unique_ptr<ThreadPool> pool_;
};

// ---------------------------------------------------------------------------
// Implementation details follow.

namespace internal {

inline size_t CacheShardCount(const CacheOptions& o) {
  size_t n = o.shards;
  if (n == 0) {
    n = o.max_entries == 0 ? 16 : o.max_entries / 64;
    if (n > 16) n = 16;
  }
  if (n == 0) n = 1;
  if (n > (size_t{1} << 16)) n = size_t{1} << 16;
  n = std::bit_ceil(n);
  if (o.max_entries > 0 && n > o.max_entries) {
    n = std::bit_floor(o.max_entries);
  }
  return n;
}

inline const CacheOptions& ValidCacheOptions(const CacheOptions& o) {
  using std::chrono::nanoseconds;
  if (o.ttl <= nanoseconds::zero()) {
    throw std::invalid_argument("herd::CacheOptions: ttl must be > 0");
  }
  if (o.refresh_after < nanoseconds::zero() || o.refresh_after >= o.ttl) {
    throw std::invalid_argument(
        "herd::CacheOptions: refresh_after must be in [0, ttl)");
  }
  if (!(o.early_refresh_beta >= 0.0 && std::isfinite(o.early_refresh_beta))) {
    throw std::invalid_argument(
        "herd::CacheOptions: early_refresh_beta must be finite and >= 0");
  }
  if (o.error_ttl < nanoseconds::zero()) {
    throw std::invalid_argument("herd::CacheOptions: error_ttl must be >= 0");
  }
  return o;
}

// t + d, or the latest time_point if that overflows (a ttl meant as
// "never expire"). REQUIRES: d >= 0.
inline Clock::time_point SaturatingAdd(Clock::time_point t, Clock::duration d) {
  if (t.time_since_epoch() > Clock::duration::max() - d) {
    return Clock::time_point::max();
  }
  return t + d;
}

// splitmix64 (Steele, Lea, Flood 2014): tiny state, good enough for a coin.
inline uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Uniform in (0, 1]: never 0, so its log is finite.
inline double UniformOpenClosed(uint64_t& state) {
  return static_cast<double>((SplitMix64(state) >> 11) + 1) * 0x1.0p-53;
}

}  // namespace internal

template <class K, class V, class H, class E>
LoadingCache<K, V, H, E>::LoadingCache(CacheOptions options)
    : options_(internal::ValidCacheOptions(options)),
      clock_(options.clock != nullptr ? *options.clock : Clock::Steady()),
      shard_mask_(internal::CacheShardCount(options) - 1),
      shards_(new Shard[shard_mask_ + 1]),
      share_(ShareOptions{.clock = options.clock}) {
  const size_t n = shard_mask_ + 1;
  uint64_t seed = options.seed;
  if (seed == 0) {
    std::random_device rd;
    seed = (uint64_t{rd()} << 32) ^ rd();
  }
  for (size_t i = 0; i < n; ++i) {
    Shard& shard = shards_[i];
    internal::MutexLock lock(&shard.mu);
    shard.rng = seed + i * 0x632be59bd9b4e019ULL;
    if (options.max_entries > 0) {
      shard.capacity = options.max_entries / n + (i < options.max_entries % n);
    }
  }
}

template <class K, class V, class H, class E>
LoadingCache<K, V, H, E>::~LoadingCache() {
  internal::MutexLock lock(&tasks_mu_);
  while (tasks_ != 0) internal::Wait(tasks_done_, tasks_mu_);
}

template <class K, class V, class H, class E>
void LoadingCache<K, V, H, E>::BeginTask() {
  internal::MutexLock lock(&tasks_mu_);
  ++tasks_;
}

template <class K, class V, class H, class E>
void LoadingCache<K, V, H, E>::EndTask() {
  internal::MutexLock lock(&tasks_mu_);
  // Notified under the lock: the destructor cannot return, and destroy the
  // condition variable, until this thread lets go of the mutex.
  if (--tasks_ == 0) tasks_done_.notify_all();
}

template <class K, class V, class H, class E>
void LoadingCache<K, V, H, E>::Execute(CacheOptions::Task task) {
  if (options_.executor) {
    options_.executor(std::move(task));
    return;
  }
  std::call_once(pool_once_,
                 [this] { pool_ = std::make_unique<ThreadPool>(2); });
  pool_->Schedule(std::move(task));
}

template <class K, class V, class H, class E>
template <class Body>
void LoadingCache<K, V, H, E>::Submit(Body body) noexcept {
  BeginTask();
  std::unique_ptr<Job<Body>> job;
  try {
    job = std::make_unique<Job<Body>>(this, std::move(body));
  } catch (...) {
    body.Abandon(*this);
    EndTask();
    return;
  }
  try {
    // From here the Job ends itself: run, or destroyed by a refusing or
    // dropping executor, it abandons its body and ends the task once.
    Execute(CacheOptions::Task([job = std::move(job)]() mutable {
      job->Run();
      job.reset();
    }));
  } catch (...) {
    // The executor refused the task; destroying it abandoned the body.
  }
}

template <class K, class V, class H, class E>
template <class Loader>
void LoadingCache<K, V, H, E>::CheckLoader(const Loader& loader) {
  static_assert(internal::IsLoader<Loader&>,
                "herd::LoadingCache: the loader must be invocable as Value() "
                "or Value(std::stop_token)");
  static_assert(std::is_convertible_v<internal::LoaderResult<Loader&>, V>,
                "herd::LoadingCache: the loader must return the cache's Value");
  using L = std::remove_cvref_t<Loader>;
  if constexpr (internal::IsStdFunction<L>::value || std::is_pointer_v<L>) {
    if (!loader) {
      throw std::invalid_argument("herd::LoadingCache: empty loader");
    }
  }
}

// --- Lookup -----------------------------------------------------------------

template <class K, class V, class H, class E>
void LoadingCache<K, V, H, E>::FindLocked(Shard& shard, const K& key,
                                          Clock::time_point now,
                                          bool has_loader, bool async,
                                          Lookup* r) {
  auto it = shard.entries.find(key);
  if (it != shard.entries.end()) {
    Entry& e = it->second;
    if (now < e.expires) {
      ++shard.hits;
      if (e.error) {
        ++shard.negative_hits;
        r->kind = Lookup::kNegative;
        r->error = e.error;
        return;
      }
      if (shard.capacity > 0 && shard.tail != &e) {
        UnlinkLocked(shard, &e);
        LinkTailLocked(shard, &e);
      }
      const bool stale = options_.refresh_after.count() > 0 &&
                         now - e.written >= options_.refresh_after;
      if (stale) ++shard.stale_reads;
      if (has_loader && e.refresh_token == 0) {
        bool early = false;
        if (stale || (early = EarlyRefreshLocked(shard, e, now))) {
          e.refresh_token = TicketLocked(shard, key);
          r->ticket = e.refresh_token;
          r->early = early;
        }
      }
      r->kind = Lookup::kHit;
      r->value.emplace(*e.value);
      return;
    }
    RemoveLocked(shard, &e);  // expired
  }
  ++shard.misses;
  if (!has_loader) return;
  r->ticket = TicketLocked(shard, key);
  if (async) {
    std::shared_ptr<Waiters>& slot = shard.waiting[key];
    if (slot == nullptr) {
      slot = std::make_shared<Waiters>();
      slot->ticket = r->ticket;
      r->start_async = true;
    }
    r->waiters = slot;
  }
}

template <class K, class V, class H, class E>
uint64_t LoadingCache<K, V, H, E>::TicketLocked(Shard& shard, const K& key) {
  auto [it, inserted] = shard.loading.try_emplace(key, 0);
  if (inserted) it->second = ++shard.next_ticket;
  return it->second;
}

template <class K, class V, class H, class E>
void LoadingCache<K, V, H, E>::Withdraw(Shard& shard, const K& key,
                                        uint64_t ticket) {
  internal::MutexLock lock(&shard.mu);
  auto it = shard.loading.find(key);
  if (it != shard.loading.end() && it->second == ticket) {
    shard.loading.erase(it);
  }
}

template <class K, class V, class H, class E>
bool LoadingCache<K, V, H, E>::EarlyRefreshLocked(Shard& shard, const Entry& e,
                                                  Clock::time_point now) {
  const double beta = options_.early_refresh_beta;
  if (beta <= 0.0 || e.load_time.count() <= 0) return false;
  const double u = internal::UniformOpenClosed(shard.rng);
  const double gap =
      -static_cast<double>(e.load_time.count()) * beta * std::log(u);
  return gap >= static_cast<double>((e.expires - now).count());
}

// --- Order list and writes -----------------------------------------------

template <class K, class V, class H, class E>
void LoadingCache<K, V, H, E>::LinkTailLocked(Shard& shard, Entry* e) {
  e->next = nullptr;
  e->prev = shard.tail;
  if (shard.tail != nullptr) {
    shard.tail->next = e;
  } else {
    shard.head = e;
  }
  shard.tail = e;
}

template <class K, class V, class H, class E>
void LoadingCache<K, V, H, E>::UnlinkLocked(Shard& shard, Entry* e) {
  (e->prev != nullptr ? e->prev->next : shard.head) = e->next;
  (e->next != nullptr ? e->next->prev : shard.tail) = e->prev;
  e->prev = e->next = nullptr;
}

template <class K, class V, class H, class E>
void LoadingCache<K, V, H, E>::RemoveLocked(Shard& shard, Entry* e) {
  UnlinkLocked(shard, e);
  auto it = shard.entries.find(*e->key);
  shard.entries.erase(it);
}

template <class K, class V, class H, class E>
void LoadingCache<K, V, H, E>::WriteLocked(Shard& shard, const K& key,
                                           std::optional<V> value,
                                           std::exception_ptr error,
                                           Clock::time_point written,
                                           Clock::duration load_time) {
  auto [it, inserted] = shard.entries.try_emplace(key);
  Entry& e = it->second;
  if (inserted) {
    e.key = &it->first;
  } else {
    UnlinkLocked(shard, &e);
  }
  LinkTailLocked(shard, &e);
  e.value.reset();  // emplace, not assign: Value need not be assignable
  if (value.has_value()) e.value.emplace(std::move(*value));
  e.error = std::move(error);
  e.written = written;
  e.expires = internal::SaturatingAdd(
      written, e.error ? options_.error_ttl : options_.ttl);
  e.load_time = load_time;
  e.refresh_token = 0;
  if (inserted) TrimLocked(shard, &e, written);
}

template <class K, class V, class H, class E>
void LoadingCache<K, V, H, E>::TrimLocked(Shard& shard, Entry* fresh,
                                          Clock::time_point now) {
  // A few expired entries per insertion keep an unbounded cache from
  // holding dead keys forever, at O(1) amortised cost.
  for (int i = 0; i < 4; ++i) {
    Entry* cold = shard.head;
    if (cold == nullptr || cold == fresh || cold->refresh_token != 0 ||
        now < cold->expires) {
      break;
    }
    RemoveLocked(shard, cold);
  }
  if (shard.capacity == 0) return;
  while (shard.entries.size() > shard.capacity) {
    Entry* victim = shard.head;
    while (victim != nullptr &&
           (victim == fresh || victim->refresh_token != 0)) {
      victim = victim->next;
    }
    if (victim == nullptr) victim = fresh;  // all others are being refreshed
    ++shard.evictions;
    RemoveLocked(shard, victim);
    if (victim == fresh) return;
  }
}

// --- Loads ------------------------------------------------------------------

template <class K, class V, class H, class E>
template <class L>
auto LoadingCache<K, V, H, E>::Wrap(Shard& shard, const K& key, L& loader,
                                    LoadKind kind, uint64_t token) {
  if constexpr (std::is_invocable_v<L&, std::stop_token>) {
    return [this, &shard, &key, &loader, kind, token](std::stop_token stop) {
      return RunLoad(shard, key, loader, std::move(stop), kind, token);
    };
  } else {
    return [this, &shard, &key, &loader, kind, token] {
      return RunLoad(shard, key, loader, std::stop_token(), kind, token);
    };
  }
}

template <class K, class V, class H, class E>
template <class L>
V LoadingCache<K, V, H, E>::RunLoad(Shard& shard, const K& key, L& loader,
                                    std::stop_token stop, LoadKind kind,
                                    uint64_t token) {
  std::optional<V> cached;
  std::exception_ptr cached_error;
  {
    const Clock::time_point now = clock_.Now();
    internal::MutexLock lock(&shard.mu);
    // A load that finished between this caller's miss and its flight, or a
    // Put, may already have stored a fresh entry: answer from it instead of
    // loading again. A refresh defers only to an entry that is not the one
    // it was asked to refresh.
    auto it = shard.entries.find(key);
    if (it != shard.entries.end() && now < it->second.expires &&
        (kind == LoadKind::kMiss || it->second.refresh_token != token)) {
      if (it->second.error) {
        cached_error = it->second.error;
      } else {
        cached.emplace(*it->second.value);
      }
    } else {
      // A miss whose ticket was used up by a load that then failed (or was
      // stored and invalidated since) loads again after any withdrawal, so
      // its result may be stored unless a newer ticket was issued. A
      // refresh is stored only under the ticket it was started with.
      if (kind == LoadKind::kMiss) shard.loading.try_emplace(key, token);
      if (kind == LoadKind::kMiss) {
        ++shard.loads;
      } else {
        ++shard.refreshes;
        if (kind == LoadKind::kEarlyRefresh) ++shard.early_refreshes;
      }
    }
  }
  if (cached_error) std::rethrow_exception(cached_error);
  if (cached.has_value()) return std::move(*cached);

  const Clock::time_point start = clock_.Now();
  std::optional<V> value;
  std::exception_ptr error;
  try {
    value.emplace(internal::InvokeLoader(loader, std::move(stop)));
  } catch (...) {
    error = std::current_exception();
  }
  const Clock::time_point end = clock_.Now();
  FinishLoad(shard, key, token, kind, value ? &*value : nullptr, error, end,
             end - start);
  if (error) std::rethrow_exception(error);
  return std::move(*value);
}

template <class K, class V, class H, class E>
void LoadingCache<K, V, H, E>::FinishLoad(Shard& shard, const K& key,
                                          uint64_t ticket, LoadKind kind,
                                          const V* value,
                                          std::exception_ptr error,
                                          Clock::time_point now,
                                          Clock::duration load_time) {
  internal::MutexLock lock(&shard.mu);
  if (error) {
    ++(kind == LoadKind::kMiss ? shard.load_failures : shard.refresh_failures);
  }
  auto it = shard.loading.find(key);
  if (it == shard.loading.end() || it->second != ticket) return;  // withdrawn
  shard.loading.erase(it);
  if (!error) {
    WriteLocked(shard, key, *value, nullptr, now, load_time);
    return;
  }
  if (kind != LoadKind::kMiss) {
    // A failed refresh keeps the value it was refreshing until it expires.
    auto e = shard.entries.find(key);
    if (e != shard.entries.end() && !e->second.error) return;
  }
  if (options_.error_ttl.count() > 0) {
    WriteLocked(shard, key, std::nullopt, error, now, load_time);
  }
}

// --- Refresh ----------------------------------------------------------------

template <class K, class V, class H, class E>
template <class L>
void LoadingCache<K, V, H, E>::ScheduleRefresh(Shard& shard, const K& key,
                                               L&& loader, uint64_t token,
                                               bool early) noexcept {
  using Stored = std::decay_t<L>;
  static_assert(std::is_constructible_v<Stored, L&&>,
                "herd::LoadingCache: a refreshing cache copies or moves the "
                "loader into a background task");
  std::optional<RefreshBody<Stored>> body;
  try {
    body.emplace(RefreshBody<Stored>{
        &shard, key, Stored(std::forward<L>(loader)), token, early});
  } catch (...) {
    AbandonRefresh(shard, key, token);
    return;
  }
  Submit(std::move(*body));
}

template <class K, class V, class H, class E>
template <class L>
void LoadingCache<K, V, H, E>::RunRefresh(Shard& shard, const K& key, L& loader,
                                          uint64_t token, bool early) {
  try {
    share_.Do(
        FlightKey{key, token},
        Wrap(shard, key, loader,
             early ? LoadKind::kEarlyRefresh : LoadKind::kRefresh, token));
  } catch (...) {
    // Counted by FinishLoad; readers keep the old value.
  }
  EndRefresh(shard, key, token);
}

template <class K, class V, class H, class E>
void LoadingCache<K, V, H, E>::EndRefresh(Shard& shard, const K& key,
                                          uint64_t token) {
  internal::MutexLock lock(&shard.mu);
  auto it = shard.entries.find(key);
  if (it != shard.entries.end() && it->second.refresh_token == token) {
    it->second.refresh_token = 0;
  }
}

template <class K, class V, class H, class E>
void LoadingCache<K, V, H, E>::AbandonRefresh(Shard& shard, const K& key,
                                              uint64_t token) {
  {
    internal::MutexLock lock(&shard.mu);
    ++shard.refresh_failures;
  }
  Withdraw(shard, key, token);
  EndRefresh(shard, key, token);
}

// --- Async loads ------------------------------------------------------------

template <class K, class V, class H, class E>
template <class L>
void LoadingCache<K, V, H, E>::StartAsyncLoad(
    Shard& shard, const K& key, L&& loader,
    std::shared_ptr<Waiters> waiters) noexcept {
  using Stored = std::decay_t<L>;
  static_assert(std::is_constructible_v<Stored, L&&>,
                "herd::LoadingCache: GetAsync/GetThen copy or move the loader "
                "into a task");
  std::optional<AsyncLoadBody<Stored>> body;
  try {
    body.emplace(AsyncLoadBody<Stored>{
        &shard, key, Stored(std::forward<L>(loader)), waiters});
  } catch (...) {
    Withdraw(shard, key, waiters->ticket);
    Complete(shard, key, waiters, nullptr, std::current_exception());
    return;
  }
  Submit(std::move(*body));
}

template <class K, class V, class H, class E>
template <class L>
void LoadingCache<K, V, H, E>::RunAsyncLoad(
    Shard& shard, const K& key, L& loader,
    const std::shared_ptr<Waiters>& waiters) {
  // share_.Do, not DoAsync: this thread either runs the loader or joins a
  // load some other thread is already running, so an executor thread never
  // waits on a task still queued behind it.
  std::optional<V> value;
  std::exception_ptr error;
  try {
    value.emplace(
        share_.Do(FlightKey{key, waiters->ticket},
                  Wrap(shard, key, loader, LoadKind::kMiss, waiters->ticket)));
  } catch (...) {
    error = std::current_exception();
  }
  Complete(shard, key, waiters, value ? &*value : nullptr, error);
}

template <class K, class V, class H, class E>
void LoadingCache<K, V, H, E>::Complete(Shard& shard, const K& key,
                                        const std::shared_ptr<Waiters>& waiters,
                                        const V* value,
                                        std::exception_ptr error) {
  std::vector<Callback> callbacks;
  std::optional<std::promise<V>> promise;
  {
    internal::MutexLock lock(&shard.mu);
    auto it = shard.waiting.find(key);
    if (it != shard.waiting.end() && it->second == waiters) {
      shard.waiting.erase(it);
    }
    // Out of the map (here, or by Invalidate/Put): nobody adds to it now.
    callbacks = std::move(waiters->callbacks);
    waiters->callbacks.clear();
    promise = std::move(waiters->promise);
    waiters->promise.reset();
  }
  if (promise.has_value()) {
    if (error) {
      promise->set_exception(error);
    } else {
      promise->set_value(*value);
    }
  }
  for (Callback& cb : callbacks) Deliver(cb, value, error);
}

// --- Public API -------------------------------------------------------------

template <class K, class V, class H, class E>
template <class Loader>
V LoadingCache<K, V, H, E>::Get(const K& key, Loader&& loader) {
  CheckLoader(loader);
  Shard& shard = ShardFor(key);
  const Clock::time_point now = clock_.Now();
  Lookup r;
  {
    internal::MutexLock lock(&shard.mu);
    FindLocked(shard, key, now, /*has_loader=*/true, /*async=*/false, &r);
  }
  switch (r.kind) {
    case Lookup::kHit:
      if (r.ticket != 0) {
        ScheduleRefresh(shard, key, std::forward<Loader>(loader), r.ticket,
                        r.early);
      }
      return std::move(*r.value);
    case Lookup::kNegative:
      std::rethrow_exception(r.error);
    case Lookup::kMiss:
      break;
  }
  return share_.Do(FlightKey{key, r.ticket},
                   Wrap(shard, key, loader, LoadKind::kMiss, r.ticket));
}

template <class K, class V, class H, class E>
template <class Loader>
std::shared_future<V> LoadingCache<K, V, H, E>::GetAsync(const K& key,
                                                         Loader&& loader) {
  CheckLoader(loader);
  Shard& shard = ShardFor(key);
  const Clock::time_point now = clock_.Now();
  Lookup r;
  std::shared_future<V> future;
  {
    internal::MutexLock lock(&shard.mu);
    FindLocked(shard, key, now, /*has_loader=*/true, /*async=*/true, &r);
    if (r.kind == Lookup::kMiss) {
      Waiters& w = *r.waiters;
      if (!w.promise.has_value()) {
        w.promise.emplace();
        w.future = w.promise->get_future().share();
      }
      future = w.future;
    }
  }
  if (r.kind == Lookup::kMiss) {
    if (r.start_async) {
      StartAsyncLoad(shard, key, std::forward<Loader>(loader),
                     std::move(r.waiters));
    }
    return future;
  }
  std::promise<V> ready;
  if (r.kind == Lookup::kNegative) {
    ready.set_exception(r.error);
  } else {
    ready.set_value(std::move(*r.value));
    if (r.ticket != 0) {
      ScheduleRefresh(shard, key, std::forward<Loader>(loader), r.ticket,
                      r.early);
    }
  }
  return ready.get_future().share();
}

template <class K, class V, class H, class E>
template <class Loader, class Cb>
void LoadingCache<K, V, H, E>::GetThen(const K& key, Loader&& loader,
                                       Cb&& callback) {
  static_assert(
      std::is_invocable_v<std::decay_t<Cb>&&, const V*, std::exception_ptr>,
      "herd::LoadingCache::GetThen: the callback must be invocable as "
      "void(const Value*, std::exception_ptr)");
  CheckLoader(loader);
  Shard& shard = ShardFor(key);
  const Clock::time_point now = clock_.Now();
  Lookup r;
  {
    internal::MutexLock lock(&shard.mu);
    FindLocked(shard, key, now, /*has_loader=*/true, /*async=*/true, &r);
    if (r.kind == Lookup::kMiss) {
      // If this throws (bad_alloc), the Waiters stay registered and empty,
      // and the load started below still completes them.
      r.waiters->callbacks.emplace_back(std::forward<Cb>(callback));
    }
  }
  switch (r.kind) {
    case Lookup::kHit:
      if (r.ticket != 0) {
        ScheduleRefresh(shard, key, std::forward<Loader>(loader), r.ticket,
                        r.early);
      }
      Deliver(callback, &*r.value, nullptr);
      return;
    case Lookup::kNegative:
      Deliver(callback, nullptr, r.error);
      return;
    case Lookup::kMiss:
      if (r.start_async) {
        StartAsyncLoad(shard, key, std::forward<Loader>(loader),
                       std::move(r.waiters));
      }
      return;
  }
}

template <class K, class V, class H, class E>
std::optional<V> LoadingCache<K, V, H, E>::GetIfPresent(const K& key) {
  Shard& shard = ShardFor(key);
  const Clock::time_point now = clock_.Now();
  internal::MutexLock lock(&shard.mu);
  Lookup r;
  FindLocked(shard, key, now, /*has_loader=*/false, /*async=*/false, &r);
  return std::move(r.value);
}

template <class K, class V, class H, class E>
void LoadingCache<K, V, H, E>::Put(const K& key, V value) {
  Shard& shard = ShardFor(key);
  const Clock::time_point now = clock_.Now();
  internal::MutexLock lock(&shard.mu);
  shard.loading.erase(key);
  shard.waiting.erase(key);
  Clock::duration load_time{};
  auto it = shard.entries.find(key);
  if (it != shard.entries.end()) load_time = it->second.load_time;
  WriteLocked(shard, key, std::move(value), nullptr, now, load_time);
}

template <class K, class V, class H, class E>
bool LoadingCache<K, V, H, E>::Invalidate(const K& key) {
  Shard& shard = ShardFor(key);
  internal::MutexLock lock(&shard.mu);
  bool had = false;
  auto it = shard.entries.find(key);
  if (it != shard.entries.end()) {
    RemoveLocked(shard, &it->second);
    had = true;
  }
  had |= shard.loading.erase(key) > 0;
  had |= shard.waiting.erase(key) > 0;
  return had;
}

template <class K, class V, class H, class E>
void LoadingCache<K, V, H, E>::InvalidateAll() {
  for (size_t i = 0; i <= shard_mask_; ++i) {
    Shard& shard = shards_[i];
    internal::MutexLock lock(&shard.mu);
    shard.loading.clear();
    shard.waiting.clear();
    shard.entries.clear();
    shard.head = shard.tail = nullptr;
  }
}

template <class K, class V, class H, class E>
size_t LoadingCache<K, V, H, E>::Size() const {
  size_t n = 0;
  for (size_t i = 0; i <= shard_mask_; ++i) {
    internal::MutexLock lock(&shards_[i].mu);
    n += shards_[i].entries.size();
  }
  return n;
}

template <class K, class V, class H, class E>
CacheStats LoadingCache<K, V, H, E>::Stats() const {
  CacheStats s;
  for (size_t i = 0; i <= shard_mask_; ++i) {
    Shard& shard = shards_[i];
    internal::MutexLock lock(&shard.mu);
    s.hits += shard.hits;
    s.negative_hits += shard.negative_hits;
    s.stale_reads += shard.stale_reads;
    s.misses += shard.misses;
    s.loads += shard.loads;
    s.load_failures += shard.load_failures;
    s.refreshes += shard.refreshes;
    s.early_refreshes += shard.early_refreshes;
    s.refresh_failures += shard.refresh_failures;
    s.evictions += shard.evictions;
  }
  return s;
}

}  // namespace herd

#endif  // HERD_LOADING_CACHE_H_
