// Copyright 2026 The herd Authors.
//
// Tests herd/deadline.h: the deadline stops the inner loader's token, the
// outcome is judged by the clock when the loader finishes, max() is no
// deadline, zero is rejected, a throwing clock.
// Each test's name states the contract it checks; a comment quotes the
// header where the name cannot say it all.

#include "herd/deadline.h"

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <latch>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "gtest/gtest.h"
#include "herd/clock.h"
#include "herd/errors.h"
#include "herd/timer.h"
#include "tests/testing/clocks.h"

namespace herd {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

struct Stopped : std::runtime_error {
  Stopped() : std::runtime_error("loader saw its stop token") {}
};

// Blocks until `stop` is stopped, then throws Stopped.
[[noreturn]] void WaitForStop(std::stop_token stop) {
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, stop, [] { return false; });
  throw Stopped();
}

// deadline.h: "zero and negative timeouts are rejected"; Throws:
// std::invalid_argument if timeout <= 0 or NaN, or the loader is empty.
TEST(Deadline, RejectsNonPositiveTimeoutAndEmptyLoader) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  EXPECT_THROW(WithDeadline(timer, seconds(0), [] { return 1; }),
               std::invalid_argument);
  EXPECT_THROW(WithDeadline(timer, -seconds(1), [] { return 1; }),
               std::invalid_argument);
  EXPECT_THROW(WithDeadline(timer, Clock::duration::min(), [] { return 1; }),
               std::invalid_argument);
  EXPECT_THROW(WithDeadline(timer, std::chrono::duration<double>(std::nan("")),
                            [] { return 1; }),
               std::invalid_argument);
  EXPECT_THROW(WithDeadline(timer, seconds(1), std::function<int()>()),
               std::invalid_argument);
  EXPECT_THROW(WithDeadline(seconds(0), [] { return 1; }),
               std::invalid_argument);
}

// deadline.h: "A timeout whose deadline lies past the end of the clock's
// range (duration::max(), hours::max()) is no deadline at all: no timer
// entry, the inner loader gets the outer token as it is, and the call never
// throws DeadlineExceeded of its own."
TEST(Deadline, DurationMaxIsNoDeadline) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  auto long_query = [&](std::stop_token stop) {
    EXPECT_EQ(timer.Pending(), 0u);
    EXPECT_FALSE(stop.stop_possible());
    clock.Advance(hours(24 * 365 * 100));  // a query of a century
    return 7;
  };
  EXPECT_EQ(WithDeadline(timer, Clock::duration::max(),
                         long_query)(std::stop_token()),
            7);
  EXPECT_EQ(WithDeadline(timer, hours::max(), long_query)(std::stop_token()),
            7);
  EXPECT_EQ(WithDeadline(hours::max(), long_query)(std::stop_token()), 7);
  // The outer token still reaches the loader.
  std::stop_source outer;
  auto loader =
      WithDeadline(timer, Clock::duration::max(), [&](std::stop_token stop) {
        outer.request_stop();
        return stop.stop_requested();
      });
  EXPECT_TRUE(loader(outer.get_token()));
}

// deadline.h: "A Clock that throws: from the Now() that starts a call, the
// exception propagates and the inner loader does not run; from the Now()
// that judges a finished call, it propagates in place of the call's
// outcome" (and leaves no timer entry behind). Armed on the caller's thread
// only: the timer's thread must not see it.
TEST(Deadline, ClockThatThrowsStopsTheCallCleanly) {
  FakeClock fake;
  test::ThrowingClock clock(fake);
  Timer timer({.clock = &clock});
  int runs = 0;
  auto loader = WithDeadline(timer, seconds(2), [&] {
    ++runs;
    clock.ArmNow();  // the judging Now() throws
    return 1;
  });
  EXPECT_THROW(loader(std::stop_token()), test::ClockFailure);
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(timer.Pending(), 0u);
  // Still armed: the starting Now() throws, and the loader does not run.
  EXPECT_THROW(loader(std::stop_token()), test::ClockFailure);
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(timer.Pending(), 0u);
  clock.Disarm();
  // A loader that throws, judged by a clock that throws: the clock's wins.
  auto failing = WithDeadline(timer, seconds(2), [&]() -> int {
    clock.ArmNow();
    throw std::out_of_range("loader");
  });
  EXPECT_THROW(failing(std::stop_token()), test::ClockFailure);
  clock.Disarm();
  EXPECT_EQ(timer.Pending(), 0u);
}

TEST(Deadline, FastLoaderReturnsItsValueAndCancelsTheTimer) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  auto loader = WithDeadline(timer, seconds(1), [] { return 42; });
  EXPECT_EQ(loader(std::stop_token()), 42);
  EXPECT_EQ(timer.Pending(), 0u);
}

TEST(Deadline, ErrorBeforeDeadlinePassesThroughUnchanged) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  auto loader = WithDeadline(
      timer, seconds(1), []() -> int { throw std::out_of_range("missing"); });
  EXPECT_THROW(loader(std::stop_token()), std::out_of_range);
  EXPECT_EQ(timer.Pending(), 0u);
}

TEST(Deadline, StopAwareLoaderEndsAtDeadline) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  std::latch started(1);
  auto loader = WithDeadline(timer, seconds(2), [&](std::stop_token stop) {
    started.count_down();
    WaitForStop(stop);
    return 0;
  });
  std::thread caller(
      [&] { EXPECT_THROW(loader(std::stop_token()), DeadlineExceeded); });
  started.wait();
  clock.Advance(seconds(2));  // the timer fires and stops the loader's token
  caller.join();
}

TEST(Deadline, ValueProducedAfterDeadlineIsReplaced) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  std::latch started(1), release(1);
  // Ignores its token: the deadline cannot end it, only judge it.
  auto loader = WithDeadline(timer, seconds(2), [&] {
    started.count_down();
    release.wait();
    return 7;
  });
  std::thread caller(
      [&] { EXPECT_THROW(loader(std::stop_token()), DeadlineExceeded); });
  started.wait();
  clock.Advance(seconds(3));
  release.count_down();
  caller.join();
}

TEST(Deadline, OuterStopReachesInnerLoader) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  std::stop_source outer;
  std::latch started(1);
  auto loader = WithDeadline(timer, seconds(2), [&](std::stop_token stop) {
    started.count_down();
    WaitForStop(stop);
    return 0;
  });
  std::thread caller([&] {
    // Not late: the loader's own exception comes through.
    EXPECT_THROW(loader(outer.get_token()), Stopped);
  });
  started.wait();
  outer.request_stop();
  caller.join();
  EXPECT_EQ(timer.Pending(), 0u);
}

TEST(Deadline, AlreadyStoppedOuterTokenIsPassedOn) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  std::stop_source outer;
  outer.request_stop();
  bool saw = false;
  auto loader = WithDeadline(timer, seconds(2), [&](std::stop_token stop) {
    saw = stop.stop_requested();
  });
  loader(outer.get_token());
  EXPECT_TRUE(saw);
}

TEST(Deadline, NestedDeadlinesTheInnerOneFires) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  std::latch started(1);
  auto inner = WithDeadline(timer, seconds(1), [&](std::stop_token stop) {
    started.count_down();
    WaitForStop(stop);
    return 0;
  });
  auto outer = WithDeadline(timer, seconds(5), std::move(inner));
  std::thread caller(
      [&] { EXPECT_THROW(outer(std::stop_token()), DeadlineExceeded); });
  started.wait();
  clock.Advance(seconds(1));
  caller.join();
  EXPECT_EQ(timer.Pending(), 0u);  // the outer timer was cancelled too
}

TEST(Deadline, EachCallGetsItsOwnDeadline) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  int calls = 0;
  auto loader = WithDeadline(timer, seconds(1), [&] { return ++calls; });
  EXPECT_EQ(loader(std::stop_token()), 1);
  clock.Advance(seconds(10));  // long after the first call's deadline
  EXPECT_EQ(loader(std::stop_token()), 2);
}

TEST(Deadline, DefaultTimerStopsLoaderInRealTime) {
  auto loader = WithDeadline(milliseconds(20), [](std::stop_token stop) {
    WaitForStop(stop);
    return 0;
  });
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(loader(std::stop_token()), DeadlineExceeded);
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(20));
}

}  // namespace
}  // namespace herd
