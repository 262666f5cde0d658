// Copyright 2026 The herd Authors.

#include "herd/token_bucket.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
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

TEST(TokenBucket, RejectsBadArguments) {
  FakeClock clock;
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_THROW(TokenBucket(0, 1, clock), std::invalid_argument);
  EXPECT_THROW(TokenBucket(-5, 1, clock), std::invalid_argument);
  EXPECT_THROW(TokenBucket(std::nan(""), 1, clock), std::invalid_argument);
  EXPECT_THROW(TokenBucket(inf, 1, clock), std::invalid_argument);
  EXPECT_THROW(TokenBucket(10, 0, clock), std::invalid_argument);
  EXPECT_THROW(TokenBucket(10, -3, clock), std::invalid_argument);
  EXPECT_THROW(TokenBucket(1e-12, 10, clock), std::invalid_argument);
  TokenBucket bucket(10, 5, clock);
  // More than the bucket can ever hold is an error, not a hang.
  EXPECT_THROW(bucket.TryAcquire(6), std::invalid_argument);
  EXPECT_THROW(bucket.Acquire(6), std::invalid_argument);
  EXPECT_THROW(bucket.AcquireFor(6, seconds(100)), std::invalid_argument);
  EXPECT_THROW(bucket.TryAcquire(-1), std::invalid_argument);
  EXPECT_TRUE(bucket.TryAcquire(0));
}

TEST(TokenBucket, StartsFullAndRefillsAtRate) {
  FakeClock clock;
  TokenBucket bucket(10, 5, clock);  // one token per 100 ms
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
  TokenBucket bucket(10, 5, clock);
  clock.Advance(seconds(3600));
  EXPECT_DOUBLE_EQ(bucket.Available(), 5.0);
  EXPECT_TRUE(bucket.TryAcquire(5));
  EXPECT_FALSE(bucket.TryAcquire(1));
}

TEST(TokenBucket, AcquireSleepsOnceExactlyUntilTokensExist) {
  JumpClock clock;
  TokenBucket bucket(10, 5, clock);
  bucket.Acquire(5);  // full: no sleep
  EXPECT_TRUE(clock.sleeps().empty());
  clock.Advance(milliseconds(40));
  bucket.Acquire(3);  // 0.4 tokens stored; 2.6 more take 260 ms
  EXPECT_EQ(clock.sleeps(), std::vector<Clock::duration>{milliseconds(260)});
  EXPECT_DOUBLE_EQ(bucket.Available(), 0.0);
}

TEST(TokenBucket, AcquireForGivesUpWithoutTakingTokens) {
  JumpClock clock;
  TokenBucket bucket(10, 5, clock);
  ASSERT_TRUE(bucket.TryAcquire(5));
  EXPECT_FALSE(bucket.AcquireFor(2, milliseconds(199)));
  EXPECT_TRUE(clock.sleeps().empty());  // decided at once
  EXPECT_TRUE(bucket.AcquireFor(2, milliseconds(200)));
  EXPECT_EQ(clock.sleeps(), std::vector<Clock::duration>{milliseconds(200)});
  EXPECT_FALSE(bucket.TryAcquire(1));
}

TEST(TokenBucket, AcquireWakesWhenClockAdvances) {
  FakeClock clock;
  TokenBucket bucket(10, 5, clock);
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
  TokenBucket bucket(10, 5, clock);
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
  TokenBucket bucket(10, 5, clock);
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
  TokenBucket bucket(10, 5, clock);
  std::stop_source stop;
  stop.request_stop();
  EXPECT_FALSE(bucket.Acquire(1, stop.get_token()));
  EXPECT_DOUBLE_EQ(bucket.Available(), 5.0);
}

TEST(TokenBucket, ConcurrentTryAcquireGrantsExactlyCapacity) {
  FakeClock clock;
  TokenBucket bucket(1000, 100, clock);
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
  TokenBucket bucket(10, 2, clock);
  int calls = 0;
  auto loader = WithRateLimit(bucket, [&] { return ++calls; });
  EXPECT_EQ(loader(std::stop_token()), 1);
  EXPECT_EQ(loader(std::stop_token()), 2);
  EXPECT_TRUE(clock.sleeps().empty());
  EXPECT_EQ(loader(std::stop_token()), 3);  // waited for the third token
  EXPECT_EQ(clock.sleeps(), std::vector<Clock::duration>{milliseconds(100)});
}

TEST(TokenBucket, WithRateLimitThrowsCancelledWhenStopped) {
  FakeClock clock;
  TokenBucket bucket(10, 1, clock);
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
