// Copyright 2026 The herd Authors.
//
// herd/internal/guard_token_bucket_impl.h: the template definitions of
// herd/token_bucket.h. Include herd/token_bucket.h, not this file.

#ifndef HERD_INTERNAL_GUARD_TOKEN_BUCKET_IMPL_H_
#define HERD_INTERNAL_GUARD_TOKEN_BUCKET_IMPL_H_

#include <stop_token>
#include <type_traits>
#include <utility>

#include "herd/errors.h"
#include "herd/internal/guarded_loader.h"
#include "herd/internal/invoke.h"
#include "herd/token_bucket.h"

namespace herd {
namespace internal {

// WithRateLimit(): one token before the call.
class RateLimitGuard {
 public:
  explicit RateLimitGuard(TokenBucket& bucket) : bucket_(&bucket) {}

  template <class Inner>
  LoaderResult<Inner&> Run(Inner& loader, std::stop_token stop) const {
    if (!bucket_->Acquire(1, stop)) throw Cancelled();
    return StartUnlessStopped(loader, std::move(stop));
  }

 private:
  TokenBucket* bucket_;
};

}  // namespace internal

template <class L>
internal::GuardedLoader<internal::RateLimitGuard, std::decay_t<L>>
WithRateLimit(TokenBucket& bucket, L&& loader) {
  return internal::MakeGuarded("herd::WithRateLimit",
                               internal::RateLimitGuard(bucket),
                               std::forward<L>(loader));
}

}  // namespace herd

#endif  // HERD_INTERNAL_GUARD_TOKEN_BUCKET_IMPL_H_
