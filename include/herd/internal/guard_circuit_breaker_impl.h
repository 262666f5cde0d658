// Copyright 2026 The herd Authors.
//
// herd/internal/guard_circuit_breaker_impl.h: the template definitions of
// herd/circuit_breaker.h. Include herd/circuit_breaker.h, not this file.

#ifndef HERD_INTERNAL_GUARD_CIRCUIT_BREAKER_IMPL_H_
#define HERD_INTERNAL_GUARD_CIRCUIT_BREAKER_IMPL_H_

#include <exception>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "herd/circuit_breaker.h"
#include "herd/errors.h"
#include "herd/internal/guarded_loader.h"
#include "herd/internal/invoke.h"

namespace herd {
namespace internal {

// WithBreaker(): admission before the call, its outcome recorded after.
class BreakerGuard {
 public:
  explicit BreakerGuard(CircuitBreaker& breaker) : breaker_(&breaker) {}

  template <class Inner>
  LoaderResult<Inner&> Run(Inner& loader, std::stop_token stop) const {
    const std::optional<CircuitBreaker::Ticket> ticket = breaker_->TryAdmit();
    if (!ticket) throw CircuitOpen();
    // Set once the success is recorded: a value whose move throws on the
    // way out is not recorded a second time, as a failure.
    bool recorded = false;
    try {
      if constexpr (std::is_void_v<LoaderResult<Inner&>>) {
        InvokeLoader(loader, std::move(stop));
        breaker_->Record(*ticket, /*failed=*/false);
        return;
      } else {
        LoaderResult<Inner&> value = InvokeLoader(loader, std::move(stop));
        breaker_->Record(*ticket, /*failed=*/false);
        recorded = true;
        return value;
      }
    } catch (...) {
      if (recorded) throw;
      bool failed = true;
      try {
        failed = breaker_->IsFailure(std::current_exception());
      } catch (...) {
        breaker_->Record(*ticket, /*failed=*/true);
        throw;  // the predicate's exception
      }
      breaker_->Record(*ticket, failed);
      throw;
    }
  }

 private:
  CircuitBreaker* breaker_;
};

}  // namespace internal

template <class L>
internal::GuardedLoader<internal::BreakerGuard, std::decay_t<L>> WithBreaker(
    CircuitBreaker& breaker, L&& loader) {
  return internal::MakeGuarded("herd::WithBreaker",
                               internal::BreakerGuard(breaker),
                               std::forward<L>(loader));
}

}  // namespace herd

#endif  // HERD_INTERNAL_GUARD_CIRCUIT_BREAKER_IMPL_H_
