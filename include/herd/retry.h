// Copyright 2026 The herd Authors.
//
// herd/retry.h: retries a failing loader with capped exponential backoff and
// jitter.
//
//   herd::Retry          the policy: attempts, delays, jitter, what to retry
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
// Attempt k (k = 1 is the first retry) waits a delay drawn from
// [ceiling_k * (1 - jitter), ceiling_k], where
// ceiling_k = min(max_delay, initial_delay * multiplier^(k-1)). jitter = 1 is
// "full jitter" (uniform in [0, ceiling_k]), which spreads a herd of clients
// that failed together; jitter = 0 waits exactly ceiling_k.
//
// The wrapped loader is invocable as Value(std::stop_token) and passes the
// token to the inner loader (which may take one or not). Once the token is
// stopped no further attempt starts and a backoff sleep ends at once; the
// caller then gets the last attempt's exception. Sleeps go through the
// policy's Clock, so with a FakeClock a test decides when each retry starts.
//
// When every attempt fails, or the predicate declines an exception, the last
// exception is rethrown unchanged (same object, type and payload).
//
// Thread safety: a Retry is immutable after construction and may be shared;
// a wrapped loader may be called concurrently iff the inner loader may.

#ifndef HERD_RETRY_H_
#define HERD_RETRY_H_

#include <chrono>
#include <exception>
#include <functional>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "absl/random/random.h"
#include "herd/clock.h"
#include "herd/errors.h"
#include "herd/internal/invoke.h"

namespace herd {

class Retry {
 public:
  // Decides from a failed attempt's exception whether to try again.
  using Predicate = std::function<bool(const std::exception_ptr&)>;

  struct Options {
    // Attempts in all, the first one included. REQUIRES: >= 1.
    int max_attempts = 3;
    // Ceiling of the first backoff. REQUIRES: > 0.
    Clock::duration initial_delay = std::chrono::milliseconds(100);
    // Growth of the ceiling per retry. REQUIRES: >= 1.
    double multiplier = 2.0;
    // Largest ceiling. REQUIRES: >= initial_delay.
    Clock::duration max_delay = std::chrono::seconds(10);
    // Fraction of the ceiling that is randomised. REQUIRES: in [0, 1].
    double jitter = 1.0;
    // Which exceptions are retried. Empty: every exception except
    // herd::CircuitOpen (the breaker said the service is down) and
    // herd::Cancelled (the caller gave up).
    Predicate retry_if{};
    // Backoff sleeps use this clock; nullptr means Clock::Steady(). Must
    // outlive the policy and every loader wrapped with it.
    const Clock* clock = nullptr;
  };

  // Throws: std::invalid_argument if an option breaks its REQUIRES.
  explicit Retry(Options options);
  Retry();  // default Options

  int max_attempts() const { return options_.max_attempts; }
  const Clock& clock() const { return *options_.clock; }

  // The backoff ceiling before retry `retry` (1 = first retry).
  // REQUIRES: retry >= 1.
  Clock::duration Ceiling(int retry) const;

  // The backoff before retry `retry` given `u` drawn uniformly from [0, 1]:
  // Ceiling(retry) * (1 - jitter * u).
  Clock::duration Backoff(int retry, double u) const;

  // Returns true iff an attempt that threw `e` should be retried (attempts
  // and stop token permitting).
  bool ShouldRetry(const std::exception_ptr& e) const;

  // A predicate that retries exactly the exceptions of types E... (and types
  // derived from them).
  template <class... E>
  static Predicate On() {
    static_assert(sizeof...(E) > 0, "Retry::On needs at least one type");
    return [](const std::exception_ptr& e) { return (IsA<E>(e) || ...); };
  }

 private:
  template <class E>
  static bool IsA(const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const E&) {
      return true;
    } catch (...) {
      return false;
    }
  }

  Options options_;
};

namespace internal {

// The loader WithRetry() returns.
template <class L>
class RetryingLoader {
  static_assert(IsLoader<L&>,
                "a herd loader must be invocable as Value() or "
                "Value(std::stop_token)");

 public:
  RetryingLoader(Retry policy, L loader)
      : policy_(std::move(policy)), loader_(std::move(loader)) {}

  LoaderResult<L&> operator()(std::stop_token stop) {
    return Run(policy_, loader_, std::move(stop));
  }
  auto operator()(std::stop_token stop) const requires IsLoader<const L&> {
    return Run(policy_, loader_, std::move(stop));
  }

 private:
  template <class Inner>
  static LoaderResult<Inner&> Run(const Retry& policy, Inner& loader,
                                  std::stop_token stop) {
    std::optional<absl::BitGen> gen;  // seeded on the first retry only
    for (int attempt = 1;; ++attempt) {
      std::exception_ptr error;
      try {
        return InvokeLoader(loader, stop);
      } catch (...) {
        error = std::current_exception();
      }
      if (attempt >= policy.max_attempts() || stop.stop_requested() ||
          !policy.ShouldRetry(error)) {
        std::rethrow_exception(error);
      }
      if (!gen) gen.emplace();
      const Clock::duration backoff =
          policy.Backoff(attempt, absl::Uniform(*gen, 0.0, 1.0));
      const Clock& clock = policy.clock();
      if (!clock.SleepUntil(clock.Now() + backoff, stop)) {
        std::rethrow_exception(error);  // stopped while backing off
      }
    }
  }

  Retry policy_;
  L loader_;
};

}  // namespace internal

// Returns a loader, invocable as Value(std::stop_token), that runs `loader`
// under `policy`. Both are copied (or moved) into the result.
template <class L>
internal::RetryingLoader<std::decay_t<L>> WithRetry(Retry policy, L&& loader) {
  return internal::RetryingLoader<std::decay_t<L>>(std::move(policy),
                                                   std::forward<L>(loader));
}

}  // namespace herd

#endif  // HERD_RETRY_H_
