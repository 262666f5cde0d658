// Copyright 2026 The herd Authors.
//
// herd/share.h: request coalescing. Threads that ask for the same key at the
// same moment share one execution of the loader.
//
//   herd::Share<Key, Value>  the coalescing map of in-progress loads
//   herd::ShareOptions       extra executions, maximum flight age, shards
//   herd::ForgetMode         what Forget() does to an in-progress flight
//   herd::ShareStats         counters, from Share::Stats()
//   herd::CallInfo           per-call outcome: did this call share a result?
//
// Example:
//
//   herd::Share<int64_t, User> users;
//   // On any number of threads at once:
//   User u = users.Do(id, [&] { return db.LoadUser(id); });
//
// The first caller of a key (the leader) runs the loader on its own thread.
// Callers that arrive while that *flight* is in progress block until it
// ends and return a copy of the same value, or rethrow the same exception:
// whatever the loader threw, type and payload intact. When the flight ends
// its key is removed: Share caches nothing (see herd/loading_cache.h for a
// cache built on it).
//
// Cost: a flight nobody joins lives on its leader's stack and allocates
// nothing (its map entry aside: a Key that allocates when copied, such as a
// long std::string, allocates once). The shared state that callers wait on
// is allocated when a second party first joins the flight. A joining caller
// spins for about a microsecond, then sleeps on a futex (Linux) that the
// flight's end wakes all at once.
//
// A loader is invocable as `Value()` or as `Value(std::stop_token)`. The token
// reports stop_requested() once the flight is cancelled (Cancel, CancelAll),
// which is how a long query learns it should give up.
//
// Thread safety: Share has internal synchronization and may be safely
// accessed concurrently from multiple threads. No lock is held while a
// loader, or any other user code, runs.
//
// Memory ordering: everything the thread that produced a flight's result did
// before its loader returned is visible to every caller of that flight after
// its call returns.
//
// Exception safety: a loader's exception reaches every caller of the flight
// (when extra executions race, only once all of them have failed). herd's own
// refusals are herd::Error subclasses (herd/errors.h). Invalid arguments
// throw std::invalid_argument before anything is registered. No error leaves
// a flight behind or a caller blocked.
//
// Deadlocks: a loader that calls Do() on the Share running it, for the key it
// is loading, on the same thread, gets herd::RecursiveCall. Cycles through
// other keys or other threads (A's loader waits on B, whose loader waits on
// A) are not detected; bound them with DoFor() or a cancellable loader.

#ifndef HERD_SHARE_H_
#define HERD_SHARE_H_

#include <atomic>
#include <chrono>
#include <climits>
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
#include "absl/hash/hash.h"
#include "herd/clock.h"
#include "herd/errors.h"
#include "herd/internal/invoke.h"

// Waiters sleep on a futex where there is one; elsewhere on a condition
// variable. Defining HERD_INTERNAL_FUTEX=0 forces the portable path.
#if !defined(HERD_INTERNAL_FUTEX)
#if defined(__linux__)
#define HERD_INTERNAL_FUTEX 1
#else
#define HERD_INTERNAL_FUTEX 0
#endif
#endif
#if HERD_INTERNAL_FUTEX
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#endif

namespace herd {

// What Forget() does to the flight of a key.
enum class ForgetMode {
  // Callers arriving afterwards start a new flight; the old flight's callers
  // still get the old flight's outcome.
  kDetach,
  // The next caller of the key runs the loader again, as an extra execution
  // of the same flight: every caller, old and new, gets the first successful
  // result. Rescues a batch stuck behind a hung execution.
  kRerun,
};

struct ShareOptions {
  // Probability that a caller who finds a flight in progress also runs the
  // loader (an extra execution). Executions of one flight race: the first
  // success completes it for everyone. REQUIRES: 0 <= rate <= 1.
  double extra_execution_rate = 0.0;

  // When positive, a flight older than this is detached when the next caller
  // arrives: that caller starts a new flight, and the old flight's callers
  // still get its outcome. Zero disables it. REQUIRES: >= 0.
  std::chrono::nanoseconds max_flight_age{0};

  // Number of independently locked shards of the flight map, rounded up to a
  // power of two. Zero picks a default suited to a small machine.
  size_t shards = 0;

  // Time source for max_flight_age; nullptr means Clock::Steady(). Must
  // outlive the Share.
  const Clock* clock = nullptr;
};

// Counters since construction. Each is exact, but Stats() reads the shards
// one after another, so a snapshot taken under load is not atomic.
struct ShareStats {
  uint64_t calls = 0;             // calls of Do, DoFor and DoAsync, on entry
  uint64_t executions = 0;        // loader executions started, extras included
  uint64_t shared = 0;            // calls that returned a value they did not
                                  // execute
  uint64_t extra_executions = 0;  // sampled, Release()d or kRerun executions
  uint64_t failures = 0;          // executions that threw
  uint64_t cancellations = 0;     // flights cancelled by Cancel / CancelAll
  uint64_t timeouts = 0;          // DoFor waits that gave up (WaitTimeout)
};

// Filled in by Do() and DoFor() when the caller passes one.
struct CallInfo {
  bool executed = false;  // this call ran the loader
  bool shared = false;    // the value returned was produced by another call
};

namespace internal {

inline void CpuRelax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

#if HERD_INTERNAL_FUTEX
// Sleeps while *word == expected, until woken, or until `abs_deadline`
// (CLOCK_MONOTONIC, the clock of std::chrono::steady_clock) when not null.
// Returns false iff the deadline passed. May return spuriously.
inline bool FutexWait(std::atomic<uint32_t>* word, uint32_t expected,
                      const timespec* abs_deadline) noexcept {
  const long rc = syscall(SYS_futex, reinterpret_cast<uint32_t*>(word),
                          FUTEX_WAIT_BITSET_PRIVATE, expected, abs_deadline,
                          nullptr, FUTEX_BITSET_MATCH_ANY);
  return rc == 0 || errno != ETIMEDOUT;
}

inline void FutexWake(std::atomic<uint32_t>* word, int n) noexcept {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, n,
          nullptr, nullptr, 0);
}
#endif

// The lock of a Share shard. Its critical sections are a few dozen
// nanoseconds of map work, taken twice by every call, so it is built for
// that: one compare-and-swap to take it, one exchange to release it (glibc's
// pthread_mutex pays about 110 instructions for the two), a short spin when
// it is taken, then a futex sleep, so a thread preempted while holding it
// costs the others no CPU. Not recursive, no deadlock detection; elsewhere
// than Linux it is a std::mutex.
class ABSL_LOCKABLE ShardMutex {
 public:
  ShardMutex() = default;
  ShardMutex(const ShardMutex&) = delete;
  ShardMutex& operator=(const ShardMutex&) = delete;

#if HERD_INTERNAL_FUTEX
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    uint32_t expected = kFree;
    if (!word_.compare_exchange_strong(expected, kLocked,
                                       std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
      LockSlow();
    }
  }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    if (word_.exchange(kFree, std::memory_order_release) == kSleepers) {
      FutexWake(&word_, 1);
    }
  }

 private:
  static constexpr uint32_t kFree = 0;
  static constexpr uint32_t kLocked = 1;
  static constexpr uint32_t kSleepers = 2;  // locked, and a thread may sleep
  static constexpr int kSpins = 40;

  void LockSlow() {
    for (int i = 0; i < kSpins; ++i) {
      CpuRelax();
      uint32_t w = word_.load(std::memory_order_relaxed);
      if (w == kFree &&
          word_.compare_exchange_weak(w, kLocked, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
        return;
      }
    }
    // Whoever takes the lock from here on marks it kSleepers, so that its
    // Unlock wakes the next sleeper.
    while (word_.exchange(kSleepers, std::memory_order_acquire) != kFree) {
      FutexWait(&word_, kSleepers, nullptr);
    }
  }

  std::atomic<uint32_t> word_{kFree};
#else
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

 private:
  std::mutex mu_;
#endif
};

class ABSL_SCOPED_LOCKABLE ShardLock {
 public:
  explicit ShardLock(ShardMutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu)
      : mu_(mu) {
    mu_->Lock();
  }
  ShardLock(const ShardLock&) = delete;
  ShardLock& operator=(const ShardLock&) = delete;
  ~ShardLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }

 private:
  ShardMutex* const mu_;
};

// Gives every allocation whole cache lines of its own, so that two shards'
// small tables (a few dozen bytes each) never share a line that two
// threads on different shards would then both write.
template <class T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::size_t kLine = 64;

  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) noexcept {}

  static std::size_t Bytes(std::size_t n) {
    return (n * sizeof(T) + kLine - 1) / kLine * kLine;
  }
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new (Bytes(n), std::align_val_t{kLine}));
  }
  // Unsized: clang 14 declares sized deallocation only under
  // -fsized-deallocation.
  void deallocate(T* p, std::size_t) noexcept {
    ::operator delete (p, std::align_val_t{kLine});
  }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const noexcept {
    return true;
  }
};

// A one-shot event that any number of threads wait for: Set() once, and
// every Wait() returns. Everything the setter did before Set() is visible to
// a waiter after Wait() returns true. Waiters spin briefly (a flight of a
// fast loader often ends within a microsecond), then sleep in the kernel
// (a futex on Linux), and Set() wakes them all with one system call, and
// only when one is asleep.
class OnceEvent {
 public:
  OnceEvent() = default;
  OnceEvent(const OnceEvent&) = delete;
  OnceEvent& operator=(const OnceEvent&) = delete;

  bool IsSet() const noexcept {
    return word_.load(std::memory_order_acquire) == kSet;
  }

  // REQUIRES: called at most once.
  void Set() noexcept {
#if HERD_INTERNAL_FUTEX
    if (word_.exchange(kSet, std::memory_order_release) == kSleepers) {
      FutexWake(&word_, INT_MAX);
    }
#else
    {
      std::lock_guard<std::mutex> lock(mu_);
      word_.store(kSet, std::memory_order_release);
    }
    cv_.notify_all();
#endif
  }

  void Wait() noexcept { WaitUntil(nullptr); }

  // Returns true iff the event was set before `deadline` (steady clock).
  bool WaitUntil(std::chrono::steady_clock::time_point deadline) noexcept {
    return WaitUntil(&deadline);
  }

 private:
  static constexpr uint32_t kUnset = 0;
  static constexpr uint32_t kSleepers = 1;  // unset, and a waiter may sleep
  static constexpr uint32_t kSet = 2;
  // A microsecond or two on current x86.
  static constexpr int kSpins = 64;

  bool WaitUntil(
      const std::chrono::steady_clock::time_point* deadline) noexcept {
    for (int i = 0; i < kSpins; ++i) {
      if (IsSet()) return true;
      CpuRelax();
    }
#if HERD_INTERNAL_FUTEX
    timespec abs{};
    if (deadline != nullptr) {
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          deadline->time_since_epoch())
                          .count();
      if (ns <= 0) return IsSet();
      abs.tv_sec = static_cast<time_t>(ns / 1000000000);
      abs.tv_nsec = static_cast<long>(ns % 1000000000);
    }
    uint32_t w = word_.load(std::memory_order_acquire);
    while (w != kSet) {
      if (w == kUnset && !word_.compare_exchange_weak(
                             w, kSleepers, std::memory_order_acquire)) {
        continue;  // w reloaded
      }
      if (!FutexWait(&word_, kSleepers, deadline != nullptr ? &abs : nullptr)) {
        return IsSet();
      }
      w = word_.load(std::memory_order_acquire);
    }
    return true;
#else
    std::unique_lock<std::mutex> lock(mu_);
    const auto set = [&] { return IsSet(); };
    if (deadline == nullptr) {
      cv_.wait(lock, set);
      return true;
    }
    return cv_.wait_until(lock, *deadline, set);
#endif
  }

  std::atomic<uint32_t> word_{kUnset};
#if !HERD_INTERNAL_FUTEX
  std::mutex mu_;
  std::condition_variable cv_;
#endif
};

}  // namespace internal

template <class Key, class Value, class Hash = absl::Hash<Key>,
          class Eq = std::equal_to<Key>>
class Share {
  static_assert(std::is_copy_constructible_v<Value>,
                "herd::Share: Value must be copy constructible: every caller "
                "of a flight receives a copy");

 public:
  using key_type = Key;
  using value_type = Value;

  // Throws: std::invalid_argument if options.extra_execution_rate is NaN or
  // outside [0, 1], or options.max_flight_age is negative.
  explicit Share(ShareOptions options = {});
  Share(const Share&) = delete;
  Share& operator=(const Share&) = delete;

  // Waits for executions started by DoAsync() to finish. REQUIRES: no other
  // thread is inside a member function.
  ~Share();

  // Returns the value of `key`'s flight, starting one (running `loader` on
  // this thread) when none is in progress. Callers that join a flight block
  // until it completes, with no time limit; see DoFor().
  // Throws: whatever the flight's loader threw; herd::Cancelled if the flight
  // was cancelled; herd::RecursiveCall (see above); std::invalid_argument if
  // `loader` is an empty std::function or a null pointer.
  template <class Loader>
  Value Do(const Key& key, Loader&& loader, CallInfo* info = nullptr) {
    return Run(key, loader, std::nullopt, info);
  }

  // As Do(), but a caller that waits on a flight someone else is running
  // gives up after `timeout` (real time) with herd::WaitTimeout; the flight
  // goes on for everyone else. A caller that runs the loader itself is not
  // interrupted: to bound it, write the loader to honour its
  // std::stop_token and use herd::WithDeadline (herd/deadline.h).
  // Throws: as Do(); herd::WaitTimeout; std::invalid_argument if timeout < 0.
  template <class Rep, class Period, class Loader>
  Value DoFor(const Key& key, std::chrono::duration<Rep, Period> timeout,
              Loader&& loader, CallInfo* info = nullptr) {
    if (timeout < timeout.zero()) {
      throw std::invalid_argument("herd::Share::DoFor: negative timeout");
    }
    return Run(
        key, loader,
        std::chrono::steady_clock::now() +
            std::chrono::ceil<std::chrono::steady_clock::duration>(timeout),
        info);
  }

  // Returns the future of `key`'s flight without blocking. When none is in
  // progress, registers one before returning and schedules `loader` (moved
  // or copied into the task) with `executor.Schedule(callable)`; any type
  // with such a member works, herd::ThreadPool for one. Async callers never
  // run extra executions.
  // Throws: std::invalid_argument for an empty loader; whatever
  // executor.Schedule throws (the flight is then completed with that
  // exception, so no caller is left waiting).
  template <class Loader, class Executor>
  std::shared_future<Value> DoAsync(const Key& key, Loader&& loader,
                                    Executor& executor);

  // Detaches `key`'s flight (kDetach) or lets the next caller rerun it
  // (kRerun); see ForgetMode. Returns true iff `key` had a flight.
  bool Forget(const Key& key, ForgetMode mode = ForgetMode::kDetach);

  // Lets the next caller who joins `key`'s flight run one extra execution.
  // Calls add up. Returns true iff `key` had a flight.
  bool Release(const Key& key);

  // Cancels `key`'s flight: every caller waiting on it throws
  // herd::Cancelled at once, the loaders' std::stop_token reports
  // stop_requested(), their results are dropped when they return (their
  // callers throw herd::Cancelled too), and the key is free for a new flight
  // at once. Returns true iff `key` had a flight.
  bool Cancel(const Key& key);

  // Cancel() for every flight. Returns the number cancelled.
  size_t CancelAll();

  // Number of keys with a flight in progress (detached flights not counted).
  size_t InFlight() const;

  ShareStats Stats() const;

 private:
  // A key and its hash, so that the shard pick and every probe of the shard's
  // map share one hash computation.
  struct Probe {
    const Key* key;
    size_t hash;
  };
  // The map's key: a Key, constructible from a Probe so that try_emplace
  // copies the key only when it inserts.
  struct StoredKey {
    explicit StoredKey(const Probe& p) : key(*p.key) {}
    Key key;
  };
  struct MapHash {
    using is_transparent = void;
    size_t operator()(const StoredKey& k) const { return Hash{}(k.key); }
    size_t operator()(const Probe& p) const { return p.hash; }
  };
  struct MapEq {
    using is_transparent = void;
    bool operator()(const StoredKey& a, const StoredKey& b) const {
      return Eq{}(a.key, b.key);
    }
    bool operator()(const StoredKey& a, const Probe& b) const {
      return Eq{}(a.key, *b.key);
    }
    bool operator()(const Probe& a, const StoredKey& b) const {
      return Eq{}(*a.key, b.key);
    }
  };

  struct HeapFlight;

  // One flight. A blocking leader's flight lives in its Run() frame and
  // costs no allocation; the first second party (a waiter, an extra
  // execution, an async caller) moves it to a HeapFlight, which is also the
  // shared state that waiters block on. Flights made by DoAsync start on
  // the heap.
  struct Flight {
    explicit Flight(bool heap) : on_heap(heap) {}

    // State below is protected by the shard's mu.
    Clock::time_point started{};  // set only when max_flight_age is on
    int running = 0;              // executions not yet settled
    int extra_credits = 0;        // from Release() and kRerun
    bool in_map = true;           // the key's current flight
    bool done = false;            // outcome decided
    bool cancelled = false;
    const bool on_heap;  // this is a HeapFlight
    std::stop_source stop{std::nostopstate};

    // A stack flight: the heap flight it moved to. Written under mu, read
    // without it by the RecursiveCall check (which only compares it).
    std::atomic<HeapFlight*> moved_to{nullptr};
  };

  struct HeapFlight : Flight {
    HeapFlight() : Flight(/*heap=*/true) {}

    // Guarded by the shard's mu, as Flight's state.
    std::exception_ptr first_error;
    std::optional<std::promise<Value>> promise;  // once DoAsync wants one
    std::shared_future<Value> future;

    // Parties that may still touch the flight outside the lock: running
    // executions, waiters, a cancel being finished. The last one to drop
    // its reference deletes the flight.
    std::atomic<int> refs{0};
    // The outcome: written once, by whoever decided it (the execution that
    // completed the flight, or Cancel), before `ready` is set.
    std::optional<Value> value;
    std::exception_ptr error;
    internal::OnceEvent ready;
  };

  struct alignas(64) Shard {
    internal::ShardMutex mu;
    absl::flat_hash_map<
        StoredKey, Flight*, MapHash, MapEq,
        internal::CacheLineAllocator<std::pair<const StoredKey, Flight*>>>
        flights ABSL_GUARDED_BY(mu);
    // Counters below calls/executions are guarded by mu; the two updated
    // after a wait are atomic so that waking waiters take no lock.
    uint64_t calls ABSL_GUARDED_BY(mu) = 0;
    uint64_t executions ABSL_GUARDED_BY(mu) = 0;
    uint64_t extra_executions ABSL_GUARDED_BY(mu) = 0;
    uint64_t failures ABSL_GUARDED_BY(mu) = 0;
    uint64_t cancellations ABSL_GUARDED_BY(mu) = 0;
    std::atomic<uint64_t> shared{0};
    std::atomic<uint64_t> timeouts{0};
  };
  using Map = decltype(Shard::flights);

  // One entry per execution running on this thread, innermost first, for
  // RecursiveCall detection.
  struct Frame {
    const Flight* flight;
    const Frame* prev;
  };
  static inline thread_local const Frame* frames_ = nullptr;

  // What a caller must do after its execution settled.
  struct Settlement {
    enum Kind { kReturnOwn, kWait, kThrowCancelled, kThrow } kind;
    HeapFlight* wait_on;       // kWait, with the caller's reference
    std::exception_ptr error;  // kThrow
  };

  using Deadline = std::optional<std::chrono::steady_clock::time_point>;

  template <class Loader>
  static void CheckLoader(const Loader& loader);

  Probe ProbeFor(const Key& key) const { return Probe{&key, Hash{}(key)}; }

  Shard& ShardFor(const Probe& probe) const {
    if (shard_mask_ == 0) return shards_[0];
    // High bits pick the shard; flat_hash_map uses the low ones.
    return shards_[(probe.hash >> 32) & shard_mask_];
  }

  template <class Loader>
  Value Run(const Key& key, Loader& loader, Deadline deadline, CallInfo* info);

  template <class Loader>
  Value Execute(Shard& shard, const Probe& probe, Flight* flight,
                std::stop_token stop, Loader& loader, Deadline deadline,
                CallInfo* info);

  // Runs one execution of `flight` and returns its result or exception.
  template <class Loader>
  static void Invoke(const Flight* flight, Loader& loader, std::stop_token stop,
                     std::optional<Value>* value, std::exception_ptr* error);

  // Records the end of one execution of `flight` (a value in `*value`, or
  // `error`), completes the flight when that decides it, and says what the
  // execution's caller gets. Drops the execution's reference unless the
  // caller must wait.
  Settlement Settle(Shard& shard, const Probe& probe, Flight* flight,
                    std::optional<Value>* value, std::exception_ptr error)
      ABSL_LOCKS_EXCLUDED(shard.mu);

  // Makes `flight` (new, not yet in the map) the key's flight with one
  // execution running.
  void StartLocked(Shard& shard, Flight* flight)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  // The heap flight behind `it`, moving a stack flight to the heap first.
  // Throws: std::bad_alloc, with nothing changed.
  static HeapFlight* ShareLocked(Shard& shard, typename Map::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  // The stop token for an execution of `flight` by a Loader; gives the
  // flight a stop state on first need.
  template <class Loader>
  static std::stop_token TokenForLocked(Flight* flight);

  static void EnsureFutureLocked(HeapFlight* flight);

  // Removes `flight` from the map if it is still `key`'s current flight. A
  // flight that was detached never touches its successor (Go issue 31420).
  static void UnmapLocked(Shard& shard, const Probe& probe, Flight* flight)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  bool TooOldLocked(const Flight* flight) const;

  bool SampleExtraExecution() const;

  static void Unref(HeapFlight* flight) {
    if (flight->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      delete flight;
    }
  }

  // Waits for heap flight `flight`'s outcome, consuming the caller's
  // reference.
  static Value Await(Shard& shard, HeapFlight* flight, Deadline deadline,
                     CallInfo* info);

  // Detaches `flight` from the map and marks it cancelled. Returns what must
  // be signalled outside the lock.
  struct CancelWork {
    std::stop_source stop{std::nostopstate};
    std::optional<std::promise<Value>> promise;
    HeapFlight* flight = nullptr;  // with a reference
  };
  static CancelWork CancelLocked(Shard& shard, Flight* flight)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  static void FinishCancel(CancelWork& work);

  const ShareOptions options_;
  const Clock& clock_;
  const size_t shard_mask_;
  const std::unique_ptr<Shard[]> shards_;

  // Executions scheduled by DoAsync that have not finished; the destructor
  // waits for zero.
  std::mutex async_mu_;
  std::condition_variable async_done_;
  size_t async_pending_ = 0;  // guarded by async_mu_
};

// ---------------------------------------------------------------------------
// Implementation details follow.

namespace internal {

template <class T>
struct IsStdFunction : std::false_type {};
template <class Sig>
struct IsStdFunction<std::function<Sig>> : std::true_type {};

inline size_t ShardCount(size_t requested) {
  size_t n = requested == 0 ? 16 : requested;
  size_t p = 1;
  while (p < n && p < (size_t{1} << 16)) p <<= 1;
  return p;
}

}  // namespace internal

template <class K, class V, class H, class E>
Share<K, V, H, E>::Share(ShareOptions options)
    : options_(options),
      clock_(options.clock != nullptr ? *options.clock : Clock::Steady()),
      shard_mask_(internal::ShardCount(options.shards) - 1),
      shards_(new Shard[shard_mask_ + 1]) {
  if (!(options.extra_execution_rate >= 0.0 &&
        options.extra_execution_rate <= 1.0)) {  // false for NaN too
    throw std::invalid_argument(
        "herd::ShareOptions: extra_execution_rate must be in [0, 1]");
  }
  if (options.max_flight_age < std::chrono::nanoseconds::zero()) {
    throw std::invalid_argument(
        "herd::ShareOptions: max_flight_age must be >= 0");
  }
}

template <class K, class V, class H, class E>
Share<K, V, H, E>::~Share() {
  std::unique_lock<std::mutex> lock(async_mu_);
  async_done_.wait(lock, [&] { return async_pending_ == 0; });
}

template <class K, class V, class H, class E>
template <class Loader>
void Share<K, V, H, E>::CheckLoader(const Loader& loader) {
  static_assert(internal::IsLoader<Loader&>,
                "herd::Share: the loader must be invocable as Value() or "
                "Value(std::stop_token)");
  static_assert(std::is_convertible_v<internal::LoaderResult<Loader&>, V>,
                "herd::Share: the loader must return the Share's Value");
  using L = std::remove_cvref_t<Loader>;
  if constexpr (internal::IsStdFunction<L>::value || std::is_pointer_v<L>) {
    if (!loader) throw std::invalid_argument("herd::Share: empty loader");
  }
}

template <class K, class V, class H, class E>
bool Share<K, V, H, E>::TooOldLocked(const Flight* flight) const {
  return options_.max_flight_age > std::chrono::nanoseconds::zero() &&
         clock_.Now() - flight->started >= options_.max_flight_age;
}

template <class K, class V, class H, class E>
bool Share<K, V, H, E>::SampleExtraExecution() const {
  const double p = options_.extra_execution_rate;
  if (p <= 0.0) return false;
  if (p >= 1.0) return true;
  thread_local std::minstd_rand gen{std::random_device{}()};
  return std::bernoulli_distribution(p)(gen);
}

template <class K, class V, class H, class E>
void Share<K, V, H, E>::StartLocked(Shard& shard, Flight* flight) {
  flight->running = 1;
  if (options_.max_flight_age > std::chrono::nanoseconds::zero()) {
    flight->started = clock_.Now();
  }
  ++shard.executions;
}

template <class K, class V, class H, class E>
auto Share<K, V, H, E>::ShareLocked(Shard& shard, typename Map::iterator it)
    -> HeapFlight* {
  (void)shard;  // for the lock annotation
  Flight* flight = it->second;
  if (flight->on_heap) return static_cast<HeapFlight*>(flight);
  // `flight` is in the map, so it is neither done nor cancelled, and its
  // leader is its only execution.
  auto heap = std::make_unique<HeapFlight>();
  heap->started = flight->started;
  heap->running = flight->running;
  heap->extra_credits = flight->extra_credits;
  heap->stop = flight->stop;  // shares the stop state the leader's token uses
  heap->refs.store(flight->running, std::memory_order_relaxed);
  flight->moved_to.store(heap.get(), std::memory_order_relaxed);
  it->second = heap.get();
  return heap.release();
}

template <class K, class V, class H, class E>
template <class Loader>
std::stop_token Share<K, V, H, E>::TokenForLocked(Flight* flight) {
  if constexpr (std::is_invocable_v<Loader&, std::stop_token>) {
    // Only ever set while the lock is held and before any execution of the
    // flight holds a token from it.
    if (!flight->stop.stop_possible()) flight->stop = std::stop_source();
    return flight->stop.get_token();
  } else {
    return {};
  }
}

template <class K, class V, class H, class E>
void Share<K, V, H, E>::EnsureFutureLocked(HeapFlight* flight) {
  if (!flight->promise.has_value()) {
    flight->promise.emplace();
    flight->future = flight->promise->get_future().share();
  }
}

template <class K, class V, class H, class E>
void Share<K, V, H, E>::UnmapLocked(Shard& shard, const Probe& probe,
                                    Flight* flight) {
  if (!flight->in_map) return;
  flight->in_map = false;
  auto it = shard.flights.find(probe);
  if (it != shard.flights.end() && it->second == flight) {
    shard.flights.erase(it);
  }
}

template <class K, class V, class H, class E>
template <class Loader>
V Share<K, V, H, E>::Run(const K& key, Loader& loader, Deadline deadline,
                         CallInfo* info) {
  CheckLoader(loader);
  const Probe probe = ProbeFor(key);
  Shard& shard = ShardFor(probe);
  Flight local(/*heap=*/false);   // the flight, if this call starts one
  Flight* flight = nullptr;       // the flight this call executes
  HeapFlight* wait_on = nullptr;  // or the one it waits on, with a reference
  std::stop_token stop;
  {
    internal::ShardLock lock(&shard.mu);
    ++shard.calls;
    auto [it, inserted] = shard.flights.try_emplace(probe, &local);
    if (!inserted) {
      const Flight* current = it->second;
      for (const Frame* f = frames_; f != nullptr; f = f->prev) {
        if (f->flight == current ||
            f->flight->moved_to.load(std::memory_order_relaxed) == current) {
          throw RecursiveCall();
        }
      }
    }
    if (inserted || TooOldLocked(it->second)) {
      try {
        stop = TokenForLocked<Loader>(&local);  // may allocate a stop state
      } catch (...) {
        if (inserted) shard.flights.erase(it);
        throw;
      }
      if (!inserted) {
        it->second->in_map = false;  // its executions still complete it
        it->second = &local;
      }
      StartLocked(shard, &local);
      flight = &local;
    } else {
      HeapFlight* current = ShareLocked(shard, it);
      if (current->extra_credits > 0 || SampleExtraExecution()) {
        // Two executions: whichever settles second may wait on the other.
        stop = TokenForLocked<Loader>(current);
        if (current->extra_credits > 0) --current->extra_credits;
        flight = current;
        ++flight->running;
        ++shard.executions;
        ++shard.extra_executions;
      } else {
        wait_on = current;
      }
      current->refs.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (flight != nullptr) {
    return Execute(shard, probe, flight, std::move(stop), loader, deadline,
                   info);
  }
  return Await(shard, wait_on, deadline, info);
}

template <class K, class V, class H, class E>
template <class Loader>
V Share<K, V, H, E>::Execute(Shard& shard, const Probe& probe, Flight* flight,
                             std::stop_token stop, Loader& loader,
                             Deadline deadline, CallInfo* info) {
  if (info != nullptr) info->executed = true;
  std::optional<V> value;
  std::exception_ptr error;
  Invoke(flight, loader, std::move(stop), &value, &error);
  Settlement s = Settle(shard, probe, flight, &value, std::move(error));
  switch (s.kind) {
    case Settlement::kReturnOwn:
      return std::move(*value);
    case Settlement::kThrowCancelled:
      throw Cancelled();
    case Settlement::kThrow:
      std::rethrow_exception(s.error);
    case Settlement::kWait:
      break;
  }
  return Await(shard, s.wait_on, deadline, info);
}

template <class K, class V, class H, class E>
template <class Loader>
void Share<K, V, H, E>::Invoke(const Flight* flight, Loader& loader,
                               std::stop_token stop, std::optional<V>* value,
                               std::exception_ptr* error) {
  const Frame frame{flight, frames_};
  frames_ = &frame;
  try {
    value->emplace(internal::InvokeLoader(loader, std::move(stop)));
  } catch (...) {
    *error = std::current_exception();
  }
  frames_ = frame.prev;
}

template <class K, class V, class H, class E>
auto Share<K, V, H, E>::Settle(Shard& shard, const Probe& probe, Flight* flight,
                               std::optional<V>* value,
                               std::exception_ptr error) -> Settlement {
  Settlement result{Settlement::kReturnOwn, nullptr, {}};
  std::optional<std::promise<V>> promise;
  HeapFlight* heap;
  bool decided = false;  // this execution decided the flight's outcome
  {
    internal::ShardLock lock(&shard.mu);
    if (error) ++shard.failures;
    if (flight->on_heap) {
      heap = static_cast<HeapFlight*>(flight);
    } else if ((heap = flight->moved_to.load(std::memory_order_relaxed)) ==
               nullptr) {
      // A stack flight nobody joined: it ends with its only execution, and
      // nobody else can see it any more.
      if (flight->cancelled) return {Settlement::kThrowCancelled, nullptr, {}};
      UnmapLocked(shard, probe, flight);
      if (error) return {Settlement::kThrow, nullptr, std::move(error)};
      return result;
    }
    --heap->running;
    if (heap->cancelled) {
      result.kind = Settlement::kThrowCancelled;
    } else if (heap->done) {
      // Another execution won; this one's result is dropped.
      result.kind = Settlement::kWait;
    } else if (!error) {
      heap->done = true;
      decided = true;
      UnmapLocked(shard, probe, heap);
      promise = std::move(heap->promise);
    } else {
      if (!heap->first_error) heap->first_error = error;
      if (heap->running > 0) {
        // Another execution may still succeed: wait for the flight.
        result.kind = Settlement::kWait;
      } else {
        heap->done = true;
        decided = true;
        UnmapLocked(shard, probe, heap);
        promise = std::move(heap->promise);
        result.kind = Settlement::kThrow;
        result.error = heap->first_error;
      }
    }
  }
  if (decided) {
    // Nobody reads the outcome before `ready` is set, and nobody else
    // writes it: the decision was taken once, under the lock.
    if (result.kind == Settlement::kThrow) {
      heap->error = result.error;
    } else {
      heap->value.emplace(**value);
    }
    heap->ready.Set();
    if (promise.has_value()) {
      if (result.kind == Settlement::kThrow) {
        promise->set_exception(result.error);
      } else {
        promise->set_value(**value);
      }
    }
  }
  if (result.kind == Settlement::kWait) {
    result.wait_on = heap;  // keeps this execution's reference
  } else {
    Unref(heap);
  }
  return result;
}

template <class K, class V, class H, class E>
V Share<K, V, H, E>::Await(Shard& shard, HeapFlight* flight, Deadline deadline,
                           CallInfo* info) {
  struct Release {
    HeapFlight* flight;
    ~Release() { Unref(flight); }
  } release{flight};
  if (deadline.has_value()) {
    if (!flight->ready.WaitUntil(*deadline)) {
      shard.timeouts.fetch_add(1, std::memory_order_relaxed);
      throw WaitTimeout();
    }
  } else {
    flight->ready.Wait();
  }
  if (flight->error) std::rethrow_exception(flight->error);
  V value(*flight->value);
  shard.shared.fetch_add(1, std::memory_order_relaxed);
  if (info != nullptr) info->shared = true;
  return value;
}

template <class K, class V, class H, class E>
template <class Loader, class Executor>
std::shared_future<V> Share<K, V, H, E>::DoAsync(const K& key, Loader&& loader,
                                                 Executor& executor) {
  CheckLoader(loader);
  using Stored = std::decay_t<Loader>;
  const Probe probe = ProbeFor(key);
  Shard& shard = ShardFor(probe);
  HeapFlight* flight = nullptr;
  std::shared_future<V> future;
  std::stop_token stop;
  {
    internal::ShardLock lock(&shard.mu);
    ++shard.calls;
    auto it = shard.flights.find(probe);
    if (it != shard.flights.end() && !TooOldLocked(it->second)) {
      HeapFlight* current = ShareLocked(shard, it);
      EnsureFutureLocked(current);
      return current->future;
    }
    auto owned = std::make_unique<HeapFlight>();
    EnsureFutureLocked(owned.get());
    stop = TokenForLocked<Stored>(owned.get());
    if (it != shard.flights.end()) {
      it->second->in_map = false;
      it->second = owned.get();
    } else {
      shard.flights.try_emplace(probe, owned.get());
    }
    flight = owned.release();
    flight->refs.store(1, std::memory_order_relaxed);  // the execution's
    StartLocked(shard, flight);
    future = flight->future;
  }
  {
    std::lock_guard<std::mutex> lock(async_mu_);
    ++async_pending_;
  }
  auto finish_async = [this] {
    std::lock_guard<std::mutex> lock(async_mu_);
    if (--async_pending_ == 0) async_done_.notify_all();
  };
  try {
    executor.Schedule(
        [this, &shard, key, hash = probe.hash, flight, stop, finish_async,
         stored = Stored(std::forward<Loader>(loader))]() mutable {
          std::optional<V> value;
          std::exception_ptr error;
          Invoke(flight, stored, std::move(stop), &value, &error);
          // Nobody called this execution: whatever it settles to, the
          // flight's future carries the outcome.
          Settlement s = Settle(shard, Probe{&key, hash}, flight, &value,
                                std::move(error));
          if (s.kind == Settlement::kWait) Unref(s.wait_on);
          finish_async();
        });
  } catch (...) {
    std::optional<V> none;
    Settlement s =
        Settle(shard, probe, flight, &none, std::current_exception());
    if (s.kind == Settlement::kWait) Unref(s.wait_on);
    finish_async();
    throw;
  }
  return future;
}

template <class K, class V, class H, class E>
bool Share<K, V, H, E>::Forget(const K& key, ForgetMode mode) {
  const Probe probe = ProbeFor(key);
  Shard& shard = ShardFor(probe);
  internal::ShardLock lock(&shard.mu);
  auto it = shard.flights.find(probe);
  if (it == shard.flights.end()) return false;
  Flight* flight = it->second;
  if (mode == ForgetMode::kDetach) {
    flight->in_map = false;
    shard.flights.erase(it);
  } else if (flight->extra_credits == 0) {
    flight->extra_credits = 1;
  }
  return true;
}

template <class K, class V, class H, class E>
bool Share<K, V, H, E>::Release(const K& key) {
  const Probe probe = ProbeFor(key);
  Shard& shard = ShardFor(probe);
  internal::ShardLock lock(&shard.mu);
  auto it = shard.flights.find(probe);
  if (it == shard.flights.end()) return false;
  ++it->second->extra_credits;
  return true;
}

template <class K, class V, class H, class E>
auto Share<K, V, H, E>::CancelLocked(Shard& shard, Flight* flight)
    -> CancelWork {
  CancelWork work;
  flight->in_map = false;
  flight->done = true;
  flight->cancelled = true;
  ++shard.cancellations;
  work.stop = flight->stop;  // shares the stop state; outlives the flight
  // A flight in the map always has a running execution, which frees it (a
  // stack flight) or drops its reference (a heap flight) when it settles. A
  // stack flight has no waiters to tell.
  if (flight->on_heap) {
    HeapFlight* heap = static_cast<HeapFlight*>(flight);
    work.promise = std::move(heap->promise);
    heap->refs.fetch_add(1, std::memory_order_relaxed);
    work.flight = heap;
  }
  return work;
}

template <class K, class V, class H, class E>
void Share<K, V, H, E>::FinishCancel(CancelWork& work) {
  // Outside the lock: request_stop runs the loader's stop_callbacks.
  if (work.flight != nullptr) {
    std::exception_ptr cancelled = std::make_exception_ptr(Cancelled());
    work.flight->error = cancelled;
    work.flight->ready.Set();
    if (work.promise.has_value()) work.promise->set_exception(cancelled);
    Unref(work.flight);
  }
  work.stop.request_stop();
}

template <class K, class V, class H, class E>
bool Share<K, V, H, E>::Cancel(const K& key) {
  const Probe probe = ProbeFor(key);
  Shard& shard = ShardFor(probe);
  CancelWork work;
  {
    internal::ShardLock lock(&shard.mu);
    auto it = shard.flights.find(probe);
    if (it == shard.flights.end()) return false;
    work = CancelLocked(shard, it->second);
    shard.flights.erase(it);
  }
  FinishCancel(work);
  return true;
}

template <class K, class V, class H, class E>
size_t Share<K, V, H, E>::CancelAll() {
  size_t cancelled = 0;
  for (size_t i = 0; i <= shard_mask_; ++i) {
    Shard& shard = shards_[i];
    std::vector<CancelWork> work;
    {
      internal::ShardLock lock(&shard.mu);
      work.reserve(shard.flights.size());
      for (auto& [key, flight] : shard.flights) {
        work.push_back(CancelLocked(shard, flight));
      }
      shard.flights.clear();
    }
    for (CancelWork& w : work) FinishCancel(w);
    cancelled += work.size();
  }
  return cancelled;
}

template <class K, class V, class H, class E>
size_t Share<K, V, H, E>::InFlight() const {
  size_t n = 0;
  for (size_t i = 0; i <= shard_mask_; ++i) {
    internal::ShardLock lock(&shards_[i].mu);
    n += shards_[i].flights.size();
  }
  return n;
}

template <class K, class V, class H, class E>
ShareStats Share<K, V, H, E>::Stats() const {
  ShareStats s;
  for (size_t i = 0; i <= shard_mask_; ++i) {
    Shard& shard = shards_[i];
    internal::ShardLock lock(&shard.mu);
    s.calls += shard.calls;
    s.executions += shard.executions;
    s.extra_executions += shard.extra_executions;
    s.failures += shard.failures;
    s.cancellations += shard.cancellations;
    s.shared += shard.shared.load(std::memory_order_relaxed);
    s.timeouts += shard.timeouts.load(std::memory_order_relaxed);
  }
  return s;
}

}  // namespace herd

#endif  // HERD_SHARE_H_
