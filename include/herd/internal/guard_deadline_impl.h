// Copyright 2026 The herd Authors.
//
// herd/internal/guard_deadline_impl.h: the template definitions of
// herd/deadline.h. Include herd/deadline.h, not this file.

#ifndef HERD_INTERNAL_GUARD_DEADLINE_IMPL_H_
#define HERD_INTERNAL_GUARD_DEADLINE_IMPL_H_

#include <chrono>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "herd/clock.h"
#include "herd/deadline.h"
#include "herd/errors.h"
#include "herd/internal/guarded_loader.h"
#include "herd/internal/invoke.h"
#include "herd/internal/time.h"
#include "herd/timer.h"

namespace herd {
namespace internal {

// WithDeadline(): a timer that stops the inner loader's token, and a look
// at the clock when it finishes.
class DeadlineGuard {
 public:
  // `timeout` > 0; duration::max() means no deadline.
  DeadlineGuard(Timer& timer, Clock::duration timeout)
      : timer_(&timer), timeout_(timeout) {}

  template <class Inner>
  LoaderResult<Inner&> Run(Inner& loader, std::stop_token outer) const {
    const Clock& clock = timer_->clock();
    const std::optional<Clock::time_point> deadline =
        DeadlineAfter(clock.Now(), timeout_);
    if (!deadline) return InvokeLoader(loader, std::move(outer));
    std::stop_source stop;
    // Runs at once if `outer` is already stopped. Its destructor waits for
    // a concurrently running callback, so capturing by reference is safe.
    std::stop_callback forward_outer(outer, [&stop] { stop.request_stop(); });
    // The timer's copy of `stop` shares its state, so a late firing (after
    // this call returned) is harmless.
    const Timer::Id timer_id =
        timer_->RunAt(*deadline, [stop]() mutable { stop.request_stop(); });
    // Settles the call: cancels the timer, then decides by the clock. Set
    // once the clock has been read, so that an exception after that (the
    // clock's own, or a value's on its way out) passes through unjudged.
    bool judged = false;
    auto finished_late = [&] {
      timer_->Cancel(timer_id);
      judged = true;
      return clock.Now() >= *deadline;
    };
    using Result = LoaderResult<Inner&>;
    try {
      if constexpr (std::is_void_v<Result>) {
        InvokeLoader(loader, stop.get_token());
        if (finished_late()) throw DeadlineExceeded();
        return;
      } else {
        Result value = InvokeLoader(loader, stop.get_token());
        if (finished_late()) throw DeadlineExceeded();
        return value;
      }
    } catch (const DeadlineExceeded&) {
      // Ours from just above, or the inner loader's own (a nested
      // deadline): either way, this is the exception to report.
      timer_->Cancel(timer_id);
      throw;
    } catch (...) {
      if (!judged && finished_late()) throw DeadlineExceeded();
      throw;
    }
  }

 private:
  Timer* timer_;
  Clock::duration timeout_;
};

// `timeout` as the clock's duration, saturated.
// Throws: std::invalid_argument unless timeout > 0.
template <class Rep, class Period>
Clock::duration CheckDeadlineTimeout(
    std::chrono::duration<Rep, Period> timeout) {
  CheckTimeout(timeout, "herd::WithDeadline");
  if (timeout == timeout.zero()) {
    throw std::invalid_argument("herd::WithDeadline: timeout must be > 0");
  }
  return SaturatingCast<Clock::duration>(timeout);
}

}  // namespace internal

template <class Rep, class Period, class L>
internal::GuardedLoader<internal::DeadlineGuard, std::decay_t<L>> WithDeadline(
    Timer& timer, std::chrono::duration<Rep, Period> timeout, L&& loader) {
  return internal::MakeGuarded(
      "herd::WithDeadline",
      internal::DeadlineGuard(timer, internal::CheckDeadlineTimeout(timeout)),
      std::forward<L>(loader));
}

template <class Rep, class Period, class L>
internal::GuardedLoader<internal::DeadlineGuard, std::decay_t<L>> WithDeadline(
    std::chrono::duration<Rep, Period> timeout, L&& loader) {
  return WithDeadline(Timer::Default(), timeout, std::forward<L>(loader));
}

}  // namespace herd

#endif  // HERD_INTERNAL_GUARD_DEADLINE_IMPL_H_
