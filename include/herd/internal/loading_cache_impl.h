// Copyright 2026 The herd Authors.
//
// herd/internal/loading_cache_impl.h: the machinery behind
// herd/loading_cache.h. Included at its end; not for direct use.
//
// One place per key. A shard's EpochIndex maps each key to its node (an
// Entry): a value with its key inline (ValueEntry), a cached error
// (ErrorEntry), or only the key while its first load runs. What readers
// see of a node never changes once it is published; each write builds a
// new node (unlocked) and, under the shard's mutex, puts it in the old
// one's index slot, expiry bucket, pending Load and policy place, then
// retires the old one to the epochs. Readers of a fresh value touch the
// index and the node, inside an epoch critical section, and nothing else.
// Everything else happens under the shard's mutex, and never runs user
// code there: keys are hashed and compared before the lock, nodes are
// built before it, and what a write displaces (nodes, loads, callbacks) is
// destroyed, reported or called after it.
//
// A Load is the slot's own flight (herd::Share's, specialised): one
// execution shared by every caller; extra executions by sampled blocking
// callers, the first success winning; a maximum age after which a caller
// starts afresh; a std::stop_token, stopped by hard_timeout and by the
// cache's destructor; soft and hard deadlines. Its outcome is published once
// through a std::promise: a value, an error, a stale value, or WaitTimeout.
// A load stores its result only while it is attached to its entry:
// Invalidate, Put, a newer load (max_flight_age) and hard_timeout detach
// it.
//
// Bounded caches keep one policy (W-TinyLFU) for the whole cache, under its
// own mutex (policy_mu_, always taken before any shard's). Writers mark the
// entries they change dirty on their shard; whoever next holds policy_mu_
// reconciles them with the policy, replays the read buffer and evicts.
// A node that replaces another takes over its policy place there too
// (Policy::Replace). Nodes of a bounded cache are freed only there: after
// the policy has let go of them, after a grace period, and after a drain
// of the read buffer (which holds node pointers).

#ifndef HERD_INTERNAL_LOADING_CACHE_IMPL_H_
#define HERD_INTERNAL_LOADING_CACHE_IMPL_H_

#include <algorithm>
#include <atomic>
#include <cassert>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "herd/clock.h"
#include "herd/errors.h"
#include "herd/executor.h"
#include "herd/internal/epoch.h"
#include "herd/internal/epoch_index.h"
#include "herd/internal/invoke.h"
#include "herd/internal/mutex.h"
#include "herd/internal/policy_hook.h"
#include "herd/internal/shards.h"
#include "herd/internal/striped.h"
#include "herd/internal/tasks.h"
#include "herd/internal/time.h"
#include "herd/internal/timer_wheel.h"
#include "herd/internal/tinylfu.h"
#include "herd/thread_pool.h"
#include "herd/timer.h"

namespace herd {

inline double CacheStats::hit_rate() const {
  const uint64_t n = hits + misses;
  return n == 0 ? 1.0 : static_cast<double>(hits) / static_cast<double>(n);
}
inline double CacheStats::miss_rate() const {
  const uint64_t n = hits + misses;
  return n == 0 ? 0.0 : static_cast<double>(misses) / static_cast<double>(n);
}
inline double CacheStats::average_load_penalty_ns() const {
  const uint64_t n = load_successes + load_failures;
  return n == 0 ? 0.0
                : static_cast<double>(total_load_time_ns) /
                      static_cast<double>(n);
}

namespace internal {

// The eviction policy of every LoadingCache: W-TinyLFU over the whole
// cache (herd/internal/tinylfu.h).
struct DefaultCachePolicy : TinyLfu {
  using TinyLfu::TinyLfu;
};

// Loads this thread is executing, innermost first (RecursiveCall).
struct LoadFrame {
  const void* load;
  const LoadFrame* prev;
};
inline thread_local const LoadFrame* load_frames = nullptr;

inline bool ExecutingHere(const void* load) {
  for (const LoadFrame* f = load_frames; f != nullptr; f = f->prev) {
    if (f->load == load) return true;
  }
  return false;
}

// A std::bad_alloc made before it is needed, for noexcept paths.
inline const std::exception_ptr& BadAllocError() {
  static const std::exception_ptr e = std::make_exception_ptr(std::bad_alloc());
  return e;
}

// MixHash (internal/frequency_sketch.h) spreads weak hashes (an identity
// std::hash) over shards, slots and tags.

// splitmix64 (Steele, Lea, Flood 2014).
constexpr uint64_t SplitMix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

// `t` (ns on the clock's time line) plus `d`, saturating: kNever when the
// sum is past the clock's range.
inline int64_t DeadlineNs(int64_t t, std::chrono::nanoseconds d) {
  const Clock::time_point tp{Clock::duration(t)};
  const Clock::time_point r = SaturatingAdd(tp, d);
  return r == Clock::time_point::max() ? kNever
                                       : r.time_since_epoch().count();
}

inline Clock::time_point TimePointOf(int64_t ns) {
  return ns == kNever ? Clock::time_point::max()
                      : Clock::time_point(Clock::duration(ns));
}

// Indices of the striped counters.
enum CacheCounter : size_t {
  kHits,
  kMisses,
  kNegativeHits,
  kLoadSuccesses,
  kLoadFailures,
  kLoadTimeNs,
  kRefreshes,
  kEarlyRefreshes,
  kRefreshFailures,
  kStaleRefreshAhead,
  kStaleLoadFailed,
  kStaleSoftTimeout,
  kStaleHardTimeout,
  kEvictions,
  kEvictionWeight,
  kExpirations,
  kRandom,  // XFetch draws: a per-stripe sequence
  kCounterCount
};

// Calls a per-call loader with what it takes: (key, token), (key), (token)
// or ().
template <class K, class L>
decltype(auto) InvokeCallLoader(L& loader, const K& key, std::stop_token st) {
  if constexpr (std::is_invocable_v<L&, const K&, std::stop_token>) {
    return loader(key, std::move(st));
  } else if constexpr (std::is_invocable_v<L&, const K&>) {
    return loader(key);
  } else if constexpr (std::is_invocable_v<L&, std::stop_token>) {
    return loader(std::move(st));
  } else {
    return loader();
  }
}

template <class K, class L>
inline constexpr bool IsCallLoader =
    std::is_invocable_v<L&, const K&, std::stop_token> ||
    std::is_invocable_v<L&, const K&> ||
    std::is_invocable_v<L&, std::stop_token> || std::is_invocable_v<L&>;

// A lock the caller already holds, released at the end of the scope (for
// the thread-safety analysis: "acquired" here).
class ABSL_SCOPED_LOCKABLE AdoptedLock {
 public:
  explicit AdoptedLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {}
  AdoptedLock(const AdoptedLock&) = delete;
  AdoptedLock& operator=(const AdoptedLock&) = delete;
  ~AdoptedLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }

 private:
  Mutex* const mu_;
};

template <class Key, class Value, class Hash, class Eq, class Policy>
class CacheCore {
 public:
  using Options = CacheOptions<Key, Value>;
  using Map = absl::flat_hash_map<Key, Value, Hash, Eq>;
  using Callback =
      absl::AnyInvocable<void(const Value*, std::exception_ptr) &&>;
  using BoundLoader = absl::AnyInvocable<Value(const Key&, std::stop_token)>;
  using BatchLoader =
      absl::AnyInvocable<Map(std::span<const Key>, std::stop_token)>;

  CacheCore(Options options, BoundLoader loader, BatchLoader batch_loader);
  CacheCore(const CacheCore&) = delete;
  CacheCore& operator=(const CacheCore&) = delete;
  ~CacheCore();

  Value Get(const Key& key);
  template <class L>
  Value GetWith(const Key& key, L& loader);
  std::shared_future<Value> GetAsync(const Key& key);
  void GetThen(const Key& key, Callback callback);
  Map GetAll(std::span<const Key> keys);
  std::shared_future<Value> Refresh(const Key& key);
  std::optional<Value> GetIfPresent(const Key& key);
  void Put(const Key& key, Value value);
  bool Invalidate(const Key& key);
  void InvalidateAll();
  size_t Size();
  uint64_t Weight();
  void CleanUp();
  CacheStats Stats() const;

 private:
  struct Shard;
  struct Load;

  // --- Stored state -------------------------------------------------------

  // Entry::kind.
  static constexpr uint8_t kPendingKind = 0;  // the key only: a load runs
  static constexpr uint8_t kValueKind = 1;    // a ValueEntry
  static constexpr uint8_t kErrorKind = 2;    // an ErrorEntry
  // Entry::check_ns of a node that holds no value: no read is a hit.
  static constexpr int64_t kNoHit = std::numeric_limits<int64_t>::min();

  // A key's node, what its shard's index maps it to. Readers see only what
  // never changes once the node is published: kind, hash, key, check_ns,
  // the value or error, and the atomics. A write publishes a new node in
  // this one's place (ReplaceLocked); this one is then `superseded`,
  // retired, and freed once no reader can hold it. The WheelLink's link
  // doubles as the retire link once the node is out of the wheel, which
  // asks DeadlineOf() for its deadline rather than keep one. Before
  // the node, in the same allocation: its Aux slots and, in a bounded
  // cache, its PolicyPart (prefix_bytes in all).
  //
  // 40 bytes before the key: the wheel's two links, check_ns, the load
  // (or a link once it is out of the index), the low half of the hash
  // (EpochIndex; Load and PolicyPart keep the whole), and four bytes of
  // state. A weight is kept only where one can differ from 1 (WeightOf).
  struct Entry : WheelLink {
    Entry(uint64_t h, const Key& k, uint8_t prefix, uint8_t kd)
        : hash(static_cast<uint32_t>(h)),
          prefix_bytes(prefix),
          kind(kd),
          key(k) {}
    ~Entry() {}
    int64_t check_ns = kNoHit;  // a read before this is a plain hit
    // Guarded by the shard's mutex:
    union {
      Load* load = nullptr;  // the pending load, holding a reference
      // Once removed: the next removal to report, tagged in its low two
      // bits with this node's RemovalCause (LinkRemoved). Not a bit-field
      // beside `dirty`: Finish() reads it with no lock while Maintain()
      // may clear `dirty` under the shard's mutex.
      uintptr_t removed_next;
      Entry* next_gen;  // once superseded: the node that replaced it
    };
    const uint32_t hash;                 // the hash's low 32 bits
    std::atomic<uint8_t> refreshing{0};  // a reload of this value is pending
    const uint8_t prefix_bytes;
    const uint8_t kind;
    // Guarded by the shard's mutex (one byte of bit-fields, a memory
    // location of its own):
    uint8_t phase : 3 = 0;       // kEmpty...
    uint8_t removed : 1 = 0;     // out of the index (superseded included)
    uint8_t superseded : 1 = 0;  // replaced by next_gen
    // Bounded: the policy must look at this node. It is on the shard's
    // dirty list, or a node it superseded is (and leads to it).
    uint8_t dirty : 1 = 0;
    const Key key;
  };
  // A value, immutable once published. Its expiry and refresh times
  // follow from check_ns where the options fix them (ExpiresOf,
  // RefreshOf), else they are Aux slots.
  struct ValueEntry : Entry {
    template <class... A>
    ValueEntry(uint64_t h, const Key& k, uint8_t prefix, A&&... a)
        : Entry(h, k, prefix, kValueKind), value(std::forward<A>(a)...) {}
    Value value;
  };
  // A cached error, immutable once published.
  struct ErrorEntry : Entry {
    ErrorEntry(uint64_t h, const Key& k, uint8_t prefix, std::exception_ptr e,
               int64_t expires)
        : Entry(h, k, prefix, kErrorKind),
          expires_ns(expires),
          error(std::move(e)) {}
    const int64_t expires_ns;
    const std::exception_ptr error;
  };
  // Entry::phase: what the node holds, as the expiry bookkeeping sees it.
  static constexpr uint8_t kEmpty = 0;  // nothing (a pending node, a
                                        // replaced or removed one, an
                                        // expired error kept for its load)
  static constexpr uint8_t kLive = 1;   // a value, counted by Size()
  static constexpr uint8_t kStale = 2;  // an expired value kept for
                                        // stale_if_error
  static constexpr uint8_t kDead = 3;   // expired past that, kept until its
                                        // pending load replaces it
  static constexpr uint8_t kError = 4;  // a cached error

  // Before each node of a bounded cache. The node is in the policy iff
  // hook.queue != 0 (guarded by policy_mu_, as the whole hook).
  struct PolicyPart {
    PolicyHook hook;
    Entry* dirty_next = nullptr;  // guarded by the shard's mutex
    // A load or refresh is in progress: never evicted. Guarded by
    // policy_mu_; copied from the entry when it is reconciled, so that it
    // stays the same during one Evict() call, as the policy requires.
    bool pinned = false;
    uint32_t weight = 0;  // the node's (WeightOf); the shard's mutex
  };
  static_assert(std::is_trivially_destructible_v<PolicyPart>);
  static bool InPolicy(const PolicyPart* p) { return p->hook.queue != 0; }
  // Every kind of node is allocated at this alignment.
  static constexpr size_t kNodeAlign =
      std::max({alignof(Entry), alignof(ValueEntry), alignof(ErrorEntry),
                alignof(PolicyPart), alignof(std::atomic<int64_t>)});
  static constexpr bool kOverAligned =
      kNodeAlign > __STDCPP_DEFAULT_NEW_ALIGNMENT__;

  enum class LoadKind : uint8_t { kMiss, kRefresh, kEarlyRefresh, kBatch };
  enum class Outcome : uint8_t { kValue, kError, kStale, kTimeout };

  struct Load {
    Load(Shard* s, uint64_t h, const Key& k, LoadKind kd, int64_t start)
        : shard(s), hash(h), key(k), kind(kd), started_ns(start) {}
    std::atomic<int> refs{1};
    Shard* const shard;
    const uint64_t hash;
    const Key key;
    const LoadKind kind;
    const int64_t started_ns;
    int64_t soft_deadline_ns = kNever;  // set before publication
    int64_t hard_deadline_ns = kNever;
    std::stop_source stop;      // the loaders' token
    std::stop_source released;  // requested once the outcome is set
    std::promise<Value> promise;
    const std::shared_future<Value> future{promise.get_future().share()};
    // Guarded by the shard's mutex:
    Entry* entry = nullptr;  // attached to it iff non-null
    int running = 0;         // executions not yet settled
    bool done = false;       // outcome decided
    bool soft_fired = false;
    bool timer_armed = false;
    std::exception_ptr first_error;
    std::vector<Callback> callbacks;
    uint32_t async_waiters = 0;  // holders of `future` (GetAsync, Refresh)
    Timer::Id timers[2] = {0, 0};  // the soft and hard deadline callbacks
    Load* unref_next = nullptr;  // Aftermath's chain
    // Written before `released` is requested and the promise set:
    Outcome outcome = Outcome::kValue;
    StaleReason stale_reason = StaleReason::kLoadFailed;
  };

  struct alignas(64) Shard {
    Mutex mu;
    EpochIndex<Entry> index;
    std::unique_ptr<TimerWheel> wheel ABSL_GUARDED_BY(mu);
    RetireList entries ABSL_GUARDED_BY(mu){&FreeEntry};  // nodes
    size_t live ABSL_GUARDED_BY(mu) = 0;           // Size()
    uint64_t live_weight ABSL_GUARDED_BY(mu) = 0;  // Weight()
    Entry* dirty ABSL_GUARDED_BY(mu) = nullptr;    // bounded: to reconcile
    // Bounded: the shard has dirty or retired entries for Maintain().
    std::atomic<bool> maintain{false};
  };

  // What a locked section leaves for after the unlock: values to report,
  // load references to drop, memory to free, policy work. Its destructor
  // does it, with no lock held, inside the caller's epoch section (which
  // keeps what it reports readable).
  struct Aftermath {
    explicit Aftermath(CacheCore* c) : core(c) {}
    Aftermath(const Aftermath&) = delete;
    Aftermath& operator=(const Aftermath&) = delete;
    ~Aftermath() { core->Finish(*this); }

    CacheCore* const core;
    Entry* removed = nullptr;  // chained by LinkRemoved
    // One displaced value (Put, a stored load), in its old node.
    const ValueEntry* replaced = nullptr;
    RemovalCause replaced_cause = RemovalCause::kReplaced;
    Load* unref = nullptr;  // chained by unref_next
    RetireList::Chain free_tables, free_entries;
    bool maintain = false;
  };

  // What a miss decides, under the entry's lock.
  struct Decision {
    enum Kind {
      kHit,        // `box` is fresh
      kNegative,   // `error` is cached
      kStale,      // `box`: fail-safe backoff after a failure
      kStaleSoft,  // `box`: the load passed its soft deadline
      kRecursive,  // the load is this thread's own
      kJoin,       // wait for `load`
      kStart,      // `load` is new, with an execution to run
    } kind = kHit;
    const ValueEntry* box = nullptr;
    std::exception_ptr error;
    Load* load = nullptr;  // kJoin, kStart: a reference for the wait
    bool extra = false;    // kJoin: also a reference for an extra execution
    bool stale_possible = false;
    bool arm = false;  // the load needs its timer
  };

  // --- Helpers ------------------------------------------------------------

  // absl::Hash already mixes every bit; any other hash is mixed again, so
  // that a weak one (an identity std::hash) still spreads over shards,
  // slots and tags.
  static uint64_t HashOf(const Key& key) {
    if constexpr (std::is_same_v<Hash, absl::Hash<Key>>) {
      return Hash{}(key);
    } else {
      return MixHash(Hash{}(key));
    }
  }
  Shard& ShardFor(uint64_t h) const {
    return shards_[ShardIndex(h, shard_mask_)];
  }
  int64_t NowNs() const {
    return (coarse_ ? CoarseClock::Read() : clock_->Now())
        .time_since_epoch()
        .count();
  }
  static auto KeyEq(const Key& key) {
    return [&key](const Entry& e) { return Eq{}(e.key, key); };
  }
  void RequireLoader(const char* who) const {
    if (!loader_) {
      throw std::logic_error(std::string("herd::LoadingCache::") + who +
                             ": no loader was bound at construction");
    }
  }

  static const ValueEntry* AsValue(const Entry* e) {
    return e->kind == kValueKind ? static_cast<const ValueEntry*>(e) : nullptr;
  }
  static const ErrorEntry* AsError(const Entry* e) {
    return e->kind == kErrorKind ? static_cast<const ErrorEntry*>(e) : nullptr;
  }
  // True iff `e` holds a value (fresh or not) or a cached error not yet
  // expired by the wheel.
  static bool HoldsSomething(const Entry* e) {
    return e->kind == kValueKind || e->phase == kError;
  }

  // A node's Aux slot `slot`: slot i is the i-th int64 before the node.
  static std::atomic<int64_t>& Aux(const Entry* e, int slot) {
    return *reinterpret_cast<std::atomic<int64_t>*>(
        reinterpret_cast<char*>(const_cast<Entry*>(e)) -
        sizeof(std::atomic<int64_t>) * static_cast<size_t>(slot + 1));
  }
  static PolicyPart* PolicyOf(Entry* e) {
    return reinterpret_cast<PolicyPart*>(reinterpret_cast<char*>(e) -
                                         e->prefix_bytes);
  }
  Entry* EntryOfHook(PolicyHook* h) const {
    // PolicyPart is standard-layout with the hook first.
    return reinterpret_cast<Entry*>(reinterpret_cast<char*>(h) +
                                    prefix_bytes_);
  }
  // e's weight: the weigher's, else 1. A bounded node keeps it in its
  // PolicyPart; an unbounded one, in an Aux slot if a weigher is set.
  // Guarded by the shard's mutex once e is published.
  uint32_t WeightOf(Entry* e) const {
    if (bounded_) return PolicyOf(e)->weight;
    if (weight_slot_ < 0) return 1;
    return static_cast<uint32_t>(
        Aux(e, weight_slot_).load(std::memory_order_relaxed));
  }
  void SetWeight(Entry* e, uint32_t w) const {
    if (bounded_) {
      PolicyOf(e)->weight = w;
    } else if (weight_slot_ >= 0) {
      Aux(e, weight_slot_).store(w, std::memory_order_relaxed);
    }
  }

  // Chains removed node `e`, removed for `cause`, before `next`, and reads
  // that chain back.
  static_assert(alignof(Entry) >= 4, "two low bits of an Entry* are free");
  static_assert(static_cast<uintptr_t>(RemovalCause::kExplicit) <= 3 &&
                static_cast<uintptr_t>(RemovalCause::kReplaced) <= 3 &&
                static_cast<uintptr_t>(RemovalCause::kExpired) <= 3 &&
                static_cast<uintptr_t>(RemovalCause::kEvicted) <= 3);
  static void LinkRemoved(Entry* e, RemovalCause cause, Entry* next) {
    e->removed_next =
        reinterpret_cast<uintptr_t>(next) | static_cast<uintptr_t>(cause);
  }
  static Entry* NextRemoved(const Entry* e) {
    return reinterpret_cast<Entry*>(e->removed_next & ~uintptr_t{3});
  }
  static RemovalCause CauseOf(const Entry* e) {
    return static_cast<RemovalCause>(e->removed_next & 3);
  }

  // The node that replaced `e` last (e itself unless superseded).
  static Entry* Newest(Entry* e) {
    while (e->superseded) e = e->next_gen;
    return e;
  }

  // When value `b` expires by its write (ttl, expire_after): fresh before.
  // Without XFetch its check time is its expiry, or, with refresh_after
  // and no expire_after (a fixed ttl, if any), its refresh time, which is
  // ttl - refresh_after before its expiry; otherwise it is kept.
  int64_t ExpiresOf(const ValueEntry* b) const {
    if (expires_slot_ >= 0) {
      return Aux(b, expires_slot_).load(std::memory_order_relaxed);
    }
    if (options_.refresh_after.count() == 0) return b->check_ns;
    return options_.ttl.count() > 0
               ? DeadlineNs(b->check_ns,
                            options_.ttl - options_.refresh_after)
               : kNever;
  }
  // When a read of value `b` starts refreshing it ahead (kNever: never).
  int64_t RefreshOf(const ValueEntry* b) const {
    if (options_.refresh_after.count() == 0) return kNever;
    if (refresh_slot_ >= 0) {
      return Aux(b, refresh_slot_).load(std::memory_order_relaxed);
    }
    return b->check_ns;
  }
  // The value's freshness deadline, expire_after_access included.
  int64_t FreshUntil(const ValueEntry* b) const {
    if (access_slot_ < 0) return ExpiresOf(b);
    const int64_t a =
        DeadlineNs(Aux(b, access_slot_).load(std::memory_order_relaxed),
                   options_.expire_after_access);
    return std::min(ExpiresOf(b), a);
  }
  int64_t StaleUntil(int64_t fresh_until) const {
    return DeadlineNs(fresh_until, options_.stale_if_error);
  }
  bool AccessFresh(const Entry* e, int64_t now) const {
    return access_slot_ < 0 ||
           now < DeadlineNs(
                     Aux(e, access_slot_).load(std::memory_order_relaxed),
                     options_.expire_after_access);
  }
  void Touch(const Entry* e, int64_t now) const {
    if (access_slot_ < 0) return;
    std::atomic<int64_t>& a = Aux(e, access_slot_);
    if (a.load(std::memory_order_relaxed) < now) {
      a.store(now, std::memory_order_relaxed);
    }
  }
  bool InBackoff(const Entry* e, int64_t now) const {
    return retry_slot_ >= 0 &&
           now < Aux(e, retry_slot_).load(std::memory_order_relaxed);
  }
  bool TooOld(const Load* l, int64_t now) const {
    return options_.max_flight_age.count() > 0 &&
           now - l->started_ns >= options_.max_flight_age.count();
  }
  bool SampleExtra(size_t stripe) const {
    const double p = options_.extra_execution_rate;
    if (p <= 0.0) return false;
    if (p >= 1.0) return true;
    const uint64_t r =
        SplitMix64(seed_ ^ (uint64_t{stripe} << 48) ^
                   counters_.Add(stripe, kRandom));
    return static_cast<double>(r >> 11) * 0x1.0p-53 < p;
  }
  static size_t Stripe() { return Epoch::ThreadIndex(); }

  // A hit on `e`, counted and recorded for the policy.
  // A bounded cache records about one read in 2^kReadSampleShift for
  // W-TinyLFU: replaying a read (a sketch update and a list move, with the
  // read buffer about 110 instructions) costs most of a whole hit, and one
  // in 4 keeps a hit within 1.2x the hand-written cache's instructions (one
  // in 2 would not). A read is picked when its stripe's sequence
  // number, scaled by the golden ratio (a Weyl sequence), falls in the
  // first 2^-shift of the range: every key is sampled at the same rate
  // whatever the period of the access pattern (a plain seq % 4 would
  // starve keys that a periodic pattern always puts off the grid), so
  // relative frequencies hold. docs/loading_cache.md measures what it
  // costs the hit ratio. Other policies (LruPolicy, in tests) see every
  // read, so their order is exact.
  static constexpr int kReadSampleShift =
      std::is_base_of_v<TinyLfu, Policy> ? 2 : 0;
  ABSL_ATTRIBUTE_ALWAYS_INLINE void OnHit(Entry* e, size_t stripe) {
    const uint64_t seq = counters_.Add(stripe, kHits);
    if (!bounded_) return;
    if constexpr (kReadSampleShift > 0) {
      if ((seq * 0x9e3779b97f4a7c15ULL) >> (64 - kReadSampleShift) != 0) {
        return;
      }
    }
    if (read_buffer_->Record(stripe, seq >> kReadSampleShift,
                             reinterpret_cast<uintptr_t>(e))) {
      TryDrain(stripe);
    }
  }
  // A miss. One that loads counts for the policy when its entry is added;
  // one that loads nothing (GetIfPresent) is recorded for it here.
  void OnMiss(uint64_t hash, size_t stripe, bool loads = true) {
    const uint64_t seq = counters_.Add(stripe, kMisses);
    if (bounded_ && !loads) read_buffer_->Record(stripe, seq, hash | 1);
  }
  // A hit of fresh value `b` at or past its check time: counts it and
  // starts the refresh it may call for. The caller copies the value.
  // `h` is b's key's hash.
  void WindowHit(Shard& s, uint64_t h, const ValueEntry* b, int64_t now,
                 size_t stripe);
  // True iff a read at `now` of fresh value `b` should start a refresh;
  // `*early` is set when XFetch decided it.
  bool WantsRefresh(const ValueEntry* b, int64_t now, size_t stripe,
                    bool* early) const;
  // Values are copied before they go into a promise, and moved in: a copy
  // that throws inside set_value would leave its std::call_once flag
  // broken under ThreadSanitizer's interceptor (glibc's recovers).
  std::shared_future<Value> Ready(const Value& v) const {
    Value copy(v);
    std::promise<Value> p;
    p.set_value(std::move(copy));
    return p.get_future().share();
  }
  std::shared_future<Value> ReadyError(std::exception_ptr e) const {
    std::promise<Value> p;
    p.set_exception(std::move(e));
    return p.get_future().share();
  }

  // --- Nodes --------------------------------------------------------------

  struct EntryDeleter {
    void operator()(Entry* e) const noexcept { FreeEntry(e); }
  };
  template <class N>
  using NodePtr = std::unique_ptr<N, EntryDeleter>;
  using EntryPtr = NodePtr<Entry>;
  // A node of type N, (hash, key, prefix, args...), with its prefix (Aux
  // slots at their initial values, PolicyPart). Throws what the allocation
  // and N's constructor throw.
  template <class N, class... A>
  NodePtr<N> NewNode(uint64_t h, const Key& key, A&&... args) const;
  // A pending node: the key only.
  EntryPtr NewEntry(uint64_t h, const Key& key) const {
    return NewNode<Entry>(h, key, kPendingKind);
  }
  static void FreeEntry(Retired* r) noexcept;

  // A node for `value` written at `now` by a load that took `load_time_ns`
  // (0 for Put): its times, weight and Aux slots set. Throws what the
  // allocation, the Key and Value construction, expire_after or the
  // weigher throw.
  template <class V>
  NodePtr<ValueEntry> MakeValue(uint64_t h, const Key& key, V&& value,
                                int64_t now, int64_t load_time_ns) const;

  // Finds or inserts `key`'s entry and locks its shard; returns with the
  // lock held. An entry made and not inserted stays in `*spare`.
  Entry* LockEntry(Shard& s, const Key& key, uint64_t h, EntryPtr* spare)
      ABSL_NO_THREAD_SAFETY_ANALYSIS;
  // As LockEntry, never inserting: nullptr (and no lock) when absent.
  Entry* LockExisting(Shard& s, const Key& key, uint64_t h)
      ABSL_NO_THREAD_SAFETY_ANALYSIS;

  // Puts `n` (a new node of e's key) in e's place: the index slot, e's
  // pending load, the policy's attention (bounded); takes e out of the
  // wheel and retires it. n's phase, schedule and accounting are the
  // caller's.
  void ReplaceLocked(Shard& s, Entry* e, Entry* n, Aftermath& after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  // Makes `n` the key's value in place of `e`, its current node (or n
  // itself, just inserted), displacing (and reporting) what e held. Takes
  // ownership of n.
  void StoreValueLocked(Shard& s, Entry* e, ValueEntry* n, int64_t now,
                        Aftermath& after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  // Makes `n` the key's cached error in place of `e` (a value there is
  // reported as expired).
  void StoreErrorLocked(Shard& s, Entry* e, NodePtr<ErrorEntry> n,
                        Aftermath& after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  // Takes `e` (its load detached) out of the index (unless `erase` is
  // false: the caller empties the index), reports its value with `cause`,
  // and retires it.
  void RemoveEntryLocked(Shard& s, Entry* e, RemovalCause cause,
                         Aftermath& after, bool erase = true)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  // Removes `e` if it holds neither a value, an error nor a load.
  void RemoveIfEmptyLocked(Shard& s, Entry* e, Aftermath& after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  // Detaches e's load; the entry's reference goes to `after`.
  void DetachLocked(Shard& s, Entry* e, Aftermath& after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  // When e's phase ends (kNever: never, or no phase to end). What the wheel
  // holds e for, computed from e whenever the wheel asks.
  int64_t DeadlineOf(const Entry* e) const;
  void ScheduleLocked(Shard& s, Entry* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  void SetPhaseLocked(Shard& s, Entry* e, uint8_t phase)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  void MarkDirtyLocked(Shard& s, Entry* e, Aftermath& after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  // Size() and Weight(): expires what is due in each shard, then sums its
  // `live` counter (Shard::live or Shard::live_weight).
  template <class T>
  T SumLive(T Shard::*live);
  // Expiry transitions due by `now`, then reclamation.
  void ExpireLocked(Shard& s, int64_t now, Aftermath& after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  // Expiry transitions due by `now`.
  void AdvanceLocked(Shard& s, int64_t now, Aftermath& after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  void OnDueLocked(Shard& s, Entry* e, int64_t now, Aftermath& after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  void ReclaimLocked(Shard& s, bool force, Aftermath& after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  // e's expired value while within stale_if_error at `now`, else nullptr.
  const ValueEntry* StaleBox(const Entry* e, int64_t now) const;

  void Finish(Aftermath& after) noexcept;
  void Report(const Key& key, const Value& value, RemovalCause cause) noexcept;

  // --- Loads --------------------------------------------------------------

  Load* NewLoad(Shard& s, uint64_t h, const Key& key, LoadKind kind,
                int64_t now) const;
  static void Ref(Load* l) { l->refs.fetch_add(1, std::memory_order_relaxed); }
  static void Unref(Load* l) noexcept {
    if (l != nullptr && l->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      delete l;
    }
  }
  class LoadRef {
   public:
    LoadRef() = default;
    explicit LoadRef(Load* l) : l_(l) {}
    LoadRef(LoadRef&& o) noexcept : l_(std::exchange(o.l_, nullptr)) {}
    LoadRef& operator=(LoadRef&& o) noexcept {
      Unref(l_);
      l_ = std::exchange(o.l_, nullptr);
      return *this;
    }
    ~LoadRef() { Unref(l_); }
    Load* get() const { return l_; }
    Load* release() { return std::exchange(l_, nullptr); }

   private:
    Load* l_ = nullptr;
  };

  // Locks `key`'s entry (inserting one), decides what a caller that missed
  // does, and unlocks. `fresh` (a new load) is attached iff kStart.
  // `reg(load, stale_possible)` registers an async waiter, under the lock,
  // before anything changes (it may throw). `blocking`: the caller may wait
  // on its own thread (RecursiveCall, extra executions).
  template <class Register>
  Decision Decide(Shard& s, const Key& key, uint64_t h, int64_t now,
                  size_t stripe, LoadRef& fresh, bool blocking,
                  Register&& reg);
  void AttachLocked(Shard& s, Entry* e, Load* l)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  // e's load came or went: mark it for the policy (bounded).
  void PinChangedLocked(Shard& s, Entry* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);

  // Runs one execution of `l` with `call(stop_token)` and settles it.
  // Consumes the execution's reference.
  template <class Call>
  void Execute(Load* l, Call&& call) noexcept;
  void ExecuteBound(Load* l) noexcept;
  // Settles one execution of `l` with `*value` (engaged on success; moved
  // from if it decides the load) and its node `box` (nullptr: not stored),
  // or with `error`. Consumes the execution's reference. Never throws.
  void Settle(Load* l, std::optional<Value>* value, NodePtr<ValueEntry> box,
              std::exception_ptr error) noexcept;
  // Publishes the outcome decided (under the lock) by this thread: the
  // promise, the release signal, the callbacks. `stale` is kept readable
  // by the caller's epoch section.
  // `timers` are cancelled (unless zero).
  void Release(Load* l, std::optional<Value>* value, const ValueEntry* stale,
               std::exception_ptr error, std::vector<Callback> callbacks,
               const Timer::Id (&timers)[2]) noexcept;
  // Applies the soft and hard deadlines of `l` at `now`. From the timer's
  // own thread (`from_timer`) it cancels nothing: a Timer must not be
  // called from its callbacks while it is being destroyed.
  void HandleDeadlines(Load* l, int64_t now, bool from_timer = false) noexcept;
  // Schedules HandleDeadlines at l's soft and hard deadlines on the
  // cache's timer (made on first use). Throws: what Timer throws.
  void ArmTimer(Load* l);

  // Hands an execution of `l` (its reference) to the executor. Never
  // throws: a refused task fails the load.
  void Submit(Load* l) noexcept;
  // Settles an execution of `l` that never ran (refused, dropped, or never
  // handed over) with `error`; a refresh counts as a refresh failure.
  void SettleUnrun(Load* l, std::exception_ptr error) noexcept;
  ExecutorRef Executor();
  Timer& TimerRef();

  // Waits for `l`, consuming the caller's reference; returns its value.
  Value Await(Load* l, bool stale_possible);

  template <class L>
  ABSL_ATTRIBUTE_NOINLINE Value GetSlow(const Key& key, uint64_t h, Shard& s,
                                        int64_t now, L* loader);
  // Starts a background refresh of value `b` (of hash `h`), if still its
  // key's. Best effort.
  void StartRefresh(Shard& s, uint64_t h, const ValueEntry* b, int64_t now,
                    bool early) noexcept;
  // GetAsync (callback == nullptr) and GetThen.
  std::shared_future<Value> Async(const Key& key, Callback* callback);
  static Map BuildMap(std::vector<std::pair<const Key*, Value>>& found);

  // --- The policy ---------------------------------------------------------

  // Reconciles dirty entries with the policy, replays the read buffer,
  // evicts, and frees the entries nobody can reach any more.
  void Maintain() noexcept;
  ABSL_ATTRIBUTE_NOINLINE void TryDrain(size_t stripe) noexcept;
  void DrainLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(policy_mu_);
  // Replays one record of the read buffer (a node, or a hash | 1).
  void ReplayLocked(uintptr_t v) ABSL_EXCLUSIVE_LOCKS_REQUIRED(policy_mu_);
  void ReconcileLocked(Shard& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(policy_mu_)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);

  const Options options_;
  const Clock* const clock_;
  const bool coarse_;  // clock_ is Clock::Coarse(): read it inline
  const bool bounded_;
  const bool has_expiry_;
  const size_t shard_mask_;
  const std::unique_ptr<Shard[]> shards_;
  int access_slot_ = -1;  // Aux slots before each node
  int delta_slot_ = -1;
  int retry_slot_ = -1;
  int expires_slot_ = -1;  // where ExpiresOf and RefreshOf cannot derive
  int refresh_slot_ = -1;
  int weight_slot_ = -1;  // unbounded, with a weigher (WeightOf)
  size_t aux_slots_ = 0;
  size_t prefix_bytes_ = 0;  // PolicyPart (bounded) and Aux slots

  BoundLoader loader_;
  BatchLoader batch_loader_;

  mutable StripedCounters<kCounterCount> counters_;
  const uint64_t seed_;

  Mutex policy_mu_;  // before any shard's mu
  std::optional<Policy> policy_ ABSL_GUARDED_BY(policy_mu_);
  const std::unique_ptr<ReadBuffer> read_buffer_;

  TaskCounter tasks_;
  const ExecutorRef executor_;
  std::once_flag pool_once_;
  std::unique_ptr<ThreadPool> pool_;
  std::once_flag timer_once_;
  Timer* timer_ = nullptr;  // set once, by timer_once_; never reset
  std::unique_ptr<Timer> timer_owner_;
};

// ---------------------------------------------------------------------------
// Construction and destruction

template <class K, class V>
const CacheOptions<K, V>& ValidCacheOptions(const CacheOptions<K, V>& o) {
  using std::chrono::nanoseconds;
  auto nonneg = [](nanoseconds d, const char* name) {
    if (d < nanoseconds::zero()) {
      throw std::invalid_argument(std::string("herd::CacheOptions: ") + name +
                                  " must be >= 0");
    }
  };
  nonneg(o.ttl, "ttl");
  nonneg(o.expire_after_access, "expire_after_access");
  nonneg(o.refresh_after, "refresh_after");
  nonneg(o.error_ttl, "error_ttl");
  nonneg(o.stale_if_error, "stale_if_error");
  nonneg(o.fail_safe_backoff, "fail_safe_backoff");
  nonneg(o.soft_timeout, "soft_timeout");
  nonneg(o.hard_timeout, "hard_timeout");
  nonneg(o.max_flight_age, "max_flight_age");
  if (o.ttl > nanoseconds::zero() && o.refresh_after >= o.ttl) {
    throw std::invalid_argument(
        "herd::CacheOptions: refresh_after must be < ttl");
  }
  if (!(o.early_refresh_beta >= 0.0 && std::isfinite(o.early_refresh_beta))) {
    throw std::invalid_argument(
        "herd::CacheOptions: early_refresh_beta must be finite and >= 0");
  }
  if (!(o.extra_execution_rate >= 0.0 && o.extra_execution_rate <= 1.0)) {
    throw std::invalid_argument(
        "herd::CacheOptions: extra_execution_rate must be in [0, 1]");
  }
  if (o.max_entries > 0 && o.max_weight > 0) {
    throw std::invalid_argument(
        "herd::CacheOptions: set at most one of max_entries and max_weight");
  }
  if (o.max_weight > 0 && !o.weigher) {
    throw std::invalid_argument(
        "herd::CacheOptions: max_weight needs a weigher");
  }
  return o;
}

template <class K, class V, class H, class E, class P>
CacheCore<K, V, H, E, P>::CacheCore(Options options, BoundLoader loader,
                                 BatchLoader batch_loader)
    : options_(ValidCacheOptions(options)),
      clock_(options.clock != nullptr ? options.clock : &Clock::Coarse()),
      coarse_(clock_ == &Clock::Coarse()),
      bounded_(options.max_entries > 0 || options.max_weight > 0),
      has_expiry_(options.ttl.count() > 0 ||
                  options.expire_after_access.count() > 0 ||
                  static_cast<bool>(options.expire_after) ||
                  options.error_ttl.count() > 0),
      shard_mask_(ShardCount(options.shards, 16) - 1),
      shards_(new Shard[shard_mask_ + 1]),
      loader_(std::move(loader)),
      batch_loader_(std::move(batch_loader)),
      counters_(StripeCount()),
      seed_(options.seed != 0
                ? options.seed
                : (uint64_t{std::random_device{}()} << 32) ^
                      std::random_device{}()),
      read_buffer_(bounded_ ? std::make_unique<ReadBuffer>(StripeCount())
                            : nullptr),
      executor_(options.executor) {
  (void)BadAllocError();
  int slots = 0;
  if (options_.expire_after_access.count() > 0) access_slot_ = slots++;
  if (options_.early_refresh_beta > 0) delta_slot_ = slots++;
  if (options_.stale_if_error.count() > 0) retry_slot_ = slots++;
  const bool refresh = options_.refresh_after.count() > 0;
  if (options_.early_refresh_beta > 0 ||
      (refresh && static_cast<bool>(options_.expire_after))) {
    // The check time is neither the expiry nor the refresh time.
    expires_slot_ = slots++;
    if (refresh) refresh_slot_ = slots++;
  }
  if (!bounded_ && options_.weigher) weight_slot_ = slots++;
  aux_slots_ = static_cast<size_t>(slots);
  const size_t prefix = (bounded_ ? sizeof(PolicyPart) : 0) +
                        aux_slots_ * sizeof(std::atomic<int64_t>);
  prefix_bytes_ = (prefix + kNodeAlign - 1) / kNodeAlign * kNodeAlign;
  if (bounded_) {
    MutexLock lock(&policy_mu_);
    policy_.emplace(options_.max_entries > 0 ? options_.max_entries
                                             : options_.max_weight,
                    seed_);
  }
  if (has_expiry_) {
    const int64_t now = NowNs();
    for (size_t i = 0; i <= shard_mask_; ++i) {
      MutexLock lock(&shards_[i].mu);
      shards_[i].wheel = std::make_unique<TimerWheel>(now);
    }
  }
}

template <class K, class V, class H, class E, class P>
CacheCore<K, V, H, E, P>::~CacheCore() {
  // Stop the loaders still running, then wait for every task.
  for (size_t i = 0; i <= shard_mask_; ++i) {
    Shard& s = shards_[i];
    std::vector<std::stop_source> stops;
    {
      MutexLock lock(&s.mu);
      s.index.ForEachLocked([&](Entry* e) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        if (e->load != nullptr) stops.push_back(e->load->stop);
      });
    }
    for (std::stop_source& st : stops) st.request_stop();
  }
  tasks_.WaitForZero();
  timer_owner_.reset();  // cancels what is pending, waits for what runs
  pool_.reset();
  // Nobody can read any more: retire everything, unreported; the shards'
  // retire lists free it when they are destroyed.
  for (size_t i = 0; i <= shard_mask_; ++i) {
    Shard& s = shards_[i];
    std::vector<Load*> loads;
    {
      MutexLock lock(&s.mu);
      s.index.ClearLocked([&](Entry* e) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        if (e->load != nullptr) {
          e->load->entry = nullptr;
          loads.push_back(e->load);
          e->load = nullptr;
        }
        if (s.wheel != nullptr) s.wheel->Unschedule(e);
        s.entries.Retire(e);
      });
    }
    for (Load* l : loads) Unref(l);
  }
  if (bounded_) {
    MutexLock lock(&policy_mu_);
    policy_.reset();
  }
}

template <class K, class V, class H, class E, class P>
template <class N, class... A>
auto CacheCore<K, V, H, E, P>::NewNode(uint64_t h, const K& key,
                                       A&&... args) const -> NodePtr<N> {
  const size_t bytes = prefix_bytes_ + sizeof(N);
  char* raw = static_cast<char*>(
      kOverAligned ? ::operator new(bytes, std::align_val_t(kNodeAlign))
                   : ::operator new(bytes));
  char* at = raw + prefix_bytes_;
  N* n;
  try {
    n = new (at) N(h, key, static_cast<uint8_t>(prefix_bytes_),
                   std::forward<A>(args)...);
  } catch (...) {
    if constexpr (kOverAligned) {
      ::operator delete(raw, std::align_val_t(kNodeAlign));
    } else {
      ::operator delete(raw);
    }
    throw;
  }
  for (size_t i = 0; i < aux_slots_; ++i) {
    new (&Aux(n, static_cast<int>(i))) std::atomic<int64_t>(
        static_cast<int>(i) == retry_slot_ ? std::numeric_limits<int64_t>::min()
                                           : 0);
  }
  if (bounded_) {
    PolicyPart* part = new (raw) PolicyPart();
    part->hook.hash = h | 1;
  }
  return NodePtr<N>(n);
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::FreeEntry(Retired* r) noexcept {
  Entry* e = static_cast<Entry*>(static_cast<WheelLink*>(r));
  char* raw = reinterpret_cast<char*>(e) - e->prefix_bytes;
  // The prefix (Aux slots, PolicyPart) is trivially destructible.
  switch (e->kind) {
    case kValueKind:
      static_cast<ValueEntry*>(e)->~ValueEntry();
      break;
    case kErrorKind:
      static_cast<ErrorEntry*>(e)->~ErrorEntry();
      break;
    default:
      e->~Entry();
      break;
  }
  if constexpr (kOverAligned) {
    ::operator delete(raw, std::align_val_t(kNodeAlign));
  } else {
    ::operator delete(raw);
  }
}

template <class K, class V, class H, class E, class P>
template <class Val>
auto CacheCore<K, V, H, E, P>::MakeValue(uint64_t h, const K& key,
                                         Val&& value, int64_t now,
                                         int64_t load_time_ns) const
    -> NodePtr<ValueEntry> {
  NodePtr<ValueEntry> box = NewNode<ValueEntry>(h, key, std::forward<Val>(value));
  int64_t expires = kNever;
  if (options_.expire_after) {
    expires = DeadlineNs(now, options_.expire_after(key, box->value));
  } else if (options_.ttl.count() > 0) {
    expires = DeadlineNs(now, options_.ttl);
  }
  uint64_t w = 1;
  if (options_.weigher) w = options_.weigher(key, box->value);
  SetWeight(box.get(), static_cast<uint32_t>(std::min<uint64_t>(
                            w, std::numeric_limits<uint32_t>::max())));
  if (access_slot_ >= 0) {
    Aux(box.get(), access_slot_).store(now, std::memory_order_relaxed);
  }
  if (delta_slot_ >= 0) {
    Aux(box.get(), delta_slot_).store(load_time_ns, std::memory_order_relaxed);
  }
  int64_t check = expires;
  int64_t refresh = kNever;
  if (options_.refresh_after.count() > 0) {
    refresh = DeadlineNs(now, options_.refresh_after);
    check = std::min(check, refresh);
  }
  if (options_.early_refresh_beta > 0 && load_time_ns > 0 &&
      expires != kNever) {
    // XFetch refreshes a read at `gap` before expiry with probability
    // exp(-gap / (delta * beta)): below e^-16 reads are plain hits.
    const double window = 16.0 * static_cast<double>(load_time_ns) *
                          options_.early_refresh_beta;
    const double from = static_cast<double>(expires) - window;
    check = std::min(check, from <= -9.0e18 ? std::numeric_limits<int64_t>::min()
                                            : static_cast<int64_t>(from));
  }
  box->check_ns = check;
  if (expires_slot_ >= 0) {
    Aux(box.get(), expires_slot_).store(expires, std::memory_order_relaxed);
  }
  if (refresh_slot_ >= 0) {
    Aux(box.get(), refresh_slot_).store(refresh, std::memory_order_relaxed);
  }
  assert(ExpiresOf(box.get()) == expires && RefreshOf(box.get()) == refresh);
  return box;
}

// ---------------------------------------------------------------------------
// Finding and locking entries

template <class K, class V, class H, class E, class P>
auto CacheCore<K, V, H, E, P>::LockEntry(Shard& s, const K& key, uint64_t h,
                                      EntryPtr* spare) -> Entry* {
  for (;;) {
    // Keys are compared here, with no lock held; under it, only hashes and
    // pointers are.
    const auto probe = s.index.FindForWrite(h, KeyEq(key));
    if (probe.found == nullptr && *spare == nullptr) *spare = NewEntry(h, key);
    s.mu.Lock();
    if (probe.found != nullptr) {
      if (!probe.found->removed) return probe.found;
    } else if (s.index.AbsenceHoldsLocked(h, probe)) {
      try {
        s.index.ReserveLocked(1);
      } catch (...) {
        s.mu.Unlock();
        throw;
      }
      Entry* e = spare->release();
      s.index.InsertLocked(e, h);
      return e;
    }
    s.mu.Unlock();  // the index changed meanwhile: look again
  }
}

template <class K, class V, class H, class E, class P>
auto CacheCore<K, V, H, E, P>::LockExisting(Shard& s, const K& key, uint64_t h)
    -> Entry* {
  for (;;) {
    Entry* e = s.index.Find(h, KeyEq(key));
    if (e == nullptr) return nullptr;
    s.mu.Lock();
    if (!e->removed) return e;
    s.mu.Unlock();
  }
}

// ---------------------------------------------------------------------------
// Writing entries (the shard's lock held)

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::SetPhaseLocked(Shard& s, Entry* e, uint8_t phase) {
  if (e->phase == kLive) {
    --s.live;
    s.live_weight -= WeightOf(e);
  }
  e->phase = phase;
  if (phase == kLive) {
    ++s.live;
    s.live_weight += WeightOf(e);
  }
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::MarkDirtyLocked(Shard& s, Entry* e,
                                            Aftermath& after) {
  if (!bounded_) return;
  after.maintain = true;
  if (e->dirty) return;
  e->dirty = true;
  PolicyOf(e)->dirty_next = s.dirty;
  s.dirty = e;
  s.maintain.store(true, std::memory_order_relaxed);
}

template <class K, class V, class H, class E, class P>
int64_t CacheCore<K, V, H, E, P>::DeadlineOf(const Entry* e) const {
  // The phase is the shard's (the wheel asks under its lock); an
  // expire_after_access deadline only moves later (reads), as the wheel
  // allows.
  switch (e->phase) {
    case kLive:
      return FreshUntil(AsValue(e));
    case kStale:
      return StaleUntil(FreshUntil(AsValue(e)));
    case kError:
      return AsError(e)->expires_ns;
    default:
      return kNever;
  }
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::ScheduleLocked(Shard& s, Entry* e) {
  if (s.wheel == nullptr) return;
  const int64_t deadline = DeadlineOf(e);
  if (deadline == kNever) {
    s.wheel->Unschedule(e);
  } else {
    s.wheel->Schedule(e, deadline);
  }
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::ReplaceLocked(Shard& s, Entry* e, Entry* n,
                                             Aftermath& after) {
  SetPhaseLocked(s, e, kEmpty);
  if (Load* l = e->load) {
    n->load = l;
    l->entry = n;
  }
  s.index.ReplaceLocked(e, n);  // publishes n
  if (s.wheel != nullptr) s.wheel->Unschedule(e);
  e->removed = true;
  e->superseded = true;
  e->next_gen = n;
  if (bounded_) {
    // The policy finds n through e, whose place in it n takes over.
    MarkDirtyLocked(s, e, after);
    n->dirty = true;
  }
  s.entries.Retire(e);
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::StoreValueLocked(Shard& s, Entry* e,
                                                ValueEntry* n, int64_t now,
                                                Aftermath& after) {
  if (n != e) {
    if (const ValueEntry* ov = AsValue(e)) {
      after.replaced = ov;
      after.replaced_cause = e->phase == kLive && now < FreshUntil(ov)
                                 ? RemovalCause::kReplaced
                                 : RemovalCause::kExpired;
      if (after.replaced_cause == RemovalCause::kExpired &&
          e->phase != kDead) {
        counters_.Add(Stripe(), kExpirations);
      }
    }
    ReplaceLocked(s, e, n, after);
  }
  SetPhaseLocked(s, n, kLive);
  ScheduleLocked(s, n);
  MarkDirtyLocked(s, n, after);
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::StoreErrorLocked(Shard& s, Entry* e,
                                                NodePtr<ErrorEntry> node,
                                                Aftermath& after) {
  ErrorEntry* n = node.release();
  if (delta_slot_ >= 0) {
    // The key keeps its last load time (XFetch) until a value replaces it.
    Aux(n, delta_slot_).store(
        Aux(e, delta_slot_).load(std::memory_order_relaxed),
        std::memory_order_relaxed);
  }
  if (const ValueEntry* ov = AsValue(e)) {
    after.replaced = ov;
    after.replaced_cause = RemovalCause::kExpired;
    if (e->phase != kDead) counters_.Add(Stripe(), kExpirations);
  }
  ReplaceLocked(s, e, n, after);
  SetPhaseLocked(s, n, kError);
  ScheduleLocked(s, n);
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::RemoveEntryLocked(Shard& s, Entry* e,
                                              RemovalCause cause,
                                              Aftermath& after, bool erase) {
  if (erase) s.index.EraseLocked(e);
  if (s.wheel != nullptr) s.wheel->Unschedule(e);
  const ValueEntry* v = AsValue(e);
  if (v != nullptr && cause == RemovalCause::kExpired && e->phase != kDead) {
    counters_.Add(Stripe(), kExpirations);
  }
  SetPhaseLocked(s, e, kEmpty);
  e->removed = true;
  // Readers in their critical sections, and the report, may still read
  // the node: it is retired now and freed later.
  if (v != nullptr) {
    LinkRemoved(e, cause, after.removed);
    after.removed = e;
  } else {
    LinkRemoved(e, cause, nullptr);
  }
  MarkDirtyLocked(s, e, after);  // the policy lets go of it first
  s.entries.Retire(e);
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::RemoveIfEmptyLocked(Shard& s, Entry* e,
                                                Aftermath& after) {
  if (e->removed || e->load != nullptr || HoldsSomething(e)) return;
  RemoveEntryLocked(s, e, RemovalCause::kExplicit, after);
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::DetachLocked(Shard& s, Entry* e,
                                         Aftermath& after) {
  Load* l = e->load;
  if (l == nullptr) return;
  l->entry = nullptr;
  e->load = nullptr;
  e->refreshing.store(0, std::memory_order_relaxed);
  l->unref_next = after.unref;
  after.unref = l;
  PinChangedLocked(s, e);
}

template <class K, class V, class H, class E, class P>
auto CacheCore<K, V, H, E, P>::StaleBox(const Entry* e, int64_t now) const
    -> const ValueEntry* {
  if (options_.stale_if_error.count() <= 0) return nullptr;
  const ValueEntry* b = AsValue(e);
  if (b == nullptr) return nullptr;
  const int64_t fresh = FreshUntil(b);
  return now >= fresh && now < StaleUntil(fresh) ? b : nullptr;
}

// ---------------------------------------------------------------------------
// Expiry, reclamation, and what comes after a locked section

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::OnDueLocked(Shard& s, Entry* e, int64_t now,
                                        Aftermath& after) {
  if (e->phase == kError) {
    // The expired error stays, as nothing, if a load still needs the node.
    SetPhaseLocked(s, e, kEmpty);
    RemoveIfEmptyLocked(s, e, after);
    return;
  }
  const ValueEntry* v = AsValue(e);
  if (v == nullptr) return;
  const int64_t fresh = FreshUntil(v);
  if (now < fresh) {  // read since it was scheduled (expire_after_access)
    ScheduleLocked(s, e);
    return;
  }
  if (now < StaleUntil(fresh) && options_.stale_if_error.count() > 0) {
    if (e->phase == kLive) SetPhaseLocked(s, e, kStale);
    ScheduleLocked(s, e);
    return;
  }
  if (e->load != nullptr) {
    // Its load will replace (and report) it.
    counters_.Add(Stripe(), kExpirations);
    SetPhaseLocked(s, e, kDead);
    return;
  }
  RemoveEntryLocked(s, e, RemovalCause::kExpired, after);
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::AdvanceLocked(Shard& s, int64_t now,
                                             Aftermath& after) {
  if (s.wheel == nullptr) return;
  s.wheel->Advance(
      now,
      [&](const WheelLink* n) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return DeadlineOf(static_cast<const Entry*>(n));
      },
      [&](WheelLink* n) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        OnDueLocked(s, static_cast<Entry*>(n), now, after);
      });
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::ExpireLocked(Shard& s, int64_t now,
                                         Aftermath& after) {
  AdvanceLocked(s, now, after);
  ReclaimLocked(s, /*force=*/false, after);
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::ReclaimLocked(Shard& s, bool force,
                                          Aftermath& after) {
  const size_t pending =
      s.entries.pending() + s.index.retired_tables().pending();
  if (pending == 0 || (!force && pending < 64)) return;
  // Forced (CleanUp): two advances first, so that everything retired
  // before this call is free unless a reader is inside.
  if (force) {
    Epoch::TryAdvance();
    Epoch::TryAdvance();
  }
  const uint64_t epoch = Epoch::TryAdvance();
  s.index.retired_tables().Collect(epoch);
  after.free_tables.Append(s.index.retired_tables().TakeFree());
  if (!bounded_) {
    s.entries.Collect(epoch);
    after.free_entries.Append(s.entries.TakeFree());
  } else if (s.entries.pending() > 0 || s.entries.has_free()) {
    s.maintain.store(true, std::memory_order_relaxed);
    after.maintain = true;  // entries are freed by Maintain()
  }
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::Report(const K& key, const V& value,
                                   RemovalCause cause) noexcept {
  if (!options_.removal_listener) return;
  try {
    options_.removal_listener(key, value, cause);
  } catch (...) {
    // Ignored, as documented.
  }
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::Finish(Aftermath& after) noexcept {
  if (after.replaced != nullptr) {
    Report(after.replaced->key, after.replaced->value, after.replaced_cause);
  }
  for (Entry* e = after.removed; e != nullptr; e = NextRemoved(e)) {
    if (const ValueEntry* v = AsValue(e)) Report(e->key, v->value, CauseOf(e));
  }
  for (Load* l = after.unref; l != nullptr;) {
    Load* next = l->unref_next;
    Unref(l);
    l = next;
  }
  after.free_tables.Free();
  after.free_entries.Free();
  if (after.maintain) Maintain();
}

// ---------------------------------------------------------------------------
// The policy

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::ReconcileLocked(Shard& s) {
  Entry* e = s.dirty;
  s.dirty = nullptr;
  while (e != nullptr) {
    PolicyPart* p = PolicyOf(e);
    Entry* next = p->dirty_next;
    p->dirty_next = nullptr;
    // Only e, the oldest node of its key since the last pass, may be in
    // the policy; the newest (z) is what the key holds now.
    e->dirty = false;
    Entry* z = e;
    while (z->superseded) {
      z = z->next_gen;
      z->dirty = false;
    }
    PolicyPart* zp = PolicyOf(z);
    const bool want = !z->removed && AsValue(z) != nullptr;
    if (z != e && InPolicy(p)) {
      if (want) {
        policy_->Replace(&p->hook, &zp->hook);
      } else {
        policy_->Remove(&p->hook);
      }
    }
    zp->pinned = z->load != nullptr;
    if (want && !InPolicy(zp)) {
      zp->hook.weight = zp->weight;
      policy_->Add(&zp->hook);
    } else if (want && zp->hook.weight != zp->weight) {
      policy_->UpdateWeight(&zp->hook, zp->weight);
    } else if (!want && InPolicy(zp)) {
      policy_->Remove(&zp->hook);
    }
    e = next;
  }
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::ReplayLocked(uintptr_t v) {
  if ((v & 1) != 0) {
    policy_->RecordMiss(v);  // a hash, | 1
    return;
  }
  PolicyPart* p = PolicyOf(reinterpret_cast<Entry*>(v));
  if (InPolicy(p)) policy_->RecordAccess(&p->hook);
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::DrainLocked() {
  read_buffer_->Drain(
      [&](uintptr_t v) ABSL_NO_THREAD_SAFETY_ANALYSIS { ReplayLocked(v); });
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::TryDrain(size_t stripe) noexcept {
  // Only this thread's stripe: draining the others would pull the lines
  // their readers write. Maintain() drains them all.
  if (!policy_mu_.TryLock()) return;
  read_buffer_->DrainStripe(
      stripe, [&](uintptr_t v) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        ReplayLocked(v);
      });
  policy_mu_.Unlock();
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::Maintain() noexcept {
  if (!bounded_) return;
  EpochGuard guard;  // keeps the evicted entries readable for the reports
  Entry* evicted = nullptr;
  RetireList::Chain dead;  // entries nobody can reach any more
  {
    MutexLock plock(&policy_mu_);
    // Reads recorded so far mostly came before the writes waiting below:
    // replay them first, so that recency keeps their order.
    DrainLocked();
    const uint64_t epoch = Epoch::TryAdvance();
    for (size_t i = 0; i <= shard_mask_; ++i) {
      Shard& s = shards_[i];
      if (!s.maintain.exchange(false, std::memory_order_relaxed)) continue;
      MutexLock lock(&s.mu);
      ReconcileLocked(s);
      s.entries.Collect(epoch);
      dead.Append(s.entries.TakeFree());
      if (s.entries.pending() > 0) {
        s.maintain.store(true, std::memory_order_relaxed);
      }
    }
    // Every entry in `dead` was retired two epochs ago, after it left the
    // index, and has left the policy: only the read buffer may still hold
    // it, recorded before the epoch moved on. Drain it again before they
    // are freed.
    if (!dead.empty()) DrainLocked();
    if (policy_->weight() > policy_->max_weight()) {
      policy_->Evict(
          [&](PolicyHook* h) { return !PolicyOf(EntryOfHook(h))->pinned; },
          [&](PolicyHook* h) {
            // Unlinked from the policy already (hook.queue == 0). A node
            // replaced since the last pass stands for its newest one.
            Shard& s = ShardFor(h->hash);
            MutexLock lock(&s.mu);
            Entry* e = Newest(EntryOfHook(h));
            if (e->removed) return;
            const ValueEntry* v = AsValue(e);
            if (e->load != nullptr || v == nullptr) {
              // Changed since can_evict: back into the policy next pass.
              if (!e->dirty) {
                e->dirty = true;
                PolicyOf(e)->dirty_next = s.dirty;
                s.dirty = e;
              }
              s.maintain.store(true, std::memory_order_relaxed);
              return;
            }
            counters_.Add(guard.thread_index(), kEvictions);
            counters_.Add(guard.thread_index(), kEvictionWeight, WeightOf(e));
            s.index.EraseLocked(e);
            if (s.wheel != nullptr) s.wheel->Unschedule(e);
            SetPhaseLocked(s, e, kEmpty);
            e->removed = true;
            LinkRemoved(e, RemovalCause::kEvicted, evicted);
            evicted = e;
            s.entries.Retire(e);
            s.maintain.store(true, std::memory_order_relaxed);
          });
    }
  }
  for (Entry* e = evicted; e != nullptr; e = NextRemoved(e)) {
    Report(e->key, AsValue(e)->value, CauseOf(e));
  }
  dead.Free();
}

// ---------------------------------------------------------------------------
// Loads

template <class K, class V, class H, class E, class P>
auto CacheCore<K, V, H, E, P>::NewLoad(Shard& s, uint64_t h, const K& key,
                                    LoadKind kind, int64_t now) const
    -> Load* {
  auto l = std::make_unique<Load>(&s, h, key, kind, now);
  if (options_.hard_timeout.count() > 0) {
    l->hard_deadline_ns = DeadlineNs(now, options_.hard_timeout);
  }
  if (options_.soft_timeout.count() > 0 &&
      options_.stale_if_error.count() > 0) {
    l->soft_deadline_ns = DeadlineNs(now, options_.soft_timeout);
  }
  return l.release();
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::AttachLocked(Shard& s, Entry* e, Load* l) {
  (void)s;
  l->entry = e;
  l->running = 1;
  e->load = l;
  if (l->kind == LoadKind::kRefresh || l->kind == LoadKind::kEarlyRefresh) {
    e->refreshing.store(1, std::memory_order_relaxed);
  }
  PinChangedLocked(s, e);
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::PinChangedLocked(Shard& s, Entry* e) {
  // The policy learns it at the next Maintain(), before it evicts.
  if (!bounded_ || e->dirty) return;
  e->dirty = true;
  PolicyOf(e)->dirty_next = s.dirty;
  s.dirty = e;
  s.maintain.store(true, std::memory_order_relaxed);
}

template <class K, class V, class H, class E, class P>
template <class Register>
auto CacheCore<K, V, H, E, P>::Decide(Shard& s, const K& key, uint64_t h,
                                   int64_t now, size_t stripe, LoadRef& fresh,
                                   bool blocking, Register&& reg) -> Decision {
  Decision d;
  EntryPtr spare;  // freed, if unused, after the unlock
  Aftermath after(this);
  Entry* e = LockEntry(s, key, h, &spare);
  {
    AdoptedLock lock(&s.mu);
    const ValueEntry* b = AsValue(e);
    const ErrorEntry* x = AsError(e);
    const ValueEntry* stale = StaleBox(e, now);
    d.stale_possible = stale != nullptr;
    Load* l = e->load;
    if (b != nullptr && now < FreshUntil(b)) {
      d.kind = Decision::kHit;
      d.box = b;
    } else if (x != nullptr && now < x->expires_ns) {
      d.kind = Decision::kNegative;
      d.error = x->error;
    } else if (stale != nullptr && InBackoff(e, now)) {
      d.kind = Decision::kStale;
      d.box = stale;
    } else if (l != nullptr && !TooOld(l, now)) {
      if (blocking && ExecutingHere(l)) {
        d.kind = Decision::kRecursive;
      } else if (l->soft_fired && stale != nullptr) {
        d.kind = Decision::kStaleSoft;
        d.box = stale;
      } else {
        reg(l, d.stale_possible);  // may throw: nothing changed yet
        d.kind = Decision::kJoin;
        d.load = l;
        Ref(l);
        if (blocking && !l->done && options_.hard_timeout.count() == 0 &&
            SampleExtra(stripe)) {
          d.extra = true;
          ++l->running;
          Ref(l);
        }
      }
    } else {
      Load* n = fresh.get();
      try {
        reg(n, d.stale_possible);
      } catch (...) {
        RemoveIfEmptyLocked(s, e, after);  // an entry just inserted
        throw;
      }
      if (l != nullptr) DetachLocked(s, e, after);  // too old: start afresh
      AttachLocked(s, e, fresh.release());          // the entry's reference
      d.kind = Decision::kStart;
      d.load = n;
      Ref(n);  // the execution's
      Ref(n);  // the caller's
    }
    if (d.load != nullptr && !d.load->timer_armed && !blocking &&
        std::min(d.load->soft_deadline_ns, d.load->hard_deadline_ns) !=
            kNever) {
      d.load->timer_armed = true;
      d.arm = true;
    }
    ExpireLocked(s, now, after);
  }
  if (d.kind == Decision::kHit || d.kind == Decision::kNegative) {
    OnHit(e, stripe);
    if (d.kind == Decision::kNegative) counters_.Add(stripe, kNegativeHits);
  } else {
    OnMiss(h, stripe);
  }
  return d;
}

template <class K, class V, class H, class E, class P>
Timer& CacheCore<K, V, H, E, P>::TimerRef() {
  std::call_once(timer_once_, [this] {
    timer_owner_ = std::make_unique<Timer>(TimerOptions{.clock = clock_});
    timer_ = timer_owner_.get();
  });
  return *timer_;
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::ArmTimer(Load* l) {
  int64_t deadlines[2];
  {
    MutexLock lock(&l->shard->mu);
    if (l->done) return;
    deadlines[0] = l->soft_deadline_ns;
    deadlines[1] = l->hard_deadline_ns;
  }
  Timer& timer = TimerRef();
  for (int i = 0; i < 2; ++i) {
    if (deadlines[i] == kNever) continue;
    Ref(l);
    LoadRef ref(l);
    const Timer::Id id =
        timer.RunAt(TimePointOf(deadlines[i]), [this, r = std::move(ref)]() {
          HandleDeadlines(r.get(), NowNs(), /*from_timer=*/true);
        });
    bool cancel = false;
    {
      MutexLock lock(&l->shard->mu);
      if (l->done) {
        cancel = true;
      } else {
        l->timers[i] = id;
      }
    }
    if (cancel) timer.Cancel(id);
  }
}

template <class K, class V, class H, class E, class P>
ExecutorRef CacheCore<K, V, H, E, P>::Executor() {
  if (executor_) return executor_;
  std::call_once(pool_once_,
                 [this] { pool_ = std::make_unique<ThreadPool>(2); });
  return ExecutorRef(*pool_);
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::Submit(Load* l) noexcept {
  // The body owns the execution's reference. Destroyed unconsumed (when
  // ScheduleOnce could not allocate), it fails the execution itself.
  struct Body {
    Body(CacheCore* c, Load* x) : core(c), load(x) {}
    Body(Body&& o) noexcept
        : core(o.core), load(std::exchange(o.load, nullptr)) {}
    Body& operator=(Body&&) = delete;
    ~Body() {
      if (load != nullptr) core->SettleUnrun(load, BadAllocError());
    }
    void Run() { core->ExecuteBound(std::exchange(load, nullptr)); }
    void Abandon(std::exception_ptr error) noexcept {
      core->SettleUnrun(std::exchange(load, nullptr), std::move(error));
    }
    CacheCore* core;
    Load* load;
  };
  ExecutorRef executor;
  try {
    executor = Executor();
  } catch (...) {
    SettleUnrun(l, std::current_exception());
    return;
  }
  try {
    ScheduleOnce(executor, &tasks_, Body(this, l));
  } catch (...) {
    // The body ran, was abandoned, or failed the execution as it was
    // destroyed: the load has its outcome either way.
  }
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::SettleUnrun(Load* l,
                                        std::exception_ptr error) noexcept {
  // CacheStats::refresh_failures: "refreshes that threw, or were never
  // run". (Execute counts the ones that ran.)
  if (l->kind == LoadKind::kRefresh || l->kind == LoadKind::kEarlyRefresh) {
    try {
      counters_.Add(Stripe(), kRefreshFailures);
    } catch (...) {
      // This thread's first stripe could not be allocated; Settle's epoch
      // section needs the same record.
    }
  }
  Settle(l, nullptr, nullptr, std::move(error));
}

template <class K, class V, class H, class E, class P>
template <class Call>
void CacheCore<K, V, H, E, P>::Execute(Load* l, Call&& call) noexcept {
  const LoadFrame frame{l, load_frames};
  load_frames = &frame;
  const bool refresh =
      l->kind == LoadKind::kRefresh || l->kind == LoadKind::kEarlyRefresh;
  const size_t stripe = Stripe();
  if (refresh) {
    counters_.Add(stripe, kRefreshes);
    if (l->kind == LoadKind::kEarlyRefresh) {
      counters_.Add(stripe, kEarlyRefreshes);
    }
  }
  std::optional<V> value;
  std::exception_ptr error;
  int64_t start = 0;
  int64_t end = 0;
  try {
    start = NowNs();
    value.emplace(call(l->stop.get_token()));
    end = NowNs();
  } catch (...) {
    error = std::current_exception();
    try {
      end = NowNs();
    } catch (...) {
      end = start;
    }
  }
  load_frames = frame.prev;
  const int64_t took = end > start ? end - start : 0;
  counters_.Add(stripe, value ? kLoadSuccesses : kLoadFailures);
  counters_.Add(stripe, kLoadTimeNs, static_cast<uint64_t>(took));
  if (!value && refresh) counters_.Add(stripe, kRefreshFailures);
  NodePtr<ValueEntry> box;
  if (value) {
    try {
      box = MakeValue(l->hash, l->key, *value, end, took);
    } catch (...) {
      // Not stored; the load's callers still get the value.
    }
  }
  Settle(l, &value, std::move(box), std::move(error));
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::ExecuteBound(Load* l) noexcept {
  Execute(l,
          [&](std::stop_token st) -> V { return loader_(l->key, std::move(st)); });
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::Settle(Load* l, std::optional<V>* value,
                                      NodePtr<ValueEntry> box,
                                      std::exception_ptr error) noexcept {
  LoadRef execution(l);  // this execution's reference
  EpochGuard guard;      // keeps `stale` and the reports readable
  const bool ok = value != nullptr && value->has_value();
  int64_t now = l->started_ns;
  try {
    now = NowNs();
  } catch (...) {
  }
  NodePtr<ErrorEntry> error_box;  // negative caching, made unlocked
  if (!ok && options_.error_ttl.count() > 0) {
    try {
      error_box = NewNode<ErrorEntry>(l->hash, l->key, error,
                                      DeadlineNs(now, options_.error_ttl));
    } catch (...) {
      // Not cached.
    }
  }
  Shard& s = *l->shard;
  const ValueEntry* stale = nullptr;
  std::vector<Callback> callbacks;
  Timer::Id timers[2] = {0, 0};
  {
    Aftermath after(this);
    {
      MutexLock lock(&s.mu);
      --l->running;
      if (l->done) return;  // another execution decided, or a timeout
      if (!ok) {
        if (!l->first_error) l->first_error = error;
        if (l->running > 0) return;  // another execution may still succeed
      }
      l->done = true;
      if (Entry* e = l->entry) {
        DetachLocked(s, e, after);
        const bool refresh = l->kind == LoadKind::kRefresh ||
                             l->kind == LoadKind::kEarlyRefresh;
        const ValueEntry* current = AsValue(e);
        Entry* now_held = e;  // the key's node afterwards
        if (ok) {
          if (box != nullptr) {
            now_held = box.get();
            StoreValueLocked(s, e, box.release(), now, after);
          }
        } else if (refresh && current != nullptr &&
                   now < FreshUntil(current)) {
          // A failed refresh keeps the value it was refreshing.
        } else if ((stale = StaleBox(e, now)) != nullptr) {
          if (retry_slot_ >= 0) {
            Aux(e, retry_slot_).store(
                DeadlineNs(now, options_.fail_safe_backoff),
                std::memory_order_relaxed);
          }
        } else if (error_box != nullptr) {
          now_held = error_box.get();
          StoreErrorLocked(s, e, std::move(error_box), after);
        } else if (current != nullptr) {
          RemoveEntryLocked(s, e, RemovalCause::kExpired, after);
        }
        RemoveIfEmptyLocked(s, now_held, after);
      }
      if (!ok) error = l->first_error;
      l->outcome = stale != nullptr ? Outcome::kStale
                   : ok             ? Outcome::kValue
                                    : Outcome::kError;
      l->stale_reason = StaleReason::kLoadFailed;
      callbacks = std::move(l->callbacks);
      l->callbacks.clear();
      timers[0] = std::exchange(l->timers[0], 0);
      timers[1] = std::exchange(l->timers[1], 0);
      ExpireLocked(s, now, after);
    }
    Release(l, ok ? value : nullptr, stale, error, std::move(callbacks),
            timers);
  }
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::Release(Load* l, std::optional<V>* value,
                                    const ValueEntry* stale,
                                    std::exception_ptr error,
                                    std::vector<Callback> callbacks,
                                    const Timer::Id (&timers)[2]) noexcept {
  // One thread per load gets here: the one that decided its outcome.
  try {
    if (value != nullptr) {
      l->promise.set_value(std::move(**value));
    } else if (stale != nullptr) {
      V copy(stale->value);  // outside set_value: see Ready()
      l->promise.set_value(std::move(copy));
    } else {
      l->promise.set_exception(error);
    }
  } catch (...) {
    // A Value move or copy threw: that exception is the outcome.
    try {
      l->promise.set_exception(std::current_exception());
    } catch (...) {
    }
  }
  if (l->outcome == Outcome::kStale) {
    counters_.Add(Stripe(),
                  l->stale_reason == StaleReason::kHardTimeout
                      ? kStaleHardTimeout
                      : kStaleLoadFailed,
                  l->async_waiters + callbacks.size());
  }
  l->released.request_stop();
  const V* v = nullptr;
  std::exception_ptr outcome_error;
  try {
    v = &l->future.get();
  } catch (...) {
    outcome_error = std::current_exception();
  }
  for (Callback& cb : callbacks) std::move(cb)(v, outcome_error);
  callbacks.clear();
  for (Timer::Id id : timers) {
    if (id != 0) timer_->Cancel(id);  // ids exist: so does the timer
  }
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::HandleDeadlines(Load* l, int64_t now,
                                               bool from_timer) noexcept {
  EpochGuard guard;
  Shard& s = *l->shard;
  const ValueEntry* stale = nullptr;
  std::vector<Callback> callbacks;
  bool hard = false;
  Timer::Id timers[2] = {0, 0};
  std::stop_source stop{std::nostopstate};
  {
    Aftermath after(this);
    {
      MutexLock lock(&s.mu);
      if (l->done) return;
      Entry* e = l->entry;
      if (now >= l->hard_deadline_ns) {
        // Abandon the load: everyone gets the stale value or WaitTimeout,
        // the loader is told to stop, the next caller starts afresh.
        hard = true;
        l->done = true;
        stop = l->stop;
        if (e != nullptr) {
          stale = StaleBox(e, now);
          if (stale != nullptr && retry_slot_ >= 0) {
            Aux(e, retry_slot_).store(
                DeadlineNs(now, options_.fail_safe_backoff),
                std::memory_order_relaxed);
          }
          DetachLocked(s, e, after);
          RemoveIfEmptyLocked(s, e, after);
        }
        l->outcome = stale != nullptr ? Outcome::kStale : Outcome::kTimeout;
        l->stale_reason = StaleReason::kHardTimeout;
        callbacks = std::move(l->callbacks);
        l->callbacks.clear();
        if (!from_timer) {
          timers[0] = std::exchange(l->timers[0], 0);
          timers[1] = std::exchange(l->timers[1], 0);
        }
      } else if (!l->soft_fired && now >= l->soft_deadline_ns &&
                 e != nullptr && (stale = StaleBox(e, now)) != nullptr) {
        // Soft: the waiting callbacks get the stale value; the load goes on.
        l->soft_fired = true;
        callbacks = std::move(l->callbacks);
        l->callbacks.clear();
      } else {
        return;
      }
    }
    if (hard) {
      std::exception_ptr timeout;
      if (stale == nullptr) {
        try {
          timeout = std::make_exception_ptr(
              WaitTimeout("herd::LoadingCache: the load passed hard_timeout"));
        } catch (...) {
          timeout = BadAllocError();
        }
      }
      Release(l, nullptr, stale, timeout, std::move(callbacks), timers);
      stop.request_stop();
      return;
    }
    counters_.Add(guard.thread_index(), kStaleSoftTimeout, callbacks.size());
    for (Callback& cb : callbacks) std::move(cb)(&stale->value, nullptr);
  }
}

template <class K, class V, class H, class E, class P>
V CacheCore<K, V, H, E, P>::Await(Load* l, bool stale_possible) {
  LoadRef ref(l);
  const bool soft = stale_possible && l->soft_deadline_ns != kNever;
  int64_t deadline = soft ? std::min(l->soft_deadline_ns, l->hard_deadline_ns)
                          : l->hard_deadline_ns;
  const std::stop_token released = l->released.get_token();
  bool soft_done = !soft;
  while (!released.stop_requested()) {
    clock_->SleepUntil(TimePointOf(deadline), released);
    if (released.stop_requested()) break;
    const int64_t now = NowNs();
    if (now < deadline) continue;
    HandleDeadlines(l, now);
    if (released.stop_requested()) break;
    if (!soft_done && now >= l->soft_deadline_ns) {
      soft_done = true;
      // Answer with the stale value, if there still is one.
      EpochGuard guard;
      if (Entry* e = l->shard->index.Find(l->hash, KeyEq(l->key))) {
        if (const ValueEntry* b = StaleBox(e, now)) {
          counters_.Add(guard.thread_index(), kStaleSoftTimeout);
          return b->value;
        }
      }
    }
    deadline = l->hard_deadline_ns;
  }
  if (l->outcome == Outcome::kStale) {
    counters_.Add(Stripe(), l->stale_reason == StaleReason::kHardTimeout
                                ? kStaleHardTimeout
                                : kStaleLoadFailed);
  }
  return V(l->future.get());  // rethrows the load's exception
}

// ---------------------------------------------------------------------------
// Reads

template <class K, class V, class H, class E, class P>
bool CacheCore<K, V, H, E, P>::WantsRefresh(const ValueEntry* b, int64_t now,
                                            size_t stripe, bool* early) const {
  *early = false;
  if (!loader_ || b->refreshing.load(std::memory_order_relaxed) != 0) {
    return false;
  }
  if (now >= RefreshOf(b)) return true;
  const int64_t expires = ExpiresOf(b);
  if (delta_slot_ < 0 || expires == kNever) return false;
  const int64_t delta = Aux(b, delta_slot_).load(std::memory_order_relaxed);
  if (delta <= 0) return false;
  // XFetch: refresh iff now - delta * beta * ln(u) >= expiry.
  const uint64_t r = SplitMix64(seed_ ^ (uint64_t{stripe} << 48) ^
                                counters_.Add(stripe, kRandom));
  const double u = static_cast<double>((r >> 11) + 1) * 0x1.0p-53;
  const double gap =
      -static_cast<double>(delta) * options_.early_refresh_beta * std::log(u);
  if (gap < static_cast<double>(expires - now)) return false;
  *early = true;
  return true;
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::WindowHit(Shard& s, uint64_t h,
                                         const ValueEntry* b, int64_t now,
                                         size_t stripe) {
  bool early = false;
  if (WantsRefresh(b, now, stripe, &early)) StartRefresh(s, h, b, now, early);
  Touch(b, now);
  OnHit(const_cast<ValueEntry*>(b), stripe);
  if (now >= RefreshOf(b)) counters_.Add(stripe, kStaleRefreshAhead);
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::StartRefresh(Shard& s, uint64_t h,
                                            const ValueEntry* b, int64_t now,
                                            bool early) noexcept {
  // REQUIRES: inside the epoch section that found `b`.
  Load* l;
  try {
    l = NewLoad(s, h, b->key,
                early ? LoadKind::kEarlyRefresh : LoadKind::kRefresh, now);
  } catch (...) {
    return;  // best effort: a later read tries again
  }
  bool attached = false;
  {
    MutexLock lock(&s.mu);
    Entry* e = const_cast<ValueEntry*>(b);
    if (!e->removed && e->load == nullptr) {  // still the key's value
      AttachLocked(s, e, l);  // the node holds l's first reference
      Ref(l);                 // the execution's
      attached = true;
    }
  }
  if (!attached) {
    Unref(l);
    return;
  }
  Submit(l);
}

template <class K, class V, class H, class E, class P>
V CacheCore<K, V, H, E, P>::Get(const K& key) {
  RequireLoader("Get");
  const uint64_t h = HashOf(key);
  Shard& s = ShardFor(h);
  const int64_t now = NowNs();
  {
    EpochGuard g;
    if (Entry* e = s.index.Find(h, KeyEq(key))) {
      // check_ns is kNoHit unless e is a value.
      if (now < e->check_ns && AccessFresh(e, now)) {
        Touch(e, now);
        OnHit(e, g.thread_index());
        return static_cast<const ValueEntry*>(e)->value;
      }
    }
  }
  return GetSlow<void>(key, h, s, now, nullptr);
}

template <class K, class V, class H, class E, class P>
template <class L>
V CacheCore<K, V, H, E, P>::GetWith(const K& key, L& loader) {
  const uint64_t h = HashOf(key);
  Shard& s = ShardFor(h);
  const int64_t now = NowNs();
  {
    EpochGuard g;
    if (Entry* e = s.index.Find(h, KeyEq(key))) {
      // check_ns is kNoHit unless e is a value.
      if (now < e->check_ns && AccessFresh(e, now)) {
        Touch(e, now);
        OnHit(e, g.thread_index());
        return static_cast<const ValueEntry*>(e)->value;
      }
    }
  }
  return GetSlow<L>(key, h, s, now, &loader);
}

// The blocking lookup past the lock-free one. `loader` is the call's own,
// or nullptr for the bound one.
template <class K, class V, class H, class E, class P>
template <class L>
V CacheCore<K, V, H, E, P>::GetSlow(const K& key, uint64_t h, Shard& s,
                                 int64_t now, L* loader) {
  EpochGuard g;
  const size_t stripe = g.thread_index();
  if (Entry* e = s.index.Find(h, KeyEq(key))) {
    if (const ValueEntry* b = AsValue(e)) {
      if (now < FreshUntil(b)) {
        WindowHit(s, h, b, now, stripe);
        return b->value;
      }
    } else if (const ErrorEntry* x = AsError(e)) {
      if (now < x->expires_ns) {
        OnHit(e, stripe);
        counters_.Add(stripe, kNegativeHits);
        std::rethrow_exception(x->error);
      }
    }
  }
  LoadRef fresh(NewLoad(s, h, key, LoadKind::kMiss, now));
  const Decision d = Decide(s, key, h, now, stripe, fresh, /*blocking=*/true,
                            [](Load*, bool) {});
  switch (d.kind) {
    case Decision::kHit:
      return d.box->value;
    case Decision::kNegative:
      std::rethrow_exception(d.error);
    case Decision::kStale:
      counters_.Add(stripe, kStaleLoadFailed);
      return d.box->value;
    case Decision::kStaleSoft:
      counters_.Add(stripe, kStaleSoftTimeout);
      return d.box->value;
    case Decision::kRecursive:
      throw RecursiveCall();
    case Decision::kJoin:
    case Decision::kStart:
      break;
  }
  LoadRef wait(d.load);
  const bool run_here =
      d.kind == Decision::kJoin
          ? d.extra
          : (loader != nullptr ||
             (options_.hard_timeout.count() == 0 &&
              !(d.stale_possible && d.load->soft_deadline_ns != kNever)));
  if (run_here) {
    if constexpr (std::is_void_v<L>) {
      ExecuteBound(d.load);
    } else if (loader != nullptr) {
      Execute(d.load, [&](std::stop_token st) -> V {
        return InvokeCallLoader(*loader, key, std::move(st));
      });
    }
  } else if (d.kind == Decision::kStart) {
    Submit(d.load);
  }
  return Await(wait.release(), d.stale_possible);
}

template <class K, class V, class H, class E, class P>
std::optional<V> CacheCore<K, V, H, E, P>::GetIfPresent(const K& key) {
  const uint64_t h = HashOf(key);
  Shard& s = ShardFor(h);
  const int64_t now = NowNs();
  EpochGuard g;
  if (Entry* e = s.index.Find(h, KeyEq(key))) {
    if (const ValueEntry* b = AsValue(e)) {
      if (now < FreshUntil(b)) {
        Touch(e, now);
        OnHit(e, g.thread_index());
        if (now >= RefreshOf(b)) {
          counters_.Add(g.thread_index(), kStaleRefreshAhead);
        }
        return std::optional<V>(b->value);
      }
    }
  }
  OnMiss(h, g.thread_index(), /*loads=*/false);
  return std::nullopt;
}

template <class K, class V, class H, class E, class P>
std::shared_future<V> CacheCore<K, V, H, E, P>::Async(const K& key,
                                                   Callback* callback) {
  const uint64_t h = HashOf(key);
  Shard& s = ShardFor(h);
  const int64_t now = NowNs();
  EpochGuard g;
  const size_t stripe = g.thread_index();
  auto deliver = [&](const V* v, std::exception_ptr err) {
    if (callback != nullptr) {
      std::move (*callback)(v, std::move(err));
      return std::shared_future<V>();
    }
    return v != nullptr ? Ready(*v) : ReadyError(std::move(err));
  };
  if (Entry* e = s.index.Find(h, KeyEq(key))) {
    if (const ValueEntry* b = AsValue(e)) {
      if (now < FreshUntil(b)) {
        WindowHit(s, h, b, now, stripe);
        return deliver(&b->value, nullptr);
      }
    } else if (const ErrorEntry* x = AsError(e)) {
      if (now < x->expires_ns) {
        OnHit(e, stripe);
        counters_.Add(stripe, kNegativeHits);
        return deliver(nullptr, x->error);
      }
    }
  }
  (void)Executor();  // the pool exists before a load depends on it
  LoadRef fresh(NewLoad(s, h, key, LoadKind::kMiss, now));
  // A future that a soft timeout may answer early is the caller's own.
  std::shared_ptr<std::promise<V>> own;
  std::shared_future<V> own_future;
  if (callback == nullptr && options_.soft_timeout.count() > 0 &&
      options_.stale_if_error.count() > 0) {
    own = std::make_shared<std::promise<V>>();
    own_future = own->get_future().share();
  }
  std::shared_future<V> future;
  const Decision d = Decide(
      s, key, h, now, stripe, fresh, /*blocking=*/false,
      [&](Load* l, bool stale_possible) {
        if (callback != nullptr) {
          l->callbacks.push_back(std::move(*callback));
        } else if (own != nullptr && stale_possible &&
                   l->soft_deadline_ns != kNever) {
          l->callbacks.push_back(
              [p = own](const V* v, std::exception_ptr err) mutable {
                try {
                  if (v != nullptr) {
                    V copy(*v);  // outside set_value: see Ready()
                    p->set_value(std::move(copy));
                  } else {
                    p->set_exception(err);
                  }
                } catch (...) {
                  try {
                    p->set_exception(std::current_exception());
                  } catch (...) {
                  }
                }
              });
          future = own_future;
        } else {
          ++l->async_waiters;
          future = l->future;
        }
      });
  switch (d.kind) {
    case Decision::kHit:
      return deliver(&d.box->value, nullptr);
    case Decision::kNegative:
      return deliver(nullptr, d.error);
    case Decision::kStale:
      counters_.Add(stripe, kStaleLoadFailed);
      return deliver(&d.box->value, nullptr);
    case Decision::kStaleSoft:
      counters_.Add(stripe, kStaleSoftTimeout);
      return deliver(&d.box->value, nullptr);
    case Decision::kRecursive:
    case Decision::kJoin:
    case Decision::kStart:
      break;
  }
  LoadRef wait(d.load);  // an async caller does not wait
  if (d.arm) {
    try {
      ArmTimer(d.load);
    } catch (...) {
      // No timer: the waiters get the load's outcome, however late.
    }
  }
  if (d.kind == Decision::kStart) Submit(d.load);
  return future;
}

template <class K, class V, class H, class E, class P>
std::shared_future<V> CacheCore<K, V, H, E, P>::GetAsync(const K& key) {
  RequireLoader("GetAsync");
  return Async(key, nullptr);
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::GetThen(const K& key, Callback callback) {
  RequireLoader("GetThen");
  Async(key, &callback);
}

template <class K, class V, class H, class E, class P>
std::shared_future<V> CacheCore<K, V, H, E, P>::Refresh(const K& key) {
  RequireLoader("Refresh");
  const uint64_t h = HashOf(key);
  Shard& s = ShardFor(h);
  const int64_t now = NowNs();
  EpochGuard g;
  (void)Executor();
  LoadRef fresh(NewLoad(s, h, key, LoadKind::kRefresh, now));
  std::shared_future<V> future;
  Load* submit = nullptr;  // with the execution's reference
  LoadRef arm;
  {
    EntryPtr spare;
    Aftermath after(this);
    Entry* e = LockEntry(s, key, h, &spare);
    AdoptedLock lock(&s.mu);
    Load* l = e->load;
    if (l == nullptr) {
      l = fresh.release();
      AttachLocked(s, e, l);  // the entry's reference
      Ref(l);                 // the execution's
      submit = l;
    }
    ++l->async_waiters;
    future = l->future;
    if (!l->timer_armed &&
        std::min(l->soft_deadline_ns, l->hard_deadline_ns) != kNever) {
      l->timer_armed = true;
      Ref(l);
      arm = LoadRef(l);
    }
    ExpireLocked(s, now, after);
  }
  if (arm.get() != nullptr) {
    try {
      ArmTimer(arm.get());
    } catch (...) {
    }
  }
  if (submit != nullptr) Submit(submit);
  return future;
}

template <class K, class V, class H, class E, class P>
auto CacheCore<K, V, H, E, P>::GetAll(std::span<const K> keys) -> Map {
  RequireLoader("GetAll");
  // Containers here are std::vectors and pre-sized tables: absl's tables
  // are not safe against an allocation or an element constructor that
  // throws mid-insert, and every step here may meet one.
  struct Pending {
    const K* key;
    LoadRef wait;
    bool stale_possible = false;
    Load* run = nullptr;  // owned: its execution's reference, until settled
    bool missing = false;  // the batch loader left it out
  };
  // Settles the executions this call owns and has not run, whatever
  // stopped it, so that no caller of those keys is left waiting.
  struct Owned {
    CacheCore* core;
    std::vector<Pending> pending;
    ~Owned() {
      for (Pending& p : pending) {
        if (p.run != nullptr) {
          core->Settle(std::exchange(p.run, nullptr), nullptr, nullptr,
                       BadAllocError());
        }
      }
    }
  } owned{this, {}};
  owned.pending.reserve(keys.size());
  std::vector<std::pair<const K*, V>> found;
  found.reserve(keys.size());
  std::exception_ptr first_error;
  struct KeyPtrHash {
    size_t operator()(const K* k) const { return H{}(*k); }
  };
  struct KeyPtrEq {
    bool operator()(const K* a, const K* b) const { return E{}(*a, *b); }
  };
  // std::unordered_set: an insert that throws changes nothing.
  std::unordered_set<const K*, KeyPtrHash, KeyPtrEq> seen;
  size_t to_run = 0;
  for (const K& key : keys) {
    if (!seen.insert(&key).second) continue;
    const uint64_t h = HashOf(key);
    Shard& s = ShardFor(h);
    const int64_t now = NowNs();
    EpochGuard g;
    const size_t stripe = g.thread_index();
    if (Entry* e = s.index.Find(h, KeyEq(key))) {
      if (const ValueEntry* b = AsValue(e)) {
        if (now < FreshUntil(b)) {
          WindowHit(s, h, b, now, stripe);
          found.emplace_back(&key, b->value);
          continue;
        }
      } else if (const ErrorEntry* x = AsError(e)) {
        if (now < x->expires_ns) {
          OnHit(e, stripe);
          counters_.Add(stripe, kNegativeHits);
          if (!first_error) first_error = x->error;
          continue;
        }
      }
    }
    LoadRef fresh(NewLoad(s, h, key, LoadKind::kBatch, now));
    Decision d = Decide(s, key, h, now, stripe, fresh, /*blocking=*/true,
                        [](Load*, bool) {});
    switch (d.kind) {
      case Decision::kHit:
        found.emplace_back(&key, d.box->value);
        continue;
      case Decision::kNegative:
        if (!first_error) first_error = d.error;
        continue;
      case Decision::kStale:
        counters_.Add(stripe, kStaleLoadFailed);
        found.emplace_back(&key, d.box->value);
        continue;
      case Decision::kStaleSoft:
        counters_.Add(stripe, kStaleSoftTimeout);
        found.emplace_back(&key, d.box->value);
        continue;
      case Decision::kRecursive:
        throw RecursiveCall();
      case Decision::kJoin: {
        LoadRef wait(d.load);
        if (d.extra) ExecuteBound(d.load);  // consumes its reference
        owned.pending.push_back(
            Pending{&key, std::move(wait), d.stale_possible, nullptr});
        continue;
      }
      case Decision::kStart: {
        // The pending slot exists before the reference moves into it:
        // push_back cannot fail after (reserved).
        owned.pending.push_back(
            Pending{&key, LoadRef(d.load), d.stale_possible, d.load});
        ++to_run;
        continue;
      }
    }
  }

  // The keys this call loads: in one batch when a batch loader is bound.
  if (to_run > 0 && batch_loader_) {
    std::vector<K> batch;
    std::vector<LoadFrame> frames;
    std::optional<Map> loaded;
    std::exception_ptr error;
    int64_t start = 0;
    int64_t end = 0;
    try {
      batch.reserve(to_run);
      frames.reserve(to_run);
      for (Pending& p : owned.pending) {
        if (p.run == nullptr) continue;
        batch.push_back(*p.key);
        frames.push_back(
            LoadFrame{p.run, frames.empty() ? load_frames : &frames.back()});
      }
      std::stop_source stop;
      start = NowNs();
      const LoadFrame* saved = load_frames;
      load_frames = &frames.back();
      try {
        loaded.emplace(
            batch_loader_(std::span<const K>(batch), stop.get_token()));
      } catch (...) {
        load_frames = saved;
        throw;
      }
      load_frames = saved;
      end = NowNs();
    } catch (...) {
      error = std::current_exception();
      loaded.reset();
    }
    const int64_t took = end > start ? end - start : 0;
    const size_t stripe = Stripe();
    counters_.Add(stripe, loaded ? kLoadSuccesses : kLoadFailures);
    counters_.Add(stripe, kLoadTimeNs, static_cast<uint64_t>(took));
    for (Pending& p : owned.pending) {
      if (p.run == nullptr) continue;
      Load* l = std::exchange(p.run, nullptr);
      if (!loaded) {
        Settle(l, nullptr, nullptr, error);
        continue;
      }
      auto it = loaded->find(*p.key);
      if (it == loaded->end()) {
        p.missing = true;
        std::exception_ptr absent;
        try {
          absent = std::make_exception_ptr(std::out_of_range(
              "herd::LoadingCache::GetAll: the batch loader returned no "
              "value for this key"));
        } catch (...) {
          absent = BadAllocError();
        }
        Settle(l, nullptr, nullptr, absent);
        continue;
      }
      std::optional<V> value;
      NodePtr<ValueEntry> box;
      std::exception_ptr failed;
      try {
        value.emplace(std::move(it->second));
        box = MakeValue(l->hash, *p.key, *value, end, took);
      } catch (...) {
        if (!value) failed = std::current_exception();
      }
      Settle(l, &value, std::move(box), failed);
    }
  } else if (to_run > 0) {
    for (Pending& p : owned.pending) {
      if (p.run != nullptr) ExecuteBound(std::exchange(p.run, nullptr));
    }
  }

  for (Pending& p : owned.pending) {
    try {
      found.emplace_back(p.key, Await(p.wait.release(), p.stale_possible));
    } catch (...) {
      if (!p.missing && !first_error) first_error = std::current_exception();
    }
  }
  if (first_error) std::rethrow_exception(first_error);
  return BuildMap(found);
}

// A Map of `found`. An absl table whose growth throws std::bad_alloc is
// left unusable (its capacity changes before the allocation), so on that
// failure the map is abandoned, never destroyed. It grows once, from empty,
// so nothing is lost; later inserts move elements into reserved slots. Keys
// are copied outside the table.
template <class K, class V, class H, class E, class P>
auto CacheCore<K, V, H, E, P>::BuildMap(
    std::vector<std::pair<const K*, V>>& found) -> Map {
  alignas(Map) unsigned char storage[sizeof(Map)];
  Map* building = new (storage) Map();
  // One allocation, into an empty table: if it fails, nothing is lost.
  building->reserve(found.size());
  for (auto& [key, value] : found) {
    std::optional<K> copy;
    try {
      copy.emplace(*key);
    } catch (...) {
      building->~Map();  // whole: only the copy failed
      throw;
    }
    // Moves into a reserved slot. A move that throws leaves the table
    // broken: it is then abandoned.
    building->try_emplace(std::move(*copy), std::move(value));
  }
  Map result(std::move(*building));
  building->~Map();
  return result;
}

// ---------------------------------------------------------------------------
// Writes

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::Put(const K& key, V value) {
  const uint64_t h = HashOf(key);
  Shard& s = ShardFor(h);
  const int64_t now = NowNs();
  EpochGuard g;
  // Throws: nothing stored. Inserted as is if the key has no node.
  EntryPtr spare = MakeValue(h, key, std::move(value), now, 0);
  ValueEntry* n = static_cast<ValueEntry*>(spare.get());
  Aftermath after(this);
  Entry* e = LockEntry(s, key, h, &spare);
  AdoptedLock lock(&s.mu);
  if (e != n) {
    if (delta_slot_ >= 0) {
      // A value written by Put keeps the key's last load time (XFetch).
      Aux(n, delta_slot_).store(
          Aux(e, delta_slot_).load(std::memory_order_relaxed),
          std::memory_order_relaxed);
    }
    DetachLocked(s, e, after);  // a load in progress is no longer stored
    spare.release();            // StoreValueLocked takes it
  }
  StoreValueLocked(s, e, n, now, after);
  ExpireLocked(s, now, after);
}

template <class K, class V, class H, class E, class P>
bool CacheCore<K, V, H, E, P>::Invalidate(const K& key) {
  const uint64_t h = HashOf(key);
  Shard& s = ShardFor(h);
  const int64_t now = NowNs();
  EpochGuard g;
  Aftermath after(this);
  Entry* e = LockExisting(s, key, h);
  if (e == nullptr) return false;
  AdoptedLock lock(&s.mu);
  const ValueEntry* b = AsValue(e);
  const ErrorEntry* x = AsError(e);
  const bool fresh = b != nullptr && now < FreshUntil(b);
  const bool had = e->load != nullptr || fresh ||
                   StaleBox(e, now) != nullptr ||
                   (x != nullptr && now < x->expires_ns);
  DetachLocked(s, e, after);
  RemoveEntryLocked(s, e,
                    fresh || b == nullptr ? RemovalCause::kExplicit
                                          : RemovalCause::kExpired,
                    after);
  ExpireLocked(s, now, after);
  return had;
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::InvalidateAll() {
  const int64_t now = NowNs();
  EpochGuard g;
  for (size_t i = 0; i <= shard_mask_; ++i) {
    Shard& s = shards_[i];
    Aftermath after(this);
    MutexLock lock(&s.mu);
    s.index.ClearLocked([&](Entry* e) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      const ValueEntry* b = AsValue(e);
      DetachLocked(s, e, after);
      RemoveEntryLocked(s, e,
                        b == nullptr || now < FreshUntil(b)
                            ? RemovalCause::kExplicit
                            : RemovalCause::kExpired,
                        after, /*erase=*/false);
    });
    ReclaimLocked(s, /*force=*/false, after);
  }
}

template <class K, class V, class H, class E, class P>
template <class T>
T CacheCore<K, V, H, E, P>::SumLive(T Shard::*live) {
  const int64_t now = NowNs();
  EpochGuard g;
  return SumOver<T>(shards_.get(), shard_mask_ + 1, [&](Shard& s, T& sum) {
    Aftermath after(this);
    MutexLock lock(&s.mu);
    ExpireLocked(s, now, after);
    sum += s.*live;
  });
}

template <class K, class V, class H, class E, class P>
size_t CacheCore<K, V, H, E, P>::Size() {
  return SumLive(&Shard::live);
}

template <class K, class V, class H, class E, class P>
uint64_t CacheCore<K, V, H, E, P>::Weight() {
  return SumLive(&Shard::live_weight);
}

template <class K, class V, class H, class E, class P>
void CacheCore<K, V, H, E, P>::CleanUp() {
  const int64_t now = NowNs();
  {
    EpochGuard g;
    for (size_t i = 0; i <= shard_mask_; ++i) {
      Shard& s = shards_[i];
      Aftermath after(this);
      MutexLock lock(&s.mu);
      AdvanceLocked(s, now, after);
      ReclaimLocked(s, /*force=*/true, after);
    }
  }
  // Outside this thread's own epoch section (which would hold the epoch
  // back), free what nobody can reach any more: two advances, then every
  // shard's lists. Not from inside a section (a listener calling CleanUp).
  if (Epoch::Inside()) return;
  Epoch::TryAdvance();
  Epoch::TryAdvance();
  for (size_t i = 0; i <= shard_mask_; ++i) {
    Shard& s = shards_[i];
    Aftermath after(this);
    MutexLock lock(&s.mu);
    ReclaimLocked(s, /*force=*/true, after);
    if (bounded_) {
      s.maintain.store(true, std::memory_order_relaxed);
      after.maintain = true;
    }
  }
}

template <class K, class V, class H, class E, class P>
CacheStats CacheCore<K, V, H, E, P>::Stats() const {
  CacheStats st;
  st.hits = counters_.Sum(kHits);
  st.misses = counters_.Sum(kMisses);
  st.negative_hits = counters_.Sum(kNegativeHits);
  st.load_successes = counters_.Sum(kLoadSuccesses);
  st.load_failures = counters_.Sum(kLoadFailures);
  st.loads = st.load_successes + st.load_failures;
  st.total_load_time_ns = counters_.Sum(kLoadTimeNs);
  st.refreshes = counters_.Sum(kRefreshes);
  st.early_refreshes = counters_.Sum(kEarlyRefreshes);
  st.refresh_failures = counters_.Sum(kRefreshFailures);
  st.stale_refresh_ahead = counters_.Sum(kStaleRefreshAhead);
  st.stale_load_failed = counters_.Sum(kStaleLoadFailed);
  st.stale_soft_timeout = counters_.Sum(kStaleSoftTimeout);
  st.stale_hard_timeout = counters_.Sum(kStaleHardTimeout);
  st.stale_served = st.stale_refresh_ahead + st.stale_load_failed +
                    st.stale_soft_timeout + st.stale_hard_timeout;
  st.evictions = counters_.Sum(kEvictions);
  st.eviction_weight = counters_.Sum(kEvictionWeight);
  st.expirations = counters_.Sum(kExpirations);
  return st;
}

// Binds a loader for the public constructors.
template <class K, class V, class L>
absl::AnyInvocable<V(const K&, std::stop_token)> BindLoader(L loader) {
  static_assert(std::is_invocable_v<L&, const K&, std::stop_token> ||
                    std::is_invocable_v<L&, const K&>,
                "herd::LoadingCache: the loader must be invocable as "
                "Value(const Key&) or Value(const Key&, std::stop_token)");
  if (IsEmptyLoader(loader)) {
    throw std::invalid_argument("herd::LoadingCache: empty loader");
  }
  return [l = std::move(loader)](const K& k, std::stop_token st) mutable -> V {
    if constexpr (std::is_invocable_v<L&, const K&, std::stop_token>) {
      return l(k, std::move(st));
    } else {
      return l(k);
    }
  };
}

template <class K, class V, class H, class E, class L>
absl::AnyInvocable<absl::flat_hash_map<K, V, H, E>(std::span<const K>,
                                                   std::stop_token)>
BindBatchLoader(L loader) {
  using Map = absl::flat_hash_map<K, V, H, E>;
  static_assert(
      std::is_invocable_r_v<Map, L&, std::span<const K>, std::stop_token> ||
          std::is_invocable_r_v<Map, L&, std::span<const K>>,
      "herd::LoadingCache: the batch loader must be invocable as "
      "Map(std::span<const Key>) or Map(std::span<const Key>, "
      "std::stop_token)");
  if (IsEmptyLoader(loader)) {
    throw std::invalid_argument("herd::LoadingCache: empty batch loader");
  }
  return [l = std::move(loader)](std::span<const K> keys,
                                 std::stop_token st) mutable -> Map {
    if constexpr (std::is_invocable_r_v<Map, L&, std::span<const K>,
                                        std::stop_token>) {
      return l(keys, std::move(st));
    } else {
      return l(keys);
    }
  };
}

}  // namespace internal

// ---------------------------------------------------------------------------
// LoadingCache: the public class forwards to its core.

template <class K, class V, class H, class E>
template <class Loader>
LoadingCache<K, V, H, E>::LoadingCache(Options options, Loader loader)
    : core_(std::move(options),
            internal::BindLoader<K, V>(std::move(loader)), {}) {}

template <class K, class V, class H, class E>
template <class Loader, class BatchLoader>
LoadingCache<K, V, H, E>::LoadingCache(Options options, Loader loader,
                                       BatchLoader batch_loader)
    : core_(std::move(options),
            internal::BindLoader<K, V>(std::move(loader)),
            internal::BindBatchLoader<K, V, H, E>(std::move(batch_loader))) {}

template <class K, class V, class H, class E>
LoadingCache<K, V, H, E>::LoadingCache(Options options)
    : core_(std::move(options), {}, {}) {}

template <class K, class V, class H, class E>
LoadingCache<K, V, H, E>::~LoadingCache() = default;

template <class K, class V, class H, class E>
V LoadingCache<K, V, H, E>::Get(const K& key) {
  return core_.Get(key);
}

template <class K, class V, class H, class E>
template <class L>
V LoadingCache<K, V, H, E>::Get(const K& key, L&& loader) {
  static_assert(internal::IsCallLoader<K, std::remove_reference_t<L>>,
                "herd::LoadingCache::Get: the loader must be invocable as "
                "Value(), Value(std::stop_token), Value(const Key&) or "
                "Value(const Key&, std::stop_token)");
  if (internal::IsEmptyLoader(loader)) {
    throw std::invalid_argument("herd::LoadingCache::Get: empty loader");
  }
  return core_.GetWith(key, loader);
}

template <class K, class V, class H, class E>
std::shared_future<V> LoadingCache<K, V, H, E>::GetAsync(const K& key) {
  return core_.GetAsync(key);
}

template <class K, class V, class H, class E>
template <class Cb>
void LoadingCache<K, V, H, E>::GetThen(const K& key, Cb&& callback) {
  static_assert(
      std::is_invocable_v<std::decay_t<Cb>&&, const V*, std::exception_ptr>,
      "herd::LoadingCache::GetThen: the callback must be invocable as "
      "void(const Value*, std::exception_ptr)");
  core_.GetThen(key, Callback(std::forward<Cb>(callback)));
}

template <class K, class V, class H, class E>
auto LoadingCache<K, V, H, E>::GetAll(std::span<const K> keys) -> Map {
  return core_.GetAll(keys);
}

template <class K, class V, class H, class E>
std::shared_future<V> LoadingCache<K, V, H, E>::Refresh(const K& key) {
  return core_.Refresh(key);
}

template <class K, class V, class H, class E>
std::optional<V> LoadingCache<K, V, H, E>::GetIfPresent(const K& key) {
  return core_.GetIfPresent(key);
}

template <class K, class V, class H, class E>
void LoadingCache<K, V, H, E>::Put(const K& key, V value) {
  core_.Put(key, std::move(value));
}

template <class K, class V, class H, class E>
bool LoadingCache<K, V, H, E>::Invalidate(const K& key) {
  return core_.Invalidate(key);
}

template <class K, class V, class H, class E>
void LoadingCache<K, V, H, E>::InvalidateAll() {
  core_.InvalidateAll();
}

template <class K, class V, class H, class E>
void LoadingCache<K, V, H, E>::InvalidateAll(std::span<const K> keys) {
  for (const K& key : keys) core_.Invalidate(key);
}

template <class K, class V, class H, class E>
size_t LoadingCache<K, V, H, E>::Size() const {
  return const_cast<decltype(core_)&>(core_).Size();
}

template <class K, class V, class H, class E>
uint64_t LoadingCache<K, V, H, E>::Weight() const {
  return const_cast<decltype(core_)&>(core_).Weight();
}

template <class K, class V, class H, class E>
void LoadingCache<K, V, H, E>::CleanUp() {
  core_.CleanUp();
}

template <class K, class V, class H, class E>
CacheStats LoadingCache<K, V, H, E>::Stats() const {
  return core_.Stats();
}

}  // namespace herd

#endif  // HERD_INTERNAL_LOADING_CACHE_IMPL_H_
