// Copyright 2026 The herd Authors.
//
// herd/token_bucket.h: a rate limiter that allows bursts.
//
//   herd::TokenBucket     `rate` tokens per second, at most `capacity` stored
//   herd::WithRateLimit() wraps a loader so that each call takes one token
//
// Example:
//
//   herd::TokenBucket bucket(/*rate=*/100, /*capacity=*/20);  // burst 20
//   if (bucket.TryAcquire()) { ... }        // never blocks
//   bucket.Acquire(5);                      // sleeps until 5 tokens exist
//   if (!bucket.AcquireFor(1, std::chrono::milliseconds(10))) { shed(); }
//
// The bucket starts full. It keeps no timer and no thread: it stores the
// instant at which it was (or will be) empty and derives the token count
// from the clock, so a waiter computes exactly when its tokens will exist
// and sleeps once, until then, on the injected clock (no polling).
//
// Waiters are served first come, first served: Acquire() reserves its tokens
// at once, sleeping off the debt, and later callers (TryAcquire included)
// queue behind the reservation. A waiter whose stop token is stopped hands
// its reservation back.
//
// Token arithmetic is exact in clock ticks: one token costs
// round(1 s / rate) of clock time (in nanoseconds for the steady clock).
//
// Thread safety: every member function may be called concurrently.

#ifndef HERD_TOKEN_BUCKET_H_
#define HERD_TOKEN_BUCKET_H_

#include <cstdint>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "herd/clock.h"
#include "herd/errors.h"
#include "herd/internal/invoke.h"
#include "herd/internal/mutex.h"

namespace herd {

class TokenBucket {
 public:
  // REQUIRES: rate > 0 and finite; capacity >= 1; capacity / rate below
  // about 30 years. `clock` must outlive the bucket.
  // Throws: std::invalid_argument otherwise.
  TokenBucket(double rate, std::int64_t capacity,
              const Clock& clock = Clock::Steady());

  TokenBucket(const TokenBucket&) = delete;
  TokenBucket& operator=(const TokenBucket&) = delete;

  // Takes n tokens iff they are available now. Returns true iff it took them.
  // Throws: std::invalid_argument unless 0 <= n <= capacity.
  bool TryAcquire(std::int64_t n = 1) ABSL_LOCKS_EXCLUDED(mu_);

  // Takes n tokens, sleeping exactly until they exist.
  // Throws: std::invalid_argument unless 0 <= n <= capacity.
  void Acquire(std::int64_t n = 1) ABSL_LOCKS_EXCLUDED(mu_);

  // As Acquire(n), but gives up when `stop` is stopped. Returns true iff it
  // took the tokens; false means `stop` was stopped and nothing was taken.
  bool Acquire(std::int64_t n, std::stop_token stop) ABSL_LOCKS_EXCLUDED(mu_);

  // Takes n tokens if they will exist within `timeout`, sleeping until then.
  // Returns false without taking anything if they will not (decided at
  // once, without waiting out the timeout, since waiting cannot help) or if
  // `stop` is stopped while it sleeps.
  // Throws: std::invalid_argument unless 0 <= n <= capacity.
  bool AcquireFor(std::int64_t n, Clock::duration timeout,
                  std::stop_token stop = {}) ABSL_LOCKS_EXCLUDED(mu_);

  // AcquireFor() with an absolute deadline on the bucket's clock.
  bool AcquireUntil(std::int64_t n, Clock::time_point deadline,
                    std::stop_token stop = {}) ABSL_LOCKS_EXCLUDED(mu_);

  // Tokens available now (0 while waiters hold reservations).
  double Available() const ABSL_LOCKS_EXCLUDED(mu_);

  double rate() const { return rate_; }
  std::int64_t capacity() const { return capacity_; }

 private:
  // Clock time that n tokens take to accumulate.
  Clock::duration Cost(std::int64_t n) const;
  void CheckN(std::int64_t n) const;
  // Reserves n tokens if they exist by `latest`; returns when they do.
  std::optional<Clock::time_point> Reserve(std::int64_t n,
                                           Clock::time_point latest)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Refund(std::int64_t n) ABSL_LOCKS_EXCLUDED(mu_);

  const double rate_;
  const std::int64_t capacity_;
  const Clock& clock_;
  const Clock::duration full_cost_;  // Cost(capacity_)

  mutable internal::Mutex mu_;
  // The instant the bucket was, or after reservations will be, empty. Tokens
  // at time t: min(capacity, (t - empty_at_) / Cost(1)).
  Clock::time_point empty_at_ ABSL_GUARDED_BY(mu_);
};

namespace internal {

// The loader WithRateLimit() returns.
template <class L>
class RateLimitedLoader {
  static_assert(IsLoader<L&>,
                "a herd loader must be invocable as Value() or "
                "Value(std::stop_token)");

 public:
  RateLimitedLoader(TokenBucket& bucket, L loader)
      : bucket_(&bucket), loader_(std::move(loader)) {}

  LoaderResult<L&> operator()(std::stop_token stop) {
    if (!bucket_->Acquire(1, stop)) throw Cancelled();
    return InvokeLoader(loader_, std::move(stop));
  }
  auto operator()(std::stop_token stop) const requires IsLoader<const L&> {
    if (!bucket_->Acquire(1, stop)) throw Cancelled();
    return InvokeLoader(loader_, std::move(stop));
  }

 private:
  TokenBucket* bucket_;
  L loader_;
};

}  // namespace internal

// Returns a loader, invocable as Value(std::stop_token), that takes one
// token from `bucket` (waiting for it) and then runs `loader`. If the stop
// token is stopped while it waits it throws herd::Cancelled without running
// `loader`. `bucket` must outlive the result.
template <class L>
internal::RateLimitedLoader<std::decay_t<L>> WithRateLimit(TokenBucket& bucket,
                                                           L&& loader) {
  return internal::RateLimitedLoader<std::decay_t<L>>(bucket,
                                                      std::forward<L>(loader));
}

}  // namespace herd

#endif  // HERD_TOKEN_BUCKET_H_
