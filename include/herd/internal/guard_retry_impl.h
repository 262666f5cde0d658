// Copyright 2026 The herd Authors.
//
// herd/internal/guard_retry_impl.h: the template definitions of
// herd/retry.h. Include herd/retry.h, not this file.

#ifndef HERD_INTERNAL_GUARD_RETRY_IMPL_H_
#define HERD_INTERNAL_GUARD_RETRY_IMPL_H_

#include <exception>
#include <optional>
#include <stop_token>
#include <utility>

#include "absl/random/random.h"
#include "herd/clock.h"
#include "herd/errors.h"
#include "herd/internal/guarded_loader.h"
#include "herd/internal/invoke.h"
#include "herd/retry.h"

namespace herd {

namespace internal {

// True iff `e` holds an exception of type E (or derived from it).
template <class E>
bool ExceptionIs(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace internal

template <class... E>
Retry::Predicate Retry::On() {
  static_assert(sizeof...(E) > 0, "Retry::On needs at least one type");
  return [](const std::exception_ptr& e) {
    return (internal::ExceptionIs<E>(e) || ...);
  };
}

namespace internal {

// WithRetry(): attempts until one succeeds, the policy declines, attempts
// run out or the token is stopped (checked before every attempt).
class RetryGuard {
 public:
  explicit RetryGuard(Retry policy) : policy_(std::move(policy)) {}

  template <class Inner>
  LoaderResult<Inner&> Run(Inner& loader, std::stop_token stop) const {
    std::exception_ptr error;         // the last attempt's
    std::optional<absl::BitGen> gen;  // seeded on the first retry only
    for (int attempt = 1;; ++attempt) {
      if (stop.stop_requested()) {
        if (error) std::rethrow_exception(error);
        throw Cancelled();
      }
      try {
        return InvokeLoader(loader, stop);
      } catch (...) {
        error = std::current_exception();
      }
      if (attempt >= policy_.max_attempts() || stop.stop_requested() ||
          !policy_.ShouldRetry(error)) {
        std::rethrow_exception(error);
      }
      if (!gen) gen.emplace();
      const Clock::duration backoff =
          policy_.Backoff(attempt, absl::Uniform(*gen, 0.0, 1.0));
      if (!policy_.clock().SleepFor(backoff, stop)) {
        std::rethrow_exception(error);  // stopped while backing off
      }
    }
  }

 private:
  Retry policy_;
};

}  // namespace internal

template <class L>
internal::GuardedLoader<internal::RetryGuard, std::decay_t<L>> WithRetry(
    Retry policy, L&& loader) {
  return internal::MakeGuarded("herd::WithRetry",
                               internal::RetryGuard(std::move(policy)),
                               std::forward<L>(loader));
}

}  // namespace herd

#endif  // HERD_INTERNAL_GUARD_RETRY_IMPL_H_
