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

std::optional<ConcurrencyLimiter::Permit> ConcurrencyLimiter::AcquireUntil(
    std::optional<std::chrono::steady_clock::time_point> deadline,
    std::stop_token stop) {
  if (stop.stop_requested()) return std::nullopt;
  if (semaphore_.try_acquire()) return Permit(this);
  std::unique_lock<std::mutex> lock(mu_);
  // Read-modify-writes on waiters_, here and in Return(), order this
  // thread against a concurrent Return(): if Return() read waiters_ == 0,
  // its RMW came first in waiters_'s modification order and synchronizes
  // with this one, so the try_acquire below sees the permit it returned.
  // (An RMW rather than fences: ThreadSanitizer does not model fences.)
  waiters_.fetch_add(1, std::memory_order_seq_cst);
  std::optional<Permit> permit;
  for (;;) {
    if (semaphore_.try_acquire()) {
      permit.emplace(Permit(this));
      break;
    }
    // A permit returned after the try_acquire above bumps returns_ under
    // mu_, which this thread holds until it waits: no return is missed.
    const std::uint64_t seen = returns_;
    auto returned = [&] { return returns_ != seen; };
    const bool woken =
        deadline ? returned_.wait_until(lock, stop, *deadline, returned)
                 : returned_.wait(lock, stop, returned);
    if (!woken) break;  // stopped, or past the deadline
  }
  waiters_.fetch_sub(1, std::memory_order_relaxed);
  return permit;
}

void ConcurrencyLimiter::Return() noexcept {
  semaphore_.release();
  // An RMW, not a load: see AcquireUntil().
  if (waiters_.fetch_add(0, std::memory_order_seq_cst) == 0) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++returns_;
  }
  // One permit came back: one waiter can use it. A waiter that wakes and
  // loses the permit to a newcomer sleeps again; the newcomer's return
  // will wake a waiter in turn.
  returned_.notify_one();
}

}  // namespace herd
