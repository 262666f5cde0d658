// Copyright 2026 The herd Authors.
//
// herd/clock.h: injectable time, so that every TTL, backoff, deadline and
// refill in herd can be tested without real sleeps.
//
//   herd::Clock       the interface: Now() and an interruptible SleepUntil()
//   herd::SteadyClock std::chrono::steady_clock (Clock::Steady() is one)
//   herd::CoarseClock the same time line read cheaply, to a few milliseconds
//                     (Clock::Coarse() is one; LoadingCache's default)
//   herd::FakeClock   time that moves only when a test calls Advance()
//
// Example:
//
//   herd::FakeClock clock;
//   std::jthread sleeper([&] { clock.SleepFor(std::chrono::seconds(5)); });
//   clock.WaitForSleepers(1);              // the thread is now asleep
//   clock.Advance(std::chrono::seconds(5));  // ...and now it wakes
//
// Thread safety: every member function may be called concurrently.
//
// Memory ordering: FakeClock: everything a thread did before Advance() or
// AdvanceTo() is visible to a sleeper that call wakes, once its SleepUntil()
// returns. A stop request happens before the SleepUntil() it ends returns.
//
// Sleeps take a std::stop_token. A component that must wake a sleeping
// thread early (a timer given an earlier deadline, say) requests a stop on a
// std::stop_source it owns; the stop state is sticky, so a stop requested
// before the sleeper arrives is never lost.
//
// Durations: a duration that takes a deadline past the end of the clock's
// range (duration::max(), hours::max()) means "no limit": the deadline
// saturates at time_point::max(), which no clock reaches (the arithmetic is
// herd/internal/time.h's, as everywhere in herd). A zero or negative
// SleepFor() returns at once. Clocks of your own may throw from Now() or
// SleepUntil(); each herd component's header says what it does then.

#ifndef HERD_CLOCK_H_
#define HERD_CLOCK_H_

#include <time.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <utility>

#include "herd/internal/time.h"

namespace herd {

class Clock {
 public:
  using duration = std::chrono::steady_clock::duration;
  using time_point = std::chrono::steady_clock::time_point;

  virtual ~Clock() = default;

  // The current time. Monotonic: never goes backwards.
  virtual time_point Now() const = 0;

  // Blocks until Now() >= deadline or until `stop` is requested, whichever
  // comes first. Returns true iff the deadline was reached (at once, even
  // with `stop` stopped, if it already has been). time_point::max() is
  // never reached: only `stop` ends that sleep, and then it returns false.
  virtual bool SleepUntil(time_point deadline,
                          std::stop_token stop = {}) const = 0;

  // SleepUntil(Now() + d, stop), with the sum saturating at
  // time_point::max() (no limit) instead of overflowing. A zero or negative
  // `d` returns true at once.
  // Throws: std::invalid_argument if `d` is NaN; what Now() and
  // SleepUntil() throw.
  template <class Rep, class Period>
  bool SleepFor(std::chrono::duration<Rep, Period> d,
                std::stop_token stop = {}) const {
    if (!(d == d)) {  // NaN
      throw std::invalid_argument("herd::Clock::SleepFor: NaN duration");
    }
    return SleepUntil(internal::SaturatingAdd(Now(), d), std::move(stop));
  }

  // The process-wide steady clock. Never destroyed.
  static const Clock& Steady();

  // The process-wide coarse clock (see CoarseClock). Never destroyed.
  static const Clock& Coarse();
};

// std::chrono::steady_clock. Never throws.
class SteadyClock final : public Clock {
 public:
  time_point Now() const override { return std::chrono::steady_clock::now(); }
  bool SleepUntil(time_point deadline,
                  std::stop_token stop = {}) const override;
};

// std::chrono::steady_clock's time line (CLOCK_MONOTONIC), read from the
// kernel's last tick (CLOCK_MONOTONIC_COARSE) instead of the hardware
// counter: about 4x cheaper per read, and behind steady_clock by less than
// Resolution() (the kernel's tick: 4 ms on a HZ=250 kernel, 1 ms on HZ=1000).
// Monotonic. Its time points compare with SteadyClock's.
class CoarseClock final : public Clock {
 public:
  time_point Now() const override { return Read(); }
  bool SleepUntil(time_point deadline,
                  std::stop_token stop = {}) const override;

  // Now(), without the virtual call.
  static time_point Read() noexcept {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return time_point(std::chrono::seconds(ts.tv_sec) +
                      std::chrono::nanoseconds(ts.tv_nsec));
  }

  // How far Now() may lag std::chrono::steady_clock::now(): the kernel's
  // tick, as clock_getres(CLOCK_MONOTONIC_COARSE) reports it.
  static duration Resolution() noexcept;
};

// A clock for tests. Time starts at `start` and moves only through Advance()
// or AdvanceTo(). Sleepers wake when time reaches their deadline. Never
// throws from Now() or SleepUntil().
class FakeClock final : public Clock {
 public:
  // Starts at min(start, kEndOfTime).
  explicit FakeClock(time_point start = time_point(std::chrono::hours(1)))
      : now_(std::min(start, kEndOfTime)) {}

  time_point Now() const override;
  bool SleepUntil(time_point deadline,
                  std::stop_token stop = {}) const override;

  // Moves time forward by `d` and wakes the sleepers whose deadline passed.
  // Zero moves nothing. Time saturates one tick short of time_point::max(),
  // which stands for "no limit" and is never reached:
  // Advance(duration::max()) goes to kEndOfTime.
  // REQUIRES: d >= 0.
  // Throws: std::invalid_argument if d is negative or NaN (time unchanged).
  template <class Rep, class Period>
  void Advance(std::chrono::duration<Rep, Period> d) {
    internal::CheckTimeout(d, "herd::FakeClock::Advance");
    AdvanceBy(d);
  }

  // Moves time forward to min(t, kEndOfTime); no-op if that is not after
  // Now().
  void AdvanceTo(time_point t);

  // The latest time a FakeClock shows: time_point::max() - 1 tick.
  static constexpr time_point kEndOfTime = time_point::max() - duration(1);

  // Number of threads currently inside SleepUntil().
  size_t Sleepers() const;

  // Blocks until at least `n` threads are inside SleepUntil(). This is how a
  // test knows the thread it started has reached its sleep before it
  // advances time.
  void WaitForSleepers(size_t n) const;

 private:
  template <class Rep, class Period>
  void AdvanceBy(std::chrono::duration<Rep, Period> d) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ = std::min(internal::SaturatingAdd(now_, d), kEndOfTime);
    cv_.notify_all();
  }

  // A plain std::mutex, because std::condition_variable_any's stop_token
  // waits need a BasicLockable; clang's analysis cannot follow it, so the
  // guarded members are marked in comments.
  mutable std::mutex mu_;
  mutable std::condition_variable_any cv_;  // time moved, or sleepers changed
  time_point now_;                          // guarded by mu_
  mutable size_t sleepers_ = 0;             // guarded by mu_
};

}  // namespace herd

#endif  // HERD_CLOCK_H_
