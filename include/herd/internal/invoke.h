// Copyright 2026 The herd Authors.
//
// herd/internal/invoke.h: calls a loader that may or may not take a
// std::stop_token.
//
//   herd::internal::IsLoader<L>      L is invocable as L() or L(stop_token)
//   herd::internal::LoaderResult<L>  what calling an L returns
//   herd::internal::InvokeLoader()   calls it, with the token iff it takes one
//   herd::internal::IsEmptyLoader()  true iff it is an empty std::function,
//                                    absl::AnyInvocable or a null pointer
//
// Every herd component that runs a loader (Share, LoadingCache, the guards in
// retry.h, circuit_breaker.h, deadline.h, ...) calls it through
// InvokeLoader(), so a loader written as `Value()` and one written as
// `Value(std::stop_token)` are interchangeable everywhere. When a loader
// accepts both forms, the token form wins.
//
// Thread safety: stateless; as thread-safe as the loader being called.

#ifndef HERD_INTERNAL_INVOKE_H_
#define HERD_INTERNAL_INVOKE_H_

#include <functional>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "absl/functional/any_invocable.h"

namespace herd::internal {

// True iff an L (as the given value category) can be called as a loader.
template <class L>
inline constexpr bool IsLoader =
    std::is_invocable_v<L, std::stop_token> || std::is_invocable_v<L>;

// The type InvokeLoader(std::declval<L>(), token) returns.
template <class L>
using LoaderResult =
    typename std::conditional_t<std::is_invocable_v<L, std::stop_token>,
                                std::invoke_result<L, std::stop_token>,
                                std::invoke_result<L>>::type;

// Calls `loader(stop)` if the loader accepts a std::stop_token, otherwise
// `loader()`. Exceptions propagate unchanged.
template <class L>
LoaderResult<L&&> InvokeLoader(L&& loader, std::stop_token stop) {
  static_assert(IsLoader<L&&>,
                "a herd loader must be invocable as Value() or "
                "Value(std::stop_token)");
  if constexpr (std::is_invocable_v<L&&, std::stop_token>) {
    return std::invoke(std::forward<L>(loader), std::move(stop));
  } else {
    return std::invoke(std::forward<L>(loader));
  }
}

template <class T>
struct IsStdFunction : std::false_type {};
template <class Sig>
struct IsStdFunction<std::function<Sig>> : std::true_type {};
template <class T>
struct IsAnyInvocable : std::false_type {};
template <class Sig>
struct IsAnyInvocable<absl::AnyInvocable<Sig>> : std::true_type {};

// True iff `loader` can be tested for emptiness and is empty: an empty
// std::function or absl::AnyInvocable, or a null function pointer. Callers
// turn this into std::invalid_argument before registering anything.
template <class L>
bool IsEmptyLoader(const L& loader) noexcept {
  using T = std::remove_cvref_t<L>;
  if constexpr (IsStdFunction<T>::value || IsAnyInvocable<T>::value ||
                std::is_pointer_v<T> || std::is_member_pointer_v<T>) {
    return !loader;
  } else {
    return false;
  }
}

}  // namespace herd::internal

#endif  // HERD_INTERNAL_INVOKE_H_
