// Copyright 2026 The herd Authors.

#include "herd/retry.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "herd/clock.h"
#include "herd/errors.h"
#include "tests/testing/jump_clock.h"

namespace herd {
namespace {

using ::herd::test::JumpClock;

using std::chrono::milliseconds;
using std::chrono::seconds;

struct Transient : std::runtime_error {
  explicit Transient(int a) : std::runtime_error("transient"), attempt(a) {}
  int attempt;
};
struct Permanent : std::runtime_error {
  Permanent() : std::runtime_error("permanent") {}
};

Retry::Options NoJitter(const Clock& clock) {
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
  auto make = [](Retry::Options o) { Retry r(std::move(o)); };
  EXPECT_THROW(make({.max_attempts = 0}), std::invalid_argument);
  EXPECT_THROW(make({.max_attempts = -2}), std::invalid_argument);
  EXPECT_THROW(make({.initial_delay = milliseconds(0)}), std::invalid_argument);
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
  Retry::Options o = NoJitter(clock);
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
  Retry::Options o = NoJitter(clock);
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
  Retry::Options o = NoJitter(clock);
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
