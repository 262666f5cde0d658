// Copyright 2026 The herd Authors.

#include "herd/deadline.h"

#include <chrono>
#include <condition_variable>
#include <latch>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "gtest/gtest.h"
#include "herd/clock.h"
#include "herd/errors.h"
#include "herd/timer.h"

namespace herd {
namespace {

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

TEST(Deadline, RejectsNonPositiveTimeout) {
  FakeClock clock;
  Timer timer(clock);
  EXPECT_THROW(WithDeadline(timer, seconds(0), [] { return 1; }),
               std::invalid_argument);
  EXPECT_THROW(WithDeadline(timer, -seconds(1), [] { return 1; }),
               std::invalid_argument);
}

TEST(Deadline, FastLoaderReturnsItsValueAndCancelsTheTimer) {
  FakeClock clock;
  Timer timer(clock);
  auto loader = WithDeadline(timer, seconds(1), [] { return 42; });
  EXPECT_EQ(loader(std::stop_token()), 42);
  EXPECT_EQ(timer.Pending(), 0u);
}

TEST(Deadline, ErrorBeforeDeadlinePassesThroughUnchanged) {
  FakeClock clock;
  Timer timer(clock);
  auto loader = WithDeadline(
      timer, seconds(1), []() -> int { throw std::out_of_range("missing"); });
  EXPECT_THROW(loader(std::stop_token()), std::out_of_range);
  EXPECT_EQ(timer.Pending(), 0u);
}

TEST(Deadline, StopAwareLoaderEndsAtDeadline) {
  FakeClock clock;
  Timer timer(clock);
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
  Timer timer(clock);
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
  Timer timer(clock);
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
  Timer timer(clock);
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
  Timer timer(clock);
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
  Timer timer(clock);
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
