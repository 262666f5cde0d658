// Copyright 2026 The herd Authors.
//
// herd/circuit_breaker.h: stops calling a dependency that keeps failing, and
// lets a few trial calls through once it may have recovered.
//
//   herd::CircuitBreakerOptions   trip condition, open duration, trials,
//                                 what counts as a failure, the clock
//   herd::CircuitBreaker          closed / open / half-open state machine
//   herd::CircuitBreaker::Ticket  admission of one call, to be recorded
//   herd::WithBreaker()           wraps a loader to run through a breaker
//
// Example:
//
//   herd::CircuitBreaker breaker({.failure_threshold = 5,
//                                 .open_duration = std::chrono::seconds(10)});
//   auto value = share.Do(key, herd::WithBreaker(breaker, load_from_db));
//   // After 5 failures in a row, calls throw herd::CircuitOpen at once for
//   // 10 s; then one trial call runs, and its success closes the breaker.
//
// Thread safety: every member function may be called concurrently.
//
// Memory ordering: none beyond the breaker's own state; it is not a way to
// publish data between calls.
//
// States:
//   closed     every call runs; outcomes feed the trip condition.
//   open       every call fails at once with herd::CircuitOpen, without
//              running the loader, until open_duration has passed.
//   half-open  the first `half_open_trials` calls run as trials, the rest
//              are refused. One failed trial reopens the breaker (for another
//              open_duration); once every trial has succeeded it closes.
//
// Trip condition, chosen by the options:
//   consecutive  (window_size == 0) failure_threshold failures in a row.
//   ratio        (window_size > 0) of the last window_size calls, at least
//                failure_ratio failed; no trip before window_size calls.
//
// A call's outcome counts only in the state that admitted it: a slow call
// admitted while closed that fails after the breaker opened is ignored.
// "Failure" means the loader threw an exception for which is_failure returns
// true (by default, every exception but herd::Cancelled: a caller that gave
// up says nothing about the dependency, as in Polly); a value, or an
// exception is_failure declines, is a success.
//
// The breaker's lock is held only to admit and to record a call, never while
// the loader runs, so concurrent calls through a closed breaker run in
// parallel. Time comes from the injected clock: the open -> half-open
// transition happens lazily, on the first call (or state()) after
// open_duration, so there is no background thread.
//
// Durations: open_duration = duration::max() keeps a tripped breaker open
// for good (it never half-opens); zero is rejected. The breaker never
// waits, so it does not look at a loader's stop token: WithBreaker() passes
// it on to the loader unchanged.
//
// A Clock that throws: TryAdmit() and state() read Now() only while the
// breaker is open; if it throws, the exception propagates and nothing
// changes (no call admitted, none counted as rejected; WithBreaker() does
// not run the loader). Record() is noexcept and reads Now() only when the
// outcome opens the breaker; if Now() throws there, the breaker opens as of
// the last instant it read from the clock (at construction, or later), so
// it half-opens no later than open_duration after the failure, possibly
// sooner.

#ifndef HERD_CIRCUIT_BREAKER_H_
#define HERD_CIRCUIT_BREAKER_H_

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <stop_token>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "herd/clock.h"
#include "herd/errors.h"
#include "herd/internal/guarded_loader.h"
#include "herd/internal/mutex.h"

namespace herd {

struct CircuitBreakerOptions {
  // Consecutive mode: failures in a row that open the breaker.
  // REQUIRES: >= 1 (checked in both modes).
  int failure_threshold = 5;
  // Ratio mode when > 0: the number of most recent calls considered.
  // REQUIRES: >= 0.
  int window_size = 0;
  // Ratio mode: the failed fraction of the window that opens the breaker.
  // REQUIRES: in (0, 1] when window_size > 0.
  double failure_ratio = 0.5;
  // How long the breaker stays open before it lets trial calls through.
  // REQUIRES: > 0. duration::max(): open for good once tripped.
  Clock::duration open_duration = std::chrono::seconds(30);
  // Trial calls admitted in half-open; all must succeed to close.
  // REQUIRES: >= 1.
  int half_open_trials = 1;
  // Which exceptions count as failures. Empty: all of them except
  // herd::Cancelled (and its subclasses). A predicate
  // that throws counts the call as a failure (in WithBreaker(), its
  // exception then replaces the loader's).
  std::function<bool(const std::exception_ptr&)> is_failure{};
  // nullptr means Clock::Steady(). Must outlive the breaker.
  const Clock* clock = nullptr;
};

class CircuitBreaker {
 public:
  enum class State { kClosed, kOpen, kHalfOpen };

  using Options [[deprecated("use herd::CircuitBreakerOptions")]] =
      CircuitBreakerOptions;

  // Proof that a call was admitted. Pass it to Record() exactly once.
  class Ticket {
   private:
    friend class CircuitBreaker;
    Ticket(std::uint64_t generation, bool trial)
        : generation_(generation), trial_(trial) {}
    std::uint64_t generation_;  // which closed/half-open period admitted it
    bool trial_;
  };

  // Throws: std::invalid_argument if an option breaks its REQUIRES; what
  // the clock's Now() throws (read once, for the fallback above).
  explicit CircuitBreaker(CircuitBreakerOptions options);
  CircuitBreaker();  // default CircuitBreakerOptions

  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  // Low-level interface (WithBreaker() uses it): asks to run one call.
  // Returns a ticket iff the call may run; nullopt means refuse it (open,
  // or half-open with every trial taken). REQUIRES: every returned ticket is
  // passed to Record() once the call finishes, or half-open can stall.
  // Throws: what the clock's Now() throws (only while open; see above).
  std::optional<Ticket> TryAdmit() ABSL_LOCKS_EXCLUDED(mu_);

  // Records the outcome of an admitted call. Never throws (see above for a
  // clock that does).
  void Record(const Ticket& ticket, bool failed) noexcept
      ABSL_LOCKS_EXCLUDED(mu_);

  // Whether an exception thrown by the protected call counts as a failure.
  // Throws: what is_failure throws.
  bool IsFailure(const std::exception_ptr& e) const;

  // The current state (an open breaker whose open_duration has passed
  // reports kHalfOpen). Throws: what the clock's Now() throws (only while
  // open).
  State state() const ABSL_LOCKS_EXCLUDED(mu_);

  // Calls refused since construction.
  std::int64_t rejected() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // clock_.Now(), remembered in last_now_.
  Clock::time_point ReadClock() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // ReadClock(), or last_now_ if the clock throws.
  Clock::time_point NowOrLast() noexcept ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True iff the breaker is open and open_duration has passed by `now`.
  bool OpenPeriodOver(Clock::time_point now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves open -> half-open once open_duration has passed.
  void Refresh(Clock::time_point now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Open(Clock::time_point now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Close() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool RecordClosed(bool failed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const CircuitBreakerOptions options_;
  const Clock& clock_;
  // Ratio mode: failures among window_size calls that open the breaker,
  // ceil(failure_ratio * window_size) computed once, free of rounding noise.
  const int window_failure_threshold_;

  mutable internal::Mutex mu_;
  // State below is protected by mu_.
  State state_ ABSL_GUARDED_BY(mu_) = State::kClosed;
  // Bumped on every state change; tickets from older generations are stale.
  std::uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  Clock::time_point opened_at_ ABSL_GUARDED_BY(mu_);
  // The last value read from the clock: Record()'s fallback.
  Clock::time_point last_now_ ABSL_GUARDED_BY(mu_);
  int consecutive_failures_ ABSL_GUARDED_BY(mu_) = 0;
  // Ratio mode: ring buffer of the last window_size outcomes.
  std::vector<bool> window_ ABSL_GUARDED_BY(mu_);
  int window_next_ ABSL_GUARDED_BY(mu_) = 0;
  int window_count_ ABSL_GUARDED_BY(mu_) = 0;
  int window_failures_ ABSL_GUARDED_BY(mu_) = 0;
  // Half-open: trials handed out and trials that succeeded.
  int trials_admitted_ ABSL_GUARDED_BY(mu_) = 0;
  int trials_succeeded_ ABSL_GUARDED_BY(mu_) = 0;
  std::int64_t rejected_ ABSL_GUARDED_BY(mu_) = 0;
};

std::string_view ToString(CircuitBreaker::State state);

namespace internal {
class BreakerGuard;
}  // namespace internal

// Returns a loader, invocable as Value(std::stop_token), that runs `loader`
// through `breaker`: it throws herd::CircuitOpen without running `loader`
// when the breaker refuses the call, and otherwise records the outcome and
// returns the value or rethrows the exception unchanged. `breaker` is held
// by reference and must outlive the result; `loader` is copied or moved in.
// Throws: std::invalid_argument if `loader` is an empty std::function,
// absl::AnyInvocable or null pointer.
template <class L>
internal::GuardedLoader<internal::BreakerGuard, std::decay_t<L>> WithBreaker(
    CircuitBreaker& breaker, L&& loader);

}  // namespace herd

#include "herd/internal/guard_circuit_breaker_impl.h"  // IWYU pragma: export

#endif  // HERD_CIRCUIT_BREAKER_H_
