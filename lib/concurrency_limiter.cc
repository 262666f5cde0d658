// Copyright 2026 The herd Authors.

#include "herd/concurrency_limiter.h"

#include <stdexcept>

namespace herd {

namespace {

std::ptrdiff_t CheckMax(std::ptrdiff_t max) {
  if (max < 1 || max > ConcurrencyLimiter::kMaxLimit) {
    throw std::invalid_argument(
        "herd::ConcurrencyLimiter: max must be in [1, kMaxLimit]");
  }
  return max;
}

}  // namespace

ConcurrencyLimiter::ConcurrencyLimiter(std::ptrdiff_t max)
    : max_(CheckMax(max)), semaphore_(max_) {}

}  // namespace herd
