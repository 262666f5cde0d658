// Copyright 2026 The herd Authors.
//
// herd/deadline.h: bounds how long a loader may run.
//
//   herd::WithDeadline(timeout, loader)         on herd::Timer::Default()
//   herd::WithDeadline(timer, timeout, loader)  on a timer (and its clock)
//
// Example:
//
//   auto value = share.Do(key, herd::WithDeadline(std::chrono::seconds(2),
//       [&](std::stop_token stop) { return db.Query(sql, stop); }));
//   // A query still running after 2 s sees stop.stop_requested(); every
//   // caller of the flight gets herd::DeadlineExceeded.
//
// Each call of the wrapped loader gets its own deadline, `timeout` after the
// call starts (on the timer's clock). The inner loader receives a
// std::stop_token that is stopped when the deadline passes (the timer
// requests the stop) or when the outer token is stopped (Share::Cancel, an
// enclosing deadline): a stop-aware loader ends early. A loader that ignores
// its token runs to the end; herd cannot abandon a running thread.
//
// Outcome: a call that returned, or threw, before the deadline (by the
// clock, read when the inner loader finished) returns that value or
// rethrows that exception unchanged. A call that finished at or after the
// deadline throws herd::DeadlineExceeded instead, whatever it produced.
//
// Costs: one Timer::RunAt and one Timer::Cancel per call, O(log n) each, and
// one std::stop_source allocation.
//
// Thread safety: a wrapped loader may be called concurrently iff the inner
// loader may. The timer must outlive every wrapped loader made with it.

#ifndef HERD_DEADLINE_H_
#define HERD_DEADLINE_H_

#include <stdexcept>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "herd/clock.h"
#include "herd/errors.h"
#include "herd/internal/invoke.h"
#include "herd/timer.h"

namespace herd {

namespace internal {

// The loader WithDeadline() returns.
template <class L>
class DeadlineLoader {
  static_assert(IsLoader<L&>,
                "a herd loader must be invocable as Value() or "
                "Value(std::stop_token)");

 public:
  DeadlineLoader(Timer& timer, Clock::duration timeout, L loader)
      : timer_(&timer), timeout_(timeout), loader_(std::move(loader)) {}

  LoaderResult<L&> operator()(std::stop_token stop) {
    return Run(*timer_, timeout_, loader_, std::move(stop));
  }
  auto operator()(std::stop_token stop) const requires IsLoader<const L&> {
    return Run(*timer_, timeout_, loader_, std::move(stop));
  }

 private:
  template <class Inner>
  static LoaderResult<Inner&> Run(Timer& timer, Clock::duration timeout,
                                  Inner& loader, std::stop_token outer) {
    const Clock& clock = timer.clock();
    const Clock::time_point deadline = clock.Now() + timeout;
    std::stop_source stop;
    // Runs at once if `outer` is already stopped. Its destructor waits for
    // a concurrently running callback, so capturing by reference is safe.
    std::stop_callback forward_outer(outer, [&stop] { stop.request_stop(); });
    // The timer's copy of `stop` shares its state, so a late firing (after
    // this call returned) is harmless.
    const Timer::Id timer_id =
        timer.RunAt(deadline, [stop]() mutable { stop.request_stop(); });
    // Settles the call: cancels the timer, then decides by the clock.
    auto finished_late = [&] {
      const bool late = clock.Now() >= deadline;
      timer.Cancel(timer_id);
      return late;
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
      timer.Cancel(timer_id);
      throw;
    } catch (...) {
      if (finished_late()) throw DeadlineExceeded();
      throw;
    }
  }

  Timer* timer_;
  Clock::duration timeout_;
  L loader_;
};

inline Clock::duration CheckTimeout(Clock::duration timeout) {
  if (timeout <= Clock::duration::zero()) {
    throw std::invalid_argument("herd::WithDeadline: timeout must be > 0");
  }
  return timeout;
}

}  // namespace internal

// Returns a loader, invocable as Value(std::stop_token), that runs `loader`
// with a deadline `timeout` after each call starts, measured and enforced by
// `timer` (on timer.clock()). `timer` must outlive the result.
// Throws: std::invalid_argument if timeout <= 0.
template <class L>
internal::DeadlineLoader<std::decay_t<L>> WithDeadline(Timer& timer,
                                                       Clock::duration timeout,
                                                       L&& loader) {
  return internal::DeadlineLoader<std::decay_t<L>>(
      timer, internal::CheckTimeout(timeout), std::forward<L>(loader));
}

// As above, on the process-wide Timer::Default() (steady clock).
template <class L>
internal::DeadlineLoader<std::decay_t<L>> WithDeadline(Clock::duration timeout,
                                                       L&& loader) {
  return WithDeadline(Timer::Default(), timeout, std::forward<L>(loader));
}

}  // namespace herd

#endif  // HERD_DEADLINE_H_
