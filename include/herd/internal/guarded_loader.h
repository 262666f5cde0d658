// Copyright 2026 The herd Authors.
//
// herd/internal/guarded_loader.h: the one shape of every herd::With*()
// wrapper (WithRetry, WithBreaker, WithRateLimit, WithLimit, WithDeadline).
//
//   herd::internal::GuardedLoader<Guard, L>  a loader: `Guard` around `L`
//   herd::internal::MakeGuarded(who, g, l)   builds one, rejecting an empty
//                                            inner loader
//   herd::internal::StartUnlessStopped(l, s) runs `l` unless `s` is stopped
//
// A Guard is a small copyable or movable value (a pointer to the breaker,
// the retry policy, ...) with one const member template,
//
//   template <class Inner>
//   LoaderResult<Inner&> Run(Inner& loader, std::stop_token stop) const;
//
// that does what the guard does around the call and calls the inner loader
// through InvokeLoader() (or StartUnlessStopped()). Everything else every
// wrapper needs is here, once: the check that the inner loader is a loader,
// the two call operators (the const one only when the inner loader can be
// called through a const reference), the factory.
//
// Thread safety: a GuardedLoader may be called concurrently iff its inner
// loader may be and its Guard's Run may be (every herd guard's may).

#ifndef HERD_INTERNAL_GUARDED_LOADER_H_
#define HERD_INTERNAL_GUARDED_LOADER_H_

#include <stdexcept>
#include <stop_token>
#include <string>
#include <type_traits>
#include <utility>

#include "herd/errors.h"
#include "herd/internal/invoke.h"

namespace herd::internal {

template <class Guard, class L>
class GuardedLoader {
  static_assert(IsLoader<L&>,
                "a herd loader must be invocable as Value() or "
                "Value(std::stop_token)");

 public:
  GuardedLoader(Guard guard, L loader)
      : guard_(std::move(guard)), loader_(std::move(loader)) {}

  LoaderResult<L&> operator()(std::stop_token stop) {
    return guard_.Run(loader_, std::move(stop));
  }
  auto operator()(std::stop_token stop) const requires IsLoader<const L&> {
    return guard_.Run(loader_, std::move(stop));
  }

 private:
  Guard guard_;
  L loader_;
};

// GuardedLoader<Guard, decay_t<L>>(guard, loader), the inner loader copied
// or moved in.
// Throws: std::invalid_argument, naming `who`, if `loader` is an empty
// std::function or absl::AnyInvocable, or a null pointer.
template <class Guard, class L>
GuardedLoader<Guard, std::decay_t<L>> MakeGuarded(const char* who, Guard guard,
                                                  L&& loader) {
  if (IsEmptyLoader(loader)) {
    throw std::invalid_argument(std::string(who) + ": empty loader");
  }
  return GuardedLoader<Guard, std::decay_t<L>>(std::move(guard),
                                               std::forward<L>(loader));
}

// Calls `loader` (with `stop` iff it takes one) unless `stop` is already
// stopped, in which case it throws herd::Cancelled without calling it.
template <class Inner>
LoaderResult<Inner&> StartUnlessStopped(Inner& loader, std::stop_token stop) {
  if (stop.stop_requested()) throw Cancelled();
  return InvokeLoader(loader, std::move(stop));
}

}  // namespace herd::internal

#endif  // HERD_INTERNAL_GUARDED_LOADER_H_
