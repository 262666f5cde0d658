// Copyright 2026 The herd Authors.
//
// Tests herd/timer.h: callbacks run once, never before their deadline, in
// (deadline, id) order; Cancel() is true iff it kept a callback from running;
// the ends of time (a past deadline, duration::max()); a throwing clock.
// Each test's name states the contract it checks; a comment quotes the
// header where the name cannot say it all.

#include "herd/timer.h"

#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <latch>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/random/random.h"
#include "gtest/gtest.h"
#include "herd/clock.h"
#include "tests/testing/clocks.h"

namespace herd {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Notification as a std::latch: Debian's Abseil is built without
// -fsanitize=thread, so ThreadSanitizer cannot see its synchronisation.
class Notification {
 public:
  void Notify() { latch_.count_down(); }
  void WaitForNotification() { latch_.wait(); }
  bool HasBeenNotified() { return latch_.try_wait(); }

 private:
  std::latch latch_{1};
};

// Records the order callbacks ran in.
class Log {
 public:
  void Add(int v) {
    std::lock_guard<std::mutex> lock(mu_);
    v_.push_back(v);
  }
  std::vector<int> Get() {
    std::lock_guard<std::mutex> lock(mu_);
    return v_;
  }

 private:
  std::mutex mu_;
  std::vector<int> v_;
};

TEST(Timer, RunsCallbackOnlyOnceDeadlinePasses) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  Notification five, four;
  timer.RunAfter(seconds(5), [&] { five.Notify(); });
  clock.Advance(seconds(4));
  // Due now; runs before the 5 s callback would, since the timer runs in
  // deadline order. Once it has run, the timer has seen t=4s.
  timer.RunAt(clock.Now(), [&] { four.Notify(); });
  four.WaitForNotification();
  EXPECT_FALSE(five.HasBeenNotified());
  EXPECT_EQ(timer.Pending(), 1u);
  clock.Advance(seconds(1));
  five.WaitForNotification();
  EXPECT_EQ(timer.Pending(), 0u);
}

TEST(Timer, PastDeadlineRunsAtOnce) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  Notification ran;
  timer.RunAt(clock.Now() - seconds(1), [&] { ran.Notify(); });
  ran.WaitForNotification();
  Notification ran2;
  timer.RunAfter(-seconds(3), [&] { ran2.Notify(); });
  ran2.WaitForNotification();
}

TEST(Timer, RunsInDeadlineOrderThenScheduleOrder) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  Log log;
  Notification done;
  timer.RunAfter(seconds(3), [&] { log.Add(3); });
  timer.RunAfter(seconds(1), [&] { log.Add(1); });
  timer.RunAfter(seconds(2), [&] { log.Add(20); });
  timer.RunAfter(seconds(2), [&] { log.Add(21); });
  timer.RunAfter(seconds(3), [&] { done.Notify(); });
  clock.Advance(seconds(3));
  done.WaitForNotification();
  EXPECT_EQ(log.Get(), (std::vector<int>{1, 20, 21, 3}));
}

TEST(Timer, EarlierDeadlineWakesSleepingThread) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  Notification late, early;
  timer.RunAfter(seconds(10), [&] { late.Notify(); });
  clock.WaitForSleepers(1);  // the thread sleeps until t+10s
  timer.RunAfter(seconds(1), [&] { early.Notify(); });
  clock.Advance(seconds(1));
  // Would hang if the thread kept sleeping towards t+10s.
  early.WaitForNotification();
  EXPECT_FALSE(late.HasBeenNotified());
  EXPECT_EQ(timer.Pending(), 1u);
}

TEST(Timer, CancelPreventsRunAndReportsIt) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  bool cancelled_ran = false;
  Notification ran, sentinel;
  Timer::Id doomed = timer.RunAfter(seconds(1), [&] { cancelled_ran = true; });
  Timer::Id kept = timer.RunAfter(seconds(1), [&] { ran.Notify(); });
  EXPECT_TRUE(timer.Cancel(doomed));
  EXPECT_FALSE(timer.Cancel(doomed));  // already cancelled
  EXPECT_FALSE(timer.Cancel(12345));   // never existed
  EXPECT_EQ(timer.Pending(), 1u);
  timer.RunAfter(seconds(2), [&] { sentinel.Notify(); });
  clock.Advance(seconds(2));
  sentinel.WaitForNotification();
  EXPECT_TRUE(ran.HasBeenNotified());
  EXPECT_FALSE(cancelled_ran);
  EXPECT_FALSE(timer.Cancel(kept));  // already ran
}

TEST(Timer, CancelDestroysCallbackAtOnce) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  auto token = std::make_shared<int>(0);
  Timer::Id id = timer.RunAfter(hours(1), [token] {});
  EXPECT_EQ(token.use_count(), 2);
  EXPECT_TRUE(timer.Cancel(id));
  EXPECT_EQ(token.use_count(), 1);
}

TEST(Timer, CallbackMayScheduleAndCancel) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  Notification second;
  Timer::Id victim = timer.RunAfter(hours(1), [] { FAIL(); });
  bool cancelled = false;
  timer.RunAfter(seconds(1), [&] {
    // Runs without the timer's lock held, so these do not deadlock.
    cancelled = timer.Cancel(victim);
    timer.RunAfter(seconds(0), [&] { second.Notify(); });
  });
  clock.Advance(seconds(1));
  second.WaitForNotification();
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(timer.Pending(), 0u);
}

TEST(Timer, DestructorCancelsPendingWithoutRunning) {
  FakeClock clock;
  auto token = std::make_shared<int>(0);
  bool ran = false;
  {
    Timer timer({.clock = &clock});
    timer.RunAfter(seconds(1), [token, &ran] { ran = true; });
    timer.RunAfter(hours(5), [token, &ran] { ran = true; });
    EXPECT_EQ(token.use_count(), 3);
  }
  EXPECT_FALSE(ran);
  EXPECT_EQ(token.use_count(), 1);
}

TEST(Timer, DestructorWaitsForRunningCallback) {
  FakeClock clock;
  auto timer = std::make_unique<Timer>(clock);
  Notification started, release, destroyed;
  bool finished = false;
  timer->RunAt(clock.Now(), [&] {
    started.Notify();
    release.WaitForNotification();
    finished = true;
  });
  started.WaitForNotification();
  std::thread destroyer([&] {
    timer.reset();
    destroyed.Notify();
  });
  // The destructor cannot return while the callback is blocked.
  EXPECT_FALSE(destroyed.HasBeenNotified());
  release.Notify();
  destroyer.join();
  EXPECT_TRUE(finished);
}

TEST(Timer, ConcurrentSchedulersAllRunExactlyOnce) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  constexpr int kThreads = 4, kEach = 250;
  std::atomic<int> runs{0};
  std::latch all_ran(kThreads * kEach);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) {
          timer.RunAfter(milliseconds(1 + (i * 7 + t) % 100), [&] {
            runs.fetch_add(1);
            all_ran.count_down();
          });
        }
      });
    }
  }
  clock.Advance(milliseconds(100));
  all_ran.wait();
  EXPECT_EQ(runs.load(), kThreads * kEach);
  EXPECT_EQ(timer.Pending(), 0u);
}

TEST(Timer, ThousandsPendingWithHalfCancelled) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  absl::BitGen gen(std::seed_seq{42});
  constexpr int kTimers = 10000;
  Log log;
  std::vector<std::pair<Timer::Id, int>> ids;
  std::vector<int> expected;
  for (int i = 0; i < kTimers; ++i) {
    int ms = absl::Uniform(gen, 1, 1000);
    ids.emplace_back(
        timer.RunAfter(milliseconds(ms), [&log, ms] { log.Add(ms); }), ms);
  }
  for (int i = 0; i < kTimers; ++i) {
    if (i % 2 == 0) {
      EXPECT_TRUE(timer.Cancel(ids[i].first));
    } else {
      expected.push_back(ids[i].second);
    }
  }
  EXPECT_EQ(timer.Pending(), static_cast<size_t>(kTimers / 2));
  Notification done;
  timer.RunAfter(milliseconds(1000), [&] { done.Notify(); });
  clock.Advance(milliseconds(1000));
  done.WaitForNotification();
  std::vector<int> got = log.Get();
  ASSERT_EQ(got.size(), expected.size());
  EXPECT_TRUE(std::is_sorted(got.begin(), got.end()));
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(got, expected);
}

// timer.h: "a delay whose deadline lies past the clock's range
// (duration::max()) saturates at time_point::max(), which the clock never
// reaches". A callback due later than every other one runs after them, so
// once the one at +1 s has run, one that ran "at once" would have too.
TEST(Timer, RunAfterDurationMaxNeverRuns) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  std::atomic<int> ran{0};
  Notification later;
  const Timer::Id forever =
      timer.RunAfter(Clock::duration::max(), [&] { ++ran; });
  timer.RunAfter(hours::max(), [&] { ++ran; });  // any duration type
  timer.RunAfter(seconds(1), [&] { later.Notify(); });
  clock.Advance(seconds(1));
  later.WaitForNotification();
  EXPECT_EQ(ran.load(), 0);
  clock.Advance(Clock::duration::max());  // to the end of time
  Notification end;
  timer.RunAt(clock.Now(), [&] { end.Notify(); });  // due last: after both
  end.WaitForNotification();
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(timer.Pending(), 2u);
  EXPECT_TRUE(timer.Cancel(forever));
  EXPECT_EQ(timer.Pending(), 1u);
}

// timer.h: RunAfter(): "a zero or negative delay runs at once" (time does
// not move); RunAt(time_point::min()) too.
TEST(Timer, RunAfterZeroRunsAtOnce) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  const Clock::time_point start = clock.Now();
  Notification zero, min, at_min;
  timer.RunAfter(Clock::duration::zero(), [&] { zero.Notify(); });
  timer.RunAfter(Clock::duration::min(), [&] { min.Notify(); });
  timer.RunAt(Clock::time_point::min(), [&] { at_min.Notify(); });
  zero.WaitForNotification();
  min.WaitForNotification();
  at_min.WaitForNotification();
  EXPECT_EQ(clock.Now(), start);
}

// timer.h: RunAfter() Throws: std::invalid_argument if `delay` is NaN.
TEST(Timer, RunAfterRejectsNaN) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  EXPECT_THROW(
      timer.RunAfter(std::chrono::duration<double>(std::nan("")), [] {}),
      std::invalid_argument);
  EXPECT_EQ(timer.Pending(), 0u);
}

// timer.h: "A Clock that throws: from RunAfter() ... the exception
// propagates and nothing is scheduled." (Armed on this thread only: the
// timer's own thread, idle with nothing pending, never reads it.)
TEST(Timer, ClockThatThrowsFromRunAfterSchedulesNothing) {
  FakeClock fake;
  test::ThrowingClock clock(fake);
  Timer timer({.clock = &clock});
  clock.ArmNow();
  bool destroyed_unrun = false;
  struct Probe {
    bool* destroyed;
    bool live = true;
    Probe(bool* d) : destroyed(d) {}
    Probe(Probe&& o) noexcept : destroyed(o.destroyed) { o.live = false; }
    ~Probe() {
      if (live) *destroyed = true;
    }
    void operator()() && {}
  };
  EXPECT_THROW(timer.RunAfter(seconds(1), Probe(&destroyed_unrun)),
               test::ClockFailure);
  EXPECT_TRUE(destroyed_unrun);
  EXPECT_EQ(timer.Pending(), 0u);
  clock.Disarm();
  Notification ran;
  timer.RunAfter(Clock::duration::zero(), [&] { ran.Notify(); });
  ran.WaitForNotification();
}

// timer.h: TimerOptions: "nullptr means Clock::Steady()".
TEST(Timer, DefaultOptionsUseTheSteadyClock) {
  Timer timer;
  EXPECT_EQ(&timer.clock(), &Clock::Steady());
  FakeClock clock;
  Timer fake({.clock = &clock});
  EXPECT_EQ(&fake.clock(), &clock);
}

// timer.h: the deprecated Timer(const Clock&) still works for one release.
TEST(Timer, DeprecatedClockConstructorStillWorks) {
  FakeClock clock;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  Timer timer(clock);
#pragma GCC diagnostic pop
  EXPECT_EQ(&timer.clock(), &clock);
  Notification ran;
  timer.RunAfter(seconds(2), [&] { ran.Notify(); });
  clock.Advance(seconds(2));
  ran.WaitForNotification();
}

TEST(Timer, RejectsEmptyCallback) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  EXPECT_THROW(timer.RunAfter(seconds(1), Timer::Callback()),
               std::invalid_argument);
}

TEST(Timer, RunsOnSteadyClock) {
  Timer timer;
  Notification ran;
  auto start = std::chrono::steady_clock::now();
  timer.RunAfter(milliseconds(20), [&] { ran.Notify(); });
  ran.WaitForNotification();
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(20));
}

double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Idle means asleep: one timer with nothing pending, one with a deadline an
// hour away. Over a quarter second of wall time the whole process may use at
// most a few milliseconds of CPU (a polling loop would use all of it).
TEST(Timer, IdleTimerUsesNoCpu) {
  Timer empty;
  Timer waiting;
  waiting.RunAfter(hours(1), [] {});
  // Let both threads reach their waits.
  std::this_thread::sleep_for(milliseconds(20));
  double before = ProcessCpuSeconds();
  std::this_thread::sleep_for(milliseconds(250));
  double used = ProcessCpuSeconds() - before;
  EXPECT_LT(used, 0.025) << "CPU seconds used while idle: " << used;
}

}  // namespace
}  // namespace herd
