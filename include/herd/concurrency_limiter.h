// Copyright 2026 The herd Authors.
//
// herd/concurrency_limiter.h: at most N loaders in flight at once.
//
//   herd::ConcurrencyLimiter          N permits, a counting semaphore
//   herd::ConcurrencyLimiter::Permit  movable RAII permit; released when
//                                     destroyed
//   herd::WithLimit()                 wraps a loader so that it holds a
//                                     permit while it runs
//
// Example:
//
//   herd::ConcurrencyLimiter db_slots(8);
//   if (auto permit = db_slots.TryAcquire()) { query(); }  // released here
//   auto value = share.Do(key, herd::WithLimit(db_slots, load_from_db));
//
// Thread safety: every member function may be called concurrently. A Permit
// is a value: one thread at a time.
//
// Memory ordering: returning a permit happens before the acquisition that
// obtains it.
//
// Waiting for a permit. TryAcquire(), and the first try of a call without
// a stop token, are one lock-free atomic step; a call with a stop token
// tries under the limiter's lock (so that its stop and a release are
// ordered). A call that has to wait queues, and sleeps (no polling). A returned permit goes to the longest-waiting queued call, at
// the instant it is returned (a handoff: nobody can take it in between);
// only with no call queued does it become free for anyone to take. So
// queued calls are served first come, first served, and a newcomer never
// takes a permit a waiter was waiting for.
//   Acquire()                     waits as long as it takes.
//   Acquire(stop)                 waits until it gets a permit or `stop` is
//                                 stopped.
//   TryAcquireFor(timeout[, stop]) as above, giving up after `timeout` of
//                                 real time (std::chrono::steady_clock, not
//                                 an injected herd::Clock). Zero: only a
//                                 permit that is free now; duration::max()
//                                 (any timeout past the clock's range): no
//                                 limit. Negative or NaN: rejected.
//
// A stop racing a release. A call with a stop token returns nullopt iff the
// token was stopped before the call was handed a permit. The handoff and
// the stop are ordered by the limiter's lock (the stop registers through a
// std::stop_callback, which runs inside request_stop()): a waiter whose
// token is stopped before a permit is returned never receives that permit,
// which goes to the next waiter or becomes free; a waiter handed a permit
// before its token is stopped keeps it. A token already stopped on entry
// gets nullopt even when a permit is free. Only a stop and a release that
// truly race (neither returns before the other starts) can go either way,
// and exactly one of the two outcomes happens.
//
// WithLimit() waits with the loader's stop token, so a deadline or a
// Share::Cancel also ends a wait for a permit, and a loader whose token is
// stopped by the time it holds a permit does not run.
//
// Time: timeouts are real time; the limiter reads no herd::Clock.

#ifndef HERD_CONCURRENCY_LIMITER_H_
#define HERD_CONCURRENCY_LIMITER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "herd/internal/guarded_loader.h"
#include "herd/internal/mutex.h"
#include "herd/internal/time.h"

namespace herd {

class ConcurrencyLimiter {
 public:
  // The largest `max` accepted.
  static constexpr std::ptrdiff_t kMaxLimit = 1 << 30;

  // Holds one permit until destroyed, moved from, or Release()d.
  class Permit {
   public:
    Permit(Permit&& other) noexcept
        : limiter_(std::exchange(other.limiter_, nullptr)) {}
    Permit& operator=(Permit&& other) noexcept {
      if (this != &other) {
        Release();
        limiter_ = std::exchange(other.limiter_, nullptr);
      }
      return *this;
    }
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;
    ~Permit() { Release(); }

    // Returns the permit now (to the longest waiter, or free); no-op if it
    // holds none.
    void Release() noexcept {
      if (limiter_ != nullptr) std::exchange(limiter_, nullptr)->Return();
    }

    // True iff this object holds a permit.
    explicit operator bool() const noexcept { return limiter_ != nullptr; }

   private:
    friend class ConcurrencyLimiter;
    explicit Permit(ConcurrencyLimiter* limiter) : limiter_(limiter) {}
    ConcurrencyLimiter* limiter_;
  };

  // REQUIRES: 1 <= max <= kMaxLimit.
  // Throws: std::invalid_argument otherwise.
  explicit ConcurrencyLimiter(std::ptrdiff_t max);

  // REQUIRES: no permit outstanding, no call waiting.
  ~ConcurrencyLimiter() = default;

  ConcurrencyLimiter(const ConcurrencyLimiter&) = delete;
  ConcurrencyLimiter& operator=(const ConcurrencyLimiter&) = delete;

  // Blocks until it gets a permit. Not interruptible.
  Permit Acquire() ABSL_LOCKS_EXCLUDED(mu_);

  // Blocks until it gets a permit or `stop` is stopped. Returns the permit,
  // or nullopt iff `stop` was stopped first (see above).
  std::optional<Permit> Acquire(std::stop_token stop) ABSL_LOCKS_EXCLUDED(mu_);

  // Returns a permit iff one is free now. Never blocks; lock-free.
  std::optional<Permit> TryAcquire() noexcept;

  // Returns a permit iff it gets one within `timeout` of real time (zero:
  // only if one is free now; duration::max(): no limit).
  // Throws: std::invalid_argument if `timeout` is negative or NaN.
  template <class Rep, class Period>
  std::optional<Permit> TryAcquireFor(
      std::chrono::duration<Rep, Period> timeout) ABSL_LOCKS_EXCLUDED(mu_) {
    return TryAcquireFor(timeout, std::stop_token());
  }

  // As above, and nullopt iff `stop` is stopped first (see above).
  // Throws: std::invalid_argument if `timeout` is negative or NaN.
  template <class Rep, class Period>
  std::optional<Permit> TryAcquireFor(
      std::chrono::duration<Rep, Period> timeout, std::stop_token stop)
      ABSL_LOCKS_EXCLUDED(mu_) {
    internal::CheckTimeout(timeout, "herd::ConcurrencyLimiter::TryAcquireFor");
    using Steady = std::chrono::steady_clock;
    return Wait(internal::DeadlineAfter(Steady::now(), timeout), stop);
  }

  std::ptrdiff_t max() const { return max_; }

  // Calls queued for a permit now (for tests and monitoring: a test learns
  // from it that a thread it started is waiting).
  std::ptrdiff_t waiting() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // A queued call, on its own stack.
  struct Waiter;

  // Takes a free permit iff there is one. Lock-free.
  bool TryTake() noexcept;
  // The waiting path: queues until handed a permit, `stop` is stopped or
  // `deadline` passes (nullopt: none).
  std::optional<Permit> Wait(
      std::optional<std::chrono::steady_clock::time_point> deadline,
      const std::stop_token& stop) ABSL_LOCKS_EXCLUDED(mu_);
  // Hands one permit to the oldest queued call; false if none is queued.
  bool HandOff() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unlink(Waiter* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Called by the stop callback of a queued call.
  void OnStop(Waiter* w) ABSL_LOCKS_EXCLUDED(mu_);
  // A permit comes back: to the oldest queued call, or free.
  void Return() noexcept ABSL_LOCKS_EXCLUDED(mu_);

  const std::ptrdiff_t max_;
  // Free permits: neither held nor handed to a queued call.
  std::atomic<std::ptrdiff_t> free_;
  // Calls on the waiting path (queued, or about to be). Return() reads it
  // with read-modify-writes; see concurrency_limiter.cc for why that
  // cannot miss a waiter.
  std::atomic<std::ptrdiff_t> active_{0};

  mutable internal::Mutex mu_;
  // State below is protected by mu_: the queue, oldest first.
  Waiter* head_ ABSL_GUARDED_BY(mu_) = nullptr;
  Waiter* tail_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::ptrdiff_t queued_ ABSL_GUARDED_BY(mu_) = 0;
};

namespace internal {
class LimitGuard;
}  // namespace internal

// Returns a loader, invocable as Value(std::stop_token), that holds a permit
// from `limiter` while `loader` runs, waiting as long as it takes for one.
// If the stop token is stopped while it waits, or by the time it holds the
// permit, it throws herd::Cancelled without running `loader` (and returns
// the permit). `limiter` must outlive the result.
// Throws: std::invalid_argument if `loader` is an empty std::function,
// absl::AnyInvocable or null pointer.
template <class L>
internal::GuardedLoader<internal::LimitGuard, std::decay_t<L>> WithLimit(
    ConcurrencyLimiter& limiter, L&& loader);

// As above, but throws herd::LimitExceeded, without running `loader`, if no
// permit comes within `max_wait` of real time (zero: only if one is free
// now; duration::max(), or any wait past the clock's range: no limit, as
// above).
// Throws: std::invalid_argument if max_wait is negative or NaN, or `loader`
// is empty.
template <class Rep, class Period, class L>
internal::GuardedLoader<internal::LimitGuard, std::decay_t<L>> WithLimit(
    ConcurrencyLimiter& limiter, std::chrono::duration<Rep, Period> max_wait,
    L&& loader);

}  // namespace herd

#include "herd/internal/guard_concurrency_limiter_impl.h"  // IWYU pragma: export

#endif  // HERD_CONCURRENCY_LIMITER_H_
