// Copyright 2026 The herd Authors.
//
// herd/retry.h: retries a failing loader with capped exponential backoff and
// jitter.
//
//   herd::RetryOptions   attempts, delays, jitter, what to retry, the clock
//   herd::Retry          the policy built from them (immutable)
//   herd::Retry::On<E..> a predicate that retries only exceptions of types E
//   herd::WithRetry()    wraps a loader so that it runs under a policy
//
// Example:
//
//   herd::Retry policy({.max_attempts = 4,
//                       .initial_delay = std::chrono::milliseconds(50),
//                       .retry_if = herd::Retry::On<DbUnavailable>()});
//   auto value = share.Do(key, herd::WithRetry(policy, load_from_db));
//
// Thread safety: a Retry is immutable after construction and may be shared;
// a wrapped loader may be called concurrently iff the inner loader may.
//
// Memory ordering: each attempt happens before the next one starts (they
// run on the caller's thread, one after the other).
//
// Backoff: retry k (k = 1 before the second attempt) waits a delay drawn
// from [ceiling_k * (1 - jitter), ceiling_k], where
// ceiling_k = min(max_delay, initial_delay * multiplier^(k-1)). jitter = 1 is
// "full jitter" (uniform in [0, ceiling_k]), which spreads a herd of clients
// that failed together; jitter = 0 waits exactly ceiling_k. A zero delay
// retries at once; a delay of duration::max() (any delay past the clock's
// range) waits with no limit, so that only the stop token ends it. Sleeps go
// through the policy's Clock, so with a FakeClock a test decides when each
// retry starts.
//
// The stop token: the wrapped loader is invocable as Value(std::stop_token)
// and passes the token to the inner loader (which may take one or not).
// The token is checked before every attempt, the first included, so no
// attempt starts once it is stopped, even when the stop arrives at the
// instant a backoff ends; a stop during a backoff ends the sleep at once.
// The call then throws the last attempt's exception, or herd::Cancelled if
// the token was stopped before the first attempt (the loader never ran).
//
// When every attempt fails, or the predicate declines an exception, the last
// exception is rethrown unchanged (same object, type and payload).
//
// A Clock that throws (Now() or SleepUntil(), during a backoff): that
// exception leaves the call in place of the attempt's, and no further
// attempt starts.

#ifndef HERD_RETRY_H_
#define HERD_RETRY_H_

#include <chrono>
#include <exception>
#include <functional>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "herd/clock.h"
#include "herd/internal/guarded_loader.h"

namespace herd {

// Decides from a failed attempt's exception whether to try again.
using RetryPredicate = std::function<bool(const std::exception_ptr&)>;

struct RetryOptions {
  // Attempts in all, the first one included. REQUIRES: >= 1.
  int max_attempts = 3;
  // Ceiling of the first backoff. REQUIRES: >= 0 (zero: retry at once).
  Clock::duration initial_delay = std::chrono::milliseconds(100);
  // Growth of the ceiling per retry. REQUIRES: >= 1 and finite.
  double multiplier = 2.0;
  // Largest ceiling. REQUIRES: >= initial_delay. duration::max(): no cap.
  Clock::duration max_delay = std::chrono::seconds(10);
  // Fraction of the ceiling that is randomised. REQUIRES: in [0, 1].
  double jitter = 1.0;
  // Which exceptions are retried. Empty: every exception except
  // herd::CircuitOpen (the breaker said the service is down) and
  // herd::Cancelled (the caller gave up). A predicate that throws ends the
  // retries: its exception leaves the call in place of the attempt's.
  RetryPredicate retry_if{};
  // Backoff sleeps use this clock; nullptr means Clock::Steady(). Must
  // outlive the policy and every loader wrapped with it.
  const Clock* clock = nullptr;
};

class Retry {
 public:
  using Predicate = RetryPredicate;
  using Options [[deprecated("use herd::RetryOptions")]] = RetryOptions;

  // Throws: std::invalid_argument if an option breaks its REQUIRES.
  explicit Retry(RetryOptions options);
  Retry();  // default RetryOptions

  int max_attempts() const { return options_.max_attempts; }
  const Clock& clock() const { return *options_.clock; }

  // The backoff ceiling before retry `retry` (1 = first retry); a `retry`
  // below 1 counts as 1.
  Clock::duration Ceiling(int retry) const;

  // The backoff before retry `retry` given `u` drawn uniformly from [0, 1]
  // (clamped to it): Ceiling(retry) * (1 - jitter * u), rounded to the
  // nearest tick, in [0, Ceiling(retry)].
  Clock::duration Backoff(int retry, double u) const;

  // Returns true iff an attempt that threw `e` should be retried (attempts
  // and stop token permitting).
  // Throws: what retry_if throws.
  bool ShouldRetry(const std::exception_ptr& e) const;

  // A predicate that retries exactly the exceptions of types E... (and types
  // derived from them).
  template <class... E>
  static Predicate On();

 private:
  RetryOptions options_;
};

namespace internal {
class RetryGuard;
}  // namespace internal

// Returns a loader, invocable as Value(std::stop_token), that runs `loader`
// under `policy` as described above. Both are copied (or moved) into the
// result.
// Throws: std::invalid_argument if `loader` is an empty std::function,
// absl::AnyInvocable or null pointer.
template <class L>
internal::GuardedLoader<internal::RetryGuard, std::decay_t<L>> WithRetry(
    Retry policy, L&& loader);

}  // namespace herd

#include "herd/internal/guard_retry_impl.h"  // IWYU pragma: export

#endif  // HERD_RETRY_H_
