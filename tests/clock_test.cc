// Copyright 2026 The herd Authors.
//
// Tests herd/clock.h: herd::FakeClock and herd::SteadyClock, each test named
// for the contract it checks. No test orders threads by
// sleeping: a test learns that a thread is asleep from
// FakeClock::WaitForSleepers(), and that it woke from the future it sets.
// "Not woken yet" is checked with future::wait_for(0), which never blocks.

#include "herd/clock.h"

#include <chrono>
#include <cmath>
#include <future>
#include <latch>
#include <stdexcept>
#include <stop_token>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace herd {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;
using TimePoint = Clock::time_point;

// What a sleeping thread saw: SleepUntil's result and the time it woke at.
struct Wake {
  bool reached;
  TimePoint at;
};

// Starts a thread that sleeps on `clock` until `deadline`. The thread stops
// (and SleepUntil returns false) when the returned jthread is destroyed, so
// a failing test does not hang.
std::jthread StartSleeper(const Clock& clock, TimePoint deadline,
                          std::promise<Wake> woke) {
  return std::jthread([&clock, deadline, woke = std::move(woke)](
                          std::stop_token stop) mutable {
    bool reached = clock.SleepUntil(deadline, stop);
    woke.set_value({reached, clock.Now()});
  });
}

bool IsReady(const std::future<Wake>& f) {
  return f.wait_for(seconds(0)) == std::future_status::ready;
}

TEST(FakeClock, StartsAtTheGivenTimeAndStandsStill) {
  const TimePoint start(hours(7));
  FakeClock clock(start);
  EXPECT_EQ(clock.Now(), start);
  EXPECT_EQ(clock.Now(), start);
  EXPECT_EQ(clock.Sleepers(), 0u);
}

TEST(FakeClock, DefaultStartIsNotTheEpoch) {
  // Code under test may treat time_point{} as "never"; the fake avoids it.
  FakeClock clock;
  EXPECT_GT(clock.Now(), TimePoint());
}

TEST(FakeClock, AdvanceMovesTimeForwardByExactlyTheDuration) {
  FakeClock clock;
  const TimePoint start = clock.Now();
  clock.Advance(seconds(3));
  EXPECT_EQ(clock.Now(), start + seconds(3));
  clock.Advance(milliseconds(1));
  EXPECT_EQ(clock.Now(), start + seconds(3) + milliseconds(1));
  clock.Advance(seconds(0));
  EXPECT_EQ(clock.Now(), start + seconds(3) + milliseconds(1));
}

TEST(FakeClock, AdvanceWithNegativeDurationThrowsAndLeavesTimeAlone) {
  FakeClock clock;
  const TimePoint start = clock.Now();
  EXPECT_THROW(clock.Advance(-milliseconds(1)), std::invalid_argument);
  EXPECT_EQ(clock.Now(), start);
}

TEST(FakeClock, AdvanceToMovesForwardOnly) {
  FakeClock clock;
  const TimePoint start = clock.Now();
  clock.AdvanceTo(start + seconds(10));
  EXPECT_EQ(clock.Now(), start + seconds(10));
  clock.AdvanceTo(start + seconds(4));  // the past: no-op
  EXPECT_EQ(clock.Now(), start + seconds(10));
  clock.AdvanceTo(start + seconds(10));  // now: no-op
  EXPECT_EQ(clock.Now(), start + seconds(10));
}

TEST(FakeClock, SleepUntilADeadlineThatHasPassedReturnsTrueAtOnce) {
  FakeClock clock;
  EXPECT_TRUE(clock.SleepUntil(clock.Now()));
  EXPECT_TRUE(clock.SleepUntil(clock.Now() - seconds(1)));
  EXPECT_TRUE(clock.SleepFor(seconds(0)));
  EXPECT_TRUE(clock.SleepFor(-seconds(5)));
  EXPECT_EQ(clock.Sleepers(), 0u);
}

TEST(FakeClock, SleeperWakesExactlyWhenTimeReachesItsDeadline) {
  FakeClock clock;
  const TimePoint deadline = clock.Now() + seconds(5);
  std::promise<Wake> woke;
  std::future<Wake> wake = woke.get_future();
  std::jthread sleeper = StartSleeper(clock, deadline, std::move(woke));

  clock.WaitForSleepers(1);
  clock.Advance(seconds(4));
  EXPECT_FALSE(IsReady(wake));
  clock.Advance(milliseconds(999));
  EXPECT_FALSE(IsReady(wake));
  EXPECT_EQ(clock.Sleepers(), 1u);

  clock.Advance(milliseconds(1));
  Wake w = wake.get();
  EXPECT_TRUE(w.reached);
  EXPECT_EQ(w.at, deadline);
  sleeper.join();
  EXPECT_EQ(clock.Sleepers(), 0u);
}

TEST(FakeClock, AdvancingPastTheDeadlineWakesTheSleeper) {
  FakeClock clock;
  const TimePoint deadline = clock.Now() + seconds(5);
  std::promise<Wake> woke;
  std::future<Wake> wake = woke.get_future();
  std::jthread sleeper = StartSleeper(clock, deadline, std::move(woke));

  clock.WaitForSleepers(1);
  clock.Advance(hours(1));
  Wake w = wake.get();
  EXPECT_TRUE(w.reached);
  EXPECT_EQ(w.at, deadline - seconds(5) + hours(1));
}

TEST(FakeClock, AdvanceToWakesTheSleeper) {
  FakeClock clock;
  const TimePoint deadline = clock.Now() + seconds(5);
  std::promise<Wake> woke;
  std::future<Wake> wake = woke.get_future();
  std::jthread sleeper = StartSleeper(clock, deadline, std::move(woke));

  clock.WaitForSleepers(1);
  clock.AdvanceTo(deadline - milliseconds(1));
  EXPECT_FALSE(IsReady(wake));
  clock.AdvanceTo(deadline);
  Wake w = wake.get();
  EXPECT_TRUE(w.reached);
  EXPECT_EQ(w.at, deadline);
}

TEST(FakeClock, SleepersWakeInDeadlineOrderOneStepAtATime) {
  FakeClock clock;
  const TimePoint start = clock.Now();
  constexpr int kSleepers = 3;
  std::vector<std::future<Wake>> wakes;
  std::vector<std::jthread> sleepers;
  for (int i = 1; i <= kSleepers; ++i) {
    std::promise<Wake> woke;
    wakes.push_back(woke.get_future());
    sleepers.push_back(
        StartSleeper(clock, start + seconds(i), std::move(woke)));
  }
  clock.WaitForSleepers(kSleepers);
  EXPECT_EQ(clock.Sleepers(), static_cast<size_t>(kSleepers));

  for (int i = 1; i <= kSleepers; ++i) {
    clock.Advance(seconds(1));
    Wake w = wakes[i - 1].get();
    EXPECT_TRUE(w.reached) << "sleeper " << i;
    EXPECT_EQ(w.at, start + seconds(i)) << "sleeper " << i;
    for (int later = i + 1; later <= kSleepers; ++later) {
      EXPECT_FALSE(IsReady(wakes[later - 1]))
          << "sleeper " << later << " woke at " << i << "s";
    }
  }
  for (std::jthread& t : sleepers) t.join();
  EXPECT_EQ(clock.Sleepers(), 0u);
}

TEST(FakeClock, SleepForCountsFromNow) {
  FakeClock clock;
  clock.Advance(seconds(100));
  const TimePoint deadline = clock.Now() + seconds(2);
  std::promise<Wake> woke;
  std::future<Wake> wake = woke.get_future();
  std::jthread sleeper([&clock, woke = std::move(woke)](
                           std::stop_token stop) mutable {
    bool reached = clock.SleepFor(seconds(2), stop);
    woke.set_value({reached, clock.Now()});
  });

  clock.WaitForSleepers(1);
  clock.Advance(seconds(1));
  EXPECT_FALSE(IsReady(wake));
  clock.Advance(seconds(1));
  Wake w = wake.get();
  EXPECT_TRUE(w.reached);
  EXPECT_EQ(w.at, deadline);
}

TEST(FakeClock, StopWakesASleeperEarlyAndSleepUntilReturnsFalse) {
  FakeClock clock;
  const TimePoint start = clock.Now();
  std::promise<Wake> woke;
  std::future<Wake> wake = woke.get_future();
  std::jthread sleeper =
      StartSleeper(clock, start + hours(1), std::move(woke));

  clock.WaitForSleepers(1);
  EXPECT_TRUE(sleeper.request_stop());
  Wake w = wake.get();
  EXPECT_FALSE(w.reached);
  EXPECT_EQ(w.at, start);  // time did not move
  sleeper.join();
  EXPECT_EQ(clock.Sleepers(), 0u);
}

TEST(FakeClock, StopRequestedBeforeTheSleepIsNotLost) {
  FakeClock clock;
  std::stop_source source;
  source.request_stop();
  EXPECT_FALSE(clock.SleepFor(hours(1), source.get_token()));
  EXPECT_EQ(clock.Sleepers(), 0u);
}

TEST(FakeClock, StoppingOneSleeperLeavesTheOthersAsleep) {
  FakeClock clock;
  const TimePoint deadline = clock.Now() + seconds(5);
  std::promise<Wake> woke_a, woke_b;
  std::future<Wake> wake_a = woke_a.get_future();
  std::future<Wake> wake_b = woke_b.get_future();
  std::jthread a = StartSleeper(clock, deadline, std::move(woke_a));
  std::jthread b = StartSleeper(clock, deadline, std::move(woke_b));

  clock.WaitForSleepers(2);
  a.request_stop();
  EXPECT_FALSE(wake_a.get().reached);
  a.join();
  EXPECT_FALSE(IsReady(wake_b));
  EXPECT_EQ(clock.Sleepers(), 1u);

  clock.Advance(seconds(5));
  Wake w = wake_b.get();
  EXPECT_TRUE(w.reached);
  EXPECT_EQ(w.at, deadline);
}

TEST(FakeClock, WorksThroughTheClockInterface) {
  FakeClock fake;
  const Clock& clock = fake;
  const TimePoint deadline = clock.Now() + seconds(1);
  std::promise<Wake> woke;
  std::future<Wake> wake = woke.get_future();
  std::jthread sleeper = StartSleeper(clock, deadline, std::move(woke));
  fake.WaitForSleepers(1);
  fake.Advance(seconds(1));
  EXPECT_TRUE(wake.get().reached);
}

TEST(SteadyClock, NowNeverGoesBackwards) {
  SteadyClock clock;
  TimePoint previous = clock.Now();
  for (int i = 0; i < 1000; ++i) {
    TimePoint now = clock.Now();
    ASSERT_GE(now, previous);
    previous = now;
  }
}

TEST(SteadyClock, SleepUntilADeadlineThatHasPassedReturnsTrue) {
  SteadyClock clock;
  std::stop_source source;
  EXPECT_TRUE(clock.SleepUntil(clock.Now() - seconds(1)));
  EXPECT_TRUE(clock.SleepUntil(clock.Now() - seconds(1), source.get_token()));
}

TEST(SteadyClock, SleepReturnsTrueNoEarlierThanTheDeadline) {
  SteadyClock clock;
  TimePoint deadline = clock.Now() + milliseconds(2);
  EXPECT_TRUE(clock.SleepUntil(deadline));
  EXPECT_GE(clock.Now(), deadline);

  // With a stop token that is never stopped (the condition-variable path).
  std::stop_source source;
  deadline = clock.Now() + milliseconds(2);
  EXPECT_TRUE(clock.SleepUntil(deadline, source.get_token()));
  EXPECT_GE(clock.Now(), deadline);
}

TEST(SteadyClock, SleepUntilWithStopRequestedReturnsFalsePromptly) {
  SteadyClock clock;
  std::stop_source source;
  source.request_stop();
  const TimePoint deadline = clock.Now() + hours(1);
  EXPECT_FALSE(clock.SleepUntil(deadline, source.get_token()));
  // "Promptly": long before the deadline. (A hang would hit the test's
  // timeout instead.)
  EXPECT_LT(clock.Now(), deadline);
}

TEST(SteadyClock, StopWakesASleepingThread) {
  SteadyClock clock;
  const TimePoint deadline = clock.Now() + hours(1);
  std::latch started(1);
  std::promise<bool> result;
  std::future<bool> reached = result.get_future();
  std::jthread sleeper([&](std::stop_token stop) {
    started.count_down();
    result.set_value(clock.SleepUntil(deadline, stop));
  });

  // The sleeper may or may not be inside SleepUntil yet: the stop state is
  // sticky, so either way it must return false well before the deadline.
  started.wait();
  sleeper.request_stop();
  EXPECT_FALSE(reached.get());
  EXPECT_LT(clock.Now(), deadline);
}

// clock.h: SleepFor(d): "a duration that takes a deadline past the end of
// the clock's range means no limit": only the stop ends it, and it returns
// false. Time far in the future does not wake it either.
TEST(FakeClock, SleepForDurationMaxEndsOnlyWhenStopped) {
  FakeClock clock;
  std::promise<bool> woke;
  std::future<bool> reached = woke.get_future();
  std::jthread sleeper([&](std::stop_token stop) {
    woke.set_value(clock.SleepFor(Clock::duration::max(), stop));
  });
  clock.WaitForSleepers(1);
  clock.Advance(hours(24 * 365 * 200));  // two centuries later: still asleep
  EXPECT_EQ(reached.wait_for(seconds(0)), std::future_status::timeout);
  EXPECT_EQ(clock.Sleepers(), 1u);
  sleeper.request_stop();
  EXPECT_FALSE(reached.get());
}

// clock.h: SleepFor(): any duration type, saturated (hours::max() does not
// overflow into a deadline in the past).
TEST(FakeClock, SleepForHoursMaxEndsOnlyWhenStopped) {
  FakeClock clock;
  std::stop_source stop;
  std::promise<bool> woke;
  std::future<bool> reached = woke.get_future();
  std::jthread sleeper(
      [&] { woke.set_value(clock.SleepFor(hours::max(), stop.get_token())); });
  clock.WaitForSleepers(1);
  clock.Advance(Clock::duration::max());  // the end of time: still asleep
  EXPECT_EQ(clock.Now(), FakeClock::kEndOfTime);
  EXPECT_EQ(reached.wait_for(seconds(0)), std::future_status::timeout);
  stop.request_stop();
  EXPECT_FALSE(reached.get());
}

// clock.h: "A zero or negative SleepFor() returns at once", with true, even
// with a stopped token (the deadline has been reached).
TEST(FakeClock, SleepForZeroOrNegativeReturnsTrueAtOnce) {
  FakeClock clock;
  const TimePoint start = clock.Now();
  EXPECT_TRUE(clock.SleepFor(Clock::duration::zero()));
  EXPECT_TRUE(clock.SleepFor(-seconds(5)));
  EXPECT_TRUE(clock.SleepFor(Clock::duration::min()));
  std::stop_source stopped;
  stopped.request_stop();
  EXPECT_TRUE(clock.SleepFor(Clock::duration::zero(), stopped.get_token()));
  EXPECT_EQ(clock.Now(), start);
  EXPECT_EQ(clock.Sleepers(), 0u);
}

// clock.h: SleepFor() Throws: std::invalid_argument if `d` is NaN.
TEST(Clock, SleepForRejectsNaN) {
  FakeClock fake;
  SteadyClock steady;
  const std::chrono::duration<double> nan(std::nan(""));
  EXPECT_THROW(fake.SleepFor(nan), std::invalid_argument);
  EXPECT_THROW(steady.SleepFor(nan), std::invalid_argument);
}

// clock.h: Advance(): "Time saturates one tick short of time_point::max()";
// "zero moves nothing"; negative and NaN throw with time unchanged.
TEST(FakeClock, AdvanceSaturatesAtTheEndOfTime) {
  FakeClock clock;
  const TimePoint start = clock.Now();
  clock.Advance(Clock::duration::zero());
  EXPECT_EQ(clock.Now(), start);
  EXPECT_THROW(clock.Advance(std::chrono::duration<double>(std::nan(""))),
               std::invalid_argument);
  EXPECT_EQ(clock.Now(), start);
  clock.Advance(Clock::duration::max());
  EXPECT_EQ(clock.Now(), FakeClock::kEndOfTime);
  clock.Advance(hours::max());
  EXPECT_EQ(clock.Now(), FakeClock::kEndOfTime);
  clock.AdvanceTo(TimePoint::max());
  EXPECT_EQ(clock.Now(), FakeClock::kEndOfTime);
  // time_point::max() is "no limit": not reached even at the end of time.
  std::stop_source stop;
  stop.request_stop();
  EXPECT_FALSE(clock.SleepUntil(TimePoint::max(), stop.get_token()));
  EXPECT_TRUE(clock.SleepUntil(FakeClock::kEndOfTime, stop.get_token()));
  EXPECT_EQ(FakeClock(TimePoint::max()).Now(), FakeClock::kEndOfTime);
}

// clock.h: SleepFor(duration::max()) on the steady clock has no limit: it
// returns false, and only once stopped. (Before the stop arrives it may or
// may not be asleep; the stop is sticky, and a deadline it could reach
// would make it return true.)
TEST(SteadyClock, SleepForDurationMaxEndsOnlyWhenStopped) {
  SteadyClock clock;
  for (const Clock::duration d :
       {Clock::duration::max(), Clock::duration::max() - hours(1)}) {
    std::latch started(1);
    std::promise<bool> woke;
    std::future<bool> reached = woke.get_future();
    std::jthread sleeper([&](std::stop_token stop) {
      started.count_down();
      woke.set_value(clock.SleepFor(d, stop));
    });
    started.wait();
    sleeper.request_stop();
    EXPECT_FALSE(reached.get());
  }
  std::stop_source stop;
  stop.request_stop();
  EXPECT_FALSE(clock.SleepUntil(TimePoint::max(), stop.get_token()));
  EXPECT_FALSE(clock.SleepFor(hours::max(), stop.get_token()));
}

// clock.h: "A zero or negative SleepFor() returns at once", with true.
TEST(SteadyClock, SleepForZeroOrNegativeReturnsTrueAtOnce) {
  SteadyClock clock;
  std::stop_source stop;
  EXPECT_TRUE(clock.SleepFor(Clock::duration::zero()));
  EXPECT_TRUE(clock.SleepFor(Clock::duration::zero(), stop.get_token()));
  EXPECT_TRUE(clock.SleepFor(Clock::duration::min(), stop.get_token()));
}

TEST(Clock, SteadyIsOneProcessWideSteadyClock) {
  const Clock& a = Clock::Steady();
  const Clock& b = Clock::Steady();
  EXPECT_EQ(&a, &b);
  EXPECT_NE(dynamic_cast<const SteadyClock*>(&a), nullptr);
}

}  // namespace
}  // namespace herd
