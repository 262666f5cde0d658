// Copyright 2026 The herd Authors.
//
// herd/coalesce.h: wraps a function so that concurrent calls with equal
// arguments share one execution.
//
//   herd::Coalesce(fn, options)  returns a herd::Coalesced callable
//
// Example:
//
//   auto load_user = herd::Coalesce([&](int64_t id, const std::string& db) {
//     return QueryUser(db, id);
//   });
//   User u = load_user(42, "primary");  // concurrent equal calls share it
//
// The key of a call is the tuple of its decayed arguments, hashed with
// absl::Hash and compared with ==, so every argument type must support both.
// `fn` must have exactly one call signature (no templated or overloaded
// operator()), and is called concurrently for different arguments.
//
// Thread safety: a Coalesced may be called concurrently from any thread;
// copies share one herd::Share, so calls through any copy coalesce.

#ifndef HERD_COALESCE_H_
#define HERD_COALESCE_H_

#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#include "herd/share.h"

namespace herd {
namespace internal {

// The call signature of a function, function pointer or functor with one
// non-template operator().
template <class F>
struct Signature : Signature<decltype(&F::operator())> {};
template <class R, class... A>
struct Signature<R(A...)> {
  using Result = R;
  using Args = std::tuple<A...>;
};
template <class R, class... A>
struct Signature<R (*)(A...)> : Signature<R(A...)> {};
template <class R, class... A>
struct Signature<R (*)(A...) noexcept> : Signature<R(A...)> {};
template <class C, class R, class... A>
struct Signature<R (C::*)(A...)> : Signature<R(A...)> {};
template <class C, class R, class... A>
struct Signature<R (C::*)(A...) const> : Signature<R(A...)> {};
template <class C, class R, class... A>
struct Signature<R (C::*)(A...) noexcept> : Signature<R(A...)> {};
template <class C, class R, class... A>
struct Signature<R (C::*)(A...) const noexcept> : Signature<R(A...)> {};

}  // namespace internal

template <class F, class Args = typename internal::Signature<F>::Args>
class Coalesced;

template <class F, class... Args>
class Coalesced<F, std::tuple<Args...>> {
 public:
  using Key = std::tuple<std::decay_t<Args>...>;
  using Value = std::decay_t<typename internal::Signature<F>::Result>;

  Coalesced(F fn, ShareOptions options)
      : state_(std::make_shared<State>(std::move(fn), options)) {}

  // Calls the wrapped function, or joins an in-progress call with equal
  // arguments. Throws: what the function throws; as Share::Do.
  Value operator()(Args... args) const {
    const Key key(args...);
    return state_->share.Do(key, [&]() -> Value {
      return std::invoke(state_->fn, std::forward<Args>(args)...);
    });
  }

  // The underlying Share: stats, Cancel, Forget by argument tuple.
  Share<Key, Value>& share() const { return state_->share; }

 private:
  struct State {
    State(F f, ShareOptions options) : fn(std::move(f)), share(options) {}
    const F fn;
    Share<Key, Value> share;
  };
  std::shared_ptr<State> state_;
};

// Throws: std::invalid_argument for invalid `options` (see ShareOptions).
template <class F>
Coalesced<std::decay_t<F>> Coalesce(F&& fn, ShareOptions options = {}) {
  return Coalesced<std::decay_t<F>>(std::forward<F>(fn), options);
}

}  // namespace herd

#endif  // HERD_COALESCE_H_
