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

// A call on the waiting path. Its fields are read and written under mu_,
// except by its own thread before it is linked and after it is unlinked.
struct ConcurrencyLimiter::Waiter {
  Waiter* prev = nullptr;
  Waiter* next = nullptr;
  bool queued = false;   // linked into the queue
  bool granted = false;  // handed a permit (then unlinked)
  bool stopped = false;  // its token was stopped before a handoff
  std::condition_variable cv;
};

ConcurrencyLimiter::ConcurrencyLimiter(std::ptrdiff_t max)
    : max_(CheckMax(max)), free_(max_) {}

bool ConcurrencyLimiter::TryTake() noexcept {
  std::ptrdiff_t free = free_.load(std::memory_order_relaxed);
  while (free > 0) {
    if (free_.compare_exchange_weak(free, free - 1, std::memory_order_acquire,
                                    std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

std::optional<ConcurrencyLimiter::Permit>
ConcurrencyLimiter::TryAcquire() noexcept {
  if (!TryTake()) return std::nullopt;
  return Permit(this);
}

ConcurrencyLimiter::Permit ConcurrencyLimiter::Acquire() {
  if (TryTake()) return Permit(this);
  // With no stop token and no deadline, the wait ends only with a permit.
  return *Wait(std::nullopt, std::stop_token());
}

std::optional<ConcurrencyLimiter::Permit> ConcurrencyLimiter::Acquire(
    std::stop_token stop) {
  return Wait(std::nullopt, stop);
}

std::ptrdiff_t ConcurrencyLimiter::waiting() const {
  internal::MutexLock lock(&mu_);
  return queued_;
}

// Why no permit and no stop is missed. A call on the waiting path raises
// active_ before it looks at its token and at free_ (both under mu_), and
// Return() reads active_ with read-modify-writes (seq_cst), which all fall
// in one modification order:
//   * Return() saw active_ == 0 first: the caller's increment comes later
//     in that order and synchronizes with Return()'s read, so everything
//     the returning thread did before (making the permit free, or
//     requesting a stop on the caller's token) is visible to the caller's
//     checks. If the caller raised active_ before Return()'s second read,
//     Return() also takes mu_ and hands a free permit to any queued call.
//   * Return() saw active_ > 0: it hands off or frees the permit under mu_,
//     and the caller's checks, also under mu_, come before or after.
// A stop on a queued call runs OnStop() inside request_stop(), under mu_,
// so a handoff after it skips that call.
std::optional<ConcurrencyLimiter::Permit> ConcurrencyLimiter::Wait(
    std::optional<std::chrono::steady_clock::time_point> deadline,
    const std::stop_token& stop) {
  if (!stop.stop_possible() && TryTake()) return Permit(this);
  if (stop.stop_requested()) return std::nullopt;
  active_.fetch_add(1, std::memory_order_seq_cst);
  Waiter w;
  auto on_stop = [this, &w]() noexcept { OnStop(&w); };
  // Registered with mu_ not held: it runs at once if `stop` already is.
  std::optional<std::stop_callback<decltype(on_stop)>> stop_callback;
  if (stop.stop_possible()) stop_callback.emplace(stop, on_stop);
  bool got = false;
  {
    internal::MutexLock lock(&mu_);
    if (!w.stopped && !stop.stop_requested()) {
      if (TryTake()) {
        got = true;
      } else if (!deadline || std::chrono::steady_clock::now() < *deadline) {
        w.prev = tail_;
        (tail_ != nullptr ? tail_->next : head_) = &w;
        tail_ = &w;
        w.queued = true;
        ++queued_;
        while (!w.granted && !w.stopped) {
          if (!deadline) {
            internal::Wait(w.cv, mu_);
          } else if (internal::WaitUntil(w.cv, mu_, *deadline) ==
                     std::cv_status::timeout) {
            break;
          }
        }
        got = w.granted;  // a handoff before the timeout was seen wins
        if (w.queued) Unlink(&w);
      }
    }
  }
  // Outside mu_: this waits for an OnStop() running on another thread,
  // which needs mu_.
  stop_callback.reset();
  active_.fetch_sub(1, std::memory_order_seq_cst);
  if (!got) return std::nullopt;
  return Permit(this);
}

void ConcurrencyLimiter::Unlink(Waiter* w) {
  (w->prev != nullptr ? w->prev->next : head_) = w->next;
  (w->next != nullptr ? w->next->prev : tail_) = w->prev;
  w->prev = w->next = nullptr;
  w->queued = false;
  --queued_;
}

bool ConcurrencyLimiter::HandOff() {
  Waiter* w = head_;
  if (w == nullptr) return false;
  Unlink(w);
  w->granted = true;
  // Under mu_: the waiter cannot return, and destroy its cv, before it
  // reacquires mu_.
  w->cv.notify_one();
  return true;
}

void ConcurrencyLimiter::OnStop(Waiter* w) {
  internal::MutexLock lock(&mu_);
  if (w->granted) return;  // handed a permit first: it keeps it
  w->stopped = true;
  if (w->queued) Unlink(w);
  w->cv.notify_one();
}

void ConcurrencyLimiter::Return() noexcept {
  if (active_.fetch_add(0, std::memory_order_seq_cst) == 0) {
    free_.fetch_add(1, std::memory_order_seq_cst);
    if (active_.fetch_add(0, std::memory_order_seq_cst) == 0) return;
    // A call took the waiting path meanwhile and may have queued without
    // seeing this permit: move a free permit to the queue.
    internal::MutexLock lock(&mu_);
    if (head_ != nullptr && TryTake()) HandOff();
    return;
  }
  internal::MutexLock lock(&mu_);
  if (!HandOff()) free_.fetch_add(1, std::memory_order_seq_cst);
}

}  // namespace herd
