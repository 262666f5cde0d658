// Copyright 2026 The herd Authors.

#include "herd/token_bucket.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace herd {

namespace {

constexpr double kTicksPerSecond =
    static_cast<double>(Clock::duration::period::den) /
    static_cast<double>(Clock::duration::period::num);

double CheckRate(double rate) {
  if (!(rate > 0.0) || !std::isfinite(rate)) {
    throw std::invalid_argument("herd::TokenBucket: rate must be > 0");
  }
  return rate;
}

std::int64_t CheckCapacity(std::int64_t capacity, double rate) {
  if (capacity < 1) {
    throw std::invalid_argument("herd::TokenBucket: capacity must be >= 1");
  }
  // Keeps every cost far inside Clock::duration's range.
  constexpr double kMaxFillSeconds = 1e9;  // about 31 years
  if (static_cast<double>(capacity) / rate > kMaxFillSeconds) {
    throw std::invalid_argument(
        "herd::TokenBucket: capacity / rate exceeds 1e9 seconds");
  }
  return capacity;
}

}  // namespace

TokenBucket::TokenBucket(double rate, std::int64_t capacity, const Clock& clock)
    : rate_(CheckRate(rate)),
      capacity_(CheckCapacity(capacity, rate)),
      clock_(clock),
      full_cost_(Cost(capacity_)),
      empty_at_(clock_.Now() - full_cost_) {}

Clock::duration TokenBucket::Cost(std::int64_t n) const {
  return Clock::duration(static_cast<Clock::duration::rep>(
      std::llround(static_cast<double>(n) * kTicksPerSecond / rate_)));
}

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
  return Reserve(n, clock_.Now()).has_value();
}

void TokenBucket::Acquire(std::int64_t n) {
  CheckN(n);
  const std::optional<Clock::time_point> ready =
      Reserve(n, Clock::time_point::max());
  // Reserve() cannot refuse with an unbounded `latest`. A sleep without a
  // stop token only ends at the deadline.
  if (*ready > clock_.Now()) clock_.SleepUntil(*ready);
}

bool TokenBucket::Acquire(std::int64_t n, std::stop_token stop) {
  return AcquireUntil(n, Clock::time_point::max(), std::move(stop));
}

bool TokenBucket::AcquireFor(std::int64_t n, Clock::duration timeout,
                             std::stop_token stop) {
  const Clock::time_point now = clock_.Now();
  const Clock::time_point deadline = timeout >= Clock::time_point::max() - now
                                         ? Clock::time_point::max()
                                         : now + timeout;
  return AcquireUntil(n, deadline, std::move(stop));
}

bool TokenBucket::AcquireUntil(std::int64_t n, Clock::time_point deadline,
                               std::stop_token stop) {
  CheckN(n);
  if (stop.stop_requested()) return false;
  const std::optional<Clock::time_point> ready = Reserve(n, deadline);
  if (!ready) return false;
  if (*ready <= clock_.Now() || clock_.SleepUntil(*ready, stop)) return true;
  Refund(n);
  return false;
}

std::optional<Clock::time_point> TokenBucket::Reserve(
    std::int64_t n, Clock::time_point latest) {
  const Clock::duration cost = Cost(n);
  internal::MutexLock lock(&mu_);
  const Clock::time_point now = clock_.Now();
  // A bucket idle for long is full, not fuller.
  const Clock::time_point empty_at = std::max(empty_at_, now - full_cost_);
  const Clock::time_point ready = std::max(empty_at + cost, now);
  if (ready > latest) return std::nullopt;
  empty_at_ = empty_at + cost;
  return ready;
}

void TokenBucket::Refund(std::int64_t n) {
  const Clock::duration cost = Cost(n);
  internal::MutexLock lock(&mu_);
  empty_at_ -= cost;
}

double TokenBucket::Available() const {
  const Clock::time_point now = clock_.Now();
  internal::MutexLock lock(&mu_);
  const Clock::duration stored = std::min(now - empty_at_, full_cost_);
  if (stored <= Clock::duration::zero()) return 0.0;
  return static_cast<double>(stored.count()) * rate_ / kTicksPerSecond;
}

}  // namespace herd
