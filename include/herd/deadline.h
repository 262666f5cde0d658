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
// Thread safety: a wrapped loader may be called concurrently iff the inner
// loader may. The timer must outlive every wrapped loader made with it.
//
// Memory ordering: everything the inner loader did before it returned or
// threw is visible to the caller (it runs on the caller's thread).
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
// Durations: zero and negative timeouts are rejected. A timeout whose
// deadline lies past the end of the clock's range (duration::max(),
// hours::max()) is no deadline at all: no timer entry, the inner loader
// gets the outer token as it is, and the call never throws
// DeadlineExceeded of its own.
//
// A Clock that throws: from the Now() that starts a call, the exception
// propagates and the inner loader does not run; from the Now() that judges
// a finished call, it propagates in place of the call's outcome. (The
// timer's own thread terminates on one: see herd/timer.h.)
//
// Costs: one Timer::RunAt and one Timer::Cancel per call, O(log n) each, and
// one std::stop_source allocation.

#ifndef HERD_DEADLINE_H_
#define HERD_DEADLINE_H_

#include <chrono>
#include <type_traits>

#include "herd/clock.h"
#include "herd/internal/guarded_loader.h"
#include "herd/timer.h"

namespace herd {

namespace internal {
class DeadlineGuard;
}  // namespace internal

// Returns a loader, invocable as Value(std::stop_token), that runs `loader`
// with a deadline `timeout` after each call starts, measured and enforced by
// `timer` (on timer.clock()). `timer` must outlive the result.
// Throws: std::invalid_argument if timeout <= 0 or NaN, or if `loader` is an
// empty std::function, absl::AnyInvocable or null pointer.
template <class Rep, class Period, class L>
internal::GuardedLoader<internal::DeadlineGuard, std::decay_t<L>> WithDeadline(
    Timer& timer, std::chrono::duration<Rep, Period> timeout, L&& loader);

// As above, on the process-wide Timer::Default() (steady clock).
template <class Rep, class Period, class L>
internal::GuardedLoader<internal::DeadlineGuard, std::decay_t<L>> WithDeadline(
    std::chrono::duration<Rep, Period> timeout, L&& loader);

}  // namespace herd

#include "herd/internal/guard_deadline_impl.h"  // IWYU pragma: export

#endif  // HERD_DEADLINE_H_
