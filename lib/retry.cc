// Copyright 2026 The herd Authors.

#include "herd/retry.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "herd/errors.h"

namespace herd {

Retry::Retry(RetryOptions options) : options_(std::move(options)) {
  const RetryOptions& o = options_;
  if (o.max_attempts < 1) {
    throw std::invalid_argument("herd::Retry: max_attempts must be >= 1");
  }
  if (o.initial_delay < Clock::duration::zero()) {
    throw std::invalid_argument("herd::Retry: initial_delay must be >= 0");
  }
  if (!(o.multiplier >= 1.0) || !std::isfinite(o.multiplier)) {
    throw std::invalid_argument("herd::Retry: multiplier must be >= 1");
  }
  if (o.max_delay < o.initial_delay) {
    throw std::invalid_argument(
        "herd::Retry: max_delay must be >= initial_delay");
  }
  if (!(o.jitter >= 0.0 && o.jitter <= 1.0)) {
    throw std::invalid_argument("herd::Retry: jitter must be in [0, 1]");
  }
  if (options_.clock == nullptr) options_.clock = &Clock::Steady();
}

Retry::Retry() : Retry(RetryOptions()) {}

Clock::duration Retry::Ceiling(int retry) const {
  // Computed in floating point so that a large exponent saturates at
  // max_delay instead of overflowing. max_delay as a double rounds to at
  // most 2^63, so a ceiling below it converts back without overflow.
  const double max = static_cast<double>(options_.max_delay.count());
  const double ceiling = static_cast<double>(options_.initial_delay.count()) *
                         std::pow(options_.multiplier, std::max(retry, 1) - 1);
  if (!(ceiling < max)) return options_.max_delay;
  return Clock::duration(static_cast<Clock::duration::rep>(ceiling));
}

Clock::duration Retry::Backoff(int retry, double u) const {
  const Clock::duration ceiling = Ceiling(retry);
  u = std::clamp(u, 0.0, 1.0);
  const double scaled =
      static_cast<double>(ceiling.count()) * (1.0 - options_.jitter * u);
  // No jitter drawn (or the ceiling is so large that it is lost in the
  // rounding): the ceiling itself, never an overflowing llround.
  if (!(scaled < static_cast<double>(ceiling.count()))) return ceiling;
  return std::clamp(
      Clock::duration(static_cast<Clock::duration::rep>(std::llround(scaled))),
      Clock::duration::zero(), ceiling);
}

bool Retry::ShouldRetry(const std::exception_ptr& e) const {
  if (options_.retry_if) return options_.retry_if(e);
  try {
    std::rethrow_exception(e);
  } catch (const CircuitOpen&) {
    return false;
  } catch (const Cancelled&) {
    return false;
  } catch (...) {
    return true;
  }
}

}  // namespace herd
