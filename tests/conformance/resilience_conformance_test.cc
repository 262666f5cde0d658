// Copyright 2026 The herd Authors.
//
// resilience4j's CircuitBreaker, Retry and TimeLimiter tests
// (CircuitBreakerStateMachineTest, SupplierRetryTest, RunnableRetryTest,
// TimeLimiterImplTest) and Polly's circuit-breaker, retry and timeout specs
// (CircuitBreakerSpecs, RetrySpecs, RetryResilienceStrategyTests,
// TimeoutResilienceStrategyTests), restated against herd/circuit_breaker.h,
// herd/retry.h and herd/deadline.h. resilience4j's and Polly's mock clocks
// are a FakeClock; their recorded sleeps are the deadlines a RecordingClock
// sees. Where herd's header chose differently (a zero break duration, a
// half-open state that one failure reopens), the test checks the header and
// says so. Public headers only.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <future>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "herd/circuit_breaker.h"
#include "herd/clock.h"
#include "herd/deadline.h"
#include "herd/errors.h"
#include "herd/retry.h"
#include "herd/timer.h"
#include "tests/conformance/conformance.h"
#include "tests/testing/clocks.h"
#include "tests/testing/sync.h"

namespace herd {
namespace {

using conformance::Await;
using conformance::ObjectOf;
using conformance::Payload;
using State = CircuitBreaker::State;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using test::Gate;
using test::RecordingClock;

// Polly's breaker.RaiseException<E>(): a call through WithBreaker that
// throws.
void Fail(CircuitBreaker& breaker) {
  WithBreaker(breaker, []() -> int { throw Payload(0); })(std::stop_token());
}
int Succeed(CircuitBreaker& breaker) {
  return WithBreaker(breaker, [] { return 1; })(std::stop_token());
}
// `n` failing calls, each of which the breaker lets through.
void FailTimes(CircuitBreaker& breaker, int n) {
  for (int i = 0; i < n; ++i) EXPECT_THROW(Fail(breaker), Payload);
}

// The breaker of resilience4j's CircuitBreakerStateMachineTest, as far as
// herd has its settings: a 5 s wait in open, 4 calls permitted half-open;
// opened by one failure.
CircuitBreaker Resilience4jBreaker(const Clock& clock) {
  return CircuitBreaker({.failure_threshold = 1,
                         .open_duration = seconds(5),
                         .half_open_trials = 4,
                         .clock = &clock});
}

// The breaker of Polly's specs: CircuitBreaker(threshold, one minute).
CircuitBreaker PollyBreaker(const Clock& clock, int threshold) {
  return CircuitBreaker({.failure_threshold = threshold,
                         .open_duration = minutes(1),
                         .clock = &clock});
}

// ===================== Circuit breaker ======================================

// Polly Should_initialise_to_closed_state.
TEST(CircuitBreakerConformance, StartsClosed) {
  FakeClock clock;
  CircuitBreaker breaker({.clock = &clock});
  EXPECT_EQ(breaker.state(), State::kClosed);
  EXPECT_EQ(breaker.rejected(), 0);
}

// Polly Should_open_circuit_blocking_executions_..._after_specified_number_
// of_specified_exception_have_been_raised. circuit_breaker.h: "consecutive
// (window_size == 0) failure_threshold failures in a row"; open: "every call
// fails at once with herd::CircuitOpen, without running the loader".
TEST(CircuitBreakerConformance, OpensAfterThresholdConsecutiveFailures) {
  FakeClock clock;
  CircuitBreaker breaker({.failure_threshold = 2, .clock = &clock});
  EXPECT_THROW(Fail(breaker), Payload);
  EXPECT_EQ(breaker.state(), State::kClosed);
  EXPECT_THROW(Fail(breaker), Payload);
  EXPECT_EQ(breaker.state(), State::kOpen);
  bool ran = false;
  EXPECT_THROW(WithBreaker(breaker,
                           [&] {
                             ran = true;
                             return 1;
                           })(std::stop_token()),
               CircuitOpen);
  EXPECT_FALSE(ran);
  EXPECT_EQ(breaker.rejected(), 1);
}

// Polly Should_not_open_circuit_if_specified_number_of_specified_exception_
// are_not_raised_consecutively.
TEST(CircuitBreakerConformance, ASuccessBetweenFailuresResetsTheCount) {
  FakeClock clock;
  CircuitBreaker breaker({.failure_threshold = 2, .clock = &clock});
  EXPECT_THROW(Fail(breaker), Payload);
  EXPECT_EQ(Succeed(breaker), 1);
  EXPECT_THROW(Fail(breaker), Payload);
  EXPECT_EQ(breaker.state(), State::kClosed);
}

// Polly Should_not_open_circuit_if_exception_raised_is_not_the_specified_
// exception. circuit_breaker.h: "an exception is_failure declines, is a
// success".
TEST(CircuitBreakerConformance, DeclinedExceptionsCountAsSuccesses) {
  FakeClock clock;
  CircuitBreaker breaker({.failure_threshold = 2,
                          .is_failure =
                              [](const std::exception_ptr& e) {
                                try {
                                  std::rethrow_exception(e);
                                } catch (const Payload&) {
                                  return true;
                                } catch (...) {
                                  return false;
                                }
                              },
                          .clock = &clock});
  auto other =
      WithBreaker(breaker, []() -> int { throw std::logic_error("x"); });
  EXPECT_THROW(other(std::stop_token()), std::logic_error);
  EXPECT_THROW(Fail(breaker), Payload);
  EXPECT_THROW(other(std::stop_token()), std::logic_error);
  EXPECT_THROW(Fail(breaker), Payload);
  EXPECT_EQ(breaker.state(), State::kClosed);
}

// Polly Should_halfopen_circuit_after_the_specified_duration_has_passed:
// exactly at durationOfBreak it is half-open, one tick before still open.
// circuit_breaker.h: "open ... until open_duration has passed".
TEST(CircuitBreakerConformance, HalfOpensExactlyAtOpenDuration) {
  FakeClock clock;
  CircuitBreaker breaker = PollyBreaker(clock, 2);
  FailTimes(breaker, 2);
  EXPECT_THROW(Fail(breaker), CircuitOpen);
  clock.Advance(minutes(1) - nanoseconds(1));
  EXPECT_EQ(breaker.state(), State::kOpen);
  EXPECT_FALSE(breaker.TryAdmit().has_value());
  clock.Advance(nanoseconds(1));
  EXPECT_EQ(breaker.state(), State::kHalfOpen);
  EXPECT_THROW(Fail(breaker), Payload);  // the trial runs
}

// Polly Should_open_circuit_again_after_the_specified_duration_has_passed_if_
// the_next_call_raises_an_exception. circuit_breaker.h: "One failed trial
// reopens the breaker (for another open_duration)".
TEST(CircuitBreakerConformance, FailedTrialReopensForAnotherOpenDuration) {
  FakeClock clock;
  CircuitBreaker breaker = PollyBreaker(clock, 2);
  FailTimes(breaker, 2);
  clock.Advance(minutes(1));
  EXPECT_EQ(breaker.state(), State::kHalfOpen);
  EXPECT_THROW(Fail(breaker), Payload);
  EXPECT_EQ(breaker.state(), State::kOpen);
  EXPECT_THROW(Fail(breaker), CircuitOpen);
  clock.Advance(minutes(1) - nanoseconds(1));
  EXPECT_EQ(breaker.state(), State::kOpen);
  clock.Advance(nanoseconds(1));
  EXPECT_EQ(breaker.state(), State::kHalfOpen);
}

// Polly Should_reset_circuit_after_the_specified_duration_has_passed_if_the_
// next_call_does_not_raise_an_exception: closed again, and the count starts
// over.
TEST(CircuitBreakerConformance, SuccessfulTrialClosesAndTheCountStartsOver) {
  FakeClock clock;
  CircuitBreaker breaker = PollyBreaker(clock, 2);
  FailTimes(breaker, 2);
  clock.Advance(minutes(1));
  EXPECT_EQ(Succeed(breaker), 1);
  EXPECT_EQ(breaker.state(), State::kClosed);
  EXPECT_THROW(Fail(breaker), Payload);
  EXPECT_EQ(breaker.state(), State::kClosed);
  EXPECT_THROW(Fail(breaker), Payload);
  EXPECT_EQ(breaker.state(), State::kOpen);
  EXPECT_THROW(Fail(breaker), CircuitOpen);
}

// Polly Should_only_allow_single_execution_on_first_entering_halfopen_state
// __test_execution_permit_directly. circuit_breaker.h: "half-open  the first
// half_open_trials calls run as trials, the rest are refused".
TEST(CircuitBreakerConformance, HalfOpenAdmitsOneTrialByDefault) {
  FakeClock clock;
  CircuitBreaker breaker = PollyBreaker(clock, 1);
  FailTimes(breaker, 1);
  clock.Advance(minutes(1));
  std::optional<CircuitBreaker::Ticket> trial = breaker.TryAdmit();
  ASSERT_TRUE(trial.has_value());
  EXPECT_EQ(breaker.state(), State::kHalfOpen);
  EXPECT_FALSE(breaker.TryAdmit().has_value());
  EXPECT_EQ(breaker.state(), State::kHalfOpen);
  breaker.Record(*trial, /*failed=*/false);
  EXPECT_EQ(breaker.state(), State::kClosed);
}

// resilience4j shouldOnlyPermitFourCallsInHalfOpenState and
// shouldThrowCallNotPermittedExceptionWhenNotFurtherTestCallsArePermitted:
// exactly four trials, then refusals, each counted.
TEST(CircuitBreakerConformance, HalfOpenAdmitsExactlyTheTrials) {
  FakeClock clock;
  CircuitBreaker breaker = Resilience4jBreaker(clock);
  FailTimes(breaker, 1);
  clock.Advance(seconds(5));  // half-open
  std::vector<CircuitBreaker::Ticket> trials;
  for (int i = 0; i < 4; ++i) {
    std::optional<CircuitBreaker::Ticket> t = breaker.TryAdmit();
    ASSERT_TRUE(t.has_value()) << "trial " << i;
    trials.push_back(*t);
  }
  EXPECT_FALSE(breaker.TryAdmit().has_value());
  EXPECT_FALSE(breaker.TryAdmit().has_value());
  EXPECT_EQ(breaker.rejected(), 2);
  // "once every trial has succeeded it closes": three are not enough.
  for (int i = 0; i < 3; ++i) breaker.Record(trials[i], false);
  EXPECT_EQ(breaker.state(), State::kHalfOpen);
  breaker.Record(trials[3], false);
  EXPECT_EQ(breaker.state(), State::kClosed);
}

// resilience4j shouldTransitionBackToClosedStateWhenFailureIsBelowThreshold,
// where herd differs: resilience4j closes at 1 failure in 4 trials (25% <
// 50%); circuit_breaker.h "One failed trial reopens the breaker".
TEST(CircuitBreakerConformance, OneFailedTrialOfFourReopensUnlikeResilience4j) {
  FakeClock clock;
  CircuitBreaker breaker = Resilience4jBreaker(clock);
  FailTimes(breaker, 1);
  clock.Advance(seconds(5));  // half-open
  std::optional<CircuitBreaker::Ticket> t1 = breaker.TryAdmit();
  std::optional<CircuitBreaker::Ticket> t2 = breaker.TryAdmit();
  ASSERT_TRUE(t1 && t2);
  breaker.Record(*t1, /*failed=*/true);
  EXPECT_EQ(breaker.state(), State::kOpen);
  breaker.Record(*t2, /*failed=*/false);  // admitted in the old half-open
  EXPECT_EQ(breaker.state(), State::kOpen);
}

// resilience4j shouldOpenAfterFailureRateThresholdExceeded: window 5, 50%;
// three failures and two successes open it, on the fifth call and not before.
// circuit_breaker.h: "ratio (window_size > 0) of the last window_size calls,
// at least failure_ratio failed; no trip before window_size calls".
TEST(CircuitBreakerConformance, RatioModeOpensOnlyOnceTheWindowIsFull) {
  FakeClock clock;
  CircuitBreaker breaker(
      {.window_size = 5, .failure_ratio = 0.5, .clock = &clock});
  EXPECT_THROW(Fail(breaker), Payload);
  EXPECT_THROW(Fail(breaker), Payload);
  EXPECT_THROW(Fail(breaker), Payload);
  EXPECT_EQ(breaker.state(), State::kClosed);
  EXPECT_EQ(Succeed(breaker), 1);
  EXPECT_EQ(breaker.state(), State::kClosed);
  EXPECT_EQ(Succeed(breaker), 1);
  EXPECT_EQ(breaker.state(), State::kOpen);  // 60% of 5
  EXPECT_FALSE(breaker.TryAdmit().has_value());
  EXPECT_EQ(breaker.rejected(), 1);
}

// The ratio's boundary: "at least failure_ratio failed" opens at exactly the
// ratio (2 of 4 at 0.5), not below it (2 of 5), and the window slides.
TEST(CircuitBreakerConformance, RatioModeBoundaryIsInclusive) {
  FakeClock clock;
  CircuitBreaker four(
      {.window_size = 4, .failure_ratio = 0.5, .clock = &clock});
  EXPECT_THROW(Fail(four), Payload);
  EXPECT_THROW(Fail(four), Payload);
  EXPECT_EQ(Succeed(four), 1);
  EXPECT_EQ(four.state(), State::kClosed);
  EXPECT_EQ(Succeed(four), 1);
  EXPECT_EQ(four.state(), State::kOpen);

  CircuitBreaker five(
      {.window_size = 5, .failure_ratio = 0.5, .clock = &clock});
  EXPECT_THROW(Fail(five), Payload);
  EXPECT_THROW(Fail(five), Payload);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Succeed(five), 1);
  EXPECT_EQ(five.state(), State::kClosed);  // 40%
  // The window slides: the last five are S S S F F, then S S F F F.
  EXPECT_THROW(Fail(five), Payload);
  EXPECT_THROW(Fail(five), Payload);
  EXPECT_EQ(five.state(), State::kClosed);  // S S S F F: 40%
  EXPECT_THROW(Fail(five), Payload);
  EXPECT_EQ(five.state(), State::kOpen);  // S S F F F: 60%
}

// resilience4j shouldTransitionToHalfOpenAfterWaitDuration: refused at +3 s,
// admitted as a trial at +6 s (wait duration 5 s). rejected() counts since
// construction (resilience4j resets its metrics on the transition).
TEST(CircuitBreakerConformance, TransitionsToHalfOpenLazilyOnTheNextCall) {
  FakeClock clock;
  CircuitBreaker breaker(
      {.failure_threshold = 1, .open_duration = seconds(5), .clock = &clock});
  EXPECT_THROW(Fail(breaker), Payload);
  EXPECT_FALSE(breaker.TryAdmit().has_value());
  clock.Advance(seconds(3));
  EXPECT_EQ(breaker.state(), State::kOpen);
  EXPECT_FALSE(breaker.TryAdmit().has_value());
  EXPECT_EQ(breaker.rejected(), 2);
  clock.Advance(seconds(3));
  EXPECT_TRUE(breaker.TryAdmit().has_value());
  EXPECT_EQ(breaker.state(), State::kHalfOpen);
  EXPECT_EQ(breaker.rejected(), 2);
}

// Polly Should_call_onbreak_when_breaking_circuit_first_time_but_not_for_
// subsequent_call_failure_which_arrives_on_open_state_though_started_on_
// closed_state. circuit_breaker.h: "A call's outcome counts only in the state
// that admitted it".
TEST(CircuitBreakerConformance, LateOutcomesFromAnEarlierStateAreIgnored) {
  FakeClock clock;
  CircuitBreaker breaker = PollyBreaker(clock, 1);
  std::optional<CircuitBreaker::Ticket> a = breaker.TryAdmit();
  std::optional<CircuitBreaker::Ticket> b = breaker.TryAdmit();
  std::optional<CircuitBreaker::Ticket> c = breaker.TryAdmit();
  ASSERT_TRUE(a && b && c);
  breaker.Record(*a, /*failed=*/true);
  EXPECT_EQ(breaker.state(), State::kOpen);
  clock.Advance(seconds(30));
  breaker.Record(*b, /*failed=*/true);  // ignored: does not restart the break
  clock.Advance(seconds(30));
  EXPECT_EQ(breaker.state(), State::kHalfOpen);
  breaker.Record(*c, /*failed=*/false);  // ignored: does not close
  EXPECT_EQ(breaker.state(), State::kHalfOpen);
}

// Polly Should_be_able_to_handle_a_duration_of_timespan_maxvalue. circuit_
// breaker.h: "open_duration = duration::max() keeps a tripped breaker open
// for good (it never half-opens)".
TEST(CircuitBreakerConformance, OpenDurationMaxNeverHalfOpens) {
  FakeClock clock;
  CircuitBreaker breaker({.failure_threshold = 1,
                          .open_duration = Clock::duration::max(),
                          .clock = &clock});
  EXPECT_EQ(Succeed(breaker), 1);
  EXPECT_THROW(Fail(breaker), Payload);
  clock.Advance(hours(24 * 365 * 100));
  EXPECT_EQ(breaker.state(), State::kOpen);
  clock.Advance(Clock::duration::max());  // to FakeClock::kEndOfTime
  EXPECT_EQ(breaker.state(), State::kOpen);
  EXPECT_FALSE(breaker.TryAdmit().has_value());
}

// Polly Should_throw_if_exceptions_allowed_before_breaking_is_less_than_one
// and Should_throw_if_duration_of_break_is_less_than_zero; herd also refuses
// a zero break (Polly accepts it): "REQUIRES: > 0".
TEST(CircuitBreakerConformance, InvalidOptionsAreRejected) {
  using O = CircuitBreakerOptions;
  auto make = [](O o) { CircuitBreaker b(std::move(o)); };
  EXPECT_THROW(make(O{.failure_threshold = 0}), std::invalid_argument);
  EXPECT_THROW(make(O{.open_duration = -seconds(1)}), std::invalid_argument);
  EXPECT_THROW(make(O{.open_duration = seconds(0)}), std::invalid_argument);
  EXPECT_THROW(make(O{.window_size = -1}), std::invalid_argument);
  EXPECT_THROW(make(O{.window_size = 5, .failure_ratio = 0}),
               std::invalid_argument);
  EXPECT_THROW(make(O{.window_size = 5, .failure_ratio = 1.01}),
               std::invalid_argument);
  EXPECT_THROW(
      make(O{.window_size = 5,
             .failure_ratio = std::numeric_limits<double>::quiet_NaN()}),
      std::invalid_argument);
  EXPECT_THROW(make(O{.half_open_trials = 0}), std::invalid_argument);
  EXPECT_NO_THROW(make(O{.window_size = 5, .failure_ratio = 1.0}));
  EXPECT_NO_THROW(make(O{.open_duration = nanoseconds(1)}));
}

// Polly Should_rethrow_... (the exception unchanged). circuit_breaker.h,
// WithBreaker: "records the outcome and returns the value or rethrows the
// exception unchanged".
TEST(CircuitBreakerConformance, WithBreakerRethrowsTheSameObject) {
  FakeClock clock;
  CircuitBreaker breaker({.clock = &clock});
  const std::exception_ptr thrown = std::make_exception_ptr(Payload(5));
  try {
    WithBreaker(breaker, [&]() -> int { std::rethrow_exception(thrown); })(
        std::stop_token());
    FAIL() << "returned";
  } catch (const Payload& e) {
    EXPECT_EQ(&e, ObjectOf(thrown));
  }
}

// Polly Should_not_execute_action_when_cancellationToken_cancelled_before_
// execute, where herd's breaker deliberately does not look at the token:
// circuit_breaker.h "The breaker never waits, so it does not look at a
// loader's stop token: WithBreaker() passes it on to the loader unchanged."
TEST(CircuitBreakerConformance, WithBreakerPassesTheStopTokenOnUnchanged) {
  FakeClock clock;
  CircuitBreaker breaker({.clock = &clock});
  std::stop_source source;
  source.request_stop();
  bool saw_stop = false;
  EXPECT_EQ(WithBreaker(breaker,
                        [&](std::stop_token stop) {
                          saw_stop = stop.stop_requested();
                          return 3;
                        })(source.get_token()),
            3);
  EXPECT_TRUE(saw_stop);
}

// circuit_breaker.h, is_failure: "A predicate that throws counts the call as
// a failure (in WithBreaker(), its exception then replaces the loader's)."
TEST(CircuitBreakerConformance, ThrowingPredicateCountsAsFailure) {
  FakeClock clock;
  CircuitBreaker breaker({.failure_threshold = 1,
                          .is_failure = [](const std::exception_ptr&) -> bool {
                            throw std::logic_error("predicate");
                          },
                          .clock = &clock});
  EXPECT_THROW(Fail(breaker), std::logic_error);
  EXPECT_EQ(breaker.state(), State::kOpen);
}

// ===================== Retry ================================================

// A policy on `clock` with fixed delays (jitter 0), as resilience4j's
// default interval function.
RetryOptions Fixed(const Clock& clock, int attempts, Clock::duration delay,
                   double multiplier = 1.0) {
  return {.max_attempts = attempts,
          .initial_delay = delay,
          .multiplier = multiplier,
          .max_delay = std::max(delay, Clock::duration(hours(1))),
          .jitter = 0,
          .clock = &clock};
}

// A loader that fails `failures` times (Payload(1), Payload(2), ...) and then
// returns 42, counting its calls.
struct Flaky {
  int failures;
  std::atomic<int>* calls;
  int operator()() const {
    const int n = calls->fetch_add(1) + 1;
    if (n <= failures) throw Payload(n);
    return 42;
  }
};

// resilience4j shouldNotRetry: one call, no sleep.
TEST(RetryConformance, SuccessIsNotRetried) {
  FakeClock fake;
  RecordingClock clock(fake);
  std::atomic<int> calls{0};
  auto r =
      WithRetry(Retry(Fixed(clock, 3, milliseconds(500))), Flaky{0, &calls});
  EXPECT_EQ(r(std::stop_token()), 42);
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(clock.deadlines().size(), 0u);
}

// resilience4j shouldReturnSuccessfullyAfterSecondAttempt: two calls, one
// sleep of exactly the wait duration. retry.h: "jitter = 0 waits exactly
// ceiling_k".
TEST(RetryConformance, SucceedsOnTheSecondAttemptAfterOneBackoff) {
  FakeClock fake;
  RecordingClock clock(fake);
  const Clock::time_point t0 = fake.Now();
  std::atomic<int> calls{0};
  auto r =
      WithRetry(Retry(Fixed(clock, 3, milliseconds(500))), Flaky{1, &calls});
  std::future<int> result =
      std::async(std::launch::async, [&] { return r(std::stop_token()); });
  EXPECT_EQ(clock.AwaitSleep(1), t0 + milliseconds(500));
  fake.Advance(milliseconds(500));
  EXPECT_EQ(result.get(), 42);
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(clock.deadlines().size(), 1u);
}

// resilience4j shouldReturnAfterThreeAttempts (and Polly Should_throw_when_
// specified_exception_thrown_more_times_then_retry_count): three calls, two
// sleeps, the last attempt's exception rethrown unchanged. retry.h: "When
// every attempt fails ... the last exception is rethrown unchanged (same
// object, type and payload)".
TEST(RetryConformance, GivesUpAfterMaxAttemptsWithTheLastException) {
  FakeClock fake;
  RecordingClock clock(fake);
  const Clock::time_point t0 = fake.Now();
  std::atomic<int> calls{0};
  std::exception_ptr last;
  auto r = WithRetry(Retry(Fixed(clock, 3, milliseconds(500))), [&]() -> int {
    const int n = calls.fetch_add(1) + 1;
    last = std::make_exception_ptr(Payload(n));
    std::rethrow_exception(last);
  });
  std::future<void> result = std::async(std::launch::async, [&] {
    try {
      r(std::stop_token());
      ADD_FAILURE() << "returned";
    } catch (const Payload& e) {
      EXPECT_EQ(e.value, 3);
      EXPECT_EQ(&e, ObjectOf(last));
    }
  });
  EXPECT_EQ(clock.AwaitSleep(1), t0 + milliseconds(500));
  fake.Advance(milliseconds(500));
  EXPECT_EQ(clock.AwaitSleep(2), t0 + milliseconds(1000));
  fake.Advance(milliseconds(500));
  result.get();
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(clock.deadlines().size(), 2u);
}

// resilience4j shouldReturnAfterOneAttempt: max_attempts 1 is one call and no
// sleep. retry.h: "Attempts in all, the first one included".
TEST(RetryConformance, OneAttemptMeansNoRetry) {
  FakeClock fake;
  RecordingClock clock(fake);
  std::atomic<int> calls{0};
  auto r =
      WithRetry(Retry(Fixed(clock, 1, milliseconds(500))), Flaky{5, &calls});
  EXPECT_THROW(r(std::stop_token()), Payload);
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(clock.deadlines().size(), 0u);
}

// resilience4j shouldReturnAfterOneAttemptAndIgnoreException and Polly
// Should_throw_when_exception_thrown_is_not_the_specified_exception_type.
// retry.h: "or the predicate declines an exception, the last exception is
// rethrown unchanged"; Retry::On<E...> "retries exactly the exceptions of
// types E... (and types derived from them)".
TEST(RetryConformance, DeclinedExceptionIsRethrownAtOnce) {
  FakeClock fake;
  RecordingClock clock(fake);
  std::atomic<int> calls{0};
  RetryOptions o = Fixed(clock, 3, milliseconds(500));
  o.retry_if = Retry::On<std::logic_error>();
  auto r = WithRetry(Retry(o), Flaky{5, &calls});
  EXPECT_THROW(r(std::stop_token()), Payload);
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(clock.deadlines().size(), 0u);

  const Retry on_runtime(
      RetryOptions{.retry_if = Retry::On<std::runtime_error>()});
  EXPECT_TRUE(on_runtime.ShouldRetry(std::make_exception_ptr(Payload(1))));
  EXPECT_FALSE(
      on_runtime.ShouldRetry(std::make_exception_ptr(std::logic_error("x"))));
  EXPECT_FALSE(on_runtime.ShouldRetry(std::make_exception_ptr(7)));
}

// retry.h, retry_if: "Empty: every exception except herd::CircuitOpen (the
// breaker said the service is down) and herd::Cancelled (the caller gave
// up)".
TEST(RetryConformance, DefaultPredicateSkipsCircuitOpenAndCancelled) {
  const Retry policy;
  EXPECT_TRUE(policy.ShouldRetry(std::make_exception_ptr(Payload(1))));
  EXPECT_TRUE(policy.ShouldRetry(std::make_exception_ptr(7)));
  EXPECT_TRUE(policy.ShouldRetry(std::make_exception_ptr(DeadlineExceeded())));
  EXPECT_FALSE(policy.ShouldRetry(std::make_exception_ptr(CircuitOpen())));
  EXPECT_FALSE(policy.ShouldRetry(std::make_exception_ptr(Cancelled())));
}

// resilience4j shouldTakeIntoAccountBackoffFunction and Polly
// MaxDelay_EnsureRespected. retry.h: "ceiling_k = min(max_delay,
// initial_delay * multiplier^(k-1))".
TEST(RetryConformance, ExponentialBackoffIsCappedAtMaxDelay) {
  FakeClock fake;
  RecordingClock clock(fake);
  const Clock::time_point t0 = fake.Now();
  std::atomic<int> calls{0};
  auto r = WithRetry(Retry({.max_attempts = 4,
                            .initial_delay = milliseconds(500),
                            .multiplier = 2.0,
                            .max_delay = milliseconds(1500),
                            .jitter = 0,
                            .clock = &clock}),
                     Flaky{3, &calls});
  std::future<int> result =
      std::async(std::launch::async, [&] { return r(std::stop_token()); });
  EXPECT_EQ(clock.AwaitSleep(1), t0 + milliseconds(500));
  fake.Advance(milliseconds(500));
  EXPECT_EQ(clock.AwaitSleep(2), t0 + milliseconds(1500));
  fake.Advance(milliseconds(1000));
  EXPECT_EQ(clock.AwaitSleep(3), t0 + milliseconds(3000));  // capped: 1500
  fake.Advance(milliseconds(1500));
  EXPECT_EQ(result.get(), 42);
  EXPECT_EQ(calls.load(), 4);
}

// retry.h, Ceiling(): "a retry below 1 counts as 1"; a huge exponent
// saturates at max_delay; Backoff(): "Ceiling(retry) * (1 - jitter * u),
// rounded to the nearest tick, in [0, Ceiling(retry)]", u clamped to [0, 1].
TEST(RetryConformance, CeilingAndBackoffArithmetic) {
  const Retry p({.initial_delay = milliseconds(100),
                 .multiplier = 2.0,
                 .max_delay = seconds(10),
                 .jitter = 1.0});
  EXPECT_EQ(p.Ceiling(0), milliseconds(100));
  EXPECT_EQ(p.Ceiling(-5), milliseconds(100));
  EXPECT_EQ(p.Ceiling(1), milliseconds(100));
  EXPECT_EQ(p.Ceiling(2), milliseconds(200));
  EXPECT_EQ(p.Ceiling(8), milliseconds(10000));  // 12.8 s, capped
  EXPECT_EQ(p.Ceiling(std::numeric_limits<int>::max()), seconds(10));
  EXPECT_EQ(p.Backoff(2, 0.0), milliseconds(200));
  EXPECT_EQ(p.Backoff(2, 0.5), milliseconds(100));
  EXPECT_EQ(p.Backoff(2, 1.0), milliseconds(0));
  EXPECT_EQ(p.Backoff(2, 7.0), milliseconds(0));
  EXPECT_EQ(p.Backoff(2, -1.0), milliseconds(200));

  const Retry unbounded({.initial_delay = milliseconds(1),
                         .multiplier = 10.0,
                         .max_delay = Clock::duration::max(),
                         .jitter = 0.5});
  EXPECT_EQ(unbounded.Ceiling(1000), Clock::duration::max());
  EXPECT_GE(unbounded.Backoff(1000, 1.0), Clock::duration::zero());
  EXPECT_LE(unbounded.Backoff(1000, 1.0), Clock::duration::max());
  EXPECT_EQ(unbounded.Backoff(1000, 0.0), Clock::duration::max());
}

// Polly RetryDelayGenerator_ZeroDelay: retry.h "A zero delay retries at
// once" (with a FakeClock that never moves).
TEST(RetryConformance, ZeroDelayRetriesAtOnce) {
  FakeClock clock;
  std::atomic<int> calls{0};
  auto r = WithRetry(Retry({.max_attempts = 3,
                            .initial_delay = Clock::duration::zero(),
                            .max_delay = Clock::duration::zero(),
                            .clock = &clock}),
                     Flaky{2, &calls});
  EXPECT_EQ(r(std::stop_token()), 42);
  EXPECT_EQ(calls.load(), 3);
}

// retry.h: "a delay of duration::max() (any delay past the clock's range)
// waits with no limit, so that only the stop token ends it".
TEST(RetryConformance, DurationMaxDelayWaitsForTheStopOnly) {
  FakeClock fake;
  RecordingClock clock(fake);
  std::atomic<int> calls{0};
  auto r = WithRetry(Retry({.max_attempts = 3,
                            .initial_delay = Clock::duration::max(),
                            .max_delay = Clock::duration::max(),
                            .jitter = 0,
                            .clock = &clock}),
                     Flaky{5, &calls});
  std::stop_source stop;
  std::future<int> result =
      std::async(std::launch::async, [&] { return r(stop.get_token()); });
  EXPECT_EQ(clock.AwaitSleep(1), Clock::time_point::max());
  fake.Advance(Clock::duration::max());  // FakeClock::kEndOfTime
  EXPECT_EQ(calls.load(), 1);
  stop.request_stop();
  try {
    result.get();
    FAIL() << "returned";
  } catch (const Payload& e) {
    EXPECT_EQ(e.value, 1);  // "the last attempt's exception"
  }
  EXPECT_EQ(calls.load(), 1);
}

// Polly ExecuteAsync_CanceledBeforeExecution_EnsureNotExecuted and
// Should_not_execute_action_when_cancellationToken_cancelled_before_execute.
// retry.h: "or herd::Cancelled if the token was stopped before the first
// attempt (the loader never ran)".
TEST(RetryConformance, StoppedBeforeTheFirstAttemptNeverRuns) {
  FakeClock clock;
  std::atomic<int> calls{0};
  auto r = WithRetry(Retry(Fixed(clock, 3, milliseconds(1))), Flaky{0, &calls});
  std::stop_source stop;
  stop.request_stop();
  EXPECT_THROW(r(stop.get_token()), Cancelled);
  EXPECT_EQ(calls.load(), 0);
}

// Polly ExecuteAsync_CanceledDuringDelay_EnsureNotExecutedAgain. retry.h: "a
// stop during a backoff ends the sleep at once. The call then throws the last
// attempt's exception".
TEST(RetryConformance, StopDuringBackoffEndsTheSleepWithoutAnotherAttempt) {
  FakeClock fake;
  RecordingClock clock(fake);
  std::atomic<int> calls{0};
  auto r = WithRetry(Retry(Fixed(clock, 3, seconds(1))), Flaky{5, &calls});
  std::stop_source stop;
  std::future<int> result =
      std::async(std::launch::async, [&] { return r(stop.get_token()); });
  clock.AwaitSleep(1);
  stop.request_stop();
  EXPECT_THROW(result.get(), Payload);
  EXPECT_EQ(calls.load(), 1);
}

// Polly ExecuteAsync_CanceledDuringExecution_EnsureNotExecutedAgain (and
// RetrySpecs' "..._and_cancel_further_retries_when_user_delegate_does_not_
// observe_cancellationToken"): an attempt that fails after the stop is the
// last. Polly ExecuteAsync_CanceledDuringExecution_EnsureResultReturned: one
// that succeeds returns its value.
TEST(RetryConformance, StopDuringAnAttemptEndsTheRetries) {
  FakeClock clock;
  std::stop_source stop;
  std::atomic<int> calls{0};
  auto failing = WithRetry(Retry(Fixed(clock, 5, seconds(1))), [&]() -> int {
    calls.fetch_add(1);
    stop.request_stop();
    throw Payload(1);
  });
  EXPECT_THROW(failing(stop.get_token()), Payload);
  EXPECT_EQ(calls.load(), 1);

  std::stop_source stop2;
  auto succeeding = WithRetry(Retry(Fixed(clock, 5, seconds(1))), [&] {
    stop2.request_stop();
    return 9;
  });
  EXPECT_EQ(succeeding(stop2.get_token()), 9);
}

// A clock whose every SleepUntil() reaches its deadline and then, before
// returning, stops `stop`: the stop arrives "at the instant a backoff ends".
class StopAtWakeClock final : public Clock {
 public:
  StopAtWakeClock(FakeClock& inner, std::stop_source stop)
      : inner_(inner), stop_(std::move(stop)) {}
  time_point Now() const override { return inner_.Now(); }
  bool SleepUntil(time_point deadline, std::stop_token token) const override {
    inner_.AdvanceTo(deadline);
    const bool reached = inner_.SleepUntil(deadline, std::move(token));
    stop_.request_stop();
    return reached;
  }

 private:
  FakeClock& inner_;
  std::stop_source stop_;
};

// retry.h: "The token is checked before every attempt, the first included,
// so no attempt starts once it is stopped, even when the stop arrives at the
// instant a backoff ends".
TEST(RetryConformance, StopAtTheInstantTheBackoffEndsStartsNoAttempt) {
  FakeClock fake;
  std::stop_source stop;
  StopAtWakeClock clock(fake, stop);
  std::atomic<int> calls{0};
  auto r = WithRetry(Retry(Fixed(clock, 3, seconds(1))), Flaky{5, &calls});
  EXPECT_THROW(r(stop.get_token()), Payload);
  EXPECT_EQ(calls.load(), 1);
}

// RetrySpecs Should_throw_when_retry_count_is_less_than_zero and the option
// REQUIRES of retry.h.
TEST(RetryConformance, InvalidOptionsAreRejected) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  auto make = [](RetryOptions o) { Retry r(std::move(o)); };
  EXPECT_THROW(make({.max_attempts = 0}), std::invalid_argument);
  EXPECT_THROW(make({.initial_delay = -milliseconds(1)}),
               std::invalid_argument);
  EXPECT_THROW(make({.multiplier = 0.5}), std::invalid_argument);
  EXPECT_THROW(make({.multiplier = nan}), std::invalid_argument);
  EXPECT_THROW(make({.multiplier = inf}), std::invalid_argument);
  EXPECT_THROW(make({.initial_delay = seconds(2), .max_delay = seconds(1)}),
               std::invalid_argument);
  EXPECT_THROW(make({.jitter = -0.1}), std::invalid_argument);
  EXPECT_THROW(make({.jitter = 1.1}), std::invalid_argument);
  EXPECT_THROW(make({.jitter = nan}), std::invalid_argument);
  EXPECT_NO_THROW(make({.max_attempts = 1,
                        .initial_delay = Clock::duration::zero(),
                        .multiplier = 1.0,
                        .max_delay = Clock::duration::zero(),
                        .jitter = 0.0}));
  std::function<int()> empty;
  EXPECT_THROW(WithRetry(Retry(), empty), std::invalid_argument);
}

// RetrySpecs Should_throw_when_..._predicate_is_not_satisfied, with a
// predicate that throws. retry.h, retry_if: "A predicate that throws ends the
// retries: its exception leaves the call in place of the attempt's."
TEST(RetryConformance, ThrowingPredicateEndsTheRetriesWithItsException) {
  FakeClock clock;
  std::atomic<int> calls{0};
  RetryOptions o = Fixed(clock, 3, milliseconds(1));
  o.retry_if = [](const std::exception_ptr&) -> bool {
    throw std::logic_error("predicate");
  };
  auto r = WithRetry(Retry(o), Flaky{5, &calls});
  EXPECT_THROW(r(std::stop_token()), std::logic_error);
  EXPECT_EQ(calls.load(), 1);
}

// ===================== Deadline (Polly timeout, resilience4j TimeLimiter) ====

// Polly Execute_Timeout and resilience4j's TimeLimiter "cancel running
// future": the inner token is stopped at the deadline, and the call throws
// DeadlineExceeded. deadline.h: "The inner loader receives a std::stop_token
// that is stopped when the deadline passes".
TEST(DeadlineConformance, TimeoutStopsTheLoaderAndThrowsDeadlineExceeded) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  Gate started;
  auto bounded = WithDeadline(timer, seconds(1), [&](std::stop_token stop) {
    started.Open();
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, stop, [] { return false; });
    return 1;
  });
  std::future<int> r = std::async(std::launch::async,
                                  [&] { return bounded(std::stop_token()); });
  started.Wait();
  EXPECT_EQ(timer.Pending(), 1u);
  clock.Advance(seconds(1));
  EXPECT_THROW(r.get(), DeadlineExceeded);
  EXPECT_EQ(timer.Pending(), 0u);
}

// deadline.h, Outcome: "A call that finished at or after the deadline throws
// herd::DeadlineExceeded instead, whatever it produced" and one "before the
// deadline (by the clock, read when the inner loader finished) returns that
// value or rethrows that exception unchanged".
TEST(DeadlineConformance, ExactlyAtTheDeadlineIsLate) {
  for (bool at_deadline : {false, true}) {
    FakeClock clock;
    Timer timer({.clock = &clock});
    Gate started, finish;
    auto bounded = WithDeadline(timer, seconds(1), [&] {
      started.Open();
      finish.Wait();  // ignores its token
      return 5;
    });
    std::future<int> r = std::async(std::launch::async,
                                    [&] { return bounded(std::stop_token()); });
    started.Wait();
    clock.Advance(at_deadline ? seconds(1) : seconds(1) - nanoseconds(1));
    finish.Open();
    if (at_deadline) {
      EXPECT_THROW(r.get(), DeadlineExceeded);
    } else {
      EXPECT_EQ(r.get(), 5);
    }
  }
}

// deadline.h: "A call that returned, or threw, before the deadline ...
// rethrows that exception unchanged"; after a call in time, the timer entry
// is gone ("one Timer::RunAt and one Timer::Cancel per call").
TEST(DeadlineConformance, ExceptionBeforeTheDeadlinePassesUnchanged) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  const std::exception_ptr thrown = std::make_exception_ptr(Payload(2));
  try {
    WithDeadline(timer, seconds(1), [&]() -> int {
      std::rethrow_exception(thrown);
    })(std::stop_token());
    FAIL() << "returned";
  } catch (const Payload& e) {
    EXPECT_EQ(&e, ObjectOf(thrown));
  }
  EXPECT_EQ(timer.Pending(), 0u);
}

// Polly Execute_NoTimeout (an infinite timeout). deadline.h: "A timeout whose
// deadline lies past the end of the clock's range (duration::max(),
// hours::max()) is no deadline at all: no timer entry, the inner loader gets
// the outer token as it is, and the call never throws DeadlineExceeded".
TEST(DeadlineConformance, DurationMaxIsNoDeadline) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  std::stop_source outer;
  for (auto run :
       {std::function<int()>([&] {
          return WithDeadline(timer, Clock::duration::max(),
                              [&](std::stop_token stop) {
                                EXPECT_EQ(timer.Pending(), 0u);
                                EXPECT_TRUE(stop == outer.get_token());
                                clock.Advance(Clock::duration::max());
                                return 1;
                              })(outer.get_token());
        }),
        std::function<int()>([&] {
          return WithDeadline(timer, hours::max(), [&](std::stop_token stop) {
            EXPECT_FALSE(stop.stop_possible());
            return 2;
          })(std::stop_token());
        })}) {
    EXPECT_GT(run(), 0);
  }
}

// Polly Execute_Cancelled_EnsureNoTimeout: a caller's cancellation before the
// deadline is not reported as a timeout. deadline.h: the inner token is also
// stopped "when the outer token is stopped", and a call that threw before
// the deadline rethrows its exception unchanged.
TEST(DeadlineConformance, OuterCancellationIsNotATimeout) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  std::stop_source outer;
  Gate started;
  auto bounded =
      WithDeadline(timer, seconds(1), [&](std::stop_token stop) -> int {
        started.Open();
        std::mutex mu;
        std::condition_variable_any cv;
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, stop, [] { return false; });
        throw Cancelled();
      });
  std::future<int> r = std::async(std::launch::async,
                                  [&] { return bounded(outer.get_token()); });
  started.Wait();
  outer.request_stop();
  EXPECT_THROW(r.get(), Cancelled);
  // An outer token stopped on entry: the inner one is stopped from the start.
  bool saw_stop = false;
  EXPECT_EQ(WithDeadline(timer, seconds(1),
                         [&](std::stop_token stop) {
                           saw_stop = stop.stop_requested();
                           return 1;
                         })(outer.get_token()),
            1);
  EXPECT_TRUE(saw_stop);
  EXPECT_EQ(timer.Pending(), 0u);
}

// deadline.h, WithDeadline: "Throws: std::invalid_argument if timeout <= 0
// or NaN, or if loader is an empty std::function".
TEST(DeadlineConformance, InvalidTimeoutsAndLoadersAreRejected) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  auto loader = [] { return 1; };
  EXPECT_THROW(WithDeadline(timer, seconds(0), loader), std::invalid_argument);
  EXPECT_THROW(WithDeadline(timer, -nanoseconds(1), loader),
               std::invalid_argument);
  EXPECT_THROW(WithDeadline(timer,
                            std::chrono::duration<double>(
                                std::numeric_limits<double>::quiet_NaN()),
                            loader),
               std::invalid_argument);
  std::function<int()> empty;
  EXPECT_THROW(WithDeadline(timer, seconds(1), empty), std::invalid_argument);
  EXPECT_EQ(WithDeadline(timer, nanoseconds(1), loader)(std::stop_token()), 1);
}

}  // namespace
}  // namespace herd
