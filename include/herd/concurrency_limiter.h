// Copyright 2026 The herd Authors.
//
// herd/concurrency_limiter.h: at most N loaders in flight at once.
//
//   herd::ConcurrencyLimiter          N permits on a std::counting_semaphore
//   herd::ConcurrencyLimiter::Permit  movable RAII permit; released when
//                                     destroyed
//   herd::WithLimit()                 wraps a loader so that it holds a
//                                     permit while it runs
//
// Example:
//
//   herd::ConcurrencyLimiter db_slots(8);
//   if (auto permit = db_slots.TryAcquire()) { query(); }  // released here
//   auto value = share.Do(key, herd::WithLimit(db_slots, load_from_db));
//
// Permits are std::counting_semaphore counts: taking and returning one is a
// lock-free atomic operation when uncontended, and a blocked acquirer sleeps
// (no polling).
//
// Waiting for a permit:
//   Acquire()                     blocks in the semaphore; not interruptible.
//   Acquire(stop)                 blocks until a permit is free or `stop` is
//                                 stopped. A semaphore wait cannot be
//                                 interrupted, so these waiters sleep on a
//                                 condition variable that a returned permit
//                                 signals (only when such a waiter exists).
//   TryAcquireFor(timeout[, stop]) as above, giving up after `timeout` of
//                                 real time (std::chrono::steady_clock, not
//                                 an injected herd::Clock).
// WithLimit() waits with the loader's stop token, so a deadline or a
// Share::Cancel also ends a wait for a permit.
//
// Permits are not handed out in arrival order: a newcomer may take a
// returned permit before a sleeping waiter wakes.
//
// Thread safety: every member function may be called concurrently. A Permit
// is a value: one thread at a time.
// Memory ordering: returning a permit happens before the acquisition that
// obtains it.

#ifndef HERD_CONCURRENCY_LIMITER_H_
#define HERD_CONCURRENCY_LIMITER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <semaphore>
#include <stdexcept>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "herd/errors.h"
#include "herd/internal/invoke.h"

namespace herd {

class ConcurrencyLimiter {
 public:
  // The largest `max` accepted.
  static constexpr std::ptrdiff_t kMaxLimit = 1 << 30;

  // Holds one permit until destroyed, moved from, or Release()d.
  class Permit {
   public:
    Permit(Permit&& other) noexcept
        : limiter_(std::exchange(other.limiter_, nullptr)) {}
    Permit& operator=(Permit&& other) noexcept {
      if (this != &other) {
        Release();
        limiter_ = std::exchange(other.limiter_, nullptr);
      }
      return *this;
    }
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;
    ~Permit() { Release(); }

    // Returns the permit now; no-op if it holds none.
    void Release() noexcept {
      if (limiter_ != nullptr) std::exchange(limiter_, nullptr)->Return();
    }

    // True iff this object holds a permit.
    explicit operator bool() const noexcept { return limiter_ != nullptr; }

   private:
    friend class ConcurrencyLimiter;
    explicit Permit(ConcurrencyLimiter* limiter) : limiter_(limiter) {}
    ConcurrencyLimiter* limiter_;
  };

  // REQUIRES: 1 <= max <= kMaxLimit.
  // Throws: std::invalid_argument otherwise.
  explicit ConcurrencyLimiter(std::ptrdiff_t max);

  // REQUIRES: no permit outstanding.
  ~ConcurrencyLimiter() = default;

  ConcurrencyLimiter(const ConcurrencyLimiter&) = delete;
  ConcurrencyLimiter& operator=(const ConcurrencyLimiter&) = delete;

  // Blocks until a permit is free. Not interruptible.
  Permit Acquire() {
    semaphore_.acquire();
    return Permit(this);
  }

  // Blocks until a permit is free or `stop` is stopped. Returns the permit,
  // or nullopt iff `stop` was stopped first.
  std::optional<Permit> Acquire(std::stop_token stop) {
    return AcquireUntil(std::nullopt, std::move(stop));
  }

  // Returns a permit iff one is free now.
  std::optional<Permit> TryAcquire() {
    if (!semaphore_.try_acquire()) return std::nullopt;
    return Permit(this);
  }

  // Returns a permit iff one becomes free within `timeout` of real time
  // (and, with a token, before `stop` is stopped).
  template <class Rep, class Period>
  std::optional<Permit> TryAcquireFor(
      std::chrono::duration<Rep, Period> timeout) {
    if (!semaphore_.try_acquire_for(timeout)) return std::nullopt;
    return Permit(this);
  }
  template <class Rep, class Period>
  std::optional<Permit> TryAcquireFor(
      std::chrono::duration<Rep, Period> timeout, std::stop_token stop) {
    return AcquireUntil(
        std::chrono::steady_clock::now() +
            std::chrono::ceil<std::chrono::steady_clock::duration>(timeout),
        std::move(stop));
  }

  std::ptrdiff_t max() const { return max_; }

 private:
  // The stop-aware wait, with an optional deadline.
  std::optional<Permit> AcquireUntil(
      std::optional<std::chrono::steady_clock::time_point> deadline,
      std::stop_token stop);
  // Returns a permit to the semaphore, and wakes a stop-aware waiter if any.
  void Return() noexcept;

  const std::ptrdiff_t max_;
  std::counting_semaphore<kMaxLimit> semaphore_;

  // Stop-aware waiters, counted so that Return() takes mu_ only when one
  // exists (see AcquireUntil() for why the count cannot be missed).
  std::atomic<int> waiters_{0};
  // A plain std::mutex: std::condition_variable_any's stop_token waits need
  // a BasicLockable, which clang's analysis cannot follow.
  std::mutex mu_;
  std::condition_variable_any returned_;  // a permit came back
  std::uint64_t returns_ = 0;             // guarded by mu_
};

namespace internal {

// The loader WithLimit() returns.
template <class L>
class LimitedLoader {
  static_assert(IsLoader<L&>,
                "a herd loader must be invocable as Value() or "
                "Value(std::stop_token)");

 public:
  LimitedLoader(ConcurrencyLimiter& limiter,
                std::optional<std::chrono::steady_clock::duration> max_wait,
                L loader)
      : limiter_(&limiter), max_wait_(max_wait), loader_(std::move(loader)) {}

  LoaderResult<L&> operator()(std::stop_token stop) {
    ConcurrencyLimiter::Permit permit = Take(stop);
    return InvokeLoader(loader_, std::move(stop));
  }
  auto operator()(std::stop_token stop) const requires IsLoader<const L&> {
    ConcurrencyLimiter::Permit permit = Take(stop);
    return InvokeLoader(loader_, std::move(stop));
  }

 private:
  ConcurrencyLimiter::Permit Take(const std::stop_token& stop) const {
    std::optional<ConcurrencyLimiter::Permit> permit =
        max_wait_ ? limiter_->TryAcquireFor(*max_wait_, stop)
                  : limiter_->Acquire(stop);
    if (permit) return std::move(*permit);
    if (stop.stop_requested()) throw Cancelled();
    throw LimitExceeded();
  }

  ConcurrencyLimiter* limiter_;
  std::optional<std::chrono::steady_clock::duration> max_wait_;
  L loader_;
};

}  // namespace internal

// Returns a loader, invocable as Value(std::stop_token), that holds a permit
// from `limiter` while `loader` runs, waiting as long as it takes for one.
// If the stop token is stopped while it waits, it throws herd::Cancelled
// without running `loader`. `limiter` must outlive the result.
template <class L>
internal::LimitedLoader<std::decay_t<L>> WithLimit(ConcurrencyLimiter& limiter,
                                                   L&& loader) {
  return internal::LimitedLoader<std::decay_t<L>>(limiter, std::nullopt,
                                                  std::forward<L>(loader));
}

// As above, but throws herd::LimitExceeded, without running `loader`, if no
// permit is free within `max_wait` (real time; zero means "only if one is
// free now").
// Throws: std::invalid_argument if max_wait < 0.
template <class L>
internal::LimitedLoader<std::decay_t<L>> WithLimit(
    ConcurrencyLimiter& limiter, std::chrono::steady_clock::duration max_wait,
    L&& loader) {
  if (max_wait < std::chrono::steady_clock::duration::zero()) {
    throw std::invalid_argument("herd::WithLimit: negative max_wait");
  }
  return internal::LimitedLoader<std::decay_t<L>>(limiter, max_wait,
                                                  std::forward<L>(loader));
}

}  // namespace herd

#endif  // HERD_CONCURRENCY_LIMITER_H_
