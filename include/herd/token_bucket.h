// Copyright 2026 The herd Authors.
//
// herd/token_bucket.h: a rate limiter that allows bursts.
//
//   herd::TokenBucketOptions  rate, capacity (the burst), clock
//   herd::TokenBucket         `rate` tokens per second, at most `capacity`
//                             stored
//   herd::WithRateLimit()     wraps a loader so that each call takes a token
//
// Example:
//
//   herd::TokenBucket bucket({.rate = 100, .capacity = 20});  // burst 20
//   if (bucket.TryAcquire()) { ... }        // never blocks
//   bucket.Acquire(5);                      // sleeps until 5 tokens exist
//   if (!bucket.AcquireFor(1, std::chrono::milliseconds(10))) { shed(); }
//
// Thread safety: every member function may be called concurrently.
//
// Memory ordering: none beyond the bucket's own state; it is not a way to
// publish data between callers.
//
// The model is Go's golang.org/x/time/rate.Limiter, with rate as its Limit
// and capacity as its burst: the bucket starts full; every call is a
// reservation (Go's ReserveN), made at once and in arrival order, of tokens
// that exist now or will exist at a computed instant, the call's ready
// time; a waiter sleeps exactly until then, once, on the injected clock (no
// polling, no thread, no timer); later callers, TryAcquire included, queue
// behind every reservation (TryAcquire(0) is true iff none waits). A waiter
// whose stop token is stopped before its ready time cancels its reservation
// (Go's Reservation.Cancel) and returns false, having taken nothing.
//
// Exact arithmetic, in clock ticks (nanoseconds on the steady clock): one
// token costs tick = round(1 s / rate), and n tokens cost exactly n * tick.
// A bucket idle for long holds `capacity` tokens, not more.
//
// The guarantee: every call that returns true is granted its n tokens at
// one instant of the bucket's clock (its ready time: the instant it
// reserved, if they were there, else the instant they came to exist). For
// any two instants a <= b, the tokens granted at instants in [a, b] number
// at most capacity + (b - a) / tick. At one instant (a == b), at most
// capacity, cancellations included. (Go's Cancel restores tokens "as much
// as possible, considering that other reservations may have already been
// made"; herd restores only what keeps this bound:) a cancelled
// reservation gives its tokens back only when no live reservation queues
// behind it; then the tokens of every cancelled reservation between it and
// the live one before it come back too. A cancelled reservation with live
// ones behind it returns nothing: they keep their ready times, and its
// tokens are lost to the bucket.
//
// Durations: AcquireFor(n, 0) succeeds iff the tokens are there now;
// AcquireFor(n, duration::max()) (any timeout past the clock's range) waits
// as long as it takes, like Acquire(n, stop). Negative or NaN timeouts are
// rejected.
//
// A Clock that throws: an exception from Now() before a call reserves
// propagates with the bucket unchanged. One from the wait (SleepUntil(), or
// the Now() that checks a stopped wait) propagates too, and the reserved
// tokens stay taken: they count as granted at their ready time.

#ifndef HERD_TOKEN_BUCKET_H_
#define HERD_TOKEN_BUCKET_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "herd/clock.h"
#include "herd/internal/guarded_loader.h"
#include "herd/internal/mutex.h"
#include "herd/internal/time.h"

namespace herd {

struct TokenBucketOptions {
  // Tokens added per second. REQUIRES: finite, > 0, and at most 2e9, so
  // that a token costs at least one tick (tick = round(1 s / rate)).
  double rate = 0;
  // The most tokens stored, and the most one call may take (Go's burst).
  // REQUIRES: >= 1, and capacity * tick at most 1e9 s (about 31 years).
  std::int64_t capacity = 0;
  // nullptr means Clock::Steady(). Must outlive the bucket.
  const Clock* clock = nullptr;
};

class TokenBucket {
 public:
  // Starts full.
  // Throws: std::invalid_argument if an option breaks its REQUIRES; what
  // the clock's Now() throws.
  explicit TokenBucket(TokenBucketOptions options);

  // Deprecated: TokenBucket({.rate = r, .capacity = c, .clock = &clock}).
  [[deprecated("use TokenBucket(TokenBucketOptions)")]] TokenBucket(
      double rate, std::int64_t capacity, const Clock& clock = Clock::Steady());

  // REQUIRES: no thread is waiting in the bucket.
  ~TokenBucket() = default;

  TokenBucket(const TokenBucket&) = delete;
  TokenBucket& operator=(const TokenBucket&) = delete;

  // Takes n tokens iff they are there now (and no reservation waits).
  // Returns true iff it took them; false takes nothing.
  // Throws: std::invalid_argument unless 0 <= n <= capacity.
  bool TryAcquire(std::int64_t n = 1) ABSL_LOCKS_EXCLUDED(mu_);

  // Takes n tokens, sleeping exactly until they exist. Not interruptible.
  // Throws: std::invalid_argument unless 0 <= n <= capacity.
  void Acquire(std::int64_t n = 1) ABSL_LOCKS_EXCLUDED(mu_);

  // As Acquire(n), but cancels when `stop` is stopped before the tokens'
  // ready time. Returns true iff it took the tokens; false means `stop` was
  // stopped first (or already on entry) and nothing was taken. A stop that
  // races the ready time gives exactly one of the two outcomes.
  // Throws: std::invalid_argument unless 0 <= n <= capacity.
  bool Acquire(std::int64_t n, std::stop_token stop) ABSL_LOCKS_EXCLUDED(mu_);

  // Takes n tokens if they will exist within `timeout`, sleeping until
  // then. Returns false without taking anything if they will not (decided
  // at once, without waiting out the timeout, since waiting cannot help) or
  // if `stop` is stopped first, as Acquire(n, stop). Zero: only tokens that
  // are there now; duration::max(): no limit.
  // Throws: std::invalid_argument unless 0 <= n <= capacity, or if
  // `timeout` is negative or NaN.
  template <class Rep, class Period>
  bool AcquireFor(std::int64_t n, std::chrono::duration<Rep, Period> timeout,
                  std::stop_token stop = {}) ABSL_LOCKS_EXCLUDED(mu_) {
    internal::CheckTimeout(timeout, "herd::TokenBucket::AcquireFor");
    return AcquireUntil(n, internal::SaturatingAdd(clock_.Now(), timeout),
                        std::move(stop));
  }

  // AcquireFor() with an absolute deadline on the bucket's clock
  // (time_point::max(): no limit; a deadline already past: only tokens that
  // are there now).
  bool AcquireUntil(std::int64_t n, Clock::time_point deadline,
                    std::stop_token stop = {}) ABSL_LOCKS_EXCLUDED(mu_);

  // Tokens there now (0 while reservations wait), fractions included.
  double Available() const ABSL_LOCKS_EXCLUDED(mu_);

  double rate() const { return rate_; }
  std::int64_t capacity() const { return capacity_; }
  // What one token costs: round(1 s / rate) of clock time.
  Clock::duration token_cost() const { return tick_; }

 private:
  // A reservation still waiting for its ready time, on the waiter's stack,
  // linked in reservation order.
  struct Reservation {
    bool linked = false;      // waiting, in the list
    Clock::time_point end;    // the chain's end just after it was made
    Clock::time_point ready;  // when its tokens exist
    Reservation* prev = nullptr;
    Reservation* next = nullptr;
  };

  void CheckN(std::int64_t n) const;
  // Reserves n tokens if they exist by `latest` (nullopt: now); returns
  // their ready time, or nullopt (nothing changed). A reservation not ready
  // now is linked through `waiting` (then waiting->linked), which must then
  // go to Finish().
  std::optional<Clock::time_point> Reserve(
      std::int64_t n, std::optional<Clock::time_point> latest,
      Reservation* waiting) ABSL_LOCKS_EXCLUDED(mu_);
  // Settles a linked reservation after its sleep. Returns true iff its
  // tokens are granted; false iff it was cancelled (stopped before ready).
  // Throws: what the clock's Now() throws (the tokens then stay granted).
  bool Finish(Reservation* waiting, bool reached) ABSL_LOCKS_EXCLUDED(mu_);
  void Unlink(Reservation* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Grant(Reservation* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Cancel(Reservation* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const double rate_;
  const Clock::duration tick_;  // the cost of one token
  const std::int64_t capacity_;
  const Clock::duration full_cost_;  // capacity_ * tick_
  const Clock& clock_;

  mutable internal::Mutex mu_;
  // State below is protected by mu_. Tokens at time t, with no reservation
  // waiting: min(capacity, (t - empty_at_) / tick).
  //
  // Every reservation owns the stretch of clock time [end - cost, end] in
  // which its tokens accrue; the stretches follow one another, and
  // empty_at_ is the end of the last. Cancelling the last waiting
  // reservation moves empty_at_ back to the end of the latest reservation
  // not cancelled: the live waiter before it, or floor_.
  Clock::time_point empty_at_ ABSL_GUARDED_BY(mu_);
  // The latest end among granted reservations (none waits any more).
  Clock::time_point floor_ ABSL_GUARDED_BY(mu_);
  Reservation* head_ ABSL_GUARDED_BY(mu_) = nullptr;  // oldest waiting
  Reservation* tail_ ABSL_GUARDED_BY(mu_) = nullptr;  // newest waiting
};

namespace internal {
class RateLimitGuard;
}  // namespace internal

// Returns a loader, invocable as Value(std::stop_token), that takes one
// token from `bucket` (waiting for it) and then runs `loader`. If the stop
// token is stopped before the token is granted, or by the time it is, it
// throws herd::Cancelled without running `loader` (a token granted that
// late stays taken). `bucket` must outlive the result.
// Throws: std::invalid_argument if `loader` is an empty std::function,
// absl::AnyInvocable or null pointer.
template <class L>
internal::GuardedLoader<internal::RateLimitGuard, std::decay_t<L>>
WithRateLimit(TokenBucket& bucket, L&& loader);

}  // namespace herd

#include "herd/internal/guard_token_bucket_impl.h"  // IWYU pragma: export

#endif  // HERD_TOKEN_BUCKET_H_
