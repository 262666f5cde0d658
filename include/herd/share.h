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
// Waiting: every caller that joins a flight blocks on the flight's
// std::shared_future (each on its own copy), which the flight's end makes
// ready for all of them at once. The same future is what DoAsync() returns.
//
// Cost: a flight nobody joins lives on its leader's stack and allocates
// nothing (its map entry aside: a Key that allocates when copied, such as a
// long std::string, allocates once). The flight's std::promise and
// std::shared_future are made when a second party (a waiter, an extra
// execution, an async caller) first joins it.
//
// A loader is invocable as `Value()` or as `Value(std::stop_token)`. The token
// reports stop_requested() once the flight is cancelled (Cancel, CancelAll),
// which is how a long query learns it should give up.
//
// Thread safety: Share has internal synchronization and may be safely
// accessed concurrently from multiple threads. No lock is held while a
// loader, or any other user code, runs, with one exception: the Key's hash,
// equality, copy and destructor run under the lock of the key's shard (the
// map needs them), so they should be cheap and must not call into the Share.
//
// Memory ordering: everything the thread that produced a flight's result did
// before its loader returned is visible to every caller of that flight after
// its call returns.
//
// Exception safety: a loader's exception reaches every caller of the flight
// (when extra executions race, only once all of them have failed). herd's own
// refusals are herd::Error subclasses (herd/errors.h). Invalid arguments
// throw std::invalid_argument before anything is registered. No error leaves
// a flight behind or a caller blocked. Every caller receives its own copy of
// the value: a copy constructor that throws fails that caller alone. (A
// Value whose move constructor throws should be wrapped, for example in a
// std::shared_ptr.)
//
// Deadlocks: a loader that calls Do() on the Share running it, for the key it
// is loading, on the same thread, gets herd::RecursiveCall. Cycles through
// other keys or other threads (A's loader waits on B, whose loader waits on
// A) are not detected; bound them with DoFor() or a cancellable loader.

#ifndef HERD_SHARE_H_
#define HERD_SHARE_H_

#include <atomic>
#include <chrono>
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

#include "absl/base/attributes.h"
#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "herd/clock.h"
#include "herd/errors.h"
#include "herd/internal/invoke.h"
#include "herd/internal/mutex.h"
#include "herd/internal/shards.h"

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
  // A timeout too long for std::chrono::steady_clock waits without limit.
  // Throws: as Do(); herd::WaitTimeout; std::invalid_argument if timeout is
  // negative or NaN.
  template <class Rep, class Period, class Loader>
  Value DoFor(const Key& key, std::chrono::duration<Rep, Period> timeout,
              Loader&& loader, CallInfo* info = nullptr) {
    if (!(timeout >= timeout.zero())) {  // NaN too
      throw std::invalid_argument(
          "herd::Share::DoFor: negative or NaN timeout");
    }
    using Steady = std::chrono::steady_clock;
    const Steady::time_point now = Steady::now();
    Deadline deadline;  // none when the timeout lies beyond the clock's range
    // Compared in floating point: converting, say, hours::max() to the
    // clock's nanoseconds would overflow.
    if (std::chrono::duration<double>(timeout) <
        std::chrono::duration<double>(Steady::time_point::max() - now)) {
      deadline = now + std::chrono::ceil<Steady::duration>(timeout);
    }
    return Run(key, loader, deadline, info);
  }

  // Returns the future of `key`'s flight without blocking. When none is in
  // progress, registers one before returning and schedules `loader` (moved
  // or copied into the task) with `executor.Schedule(callable)`; any type
  // with such a member works, herd::ThreadPool for one. Async callers never
  // run extra executions.
  // The executor must run every callable it accepts, or throw from
  // Schedule: a task it drops leaves the flight's callers waiting, and the
  // destructor of this Share waiting for the task.
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
  struct Flight;
  struct HeapFlight;

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
  };

  // One flight. A blocking leader's flight lives in its Run() frame and
  // costs no allocation; the first second party (a waiter, an extra
  // execution, an async caller) moves it to a HeapFlight, which holds the
  // std::promise whose std::shared_future waiters block on. Flights made by
  // DoAsync start on the heap.
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

    // The outcome. Whoever decides it (the execution that completes the
    // flight, or Cancel; `done` is set under the lock, so there is one)
    // sets the promise, outside the lock. Each waiter copies the future (it
    // never changes) and waits on its own copy.
    std::promise<Value> promise;
    const std::shared_future<Value> future{promise.get_future().share()};

    // Parties that may still touch the flight outside the lock: running
    // executions, waiters until they have copied the future, a cancel being
    // finished. The last one to drop its reference deletes the flight.
    std::atomic<int> refs{0};
  };

  struct alignas(64) Shard {
    internal::Mutex mu;
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
    // kReturnOwn: return the value this execution produced. kReturnStored:
    // it was moved into the flight's promise; return a copy from the
    // future. kWait: another execution decides; wait for the flight.
    enum Kind {
      kReturnOwn,
      kReturnStored,
      kWait,
      kThrowCancelled,
      kThrow
    } kind;
    HeapFlight* wait_on;       // kReturnStored and kWait, with the caller's
                               // reference
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
  ABSL_ATTRIBUTE_ALWAYS_INLINE inline Settlement Settle(
      Shard& shard, const Probe& probe, Flight* flight,
      std::optional<Value>* value, std::exception_ptr& error)
      ABSL_LOCKS_EXCLUDED(shard.mu);
  // Settle() for a heap flight: the part under the lock (returns whether
  // this execution decided the outcome), then the part after it.
  ABSL_ATTRIBUTE_NOINLINE static bool SettleHeapLocked(
      Shard& shard, const Probe& probe, HeapFlight* heap,
      const std::exception_ptr& error, Settlement* result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  ABSL_ATTRIBUTE_NOINLINE static void FinishHeapSettle(
      HeapFlight* heap, bool decided, std::optional<Value>* value,
      Settlement* result);

  // Makes `flight` (new, not yet in the map) the key's flight with one
  // execution running, started at `now` (from Now()).
  void StartLocked(Shard& shard, Flight* flight, Clock::time_point now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  // The heap flight behind `it`, moving a stack flight to the heap first.
  // Throws: std::bad_alloc, with nothing changed.
  static HeapFlight* ShareLocked(Shard& shard, typename Map::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  // The stop token for an execution of `flight` by a Loader; gives the
  // flight a stop state on first need.
  template <class Loader>
  static std::stop_token TokenForLocked(Flight* flight);

  // Removes `flight` from the map if it is still `key`'s current flight. A
  // flight that was detached never touches its successor (Go issue 31420).
  ABSL_ATTRIBUTE_ALWAYS_INLINE static inline void UnmapLocked(
      Shard& shard, const Probe& probe, Flight* flight)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  // The time max_flight_age is measured with; read before the lock is
  // taken, so that a Clock (user code) never runs under it, and a Clock
  // that throws does so before anything is registered. Only read when
  // max_flight_age is on.
  Clock::time_point Now() const {
    return options_.max_flight_age > std::chrono::nanoseconds::zero()
               ? clock_.Now()
               : Clock::time_point{};
  }

  bool TooOldLocked(const Flight* flight, Clock::time_point now) const;

  bool SampleExtraExecution() const;

  static void Unref(HeapFlight* flight) {
    if (flight->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      delete flight;
    }
  }

  // Waits on heap flight `flight`'s future, consuming the caller's
  // reference, and returns a copy of its value or rethrows its exception.
  static Value Await(Shard& shard, HeapFlight* flight, Deadline deadline,
                     CallInfo* info);

  // Detaches `flight` from the map and marks it cancelled. Returns what must
  // be signalled outside the lock.
  struct CancelWork {
    std::stop_source stop{std::nostopstate};
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
bool Share<K, V, H, E>::TooOldLocked(const Flight* flight,
                                     Clock::time_point now) const {
  return options_.max_flight_age > std::chrono::nanoseconds::zero() &&
         now - flight->started >= options_.max_flight_age;
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
void Share<K, V, H, E>::StartLocked(Shard& shard, Flight* flight,
                                    Clock::time_point now) {
  flight->running = 1;
  flight->started = now;
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
  heap->refs.store(flight->running, std::memory_order_relaxed);  // leader's
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
void Share<K, V, H, E>::UnmapLocked(Shard& shard, const Probe& probe,
                                    Flight* flight) {
  if (!flight->in_map) return;
  flight->in_map = false;
  // in_map: `flight` is the key's current flight. One that was detached
  // never touches its successor (Go issue 31420).
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
  const Clock::time_point now = Now();
  Flight local(/*heap=*/false);   // the flight, if this call starts one
  Flight* flight = nullptr;       // the flight this call executes
  HeapFlight* wait_on = nullptr;  // or the one it waits on, with a reference
  std::stop_token stop;
  {
    internal::MutexLock lock(&shard.mu);
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
    if (inserted || TooOldLocked(it->second, now)) {
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
      StartLocked(shard, &local, now);
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
        current->refs.fetch_add(1, std::memory_order_relaxed);
      } else {
        wait_on = current;
        current->refs.fetch_add(1, std::memory_order_relaxed);
      }
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
  Settlement s = Settle(shard, probe, flight, &value, error);
  switch (s.kind) {
    case Settlement::kReturnOwn:
      return std::move(*value);
    case Settlement::kReturnStored: {
      const std::shared_future<V> future = s.wait_on->future;
      Unref(s.wait_on);
      return V(future.get());  // a copy that throws fails this call only
    }
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
                               std::exception_ptr& error) -> Settlement {
  HeapFlight* heap;
  Settlement result{Settlement::kReturnOwn, nullptr, {}};
  bool decided;
  {
    internal::MutexLock lock(&shard.mu);
    if (error) ++shard.failures;
    heap = flight->on_heap ? static_cast<HeapFlight*>(flight)
                           : flight->moved_to.load(std::memory_order_relaxed);
    if (heap == nullptr) {
      // A stack flight nobody joined (the common case, kept inline): it ends
      // with its only execution, and nobody else can see it any more.
      if (flight->cancelled) {
        result.kind = Settlement::kThrowCancelled;
      } else {
        UnmapLocked(shard, probe, flight);
        if (error) {
          result.kind = Settlement::kThrow;
          result.error = std::move(error);
        }
      }
      return result;
    }
    decided = SettleHeapLocked(shard, probe, heap, error, &result);
  }
  FinishHeapSettle(heap, decided, value, &result);
  return result;
}

template <class K, class V, class H, class E>
bool Share<K, V, H, E>::SettleHeapLocked(Shard& shard, const Probe& probe,
                                         HeapFlight* heap,
                                         const std::exception_ptr& error,
                                         Settlement* result) {
  --heap->running;
  if (heap->cancelled) {
    result->kind = Settlement::kThrowCancelled;
    return false;
  }
  if (heap->done) {
    // Another execution won; this one's result is dropped.
    result->kind = Settlement::kWait;
    return false;
  }
  if (error) {
    if (!heap->first_error) heap->first_error = error;
    if (heap->running > 0) {
      // Another execution may still succeed: wait for the flight.
      result->kind = Settlement::kWait;
      return false;
    }
    result->kind = Settlement::kThrow;
    result->error = heap->first_error;
  }
  heap->done = true;
  UnmapLocked(shard, probe, heap);
  return true;
}

template <class K, class V, class H, class E>
void Share<K, V, H, E>::FinishHeapSettle(HeapFlight* heap, bool decided,
                                         std::optional<V>* value,
                                         Settlement* result) {
  if (decided) {
    // Outside the lock. Nobody else touches the promise: the decision was
    // taken once, under the lock.
    if (result->kind == Settlement::kThrow) {
      heap->promise.set_exception(result->error);
    } else {
      // The value is moved in, not copied: a Value copy that throws must
      // fail only the caller whose copy it was (each caller, this one
      // included, copies from the future), never strand the waiters. A
      // move that throws leaves the promise unset; it then carries that
      // exception instead, where std::call_once recovers from a throw
      // (glibc's does; ThreadSanitizer's interceptor does not).
      try {
        heap->promise.set_value(std::move(**value));
      } catch (...) {
        heap->promise.set_exception(std::current_exception());
      }
      result->kind = Settlement::kReturnStored;
    }
  }
  if (result->kind == Settlement::kWait ||
      result->kind == Settlement::kReturnStored) {
    result->wait_on = heap;  // keeps this execution's reference
  } else {
    Unref(heap);
  }
}

template <class K, class V, class H, class E>
V Share<K, V, H, E>::Await(Shard& shard, HeapFlight* flight, Deadline deadline,
                           CallInfo* info) {
  // This caller's own copy of the flight's future. `future` never changes
  // after construction, so copying it needs no lock.
  const std::shared_future<V> future = flight->future;
  Unref(flight);
  if (deadline.has_value() &&
      future.wait_until(*deadline) == std::future_status::timeout) {
    shard.timeouts.fetch_add(1, std::memory_order_relaxed);
    throw WaitTimeout();
  }
  V value(future.get());  // rethrows the flight's exception
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
  const Clock::time_point now = Now();
  HeapFlight* flight = nullptr;
  std::shared_future<V> future;
  std::stop_token stop;
  {
    internal::MutexLock lock(&shard.mu);
    ++shard.calls;
    auto it = shard.flights.find(probe);
    if (it != shard.flights.end() && !TooOldLocked(it->second, now)) {
      return ShareLocked(shard, it)->future;
    }
    auto owned = std::make_unique<HeapFlight>();
    stop = TokenForLocked<Stored>(owned.get());
    if (it != shard.flights.end()) {
      it->second->in_map = false;
      it->second = owned.get();
    } else {
      shard.flights.try_emplace(probe, owned.get());
    }
    flight = owned.release();
    flight->refs.store(1, std::memory_order_relaxed);  // the execution's
    StartLocked(shard, flight, now);
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
    executor.Schedule([this, &shard, key, hash = probe.hash, flight, stop,
                       finish_async,
                       stored =
                           Stored(std::forward<Loader>(loader))]() mutable {
      std::optional<V> value;
      std::exception_ptr error;
      Invoke(flight, stored, std::move(stop), &value, &error);
      // Nobody called this execution: whatever it settles to, the
      // flight's future carries the outcome.
      Settlement s = Settle(shard, Probe{&key, hash}, flight, &value, error);
      if (s.wait_on != nullptr) Unref(s.wait_on);
      finish_async();
    });
  } catch (...) {
    std::optional<V> none;
    std::exception_ptr error = std::current_exception();
    Settlement s = Settle(shard, probe, flight, &none, error);
    if (s.wait_on != nullptr) Unref(s.wait_on);
    finish_async();
    throw;
  }
  return future;
}

template <class K, class V, class H, class E>
bool Share<K, V, H, E>::Forget(const K& key, ForgetMode mode) {
  const Probe probe = ProbeFor(key);
  Shard& shard = ShardFor(probe);
  internal::MutexLock lock(&shard.mu);
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
  internal::MutexLock lock(&shard.mu);
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
    heap->refs.fetch_add(1, std::memory_order_relaxed);
    work.flight = heap;
  }
  return work;
}

template <class K, class V, class H, class E>
void Share<K, V, H, E>::FinishCancel(CancelWork& work) {
  // Outside the lock: request_stop runs the loader's stop_callbacks.
  if (work.flight != nullptr) {
    // `done` was set under the lock: nobody else sets the promise.
    work.flight->promise.set_exception(std::make_exception_ptr(Cancelled()));
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
    internal::MutexLock lock(&shard.mu);
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
      internal::MutexLock lock(&shard.mu);
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
    internal::MutexLock lock(&shards_[i].mu);
    n += shards_[i].flights.size();
  }
  return n;
}

template <class K, class V, class H, class E>
ShareStats Share<K, V, H, E>::Stats() const {
  ShareStats s;
  for (size_t i = 0; i <= shard_mask_; ++i) {
    Shard& shard = shards_[i];
    internal::MutexLock lock(&shard.mu);
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
