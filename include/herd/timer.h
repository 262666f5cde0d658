// Copyright 2026 The herd Authors.
//
// herd/timer.h: runs callbacks at deadlines on one background thread.
//
//   herd::Timer         RunAt / RunAfter schedule a callback, Cancel(id)
//                       unschedules it; Timer::Default() is a process-wide
//                       timer on the steady clock (herd::WithDeadline uses it
//                       unless given another)
//   herd::TimerOptions  the clock deadlines are measured on
//
// Example:
//
//   herd::Timer timer;                     // or Timer({.clock = &fake})
//   herd::Timer::Id id = timer.RunAfter(std::chrono::seconds(2),
//                                       [] { std::puts("two seconds"); });
//   if (timer.Cancel(id)) { /* it will never run */ }
//
// Thread safety: every member function may be called concurrently, including
// from inside a callback (except the destructor).
//
// Memory ordering: everything a thread did before RunAt()/RunAfter() is
// visible to the callback when it runs.
//
// Callbacks run one at a time, in deadline order (ties in the order they
// were scheduled), on the timer's thread, never under the timer's lock, and
// never before Clock::Now() reaches their deadline. A slow callback delays
// the ones after it, so callbacks should be short (set a flag, request a
// stop, hand work to a pool). A callback that throws calls std::terminate.
//
// Deadlines at the ends of time: a deadline that has passed (a zero or
// negative delay) runs at once; a delay whose deadline lies past the clock's
// range (duration::max()) saturates at time_point::max(), which the clock
// never reaches: that callback waits until Cancel() or the destructor
// destroys it unrun.
//
// A Clock that throws: from RunAfter() (which reads Now()), the exception
// propagates and nothing is scheduled. On the timer's thread (Now() and
// SleepUntil() while it waits) it calls std::terminate, as any exception
// escaping a std::thread does.
//
// Design: pending callbacks sit in a min-heap ordered by (deadline, id) and
// in a map from id to callback. The thread sleeps in Clock::SleepUntil() until
// the earliest deadline; adding an earlier deadline wakes it early through a
// std::stop_source it owns. With nothing pending it waits on a condition
// variable and uses no CPU. Cancel() erases from the map only; the stale heap
// entry is dropped when it reaches the top, and the heap is rebuilt when stale
// entries outnumber live ones, so every operation is O(log n) amortised.

#ifndef HERD_TIMER_H_
#define HERD_TIMER_H_

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <stop_token>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "herd/clock.h"
#include "herd/internal/mutex.h"
#include "herd/internal/time.h"

namespace herd {

struct TimerOptions {
  // The clock deadlines are measured on; nullptr means Clock::Steady().
  // Must outlive the Timer.
  const Clock* clock = nullptr;
};

class Timer {
 public:
  // Names a scheduled callback. Ids are never reused by one Timer; 0 is never
  // returned.
  using Id = std::uint64_t;
  using Callback = absl::AnyInvocable<void() &&>;

  // Starts the timer's thread.
  // Throws: std::system_error if the thread cannot start.
  explicit Timer(TimerOptions options = {});

  // Deprecated: Timer({.clock = &clock}).
  [[deprecated("use Timer(TimerOptions{.clock = &clock})")]] explicit Timer(
      const Clock& clock);

  // Cancels every pending callback (destroying it without running it), waits
  // for a running callback to return, and joins the thread.
  // REQUIRES: not called from a callback of this timer; no concurrent calls
  // to RunAt/RunAfter/Cancel.
  ~Timer();

  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // Schedules `callback` to run once Clock::Now() >= deadline (at once if the
  // deadline has passed; never if it is time_point::max()). Returns its id
  // for Cancel().
  // Throws: std::invalid_argument if `callback` is empty; std::bad_alloc.
  // Nothing is scheduled when it throws.
  Id RunAt(Clock::time_point deadline, Callback callback)
      ABSL_LOCKS_EXCLUDED(mu_);

  // RunAt(clock().Now() + delay, callback), the sum saturating: a zero or
  // negative delay runs at once, duration::max() (or any delay past the
  // clock's range) never runs.
  // Throws: as RunAt(); std::invalid_argument if `delay` is NaN; what the
  // clock's Now() throws.
  template <class Rep, class Period>
  Id RunAfter(std::chrono::duration<Rep, Period> delay, Callback callback)
      ABSL_LOCKS_EXCLUDED(mu_) {
    if (!(delay == delay)) {  // NaN
      throw std::invalid_argument("herd::Timer::RunAfter: NaN delay");
    }
    return RunAt(internal::SaturatingAdd(clock_.Now(), delay),
                 std::move(callback));
  }

  // Unschedules callback `id` and destroys it (on the calling thread). Returns
  // true iff this call prevented it from running; false if it already ran,
  // is running now, was already cancelled, or never existed. After a true
  // return the callback will never run.
  bool Cancel(Id id) ABSL_LOCKS_EXCLUDED(mu_);

  // Number of callbacks scheduled and not yet started or cancelled.
  size_t Pending() const ABSL_LOCKS_EXCLUDED(mu_);

  // The clock deadlines are measured on.
  const Clock& clock() const { return clock_; }

  // A process-wide timer on Clock::Steady(), started on first use and never
  // destroyed.
  static Timer& Default();

 private:
  struct Entry {
    Clock::time_point deadline;
    Id id;
  };
  // The std heap algorithms build max-heaps: "later" puts the earliest on top.
  struct Later {
    bool operator()(const Entry& a, const Entry& b) const {
      if (a.deadline != b.deadline) return a.deadline > b.deadline;
      return a.id > b.id;
    }
  };

  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  // Pops cancelled entries off the top of the heap.
  void DropStaleTop() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Rebuilds the heap without cancelled entries when they dominate it.
  void MaybeCompact() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock& clock_;

  mutable internal::Mutex mu_;
  // State below is protected by mu_.
  std::vector<Entry> heap_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<Id, Callback> callbacks_ ABSL_GUARDED_BY(mu_);
  Id next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  // True while the thread waits on idle_cv_ with nothing pending.
  bool idle_ ABSL_GUARDED_BY(mu_) = false;
  // While the thread is in Clock::SleepUntil(sleep_deadline_), stopping
  // wake_ wakes it early. Replaced before every sleep.
  bool sleeping_ ABSL_GUARDED_BY(mu_) = false;
  Clock::time_point sleep_deadline_ ABSL_GUARDED_BY(mu_);
  std::stop_source wake_ ABSL_GUARDED_BY(mu_);
  std::condition_variable idle_cv_;  // something was scheduled, or shutdown

  std::thread thread_;  // last: starts after everything above exists
};

}  // namespace herd

#endif  // HERD_TIMER_H_
