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
// Callers that arrive while that *flight* is in progress block on the
// flight's std::shared_future and return a copy of the same value, or
// rethrow the same exception: whatever the loader threw, type and payload
// intact. When the flight ends its key is removed: Share caches nothing (see
// herd/loading_cache.h for a cache built on it).
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
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <memory>
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
#include "herd/internal/mutex.h"

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
    return Run(key, loader,
               std::chrono::steady_clock::now() +
                   std::chrono::ceil<std::chrono::steady_clock::duration>(
                       timeout),
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
  struct Flight {
    Clock::time_point started{};  // set only when max_flight_age is on
    int running = 0;              // executions not yet settled
    int extra_credits = 0;        // from Release() and kRerun
    bool in_map = true;           // the key's current flight
    bool done = false;            // outcome decided
    bool cancelled = false;
    std::exception_ptr first_error;
    // Created only once a second party (a waiter, an extra execution, an
    // async caller) needs it, so a flight nobody joins allocates nothing
    // but itself.
    std::optional<std::promise<Value>> promise;
    std::shared_future<Value> future;
    std::stop_source stop{std::nostopstate};
  };

  struct alignas(64) Shard {
    internal::Mutex mu;
    absl::flat_hash_map<Key, Flight*, Hash, Eq> flights ABSL_GUARDED_BY(mu);
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
    std::shared_future<Value> future;  // kWait
    std::exception_ptr error;          // kThrow
  };

  using Deadline = std::optional<std::chrono::steady_clock::time_point>;

  template <class Loader>
  static void CheckLoader(const Loader& loader);

  Shard& ShardFor(const Key& key) const {
    const size_t h = Hash{}(key);
    // High bits pick the shard; flat_hash_map uses the low ones.
    return shards_[(h >> 32) & shard_mask_];
  }

  template <class Loader>
  Value Run(const Key& key, Loader& loader, Deadline deadline, CallInfo* info);

  template <class Loader>
  Value Execute(Shard& shard, const Key& key, Flight* flight,
                std::stop_token stop, Loader& loader, Deadline deadline,
                CallInfo* info);

  // Runs one execution of `flight` and returns its result or exception.
  template <class Loader>
  static void Invoke(const Flight* flight, Loader& loader,
                     std::stop_token stop, std::optional<Value>* value,
                     std::exception_ptr* error);

  // Records the end of one execution of `flight` (a value in `*value`, or
  // `error`), completes the flight when that decides it, and says what the
  // execution's caller gets.
  Settlement Settle(Shard& shard, const Key& key, Flight* flight,
                    std::optional<Value>* value, std::exception_ptr error)
      ABSL_LOCKS_EXCLUDED(shard.mu);

  // Starts a new flight for `key` with one execution running.
  Flight* StartFlightLocked(Shard& shard, const Key& key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  // The stop token for an execution of `flight` by a Loader; gives the
  // flight a stop state on first need.
  template <class Loader>
  static std::stop_token TokenForLocked(Flight* flight);

  static void EnsureFutureLocked(Flight* flight);

  // Removes `flight` from the map if it is still `key`'s current flight. A
  // flight that was detached never touches its successor (Go issue 31420).
  static void UnmapLocked(Shard& shard, const Key& key, Flight* flight)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  bool TooOldLocked(const Flight* flight) const;

  bool SampleExtraExecution() const;

  static Value Await(Shard& shard, const std::shared_future<Value>& future,
                     Deadline deadline, CallInfo* info);

  // Detaches `flight` from the map and marks it cancelled. Returns what must
  // be signalled outside the lock.
  struct CancelWork {
    std::stop_source stop{std::nostopstate};
    std::optional<std::promise<Value>> promise;
    Flight* to_delete = nullptr;
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
auto Share<K, V, H, E>::StartFlightLocked(Shard& shard, const K& key)
    -> Flight* {
  auto flight = std::make_unique<Flight>();
  flight->running = 1;
  if (options_.max_flight_age > std::chrono::nanoseconds::zero()) {
    flight->started = clock_.Now();
  }
  shard.flights.insert_or_assign(key, flight.get());
  ++shard.executions;
  return flight.release();
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
void Share<K, V, H, E>::EnsureFutureLocked(Flight* flight) {
  if (!flight->promise.has_value()) {
    flight->promise.emplace();
    flight->future = flight->promise->get_future().share();
  }
}

template <class K, class V, class H, class E>
void Share<K, V, H, E>::UnmapLocked(Shard& shard, const K& key,
                                    Flight* flight) {
  if (!flight->in_map) return;
  flight->in_map = false;
  auto it = shard.flights.find(key);
  if (it != shard.flights.end() && it->second == flight) {
    shard.flights.erase(it);
  }
}

template <class K, class V, class H, class E>
template <class Loader>
V Share<K, V, H, E>::Run(const K& key, Loader& loader, Deadline deadline,
                         CallInfo* info) {
  CheckLoader(loader);
  Shard& shard = ShardFor(key);
  std::shared_future<V> future;
  Flight* flight = nullptr;
  std::stop_token stop;
  {
    internal::MutexLock lock(&shard.mu);
    ++shard.calls;
    auto it = shard.flights.find(key);
    if (it == shard.flights.end()) {
      flight = StartFlightLocked(shard, key);
      stop = TokenForLocked<Loader>(flight);
    } else {
      Flight* current = it->second;
      for (const Frame* f = frames_; f != nullptr; f = f->prev) {
        if (f->flight == current) throw RecursiveCall();
      }
      if (TooOldLocked(current)) {
        current->in_map = false;  // its executions still complete it
        shard.flights.erase(it);
        flight = StartFlightLocked(shard, key);
        stop = TokenForLocked<Loader>(flight);
      } else if (current->extra_credits > 0 || SampleExtraExecution()) {
        // Two executions: whichever settles second may wait on the other.
        EnsureFutureLocked(current);
        stop = TokenForLocked<Loader>(current);
        if (current->extra_credits > 0) --current->extra_credits;
        flight = current;
        ++flight->running;
        ++shard.executions;
        ++shard.extra_executions;
      } else {
        EnsureFutureLocked(current);
        future = current->future;
      }
    }
  }
  if (flight != nullptr) {
    return Execute(shard, key, flight, std::move(stop), loader, deadline,
                   info);
  }
  return Await(shard, future, deadline, info);
}

template <class K, class V, class H, class E>
template <class Loader>
V Share<K, V, H, E>::Execute(Shard& shard, const K& key, Flight* flight,
                             std::stop_token stop, Loader& loader,
                             Deadline deadline, CallInfo* info) {
  if (info != nullptr) info->executed = true;
  std::optional<V> value;
  std::exception_ptr error;
  Invoke(flight, loader, std::move(stop), &value, &error);
  Settlement s = Settle(shard, key, flight, &value, std::move(error));
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
  return Await(shard, s.future, deadline, info);
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
auto Share<K, V, H, E>::Settle(Shard& shard, const K& key, Flight* flight,
                               std::optional<V>* value,
                               std::exception_ptr error) -> Settlement {
  Settlement result{Settlement::kReturnOwn, {}, {}};
  std::optional<std::promise<V>> promise;
  bool destroy = false;
  {
    internal::MutexLock lock(&shard.mu);
    --flight->running;
    if (error) ++shard.failures;
    if (flight->cancelled) {
      result.kind = Settlement::kThrowCancelled;
    } else if (flight->done) {
      // Another execution won; this one's result is dropped.
      result.kind = Settlement::kWait;
      result.future = flight->future;
    } else if (!error) {
      flight->done = true;
      UnmapLocked(shard, key, flight);
      promise = std::move(flight->promise);
    } else {
      if (!flight->first_error) flight->first_error = error;
      if (flight->running > 0) {
        // Another execution may still succeed: wait for the flight.
        result.kind = Settlement::kWait;
        result.future = flight->future;
      } else {
        flight->done = true;
        UnmapLocked(shard, key, flight);
        promise = std::move(flight->promise);
        result.kind = Settlement::kThrow;
        result.error = flight->first_error;
      }
    }
    destroy = flight->running == 0 && !flight->in_map;
  }
  // Nothing can reach the flight any more: it is out of the map and no
  // execution of it is running.
  if (destroy) delete flight;
  if (promise.has_value()) {
    if (result.kind == Settlement::kThrow) {
      promise->set_exception(result.error);
    } else {
      promise->set_value(**value);
    }
  }
  return result;
}

template <class K, class V, class H, class E>
V Share<K, V, H, E>::Await(Shard& shard, const std::shared_future<V>& future,
                           Deadline deadline, CallInfo* info) {
  if (deadline.has_value() &&
      future.wait_until(*deadline) != std::future_status::ready) {
    shard.timeouts.fetch_add(1, std::memory_order_relaxed);
    throw WaitTimeout();
  }
  V value = future.get();  // rethrows the flight's exception
  shard.shared.fetch_add(1, std::memory_order_relaxed);
  if (info != nullptr) info->shared = true;
  return value;
}

template <class K, class V, class H, class E>
template <class Loader, class Executor>
std::shared_future<V> Share<K, V, H, E>::DoAsync(const K& key,
                                                 Loader&& loader,
                                                 Executor& executor) {
  CheckLoader(loader);
  using Stored = std::decay_t<Loader>;
  Shard& shard = ShardFor(key);
  Flight* flight = nullptr;
  std::shared_future<V> future;
  std::stop_token stop;
  {
    internal::MutexLock lock(&shard.mu);
    ++shard.calls;
    auto it = shard.flights.find(key);
    if (it != shard.flights.end() && !TooOldLocked(it->second)) {
      EnsureFutureLocked(it->second);
      return it->second->future;
    }
    if (it != shard.flights.end()) {
      it->second->in_map = false;
      shard.flights.erase(it);
    }
    flight = StartFlightLocked(shard, key);
    try {
      EnsureFutureLocked(flight);
    } catch (...) {
      UnmapLocked(shard, key, flight);
      delete flight;
      throw;
    }
    future = flight->future;
    stop = TokenForLocked<Stored>(flight);
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
        [this, &shard, key, flight, stop, finish_async,
         stored = Stored(std::forward<Loader>(loader))]() mutable {
          std::optional<V> value;
          std::exception_ptr error;
          Invoke(flight, stored, std::move(stop), &value, &error);
          // Nobody called this execution: whatever it settles to, the
          // flight's future carries the outcome.
          Settle(shard, key, flight, &value, std::move(error));
          finish_async();
        });
  } catch (...) {
    std::optional<V> none;
    Settle(shard, key, flight, &none, std::current_exception());
    finish_async();
    throw;
  }
  return future;
}

template <class K, class V, class H, class E>
bool Share<K, V, H, E>::Forget(const K& key, ForgetMode mode) {
  Shard& shard = ShardFor(key);
  internal::MutexLock lock(&shard.mu);
  auto it = shard.flights.find(key);
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
  Shard& shard = ShardFor(key);
  internal::MutexLock lock(&shard.mu);
  auto it = shard.flights.find(key);
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
  work.promise = std::move(flight->promise);
  // A flight in the map always has a running execution, which will delete
  // it when it settles.
  return work;
}

template <class K, class V, class H, class E>
void Share<K, V, H, E>::FinishCancel(CancelWork& work) {
  // Outside the lock: request_stop runs the loader's stop_callbacks.
  if (work.promise.has_value()) {
    work.promise->set_exception(std::make_exception_ptr(Cancelled()));
  }
  work.stop.request_stop();
}

template <class K, class V, class H, class E>
bool Share<K, V, H, E>::Cancel(const K& key) {
  Shard& shard = ShardFor(key);
  CancelWork work;
  {
    internal::MutexLock lock(&shard.mu);
    auto it = shard.flights.find(key);
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
