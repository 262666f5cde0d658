// Copyright 2026 The herd Authors.
//
// Tests herd/token_bucket.h: exact token arithmetic (n tokens cost n ticks),
// reservations in arrival order, cancellation and the capacity bound, the
// ends of AcquireFor's timeout, a throwing clock.
// Each test's name states the contract it checks; a comment quotes the
// header where the name cannot say it all.

#include "herd/token_bucket.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <future>
#include <limits>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "herd/clock.h"
#include "herd/errors.h"
#include "tests/testing/clocks.h"
#include "tests/testing/jump_clock.h"

namespace herd {
namespace {

using ::herd::test::JumpClock;

using std::chrono::milliseconds;
using std::chrono::seconds;

// token_bucket.h: TokenBucketOptions' REQUIRES, and n in [0, capacity].
TEST(TokenBucket, RejectsBadArguments) {
  FakeClock clock;
  auto make = [&](double rate, std::int64_t capacity) {
    TokenBucket b({.rate = rate, .capacity = capacity, .clock = &clock});
  };
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_THROW(make(0, 1), std::invalid_argument);
  EXPECT_THROW(make(-5, 1), std::invalid_argument);
  EXPECT_THROW(make(std::nan(""), 1), std::invalid_argument);
  EXPECT_THROW(make(inf, 1), std::invalid_argument);
  EXPECT_THROW(make(10, 0), std::invalid_argument);
  EXPECT_THROW(make(10, -3), std::invalid_argument);
  EXPECT_THROW(make(1e-12, 10), std::invalid_argument);
  EXPECT_THROW(make(2.1e9, 10), std::invalid_argument);  // under one tick
  EXPECT_NO_THROW(make(2e9, 10));                        // exactly one tick
  EXPECT_THROW(TokenBucket({.rate = 10}), std::invalid_argument);  // unset

  TokenBucket bucket({.rate = 10, .capacity = 5, .clock = &clock});
  // More than the bucket can ever hold is an error, not a hang.
  EXPECT_THROW(bucket.TryAcquire(6), std::invalid_argument);
  EXPECT_THROW(bucket.Acquire(6), std::invalid_argument);
  EXPECT_THROW(bucket.AcquireFor(6, seconds(100)), std::invalid_argument);
  EXPECT_THROW(bucket.TryAcquire(-1), std::invalid_argument);
  EXPECT_TRUE(bucket.TryAcquire(0));
}

// token_bucket.h: "one token costs tick = round(1 s / rate), and n tokens
// cost exactly n * tick". At rate 3 a token costs 333,333,333 ns, so three
// of them are back 999,999,999 ns after the bucket was drained, whether
// taken one by one or at once.
TEST(TokenBucket, NTokensCostExactlyNTimesOneToken) {
  FakeClock clock;
  TokenBucket at_once({.rate = 3, .capacity = 3, .clock = &clock});
  TokenBucket one_by_one({.rate = 3, .capacity = 3, .clock = &clock});
  EXPECT_EQ(at_once.token_cost(), std::chrono::nanoseconds(333'333'333));
  ASSERT_TRUE(at_once.TryAcquire(3));
  ASSERT_TRUE(one_by_one.TryAcquire(3));
  clock.Advance(std::chrono::nanoseconds(999'999'998));
  EXPECT_FALSE(at_once.TryAcquire(3));
  clock.Advance(std::chrono::nanoseconds(1));
  EXPECT_TRUE(at_once.TryAcquire(3));
  EXPECT_TRUE(one_by_one.TryAcquire(1));
  EXPECT_TRUE(one_by_one.TryAcquire(1));
  EXPECT_TRUE(one_by_one.TryAcquire(1));
  EXPECT_FALSE(one_by_one.TryAcquire(1));
}

// Runs bucket.Acquire(n, stop) on its own thread; the future holds its
// result and the clock's time when it returned.
struct Waiter {
  std::future<std::pair<bool, Clock::time_point>> result;
  std::jthread thread;
};
Waiter StartAcquire(TokenBucket& bucket, const Clock& clock, std::int64_t n,
                    std::stop_token stop) {
  std::promise<std::pair<bool, Clock::time_point>> promise;
  Waiter w{promise.get_future(), {}};
  w.thread = std::jthread(
      [&bucket, &clock, n, stop, promise = std::move(promise)]() mutable {
        const bool got = bucket.Acquire(n, stop);
        promise.set_value({got, clock.Now()});
      });
  return w;
}

// token_bucket.h: "A cancelled reservation with live ones behind it returns
// nothing: they keep their ready times". The case of rate 1/s, capacity 10:
// W1 (ready at +10 s) is stopped while W2 waits (ready at +20 s); a newcomer
// then queues behind W2 (+30 s), instead of getting 10 tokens at +20 s
// beside W2's 10: never more than capacity at one instant.
TEST(TokenBucket, CancelledWaiterWithWaitersBehindItReturnsNothing) {
  FakeClock fake;
  test::RecordingClock clock(fake);  // shows when each waiter will wake
  const Clock::time_point t0 = clock.Now();
  TokenBucket bucket({.rate = 1, .capacity = 10, .clock = &clock});
  ASSERT_TRUE(bucket.TryAcquire(10));
  std::stop_source stop_w1;
  Waiter w1 = StartAcquire(bucket, clock, 10, stop_w1.get_token());
  fake.WaitForSleepers(1);
  Waiter w2 = StartAcquire(bucket, clock, 10, std::stop_token());
  fake.WaitForSleepers(2);
  stop_w1.request_stop();
  EXPECT_FALSE(w1.result.get().first);
  Waiter newcomer = StartAcquire(bucket, clock, 10, std::stop_token());
  fake.WaitForSleepers(2);
  EXPECT_EQ(clock.deadlines(),
            (std::vector<Clock::time_point>{t0 + seconds(10), t0 + seconds(20),
                                            t0 + seconds(30)}));
  fake.Advance(seconds(20));
  EXPECT_EQ(w2.result.get(), std::make_pair(true, t0 + seconds(20)));
  EXPECT_FALSE(bucket.TryAcquire(1));
  fake.Advance(seconds(10));
  EXPECT_TRUE(newcomer.result.get().first);
}

// token_bucket.h: "a cancelled reservation gives its tokens back only when
// no live reservation queues behind it; then the tokens of every cancelled
// reservation between it and the live one before it come back too."
TEST(TokenBucket, CancelledLastWaitersGiveEverythingBack) {
  FakeClock clock;
  TokenBucket bucket({.rate = 1, .capacity = 10, .clock = &clock});
  ASSERT_TRUE(bucket.TryAcquire(10));
  std::stop_source stop1, stop2, stop3;
  Waiter w1 = StartAcquire(bucket, clock, 4, stop1.get_token());  // +4 s
  clock.WaitForSleepers(1);
  Waiter w2 = StartAcquire(bucket, clock, 3, stop2.get_token());  // +7 s
  clock.WaitForSleepers(2);
  Waiter w3 = StartAcquire(bucket, clock, 3, stop3.get_token());  // +10 s
  clock.WaitForSleepers(3);
  stop2.request_stop();  // w3 queues behind it: nothing back
  EXPECT_FALSE(w2.result.get().first);
  stop3.request_stop();  // the last: its 3, and w2's 3, come back
  EXPECT_FALSE(w3.result.get().first);
  clock.Advance(seconds(4));
  EXPECT_TRUE(w1.result.get().first);
  EXPECT_DOUBLE_EQ(bucket.Available(), 0.0);
  clock.Advance(seconds(6));
  EXPECT_DOUBLE_EQ(bucket.Available(), 6.0);
  EXPECT_TRUE(bucket.TryAcquire(6));
}

// token_bucket.h: Acquire(n, stop): "A stop that races the ready time gives
// exactly one of the two outcomes", decided by the clock under the bucket's
// lock: a stop seen only once the ready time has come is too late.
TEST(TokenBucket, StopAtTheInstantTheTokensExistIsTooLate) {
  FakeClock fake;
  test::PausingClock clock(fake);
  TokenBucket bucket({.rate = 10, .capacity = 5, .clock = &clock});
  ASSERT_TRUE(bucket.TryAcquire(5));
  {
    // The sleep reaches the ready time; then the stop comes.
    std::stop_source stop;
    Waiter w = StartAcquire(bucket, clock, 2, stop.get_token());
    fake.WaitForSleepers(1);
    fake.Advance(milliseconds(200));
    EXPECT_TRUE(clock.AwaitPaused());
    stop.request_stop();
    clock.Resume();
    EXPECT_TRUE(w.result.get().first);
  }
  {
    // The stop ends the sleep; the ready time comes before the bucket
    // looks at the clock.
    std::stop_source stop;
    Waiter w = StartAcquire(bucket, clock, 2, stop.get_token());
    fake.WaitForSleepers(1);
    stop.request_stop();
    EXPECT_FALSE(clock.AwaitPaused());
    fake.Advance(milliseconds(200));
    clock.Resume();
    EXPECT_TRUE(w.result.get().first);
  }
  {
    // The stop is seen before the ready time: cancelled, all given back.
    std::stop_source stop;
    Waiter w = StartAcquire(bucket, clock, 2, stop.get_token());
    fake.WaitForSleepers(1);
    stop.request_stop();
    EXPECT_FALSE(clock.AwaitPaused());
    fake.Advance(milliseconds(199));
    clock.Resume();
    EXPECT_FALSE(w.result.get().first);
    fake.Advance(milliseconds(1));
    EXPECT_TRUE(bucket.TryAcquire(2));
  }
}

// token_bucket.h: "AcquireFor(n, 0) succeeds iff the tokens are there now;
// AcquireFor(n, duration::max()) (any timeout past the clock's range) waits
// as long as it takes ... Negative or NaN timeouts are rejected."
TEST(TokenBucket, AcquireForZeroAndDurationMax) {
  FakeClock clock;
  TokenBucket bucket({.rate = 10, .capacity = 5, .clock = &clock});
  EXPECT_TRUE(bucket.AcquireFor(5, Clock::duration::zero()));
  EXPECT_FALSE(bucket.AcquireFor(1, Clock::duration::zero()));
  clock.Advance(milliseconds(100));
  EXPECT_TRUE(bucket.AcquireFor(1, Clock::duration::zero()));
  EXPECT_THROW(bucket.AcquireFor(1, -milliseconds(1)), std::invalid_argument);
  EXPECT_THROW(
      bucket.AcquireFor(1, std::chrono::duration<double>(std::nan(""))),
      std::invalid_argument);
  for (int round = 0; round < 2; ++round) {
    std::promise<bool> done;
    std::future<bool> got = done.get_future();
    std::jthread waiter([&] {
      done.set_value(round == 0
                         ? bucket.AcquireFor(5, Clock::duration::max())
                         : bucket.AcquireFor(5, std::chrono::hours::max()));
    });
    clock.WaitForSleepers(1);
    clock.Advance(milliseconds(499));
    EXPECT_EQ(got.wait_for(seconds(0)), std::future_status::timeout);
    clock.Advance(milliseconds(1));
    EXPECT_TRUE(got.get());
  }
}

// token_bucket.h: "TryAcquire(0) is true iff none waits"; n = 0 takes
// nothing but queues like any reservation.
TEST(TokenBucket, ZeroTokensQueueBehindReservations) {
  FakeClock clock;
  TokenBucket bucket({.rate = 10, .capacity = 5, .clock = &clock});
  EXPECT_TRUE(bucket.TryAcquire(0));
  ASSERT_TRUE(bucket.TryAcquire(5));
  EXPECT_TRUE(bucket.TryAcquire(0));  // empty, but nobody waits
  Waiter w = StartAcquire(bucket, clock, 1, std::stop_token());
  clock.WaitForSleepers(1);
  EXPECT_FALSE(bucket.TryAcquire(0));
  EXPECT_FALSE(bucket.AcquireFor(0, milliseconds(99)));
  clock.Advance(milliseconds(100));
  EXPECT_TRUE(w.result.get().first);
  EXPECT_TRUE(bucket.TryAcquire(0));
}

// token_bucket.h: "A Clock that throws: an exception from Now() before a
// call reserves propagates with the bucket unchanged. One from the wait ...
// propagates too, and the reserved tokens stay taken".
TEST(TokenBucket, ClockThatThrows) {
  FakeClock fake;
  test::ThrowingClock clock(fake);
  TokenBucket bucket({.rate = 10, .capacity = 5, .clock = &clock});
  ASSERT_TRUE(bucket.TryAcquire(3));
  clock.ArmNow();
  EXPECT_THROW(bucket.TryAcquire(1), test::ClockFailure);
  EXPECT_THROW(bucket.Acquire(1), test::ClockFailure);
  clock.Disarm();
  EXPECT_DOUBLE_EQ(bucket.Available(), 2.0);
  ASSERT_TRUE(bucket.TryAcquire(2));
  clock.ArmSleep();
  EXPECT_THROW(bucket.Acquire(2), test::ClockFailure);  // ready at +200 ms
  clock.Disarm();
  fake.Advance(milliseconds(200));
  EXPECT_FALSE(bucket.TryAcquire(1));  // the two went to the failed call
  fake.Advance(milliseconds(100));
  EXPECT_TRUE(bucket.TryAcquire(1));
}

// token_bucket.h: the deprecated TokenBucket(rate, capacity, clock) still
// works for one release.
TEST(TokenBucket, DeprecatedPositionalConstructorStillWorks) {
  FakeClock clock;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  TokenBucket bucket(10, 5, clock);
  TokenBucket steady(10, 5);
#pragma GCC diagnostic pop
  EXPECT_EQ(bucket.rate(), 10.0);
  EXPECT_EQ(bucket.capacity(), 5);
  EXPECT_TRUE(bucket.TryAcquire(5));
  EXPECT_FALSE(bucket.TryAcquire(1));
  clock.Advance(milliseconds(100));
  EXPECT_TRUE(bucket.TryAcquire(1));
  EXPECT_TRUE(steady.TryAcquire(5));
}

TEST(TokenBucket, StartsFullAndRefillsAtRate) {
  FakeClock clock;
  TokenBucket bucket(
      {.rate = 10, .capacity = 5, .clock = &clock});  // one token per 100 ms
  EXPECT_DOUBLE_EQ(bucket.Available(), 5.0);
  EXPECT_TRUE(bucket.TryAcquire(5));
  EXPECT_FALSE(bucket.TryAcquire(1));
  clock.Advance(milliseconds(99));
  EXPECT_FALSE(bucket.TryAcquire(1));
  clock.Advance(milliseconds(1));
  EXPECT_TRUE(bucket.TryAcquire(1));
  EXPECT_FALSE(bucket.TryAcquire(1));
  clock.Advance(milliseconds(250));
  EXPECT_DOUBLE_EQ(bucket.Available(), 2.5);
  EXPECT_FALSE(bucket.TryAcquire(3));  // a failed try takes nothing
  EXPECT_TRUE(bucket.TryAcquire(2));
}

TEST(TokenBucket, NeverHoldsMoreThanCapacity) {
  FakeClock clock;
  TokenBucket bucket({.rate = 10, .capacity = 5, .clock = &clock});
  clock.Advance(seconds(3600));
  EXPECT_DOUBLE_EQ(bucket.Available(), 5.0);
  EXPECT_TRUE(bucket.TryAcquire(5));
  EXPECT_FALSE(bucket.TryAcquire(1));
}

TEST(TokenBucket, AcquireSleepsOnceExactlyUntilTokensExist) {
  JumpClock clock;
  TokenBucket bucket({.rate = 10, .capacity = 5, .clock = &clock});
  bucket.Acquire(5);  // full: no sleep
  EXPECT_TRUE(clock.sleeps().empty());
  clock.Advance(milliseconds(40));
  bucket.Acquire(3);  // 0.4 tokens stored; 2.6 more take 260 ms
  EXPECT_EQ(clock.sleeps(), std::vector<Clock::duration>{milliseconds(260)});
  EXPECT_DOUBLE_EQ(bucket.Available(), 0.0);
}

TEST(TokenBucket, AcquireForGivesUpWithoutTakingTokens) {
  JumpClock clock;
  TokenBucket bucket({.rate = 10, .capacity = 5, .clock = &clock});
  ASSERT_TRUE(bucket.TryAcquire(5));
  EXPECT_FALSE(bucket.AcquireFor(2, milliseconds(199)));
  EXPECT_TRUE(clock.sleeps().empty());  // decided at once
  EXPECT_TRUE(bucket.AcquireFor(2, milliseconds(200)));
  EXPECT_EQ(clock.sleeps(), std::vector<Clock::duration>{milliseconds(200)});
  EXPECT_FALSE(bucket.TryAcquire(1));
}

TEST(TokenBucket, AcquireWakesWhenClockAdvances) {
  FakeClock clock;
  TokenBucket bucket({.rate = 10, .capacity = 5, .clock = &clock});
  ASSERT_TRUE(bucket.TryAcquire(5));
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    bucket.Acquire(2);
    done = true;
  });
  clock.WaitForSleepers(1);
  clock.Advance(milliseconds(200));
  waiter.join();
  EXPECT_TRUE(done.load());
}

TEST(TokenBucket, WaitersAreServedInArrivalOrder) {
  FakeClock clock;
  TokenBucket bucket({.rate = 10, .capacity = 5, .clock = &clock});
  ASSERT_TRUE(bucket.TryAcquire(5));
  std::thread first([&] { bucket.Acquire(5); });  // ready at +500 ms
  clock.WaitForSleepers(1);
  std::thread second([&] { bucket.Acquire(5); });  // ready at +1000 ms
  clock.WaitForSleepers(2);
  clock.Advance(milliseconds(500));
  first.join();
  // The second waiter's reservation comes before any newcomer.
  EXPECT_FALSE(bucket.TryAcquire(1));
  clock.Advance(milliseconds(500));
  second.join();
  EXPECT_FALSE(bucket.TryAcquire(1));
  clock.Advance(milliseconds(100));
  EXPECT_TRUE(bucket.TryAcquire(1));
}

TEST(TokenBucket, StoppedWaiterHandsItsReservationBack) {
  FakeClock clock;
  TokenBucket bucket({.rate = 10, .capacity = 5, .clock = &clock});
  ASSERT_TRUE(bucket.TryAcquire(5));
  std::stop_source stop;
  std::thread waiter(
      [&] { EXPECT_FALSE(bucket.Acquire(3, stop.get_token())); });
  clock.WaitForSleepers(1);
  stop.request_stop();
  waiter.join();
  clock.Advance(milliseconds(300));
  EXPECT_TRUE(bucket.TryAcquire(3));  // nothing was kept by the waiter
}

TEST(TokenBucket, StoppedTokenTakesNothing) {
  FakeClock clock;
  TokenBucket bucket({.rate = 10, .capacity = 5, .clock = &clock});
  std::stop_source stop;
  stop.request_stop();
  EXPECT_FALSE(bucket.Acquire(1, stop.get_token()));
  EXPECT_DOUBLE_EQ(bucket.Available(), 5.0);
}

TEST(TokenBucket, ConcurrentTryAcquireGrantsExactlyCapacity) {
  FakeClock clock;
  TokenBucket bucket({.rate = 1000, .capacity = 100, .clock = &clock});
  std::atomic<int> granted{0};
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < 1000; ++i) granted += bucket.TryAcquire() ? 1 : 0;
      });
    }
  }
  EXPECT_EQ(granted.load(), 100);  // time stood still: only the burst
  clock.Advance(milliseconds(50));
  granted = 0;
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < 1000; ++i) granted += bucket.TryAcquire() ? 1 : 0;
      });
    }
  }
  EXPECT_EQ(granted.load(), 50);
}

TEST(TokenBucket, WithRateLimitTakesATokenPerCall) {
  JumpClock clock;
  TokenBucket bucket({.rate = 10, .capacity = 2, .clock = &clock});
  int calls = 0;
  auto loader = WithRateLimit(bucket, [&] { return ++calls; });
  EXPECT_EQ(loader(std::stop_token()), 1);
  EXPECT_EQ(loader(std::stop_token()), 2);
  EXPECT_TRUE(clock.sleeps().empty());
  EXPECT_EQ(loader(std::stop_token()), 3);  // waited for the third token
  EXPECT_EQ(clock.sleeps(), std::vector<Clock::duration>{milliseconds(100)});
}

// token_bucket.h: WithRateLimit(): "If the stop token is stopped ... by the
// time it is [granted], it throws herd::Cancelled without running `loader`
// (a token granted that late stays taken)."
TEST(TokenBucket, WithRateLimitStoppedAsTheTokenComesDoesNotRun) {
  FakeClock fake;
  test::PausingClock clock(fake);
  TokenBucket bucket({.rate = 10, .capacity = 1, .clock = &clock});
  ASSERT_TRUE(bucket.TryAcquire());
  std::stop_source stop;
  bool ran = false;
  auto loader = WithRateLimit(bucket, [&] { ran = true; });
  std::jthread caller(
      [&] { EXPECT_THROW(loader(stop.get_token()), Cancelled); });
  fake.WaitForSleepers(1);
  fake.Advance(milliseconds(100));
  EXPECT_TRUE(clock.AwaitPaused());  // the token exists
  stop.request_stop();
  clock.Resume();
  caller.join();
  EXPECT_FALSE(ran);
  EXPECT_FALSE(bucket.TryAcquire());  // it stayed taken
}

TEST(TokenBucket, WithRateLimitThrowsCancelledWhenStopped) {
  FakeClock clock;
  TokenBucket bucket({.rate = 10, .capacity = 1, .clock = &clock});
  ASSERT_TRUE(bucket.TryAcquire());
  std::stop_source stop;
  bool ran = false;
  auto loader = WithRateLimit(bucket, [&](std::stop_token) { ran = true; });
  std::thread caller(
      [&] { EXPECT_THROW(loader(stop.get_token()), Cancelled); });
  clock.WaitForSleepers(1);
  stop.request_stop();
  caller.join();
  EXPECT_FALSE(ran);
}

}  // namespace
}  // namespace herd
