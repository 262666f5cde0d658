// Copyright 2026 The herd Authors.
//
// Tests herd/retry.h: attempts and backoffs (the ceiling formula, jitter,
// zero and max() delays), what is rethrown, the stop token checked before
// every attempt, a throwing clock.
// Each test's name states the contract it checks; a comment quotes the
// header where the name cannot say it all.

#include "herd/retry.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <future>
#include <latch>
#include <memory>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <vector>

#include "gtest/gtest.h"
#include "herd/clock.h"
#include "herd/errors.h"
#include "tests/testing/clocks.h"
#include "tests/testing/jump_clock.h"

namespace herd {
namespace {

using ::herd::test::JumpClock;

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

struct Transient : std::runtime_error {
  explicit Transient(int a) : std::runtime_error("transient"), attempt(a) {}
  int attempt;
};
struct Permanent : std::runtime_error {
  Permanent() : std::runtime_error("permanent") {}
};

RetryOptions NoJitter(const Clock& clock) {
  return {.max_attempts = 4,
          .initial_delay = milliseconds(100),
          .multiplier = 2.0,
          .max_delay = seconds(10),
          .jitter = 0.0,
          .clock = &clock};
}

TEST(Retry, CeilingGrowsGeometricallyAndCaps) {
  Retry policy({.initial_delay = milliseconds(100),
                .multiplier = 3.0,
                .max_delay = seconds(1)});
  EXPECT_EQ(policy.Ceiling(1), milliseconds(100));
  EXPECT_EQ(policy.Ceiling(2), milliseconds(300));
  EXPECT_EQ(policy.Ceiling(3), milliseconds(900));
  EXPECT_EQ(policy.Ceiling(4), seconds(1));
  EXPECT_EQ(policy.Ceiling(10000), seconds(1));  // no overflow
}

TEST(Retry, JitterScalesBackoffDown) {
  Retry full({.initial_delay = milliseconds(100), .jitter = 1.0});
  EXPECT_EQ(full.Backoff(1, 0.0), milliseconds(100));
  EXPECT_EQ(full.Backoff(1, 0.5), milliseconds(50));
  EXPECT_EQ(full.Backoff(1, 1.0), milliseconds(0));
  Retry partial({.initial_delay = milliseconds(100), .jitter = 0.2});
  EXPECT_EQ(partial.Backoff(2, 1.0), milliseconds(160));
  EXPECT_EQ(partial.Backoff(2, 0.0), milliseconds(200));
  Retry none({.initial_delay = milliseconds(100), .jitter = 0.0});
  EXPECT_EQ(none.Backoff(3, 0.7), milliseconds(400));
}

TEST(Retry, RejectsBadOptions) {
  auto make = [](RetryOptions o) { Retry r(std::move(o)); };
  EXPECT_THROW(make({.max_attempts = 0}), std::invalid_argument);
  EXPECT_THROW(make({.max_attempts = -2}), std::invalid_argument);
  EXPECT_THROW(make({.initial_delay = -milliseconds(5)}),
               std::invalid_argument);
  EXPECT_THROW(make({.multiplier = 0.5}), std::invalid_argument);
  EXPECT_THROW(make({.multiplier = -1.0}), std::invalid_argument);
  EXPECT_THROW(make({.multiplier = std::nan("")}), std::invalid_argument);
  EXPECT_THROW(make({.initial_delay = seconds(2), .max_delay = seconds(1)}),
               std::invalid_argument);
  EXPECT_THROW(make({.jitter = -0.1}), std::invalid_argument);
  EXPECT_THROW(make({.jitter = 1.1}), std::invalid_argument);
  EXPECT_NO_THROW(make({.max_attempts = 1, .multiplier = 1.0, .jitter = 0.0}));
  EXPECT_NO_THROW(make({.initial_delay = milliseconds(0)}));  // retry at once
  EXPECT_NO_THROW(make({.initial_delay = Clock::duration::max(),
                        .max_delay = Clock::duration::max()}));
  EXPECT_THROW(WithRetry(Retry(), std::function<int()>()),
               std::invalid_argument);
}

// retry.h: "A zero delay retries at once": every backoff is a sleep of zero.
TEST(Retry, ZeroDelayRetriesAtOnce) {
  JumpClock clock;
  RetryOptions o = NoJitter(clock);
  o.initial_delay = o.max_delay = Clock::duration::zero();
  int calls = 0;
  auto loader = WithRetry(Retry(o), [&]() -> int {
    if (++calls < 3) throw Transient(calls);
    return calls;
  });
  EXPECT_EQ(loader(std::stop_token()), 3);
  EXPECT_EQ(clock.sleeps(),
            (std::vector<Clock::duration>{Clock::duration::zero(),
                                          Clock::duration::zero()}));
}

// retry.h: "a delay of duration::max() ... waits with no limit, so that only
// the stop token ends it"; Backoff() of such a ceiling is the ceiling, with
// or without jitter drawn, and never overflows.
TEST(Retry, DurationMaxDelayWaitsUntilStopped) {
  Retry unlimited({.initial_delay = Clock::duration::max(),
                   .max_delay = Clock::duration::max(),
                   .jitter = 0.0});
  EXPECT_EQ(unlimited.Ceiling(1), Clock::duration::max());
  EXPECT_EQ(unlimited.Backoff(1, 0.0), Clock::duration::max());
  EXPECT_EQ(unlimited.Backoff(1, 1.0), Clock::duration::max());
  Retry jittered({.initial_delay = Clock::duration::max(),
                  .max_delay = Clock::duration::max(),
                  .jitter = 1.0});
  EXPECT_EQ(jittered.Backoff(1, 0.0), Clock::duration::max());
  EXPECT_EQ(jittered.Backoff(1, 1.0), Clock::duration::zero());
  EXPECT_GT(jittered.Backoff(1, 0.5), Clock::duration::zero());

  FakeClock clock;
  std::stop_source stop;
  std::atomic<int> calls{0};
  auto loader = WithRetry(Retry({.initial_delay = Clock::duration::max(),
                                 .max_delay = Clock::duration::max(),
                                 .jitter = 0.0,
                                 .clock = &clock}),
                          [&]() -> int { throw Transient(++calls); });
  std::thread caller(
      [&] { EXPECT_THROW(loader(stop.get_token()), Transient); });
  clock.WaitForSleepers(1);
  clock.Advance(hours(24 * 365 * 200));  // no deadline to reach
  EXPECT_EQ(calls.load(), 1);
  stop.request_stop();
  caller.join();
  EXPECT_EQ(calls.load(), 1);
}

// retry.h: "The token is checked before every attempt, the first included
// ... herd::Cancelled if the token was stopped before the first attempt".
TEST(Retry, StoppedBeforeTheFirstAttemptThrowsCancelled) {
  JumpClock clock;
  std::stop_source stop;
  stop.request_stop();
  int calls = 0;
  auto loader = WithRetry(Retry(NoJitter(clock)), [&] { return ++calls; });
  EXPECT_THROW(loader(stop.get_token()), Cancelled);
  EXPECT_EQ(calls, 0);
}

// retry.h: the stop token against the backoff after attempt 1, in each
// order. A PausingClock holds the sleeper between the end of its sleep and
// its return, so the stop can arrive first (during the sleep), at the
// instant the sleep ends (after the clock reached the deadline, before
// Retry looks), or last (once attempt 2 has started).
enum class StopArrives { kFirst, kAtTheEndOfTheBackoff, kLast };

class RetryStopOrder : public ::testing::TestWithParam<StopArrives> {};

TEST_P(RetryStopOrder, NoAttemptStartsAfterTheStop) {
  FakeClock fake;
  test::PausingClock clock(fake);
  std::stop_source stop;
  std::atomic<int> calls{0};
  std::latch second_started(1), second_may_fail(1);
  // Two attempts at most, except when the stop comes last: then a third
  // would follow if the stop were ignored. (Code that started attempt 2
  // after the stop thus fails these checks rather than hanging.)
  RetryOptions options = NoJitter(clock);
  options.max_attempts = GetParam() == StopArrives::kLast ? 3 : 2;
  auto loader = WithRetry(Retry(options), [&]() -> int {
    const int attempt = ++calls;
    if (attempt == 2 && GetParam() == StopArrives::kLast) {
      second_started.count_down();
      second_may_fail.wait();
    }
    throw Transient(attempt);
  });
  std::promise<int> failed_attempt;
  std::thread caller([&] {
    try {
      loader(stop.get_token());
    } catch (const Transient& e) {
      failed_attempt.set_value(e.attempt);
    }
  });
  fake.WaitForSleepers(1);  // backing off after attempt 1
  switch (GetParam()) {
    case StopArrives::kFirst:
      stop.request_stop();
      EXPECT_FALSE(clock.AwaitPaused());  // the sleep was cut short
      clock.Resume();
      EXPECT_EQ(failed_attempt.get_future().get(), 1);
      EXPECT_EQ(calls.load(), 1);
      break;
    case StopArrives::kAtTheEndOfTheBackoff:
      fake.Advance(milliseconds(100));
      EXPECT_TRUE(clock.AwaitPaused());  // the sleep reached its deadline
      stop.request_stop();               // ...and the stop arrives now
      clock.Resume();
      EXPECT_EQ(failed_attempt.get_future().get(), 1);
      EXPECT_EQ(calls.load(), 1);  // attempt 2 never started
      break;
    case StopArrives::kLast:
      fake.Advance(milliseconds(100));
      EXPECT_TRUE(clock.AwaitPaused());
      clock.Resume();
      second_started.wait();
      stop.request_stop();  // during attempt 2
      second_may_fail.count_down();
      EXPECT_EQ(failed_attempt.get_future().get(), 2);
      EXPECT_EQ(calls.load(), 2);  // no attempt 3, and no backoff before it
      EXPECT_EQ(fake.Sleepers(), 0u);
      break;
  }
  caller.join();
}

INSTANTIATE_TEST_SUITE_P(Retry, RetryStopOrder,
                         ::testing::Values(StopArrives::kFirst,
                                           StopArrives::kAtTheEndOfTheBackoff,
                                           StopArrives::kLast));

// retry.h: "A Clock that throws ... during a backoff: that exception leaves
// the call in place of the attempt's, and no further attempt starts."
TEST(Retry, ClockThatThrowsDuringTheBackoffEndsTheCall) {
  FakeClock fake;
  test::ThrowingClock clock(fake);
  int calls = 0;
  auto loader = WithRetry(Retry(NoJitter(clock)),
                          [&]() -> int { throw Transient(++calls); });
  clock.ArmSleep();
  EXPECT_THROW(loader(std::stop_token()), test::ClockFailure);
  EXPECT_EQ(calls, 1);
  clock.Disarm();
  clock.ArmNow();
  EXPECT_THROW(loader(std::stop_token()), test::ClockFailure);
  EXPECT_EQ(calls, 2);
}

// retry.h: Retry::Options stays one release, deprecated, as RetryOptions.
TEST(Retry, DeprecatedOptionsNameStillWorks) {
  JumpClock clock;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  Retry::Options o;
  static_assert(std::is_same_v<decltype(o), RetryOptions>);
#pragma GCC diagnostic pop
  o.max_attempts = 2;
  o.clock = &clock;
  int calls = 0;
  auto loader = WithRetry(Retry(o), [&]() -> int { throw Transient(++calls); });
  EXPECT_THROW(loader(std::stop_token()), Transient);
  EXPECT_EQ(calls, 2);
}

TEST(Retry, FirstSuccessDoesNotSleep) {
  JumpClock clock;
  int calls = 0;
  auto loader = WithRetry(Retry(NoJitter(clock)), [&] { return ++calls; });
  EXPECT_EQ(loader(std::stop_token()), 1);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(clock.sleeps().empty());
}

TEST(Retry, RetriesWithExponentialBackoffUntilSuccess) {
  JumpClock clock;
  int calls = 0;
  auto loader = WithRetry(Retry(NoJitter(clock)), [&]() -> std::string {
    if (++calls < 4) throw Transient(calls);
    return "ok";
  });
  EXPECT_EQ(loader(std::stop_token()), "ok");
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(clock.sleeps(),
            (std::vector<Clock::duration>{milliseconds(100), milliseconds(200),
                                          milliseconds(400)}));
}

TEST(Retry, RethrowsLastExceptionAfterMaxAttempts) {
  JumpClock clock;
  int calls = 0;
  auto loader = WithRetry(Retry(NoJitter(clock)),
                          [&]() -> int { throw Transient(++calls); });
  try {
    loader(std::stop_token());
    FAIL() << "expected Transient";
  } catch (const Transient& e) {
    EXPECT_EQ(e.attempt, 4);  // the last attempt's own exception object
  }
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(clock.sleeps().size(), 3u);
}

TEST(Retry, DelaysStopGrowingAtMaxDelay) {
  JumpClock clock;
  RetryOptions o = NoJitter(clock);
  o.max_attempts = 6;
  o.max_delay = milliseconds(300);
  auto loader = WithRetry(Retry(o), []() -> int { throw Transient(0); });
  EXPECT_THROW(loader(std::stop_token()), Transient);
  EXPECT_EQ(clock.sleeps(),
            (std::vector<Clock::duration>{milliseconds(100), milliseconds(200),
                                          milliseconds(300), milliseconds(300),
                                          milliseconds(300)}));
}

TEST(Retry, FullJitterStaysWithinCeiling) {
  JumpClock clock;
  RetryOptions o = NoJitter(clock);
  o.max_attempts = 50;
  o.jitter = 1.0;
  o.max_delay = seconds(1);
  Retry policy(o);
  auto loader = WithRetry(policy, []() -> int { throw Transient(0); });
  EXPECT_THROW(loader(std::stop_token()), Transient);
  ASSERT_EQ(clock.sleeps().size(), 49u);
  for (int k = 1; k <= 49; ++k) {
    EXPECT_GE(clock.sleeps()[k - 1], Clock::duration::zero());
    EXPECT_LE(clock.sleeps()[k - 1], policy.Ceiling(k));
  }
}

TEST(Retry, PredicateChoosesWhatIsRetried) {
  JumpClock clock;
  RetryOptions o = NoJitter(clock);
  o.retry_if = Retry::On<Transient>();
  int calls = 0;
  auto loader = WithRetry(Retry(o), [&]() -> int {
    ++calls;
    if (calls == 1) throw Transient(1);
    throw Permanent();
  });
  EXPECT_THROW(loader(std::stop_token()), Permanent);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(clock.sleeps().size(), 1u);
}

TEST(Retry, DefaultPredicateDoesNotRetryRefusals) {
  JumpClock clock;
  int calls = 0;
  auto open = WithRetry(Retry(NoJitter(clock)), [&]() -> int {
    ++calls;
    throw CircuitOpen();
  });
  EXPECT_THROW(open(std::stop_token()), CircuitOpen);
  EXPECT_EQ(calls, 1);
  auto cancelled = WithRetry(Retry(NoJitter(clock)), [&]() -> int {
    ++calls;
    throw Cancelled();
  });
  EXPECT_THROW(cancelled(std::stop_token()), Cancelled);
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(clock.sleeps().empty());
}

TEST(Retry, StoppedTokenPreventsFurtherAttempts) {
  JumpClock clock;
  std::stop_source stop;
  int calls = 0;
  auto loader = WithRetry(Retry(NoJitter(clock)), [&]() -> int {
    ++calls;
    stop.request_stop();  // e.g. the caller cancelled during the attempt
    throw Transient(calls);
  });
  EXPECT_THROW(loader(stop.get_token()), Transient);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(clock.sleeps().empty());
}

TEST(Retry, StopDuringBackoffWakesAtOnce) {
  FakeClock clock;
  std::stop_source stop;
  std::atomic<int> calls{0};
  auto loader = WithRetry(Retry(NoJitter(clock)),
                          [&]() -> int { throw Transient(++calls); });
  const Clock::time_point start = clock.Now();
  std::thread caller(
      [&] { EXPECT_THROW(loader(stop.get_token()), Transient); });
  clock.WaitForSleepers(1);  // backing off after attempt 1
  stop.request_stop();
  caller.join();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(clock.Now(), start);  // no time had to pass
}

TEST(Retry, BackoffRunsOnInjectedClock) {
  FakeClock clock;
  std::atomic<int> calls{0};
  auto loader = WithRetry(Retry(NoJitter(clock)), [&]() -> int {
    if (++calls == 1) throw Transient(1);
    return 5;
  });
  std::thread caller([&] { EXPECT_EQ(loader(std::stop_token()), 5); });
  clock.WaitForSleepers(1);
  EXPECT_EQ(calls.load(), 1);
  clock.Advance(milliseconds(100));  // exactly the first backoff
  caller.join();
  EXPECT_EQ(calls.load(), 2);
}

TEST(Retry, PassesStopTokenToInnerLoader) {
  JumpClock clock;
  std::stop_source stop;
  bool saw_stop_possible = false;
  auto loader = WithRetry(Retry(NoJitter(clock)), [&](std::stop_token t) {
    saw_stop_possible = t.stop_possible();
    return 1;
  });
  EXPECT_EQ(loader(stop.get_token()), 1);
  EXPECT_TRUE(saw_stop_possible);
}

TEST(Retry, AcceptsMoveOnlyMutableLoader) {
  JumpClock clock;
  auto loader = WithRetry(Retry(NoJitter(clock)),
                          [p = std::make_unique<int>(0)]() mutable {
                            if (++*p < 2) throw Transient(*p);
                            return *p;
                          });
  static_assert(!std::is_copy_constructible_v<decltype(loader)>);
  EXPECT_EQ(loader(std::stop_token()), 2);
  // A const lambda can be called through a const wrapper.
  const auto const_loader = WithRetry(Retry(NoJitter(clock)), [] { return 3; });
  EXPECT_EQ(const_loader(std::stop_token()), 3);
}

}  // namespace
}  // namespace herd
