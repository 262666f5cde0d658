// Copyright 2026 The herd Authors.
//
// herd/internal/guard_concurrency_limiter_impl.h: the template definitions
// of herd/concurrency_limiter.h. Include herd/concurrency_limiter.h, not
// this file.

#ifndef HERD_INTERNAL_GUARD_CONCURRENCY_LIMITER_IMPL_H_
#define HERD_INTERNAL_GUARD_CONCURRENCY_LIMITER_IMPL_H_

#include <chrono>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "herd/concurrency_limiter.h"
#include "herd/errors.h"
#include "herd/internal/guarded_loader.h"
#include "herd/internal/invoke.h"
#include "herd/internal/time.h"

namespace herd {
namespace internal {

// WithLimit(): a permit held across the call.
class LimitGuard {
 public:
  // `max_wait`: nullopt waits as long as it takes.
  LimitGuard(ConcurrencyLimiter& limiter,
             std::optional<std::chrono::steady_clock::duration> max_wait)
      : limiter_(&limiter), max_wait_(max_wait) {}

  template <class Inner>
  LoaderResult<Inner&> Run(Inner& loader, std::stop_token stop) const {
    std::optional<ConcurrencyLimiter::Permit> permit =
        max_wait_ ? limiter_->TryAcquireFor(*max_wait_, stop)
                  : limiter_->Acquire(stop);
    if (!permit) {
      if (stop.stop_requested()) throw Cancelled();
      throw LimitExceeded();
    }
    return StartUnlessStopped(loader, std::move(stop));  // then `permit` goes
  }

 private:
  ConcurrencyLimiter* limiter_;
  std::optional<std::chrono::steady_clock::duration> max_wait_;
};

}  // namespace internal

template <class L>
internal::GuardedLoader<internal::LimitGuard, std::decay_t<L>> WithLimit(
    ConcurrencyLimiter& limiter, L&& loader) {
  return internal::MakeGuarded("herd::WithLimit",
                               internal::LimitGuard(limiter, std::nullopt),
                               std::forward<L>(loader));
}

template <class Rep, class Period, class L>
internal::GuardedLoader<internal::LimitGuard, std::decay_t<L>> WithLimit(
    ConcurrencyLimiter& limiter, std::chrono::duration<Rep, Period> max_wait,
    L&& loader) {
  internal::CheckTimeout(max_wait, "herd::WithLimit");
  // Saturated: a max_wait past the clock's range is steady duration::max(),
  // which TryAcquireFor() takes as no limit.
  return internal::MakeGuarded(
      "herd::WithLimit",
      internal::LimitGuard(
          limiter,
          internal::SaturatingCast<std::chrono::steady_clock::duration>(
              max_wait)),
      std::forward<L>(loader));
}

}  // namespace herd

#endif  // HERD_INTERNAL_GUARD_CONCURRENCY_LIMITER_IMPL_H_
