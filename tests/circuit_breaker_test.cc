// Copyright 2026 The herd Authors.
//
// Tests herd/circuit_breaker.h: the closed / open / half-open state machine
// in both trip modes, outcomes counted only in the state that admitted them,
// open_duration at its ends, a throwing clock or is_failure.
// Each test's name states the contract it checks; a comment quotes the
// header where the name cannot say it all.

#include "herd/circuit_breaker.h"

#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <latch>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <vector>

#include "gtest/gtest.h"
#include "herd/clock.h"
#include "herd/errors.h"
#include "tests/testing/clocks.h"

namespace herd {
namespace {

using std::chrono::nanoseconds;
using std::chrono::seconds;
using State = CircuitBreaker::State;

struct DbDown : std::runtime_error {
  DbDown() : std::runtime_error("db down") {}
};
struct NotFound : std::runtime_error {
  NotFound() : std::runtime_error("not found") {}
};

// Calls through `breaker` a loader that fails iff `fail`; returns whether the
// loader ran.
bool Call(CircuitBreaker& breaker, bool fail) {
  bool ran = false;
  auto loader = WithBreaker(breaker, [&]() -> int {
    ran = true;
    if (fail) throw DbDown();
    return 1;
  });
  try {
    loader(std::stop_token());
  } catch (const DbDown&) {
  } catch (const CircuitOpen&) {
    EXPECT_FALSE(ran);
  }
  return ran;
}

CircuitBreakerOptions Consecutive(const Clock& clock, int threshold) {
  return {.failure_threshold = threshold,
          .open_duration = seconds(10),
          .clock = &clock};
}

TEST(CircuitBreaker, RejectsBadOptions) {
  auto make = [](CircuitBreakerOptions o) { CircuitBreaker b(std::move(o)); };
  EXPECT_THROW(make({.failure_threshold = 0}), std::invalid_argument);
  EXPECT_THROW(make({.failure_threshold = -1}), std::invalid_argument);
  EXPECT_THROW(make({.window_size = -1}), std::invalid_argument);
  EXPECT_THROW(make({.window_size = 10, .failure_ratio = 0.0}),
               std::invalid_argument);
  EXPECT_THROW(make({.window_size = 10, .failure_ratio = 1.5}),
               std::invalid_argument);
  EXPECT_THROW(make({.open_duration = seconds(0)}), std::invalid_argument);
  EXPECT_THROW(make({.open_duration = -seconds(1)}), std::invalid_argument);
  EXPECT_THROW(make({.half_open_trials = 0}), std::invalid_argument);
  EXPECT_NO_THROW(make({}));
  EXPECT_NO_THROW(make({.open_duration = Clock::duration::max()}));
  CircuitBreaker breaker;
  EXPECT_THROW(WithBreaker(breaker, std::function<int()>()),
               std::invalid_argument);
}

// circuit_breaker.h: "open_duration = duration::max() keeps a tripped
// breaker open for good (it never half-opens)".
TEST(CircuitBreaker, OpenDurationMaxNeverHalfOpens) {
  FakeClock clock;
  CircuitBreaker breaker({.failure_threshold = 1,
                          .open_duration = Clock::duration::max(),
                          .clock = &clock});
  EXPECT_TRUE(Call(breaker, /*fail=*/true));
  EXPECT_EQ(breaker.state(), State::kOpen);
  clock.Advance(std::chrono::hours(24 * 365 * 200));
  EXPECT_EQ(breaker.state(), State::kOpen);
  EXPECT_FALSE(Call(breaker, /*fail=*/false));
  clock.Advance(Clock::duration::max());  // the end of time
  EXPECT_EQ(breaker.state(), State::kOpen);
  EXPECT_FALSE(Call(breaker, /*fail=*/false));
  EXPECT_EQ(breaker.rejected(), 2);
}

// circuit_breaker.h: "A Clock that throws: TryAdmit() and state() read
// Now() only while the breaker is open; if it throws, the exception
// propagates and nothing changes (no call admitted, none counted as
// rejected; WithBreaker() does not run the loader)."
TEST(CircuitBreaker, ClockThatThrowsWhileOpenChangesNothing) {
  FakeClock fake;
  test::ThrowingClock clock(fake);
  CircuitBreaker breaker(Consecutive(clock, 1));
  clock.ArmNow();
  EXPECT_TRUE(breaker.TryAdmit().has_value());  // closed: no clock read
  EXPECT_EQ(breaker.state(), State::kClosed);
  clock.Disarm();
  EXPECT_TRUE(Call(breaker, /*fail=*/true));  // opens
  fake.Advance(seconds(10));                  // and half-open is due
  clock.ArmNow();
  bool ran = false;
  auto loader = WithBreaker(breaker, [&] { ran = true; });
  EXPECT_THROW(loader(std::stop_token()), test::ClockFailure);
  EXPECT_FALSE(ran);
  EXPECT_THROW(breaker.state(), test::ClockFailure);
  EXPECT_EQ(breaker.rejected(), 0);
  clock.Disarm();
  // Nothing changed: the one trial is still there to take.
  EXPECT_EQ(breaker.state(), State::kHalfOpen);
  EXPECT_TRUE(Call(breaker, /*fail=*/false));
  EXPECT_EQ(breaker.state(), State::kClosed);
}

// circuit_breaker.h: "Record() is noexcept ...; if Now() throws there, the
// breaker opens as of the last instant it read from the clock ..., so it
// half-opens no later than open_duration after the failure, possibly
// sooner."
TEST(CircuitBreaker, ClockThatThrowsInRecordOpensAsOfTheLastReading) {
  FakeClock fake;
  test::ThrowingClock clock(fake);
  CircuitBreaker breaker(Consecutive(clock, 1));  // read at construction: t0
  fake.Advance(seconds(4));
  clock.ArmNow();
  EXPECT_TRUE(Call(breaker, /*fail=*/true));  // trips at t0 + 4 s
  clock.Disarm();
  EXPECT_EQ(breaker.state(), State::kOpen);
  fake.Advance(seconds(6));  // open_duration after t0, not after the failure
  EXPECT_EQ(breaker.state(), State::kHalfOpen);
}

// circuit_breaker.h: is_failure: "A predicate that throws counts the call
// as a failure (in WithBreaker(), its exception then replaces the
// loader's)."
TEST(CircuitBreaker, IsFailureThatThrowsCountsAsAFailure) {
  FakeClock clock;
  CircuitBreakerOptions o = Consecutive(clock, 1);
  o.is_failure = [](const std::exception_ptr&) -> bool {
    throw std::logic_error("predicate");
  };
  CircuitBreaker breaker(o);
  auto loader = WithBreaker(breaker, []() -> int { throw DbDown(); });
  EXPECT_THROW(loader(std::stop_token()), std::logic_error);
  EXPECT_EQ(breaker.state(), State::kOpen);
}

// circuit_breaker.h: "by default, every exception but herd::Cancelled: a
// caller that gave up says nothing about the dependency". A cancelled call
// is a success for the count; any other exception still opens the breaker,
// and an explicit is_failure decides alone.
TEST(CircuitBreaker, CancelledIsNotAFailureByDefault) {
  FakeClock clock;
  CircuitBreaker breaker(Consecutive(clock, 1));
  auto cancelled = WithBreaker(breaker, []() -> int { throw Cancelled(); });
  for (int i = 0; i < 3; ++i) {
    EXPECT_THROW(cancelled(std::stop_token()), Cancelled);
    EXPECT_EQ(breaker.state(), State::kClosed);
  }
  auto failing = WithBreaker(breaker, []() -> int { throw DbDown(); });
  EXPECT_THROW(failing(std::stop_token()), DbDown);
  EXPECT_EQ(breaker.state(), State::kOpen);

  CircuitBreakerOptions every = Consecutive(clock, 1);
  every.is_failure = [](const std::exception_ptr&) { return true; };
  CircuitBreaker strict(every);
  auto strict_cancelled =
      WithBreaker(strict, []() -> int { throw Cancelled(); });
  EXPECT_THROW(strict_cancelled(std::stop_token()), Cancelled);
  EXPECT_EQ(strict.state(), State::kOpen);
}

// circuit_breaker.h: CircuitBreaker::Options stays one release, deprecated.
TEST(CircuitBreaker, DeprecatedOptionsNameStillWorks) {
  FakeClock clock;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  CircuitBreaker::Options o;
  static_assert(std::is_same_v<decltype(o), CircuitBreakerOptions>);
#pragma GCC diagnostic pop
  o.failure_threshold = 1;
  o.clock = &clock;
  CircuitBreaker breaker(o);
  EXPECT_TRUE(Call(breaker, /*fail=*/true));
  EXPECT_EQ(breaker.state(), State::kOpen);
}

TEST(CircuitBreaker, ClosedBreakerPassesValuesAndErrorsThrough) {
  CircuitBreaker breaker;
  EXPECT_EQ(breaker.state(), State::kClosed);
  auto ok = WithBreaker(breaker, [] { return std::string("v"); });
  EXPECT_EQ(ok(std::stop_token()), "v");
  auto bad = WithBreaker(breaker, []() -> int { throw NotFound(); });
  EXPECT_THROW(bad(std::stop_token()), NotFound);
  EXPECT_EQ(breaker.state(), State::kClosed);
}

TEST(CircuitBreaker, OpensAfterThresholdFailures) {
  FakeClock clock;
  CircuitBreaker breaker(Consecutive(clock, 3));
  EXPECT_TRUE(Call(breaker, true));
  EXPECT_TRUE(Call(breaker, true));
  EXPECT_EQ(breaker.state(), State::kClosed);
  EXPECT_TRUE(Call(breaker, true));
  EXPECT_EQ(breaker.state(), State::kOpen);
  // Open: fails at once, without running the loader.
  EXPECT_FALSE(Call(breaker, false));
  EXPECT_FALSE(Call(breaker, false));
  EXPECT_EQ(breaker.rejected(), 2);
}

TEST(CircuitBreaker, OpenBreakerThrowsCircuitOpen) {
  FakeClock clock;
  CircuitBreaker breaker(Consecutive(clock, 1));
  Call(breaker, true);
  int runs = 0;
  auto loader = WithBreaker(breaker, [&] { return ++runs; });
  EXPECT_THROW(loader(std::stop_token()), CircuitOpen);
  EXPECT_EQ(runs, 0);
}

TEST(CircuitBreaker, SuccessResetsConsecutiveFailures) {
  FakeClock clock;
  CircuitBreaker breaker(Consecutive(clock, 3));
  Call(breaker, true);
  Call(breaker, true);
  Call(breaker, false);
  Call(breaker, true);
  Call(breaker, true);
  EXPECT_EQ(breaker.state(), State::kClosed);
  Call(breaker, true);
  EXPECT_EQ(breaker.state(), State::kOpen);
}

TEST(CircuitBreaker, HalfOpensExactlyAfterOpenDuration) {
  FakeClock clock;
  CircuitBreaker breaker(Consecutive(clock, 1));
  Call(breaker, true);
  clock.Advance(seconds(10) - nanoseconds(1));
  EXPECT_EQ(breaker.state(), State::kOpen);
  EXPECT_FALSE(Call(breaker, false));
  clock.Advance(nanoseconds(1));
  EXPECT_EQ(breaker.state(), State::kHalfOpen);
  EXPECT_TRUE(Call(breaker, false));  // the trial succeeds
  EXPECT_EQ(breaker.state(), State::kClosed);
}

TEST(CircuitBreaker, FailedTrialReopensForAnotherOpenDuration) {
  FakeClock clock;
  CircuitBreaker breaker(Consecutive(clock, 1));
  Call(breaker, true);
  clock.Advance(seconds(15));
  EXPECT_TRUE(Call(breaker, true));  // trial fails
  EXPECT_EQ(breaker.state(), State::kOpen);
  clock.Advance(seconds(9));
  EXPECT_FALSE(Call(breaker, false));
  clock.Advance(seconds(1));
  EXPECT_TRUE(Call(breaker, false));
  EXPECT_EQ(breaker.state(), State::kClosed);
}

TEST(CircuitBreaker, HalfOpenAdmitsOnlyTheTrialCount) {
  FakeClock clock;
  CircuitBreakerOptions o = Consecutive(clock, 1);
  o.half_open_trials = 2;
  CircuitBreaker breaker(o);
  Call(breaker, true);
  clock.Advance(seconds(10));
  auto t1 = breaker.TryAdmit();
  auto t2 = breaker.TryAdmit();
  ASSERT_TRUE(t1.has_value());
  ASSERT_TRUE(t2.has_value());
  EXPECT_FALSE(breaker.TryAdmit().has_value());  // both trials in flight
  breaker.Record(*t1, /*failed=*/false);
  EXPECT_EQ(breaker.state(), State::kHalfOpen);  // one success of two
  EXPECT_FALSE(breaker.TryAdmit().has_value());
  breaker.Record(*t2, /*failed=*/false);
  EXPECT_EQ(breaker.state(), State::kClosed);
  EXPECT_TRUE(breaker.TryAdmit().has_value());
}

TEST(CircuitBreaker, RatioModeTripsOnFailedFractionOfWindow) {
  FakeClock clock;
  CircuitBreaker breaker({.window_size = 4,
                          .failure_ratio = 0.75,
                          .open_duration = seconds(10),
                          .clock = &clock});
  // Sliding window of 4: F F S S | F | F | F -> trips on the 7th call, when
  // the window is S F F F.
  for (bool fail : {true, true, false, false, true, true}) {
    Call(breaker, fail);
    EXPECT_EQ(breaker.state(), State::kClosed);
  }
  Call(breaker, true);
  EXPECT_EQ(breaker.state(), State::kOpen);
}

TEST(CircuitBreaker, RatioModeWaitsForAFullWindow) {
  FakeClock clock;
  CircuitBreaker breaker({.window_size = 4,
                          .failure_ratio = 0.5,
                          .open_duration = seconds(10),
                          .clock = &clock});
  Call(breaker, true);
  Call(breaker, true);
  Call(breaker, true);
  EXPECT_EQ(breaker.state(), State::kClosed);  // 3 of 4 calls seen
  Call(breaker, false);
  EXPECT_EQ(breaker.state(), State::kOpen);  // 3/4 >= 0.5
}

TEST(CircuitBreaker, RatioIsExactDespiteFloatingPoint) {
  FakeClock clock;
  // 0.3 * 10 is 3.0000000000000004 in binary floating point.
  CircuitBreaker breaker({.window_size = 10,
                          .failure_ratio = 0.3,
                          .open_duration = seconds(10),
                          .clock = &clock});
  for (int i = 0; i < 7; ++i) Call(breaker, false);
  Call(breaker, true);
  Call(breaker, true);
  EXPECT_EQ(breaker.state(), State::kClosed);
  Call(breaker, true);
  EXPECT_EQ(breaker.state(), State::kOpen);
}

TEST(CircuitBreaker, OutcomeOfCallAdmittedInEarlierStateIsIgnored) {
  FakeClock clock;
  CircuitBreaker breaker(Consecutive(clock, 2));
  auto slow = breaker.TryAdmit();  // a slow call admitted while closed
  ASSERT_TRUE(slow.has_value());
  Call(breaker, true);
  Call(breaker, true);
  EXPECT_EQ(breaker.state(), State::kOpen);
  clock.Advance(seconds(10));
  auto trial = breaker.TryAdmit();
  ASSERT_TRUE(trial.has_value());
  breaker.Record(*slow, /*failed=*/true);  // stale: neither reopens...
  EXPECT_EQ(breaker.state(), State::kHalfOpen);
  breaker.Record(*slow, /*failed=*/false);  // ...nor closes
  EXPECT_EQ(breaker.state(), State::kHalfOpen);
  breaker.Record(*trial, /*failed=*/false);
  EXPECT_EQ(breaker.state(), State::kClosed);
}

TEST(CircuitBreaker, IsFailureDecidesWhatCounts) {
  FakeClock clock;
  CircuitBreakerOptions o = Consecutive(clock, 1);
  o.is_failure = [](const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const NotFound&) {
      return false;
    } catch (...) {
      return true;
    }
  };
  CircuitBreaker breaker(o);
  auto missing = WithBreaker(breaker, []() -> int { throw NotFound(); });
  for (int i = 0; i < 5; ++i) {
    EXPECT_THROW(missing(std::stop_token()), NotFound);
  }
  EXPECT_EQ(breaker.state(), State::kClosed);
  Call(breaker, true);
  EXPECT_EQ(breaker.state(), State::kOpen);
}

TEST(CircuitBreaker, ProtectedCallsRunInParallel) {
  CircuitBreaker breaker;
  // Each call waits inside the loader for the other: if the breaker held
  // its lock during the call, the second could never start.
  std::latch both_inside(2);
  auto loader = WithBreaker(breaker, [&] {
    both_inside.arrive_and_wait();
    return 1;
  });
  std::thread a([&] { EXPECT_EQ(loader(std::stop_token()), 1); });
  std::thread b([&] { EXPECT_EQ(loader(std::stop_token()), 1); });
  a.join();
  b.join();
  EXPECT_EQ(breaker.state(), State::kClosed);
}

TEST(CircuitBreaker, PassesStopTokenAndSupportsVoidLoaders) {
  CircuitBreaker breaker;
  std::stop_source stop;
  stop.request_stop();
  bool saw_stop = false;
  auto loader = WithBreaker(
      breaker, [&](std::stop_token t) { saw_stop = t.stop_requested(); });
  loader(stop.get_token());
  EXPECT_TRUE(saw_stop);
}

TEST(CircuitBreaker, ConcurrentCallsAreAllAccountedFor) {
  FakeClock clock;
  CircuitBreaker breaker(Consecutive(clock, 3));
  constexpr int kThreads = 4, kCalls = 2000;
  std::atomic<int> ran{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        auto loader = WithBreaker(breaker, [&, i]() -> int {
          ran.fetch_add(1);
          if ((i + t) % 5 < 3) throw DbDown();
          return 0;
        });
        try {
          loader(std::stop_token());
        } catch (const DbDown&) {
        } catch (const CircuitOpen&) {
          refused.fetch_add(1);
        }
        if (i % 100 == 0 && t == 0) clock.Advance(seconds(10));
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ran.load() + refused.load(), kThreads * kCalls);
  EXPECT_EQ(refused.load(), breaker.rejected());
}

}  // namespace
}  // namespace herd
