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
// Callers that arrive while that *flight* is in progress block until it ends
// and return a copy of the same value, or rethrow the same exception object
// (type and payload intact). When the flight ends its key is removed: Share
// caches nothing (herd/loading_cache.h is a cache built on it). A loader is
// invocable as `Value()` or `Value(std::stop_token)`; the token reports
// stop_requested() once the flight is cancelled (Cancel, CancelAll).
//
// Thread safety: Share has internal synchronization and may be safely
// accessed concurrently from multiple threads. No lock is held while a
// loader, an executor or any other user code runs, with one exception: the
// Key's equality, and the copy of the key made when a flight moves to the
// heap, run under the lock of the key's shard, so they should be cheap and
// must not call into the Share. (Hash runs before the lock is taken.)
//
// Memory ordering: everything the thread that produced a flight's result did
// before its loader returned is visible to every caller of that flight after
// its call returns, and to every holder of its future after get() returns.
//
// Exception safety: a loader's exception reaches every caller of the flight
// (when extra executions race, only once all of them have failed). herd's own
// refusals are herd::Error subclasses (herd/errors.h). Any other failure of a
// call (std::bad_alloc from herd's own allocations, or what the Key's Eq or
// copy constructor throws) is thrown to that caller alone, with no flight
// registered or changed by it and no other caller affected, and the Share
// stays usable; the two exceptions are a DoAsync whose flight was already
// registered, which ends that flight (see DoAsync), and CancelAll, which
// stops part-way (see there). herd allocates, copies the key and the loader,
// and builds the exceptions it hands out before the first change others can
// see; the flight map (an absl::flat_hash_set) is grown by herd on a new
// table, before an insert could need memory. Every caller receives its own
// copy of the value: a copy constructor that throws fails that caller alone.
// A Value whose move constructor throws fails the flight with that exception
// (or, under ThreadSanitizer, whose std::call_once does not recover from a
// throw, may hang it): wrap such a Value in a std::shared_ptr.
//
// Cost: a flight nobody joins lives on its leader's stack and the map refers
// to the leader's own key: no allocation, no copy of the key. The first
// second party (a waiter, an extra execution, an async caller) moves it to
// the heap, with its own copy of the key and a std::promise whose
// std::shared_future every waiter blocks on (each on its own copy).
//
// Deadlocks: a loader that calls Do() on the Share running it, for the key it
// is loading, on the same thread, gets herd::RecursiveCall. Cycles through
// other keys or other threads (A's loader waits on B, whose loader waits on
// A) are not detected; bound them with DoFor() or a cancellable loader.

#ifndef HERD_SHARE_H_
#define HERD_SHARE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <type_traits>

#include "absl/hash/hash.h"
#include "herd/clock.h"
#include "herd/executor.h"

namespace herd {

// What Forget() does to the flight of a key.
enum class ForgetMode {
  // Callers arriving afterwards start a new flight; the old flight's callers
  // still get the old flight's outcome.
  kDetach,
  // The next caller of the key runs the loader again, as an extra execution
  // of the same flight: every caller, old and new, gets the first successful
  // result. Rescues a batch stuck behind a hung execution.
  kRerunOnNextCall,
  kRerun [[deprecated("use ForgetMode::kRerunOnNextCall")]] = kRerunOnNextCall,
};

struct ShareOptions {
  // Probability that a caller who finds a flight in progress also runs the
  // loader (an extra execution). Executions of one flight race: the first
  // success completes it for everyone. REQUIRES: 0 <= rate <= 1.
  double extra_execution_rate = 0.0;

  // When positive, a flight whose age is at least this is detached when the
  // next caller arrives: that caller starts a new flight, and the old
  // flight's callers still get its outcome. Zero disables it.
  // REQUIRES: >= 0.
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
  uint64_t calls = 0;             // Do, DoFor and DoAsync calls, counted
                                  // under the shard lock as they join or
                                  // start a flight (or fail to)
  uint64_t executions = 0;        // loader executions started, extras and
                                  // DoAsync tasks (however the executor
                                  // treats them) included
  uint64_t shared = 0;            // calls that returned a value they did not
                                  // execute
  uint64_t extra_executions = 0;  // sampled, AllowExtraExecution()'d or
                                  // kRerunOnNextCall executions
  uint64_t failures = 0;          // executions that threw, or whose task was
                                  // refused or dropped by the executor
  uint64_t cancellations = 0;     // flights cancelled by Cancel / CancelAll
  uint64_t timeouts = 0;          // DoFor waits that gave up (WaitTimeout)
};

// Filled in by Do() and DoFor() when the caller passes one.
struct CallInfo {
  bool executed = false;  // this call ran the loader
  bool shared = false;    // the value returned was produced by another call
};

namespace internal {
template <class Key, class Value, class Hash, class Eq>
class ShareCore;  // herd/internal/share_impl.h
}  // namespace internal

template <class Key, class Value, class Hash = absl::Hash<Key>,
          class Eq = std::equal_to<Key>>
class Share {
  static_assert(std::is_copy_constructible_v<Value>,
                "herd::Share: Value must be copy constructible: every caller "
                "of a flight receives a copy");
  static_assert(std::is_copy_constructible_v<Key>,
                "herd::Share: Key must be copy constructible: a flight that "
                "outlives its leader's call keeps a copy");

 public:
  using key_type = Key;
  using value_type = Value;

  // Throws: std::invalid_argument if options.extra_execution_rate is NaN or
  // outside [0, 1], or options.max_flight_age is negative.
  explicit Share(ShareOptions options = {});
  Share(const Share&) = delete;
  Share& operator=(const Share&) = delete;

  // Waits until every task DoAsync() handed to an executor has run or been
  // destroyed, and with it the loader and the copy of the key it held.
  // REQUIRES: no other thread is inside a member function; every executor
  // eventually runs or destroys each task it accepted or kept.
  ~Share();

  // Returns the value of `key`'s flight, starting one (running `loader` on
  // this thread) when none is in progress. Callers that join a flight block
  // until it completes, with no time limit; see DoFor().
  // REQUIRES: `key` is not modified during the call.
  // Throws: whatever the flight's loader threw; herd::Cancelled if the flight
  // was cancelled; herd::RecursiveCall (see above); std::invalid_argument if
  // `loader` is empty (herd::internal::IsEmptyLoader: an empty
  // std::function or absl::AnyInvocable, a null pointer); see "Exception
  // safety" above for the rest.
  template <class Loader>
  Value Do(const Key& key, Loader&& loader, CallInfo* info = nullptr);

  // As Do(), but a caller that waits on a flight someone else is running
  // gives up after `timeout` (real time) with herd::WaitTimeout; the flight
  // goes on for everyone else. A caller that runs the loader itself is not
  // interrupted: to bound it, write the loader to honour its
  // std::stop_token and use herd::WithDeadline (herd/deadline.h). A zero
  // timeout only takes a result that is already there; one too long for
  // std::chrono::steady_clock (duration::max()) waits without limit.
  // Throws: as Do(); herd::WaitTimeout; std::invalid_argument if `timeout` is
  // negative or NaN, before anything is looked up.
  template <class Rep, class Period, class Loader>
  Value DoFor(const Key& key, std::chrono::duration<Rep, Period> timeout,
              Loader&& loader, CallInfo* info = nullptr);

  // Returns the future of `key`'s flight without blocking. When none is in
  // progress, builds one (with a copy of `key` and of `loader`, before
  // anything is registered), registers it, and hands its execution to
  // `executor` (herd/executor.h) as one task. Async callers never run extra
  // executions. What the executor does with the task decides the flight:
  //   * runs it (at once, or later on any thread): the loader runs there and
  //     the flight ends with its outcome; DoAsync returns the future;
  //   * destroys it unrun (during Schedule or later): the flight ends with
  //     herd::Closed; DoAsync returns the future;
  //   * throws from Schedule without having run it: the flight ends with that
  //     exception and DoAsync rethrows it; a task kept before throwing does
  //     nothing when it later runs or is destroyed;
  //   * runs it and then throws: the run decides the flight; DoAsync
  //     rethrows the exception.
  // If memory for the task runs out after the flight was registered, the
  // flight (and any caller that joined it meanwhile) ends with
  // std::bad_alloc and DoAsync throws it. In every case the flight ends
  // exactly once, and its loader copy is destroyed before its callers are
  // woken.
  // Throws: std::invalid_argument for an empty loader; what Schedule throws
  // (above); see "Exception safety" above for the rest.
  template <class Loader, Executor Exec>
  std::shared_future<Value> DoAsync(const Key& key, Loader&& loader,
                                    Exec& executor);

  // Detaches `key`'s flight (kDetach) or lets the next caller rerun it
  // (kRerunOnNextCall); see ForgetMode. Returns true iff `key` had a flight.
  bool Forget(const Key& key, ForgetMode mode = ForgetMode::kDetach);

  // Lets the next caller who joins `key`'s flight run one extra execution
  // instead of waiting. Calls add up. Returns true iff `key` had a flight.
  bool AllowExtraExecution(const Key& key);

  [[deprecated("use AllowExtraExecution")]] bool Release(const Key& key) {
    return AllowExtraExecution(key);
  }

  // Cancels `key`'s flight: every caller waiting on it throws
  // herd::Cancelled at once, the loaders' std::stop_token reports
  // stop_requested(), their results are dropped when they return (their
  // callers throw herd::Cancelled too), and the key is free for a new flight
  // at once. Returns true iff `key` had a flight. Throws only what the Key's
  // Eq throws, before anything changes.
  bool Cancel(const Key& key);

  // Cancel() for every flight, one shard after another. Returns the number
  // cancelled. Throws: std::bad_alloc, when the shards visited before the
  // failure are cancelled (their waiters woken) and the others untouched.
  size_t CancelAll();

  // Number of keys with a flight in progress (detached flights not counted).
  size_t InFlight() const;

  ShareStats Stats() const;

 private:
  internal::ShareCore<Key, Value, Hash, Eq> core_;
};

}  // namespace herd

#include "herd/internal/share_impl.h"  // IWYU pragma: export

#endif  // HERD_SHARE_H_
