// Copyright 2026 The herd Authors.

#include "herd/token_bucket.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "herd/internal/time.h"

namespace herd {

namespace {

constexpr double kTicksPerSecond =
    static_cast<double>(Clock::duration::period::den) /
    static_cast<double>(Clock::duration::period::num);

// Keeps every cost far inside Clock::duration's range.
constexpr double kMaxFillSeconds = 1e9;  // about 31 years

double CheckRate(double rate) {
  if (!(rate > 0.0) || !std::isfinite(rate)) {
    throw std::invalid_argument(
        "herd::TokenBucket: rate must be > 0 and finite");
  }
  return rate;
}

// round(1 s / rate) in clock ticks.
Clock::duration TokenCost(double rate) {
  const double ticks = std::round(kTicksPerSecond / CheckRate(rate));
  if (ticks < 1.0) {
    throw std::invalid_argument(
        "herd::TokenBucket: rate too high: a token must cost at least one "
        "clock tick (rate <= 2e9 per second)");
  }
  if (ticks > kMaxFillSeconds * kTicksPerSecond) {
    throw std::invalid_argument(
        "herd::TokenBucket: capacity / rate exceeds 1e9 seconds");
  }
  return Clock::duration(static_cast<Clock::duration::rep>(ticks));
}

std::int64_t CheckCapacity(std::int64_t capacity, Clock::duration tick) {
  if (capacity < 1) {
    throw std::invalid_argument("herd::TokenBucket: capacity must be >= 1");
  }
  if (static_cast<double>(capacity) * static_cast<double>(tick.count()) >
      kMaxFillSeconds * kTicksPerSecond) {
    throw std::invalid_argument(
        "herd::TokenBucket: capacity / rate exceeds 1e9 seconds");
  }
  return capacity;
}

}  // namespace

TokenBucket::TokenBucket(TokenBucketOptions options)
    : rate_(CheckRate(options.rate)),
      tick_(TokenCost(options.rate)),
      capacity_(CheckCapacity(options.capacity, tick_)),
      full_cost_(tick_ * capacity_),
      clock_(options.clock != nullptr ? *options.clock : Clock::Steady()) {
  const Clock::time_point now = clock_.Now();
  internal::MutexLock lock(&mu_);
  empty_at_ = now - full_cost_;
  floor_ = empty_at_;
}

TokenBucket::TokenBucket(double rate, std::int64_t capacity, const Clock& clock)
    : TokenBucket(TokenBucketOptions{
          .rate = rate, .capacity = capacity, .clock = &clock}) {}

void TokenBucket::CheckN(std::int64_t n) const {
  if (n < 0 || n > capacity_) {
    throw std::invalid_argument(
        "herd::TokenBucket: asked for " + std::to_string(n) +
        " tokens; must be in [0, capacity = " + std::to_string(capacity_) +
        "]");
  }
}

bool TokenBucket::TryAcquire(std::int64_t n) {
  CheckN(n);
  // No later than now: granted at once or refused, never linked.
  return Reserve(n, std::nullopt, nullptr).has_value();
}

void TokenBucket::Acquire(std::int64_t n) {
  AcquireUntil(n, Clock::time_point::max(), std::stop_token());
}

bool TokenBucket::Acquire(std::int64_t n, std::stop_token stop) {
  return AcquireUntil(n, Clock::time_point::max(), std::move(stop));
}

bool TokenBucket::AcquireUntil(std::int64_t n, Clock::time_point deadline,
                               std::stop_token stop) {
  CheckN(n);
  if (stop.stop_requested()) return false;
  Reservation waiting;
  const std::optional<Clock::time_point> ready = Reserve(n, deadline, &waiting);
  if (!ready) return false;
  if (!waiting.linked) return true;  // granted at once
  bool reached;
  try {
    reached = clock_.SleepUntil(*ready, stop);
  } catch (...) {
    Finish(&waiting, /*reached=*/true);  // the tokens stay taken
    throw;
  }
  return Finish(&waiting, reached);
}

std::optional<Clock::time_point> TokenBucket::Reserve(
    std::int64_t n, std::optional<Clock::time_point> latest,
    Reservation* waiting) {
  const Clock::duration cost = tick_ * n;
  internal::MutexLock lock(&mu_);
  // Reading the clock is the only step that can throw, and it comes first.
  const Clock::time_point now = clock_.Now();
  // A bucket idle for long is full, not fuller.
  const Clock::time_point start = std::max(empty_at_, now - full_cost_);
  const Clock::time_point end = internal::SaturatingAdd(start, cost);
  const Clock::time_point ready = std::max(end, now);
  // Tokens there now are always granted: `latest` may have been read from
  // the clock before `now` (AcquireFor reads it first), and a deadline that
  // has passed means "only what is there now", not "nothing".
  if (ready > std::max(latest.value_or(now), now)) return std::nullopt;
  empty_at_ = end;
  if (ready <= now) {
    floor_ = std::max(floor_, end);
    return ready;
  }
  // Not ready now, so `latest` was set and so is `waiting`.
  waiting->linked = true;
  waiting->end = end;
  waiting->ready = ready;
  waiting->prev = tail_;
  waiting->next = nullptr;
  (tail_ != nullptr ? tail_->next : head_) = waiting;
  tail_ = waiting;
  return ready;
}

bool TokenBucket::Finish(Reservation* waiting, bool reached) {
  internal::MutexLock lock(&mu_);
  if (!reached) {
    Clock::time_point now;
    try {
      now = clock_.Now();
    } catch (...) {
      Grant(waiting);
      throw;
    }
    // Stopped before the ready time (by the clock, read under the lock):
    // cancelled. A stop seen only at or after it is too late: granted.
    if (now < waiting->ready) {
      Cancel(waiting);
      return false;
    }
  }
  Grant(waiting);
  return true;
}

void TokenBucket::Unlink(Reservation* r) {
  (r->prev != nullptr ? r->prev->next : head_) = r->next;
  (r->next != nullptr ? r->next->prev : tail_) = r->prev;
  r->prev = r->next = nullptr;
  r->linked = false;
}

void TokenBucket::Grant(Reservation* r) {
  Unlink(r);
  floor_ = std::max(floor_, r->end);
}

void TokenBucket::Cancel(Reservation* r) {
  const bool last = r == tail_;
  Unlink(r);
  if (!last) return;  // live reservations queue behind it: nothing back
  // Back to the end of the latest reservation not cancelled. Every
  // reservation made after this one waits (its ready time is after this
  // one's, which has not come), so those are exactly the linked ones; the
  // rest have ended by floor_.
  empty_at_ = tail_ != nullptr ? std::max(floor_, tail_->end) : floor_;
}

double TokenBucket::Available() const {
  internal::MutexLock lock(&mu_);
  const Clock::time_point now = clock_.Now();
  const Clock::duration stored = std::min(now - empty_at_, full_cost_);
  if (stored <= Clock::duration::zero()) return 0.0;
  return static_cast<double>(stored.count()) /
         static_cast<double>(tick_.count());
}

}  // namespace herd
