// Copyright 2026 The herd Authors.
//
// Go's golang.org/x/time/rate tests (rate_test.go), Polly's token-bucket
// rate limiter specs (TokenBucketRateLimiterTestsBase.cs) and resilience4j's
// AtomicRateLimiterTest, restated against herd/token_bucket.h. herd's model
// is Go's Limiter (rate = Limit, capacity = burst), with two differences the
// header states: later calls queue behind every reservation, and a cancelled
// reservation refunds only when nothing live queues behind it. Where Go's
// expectation differs, the test checks the header's and says so.
//
// Go's tests call reserveN(t, n) at chosen instants; here a FakeClock is at
// that instant, and a waiter's ready time is the deadline it sleeps until
// (RecordingClock). d = 100 ms and rate 10/s throughout, as in Go, so one
// token costs exactly d. Public headers only.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <limits>
#include <stdexcept>
#include <stop_token>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "herd/clock.h"
#include "herd/errors.h"
#include "herd/token_bucket.h"
#include "tests/conformance/conformance.h"
#include "tests/testing/clocks.h"

namespace herd {
namespace {

using conformance::Await;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using test::RecordingClock;

constexpr milliseconds d(100);

// A bucket on a recording fake clock, with Go's instants t0, t1, ...
struct Fixture {
  explicit Fixture(double rate, std::int64_t capacity)
      : clock(fake),
        t0(fake.Now()),
        bucket({.rate = rate, .capacity = capacity, .clock = &clock}) {}
  Clock::time_point t(int k) const { return t0 + k * d; }
  void At(int k) { fake.AdvanceTo(t(k)); }

  // Runs `call`, an acquisition that must wait, on a thread of its own, and
  // checks that it sleeps until t(ready): Go's runReserve(request{t, n,
  // act}) with act = t(ready).
  template <class Call>
  std::future<bool> Waiter(Call call, int ready) {
    std::future<bool> waiter = std::async(std::launch::async, call);
    EXPECT_EQ(clock.AwaitSleep(++sleeps), t(ready));
    return waiter;
  }
  size_t sleeps = 0;  // sleeps awaited by Waiter()

  FakeClock fake;
  RecordingClock clock;
  const Clock::time_point t0;
  TokenBucket bucket;
};

// Go's run(): TokensAt(t) then AllowN(t, n).
struct Allow {
  int t;
  double toks;
  std::int64_t n;
  bool ok;
};
void RunAllows(Fixture& f, const std::vector<Allow>& allows) {
  for (size_t i = 0; i < allows.size(); ++i) {
    const Allow& a = allows[i];
    f.At(a.t);
    EXPECT_DOUBLE_EQ(f.bucket.Available(), a.toks) << "step " << i;
    EXPECT_EQ(f.bucket.TryAcquire(a.n), a.ok) << "step " << i;
  }
}

// TestLimiterBurst1. token_bucket.h: "the bucket starts full"; TryAcquire
// "Takes n tokens iff they are there now". Go's AllowN(t2, 2) with burst 1 is
// false; herd's TryAcquire(2) with capacity 1 throws, as its header says.
TEST(RateConformance, Burst1) {
  Fixture f(10, 1);
  RunAllows(f, {{0, 1, 1, true},
                {0, 0, 1, false},
                {0, 0, 1, false},
                {1, 1, 1, true},
                {1, 0, 1, false},
                {1, 0, 1, false}});
  f.At(2);
  EXPECT_THROW(f.bucket.TryAcquire(2), std::invalid_argument);
  RunAllows(f, {{2, 1, 1, true}, {2, 0, 1, false}});
}

// TestLimiterBurst3. token_bucket.h: "A bucket idle for long holds capacity
// tokens, not more"; Available(): "Tokens there now". TryAcquire(4) with
// capacity 3 throws (Go: false).
TEST(RateConformance, Burst3) {
  Fixture f(10, 3);
  RunAllows(
      f,
      {{0, 3, 2, true}, {0, 1, 2, false}, {0, 1, 1, true}, {0, 0, 1, false}});
  f.At(1);
  EXPECT_DOUBLE_EQ(f.bucket.Available(), 1);
  EXPECT_THROW(f.bucket.TryAcquire(4), std::invalid_argument);
  RunAllows(f, {{2, 2, 1, true},
                {3, 2, 1, true},
                {4, 2, 1, true},
                {4, 1, 1, true},
                {4, 0, 1, false},
                {4, 0, 1, false},
                {9, 3, 3, true},
                {9, 0, 0, true}});
}

// TestLimiter_noTruncationErrors (golang.org/issue/34861): a fresh bucket at
// an awkward rate is full. token_bucket.h: "Starts full."
TEST(RateConformance, NoTruncationErrors) {
  FakeClock clock;
  TokenBucket bucket(
      {.rate = 0.7692307692307693, .capacity = 1, .clock = &clock});
  EXPECT_TRUE(bucket.TryAcquire());
}

// TestSimultaneousRequests: 15 concurrent takes from a bucket of 5 at a
// frozen instant: exactly 5 succeed. token_bucket.h: "For any two instants a
// <= b, the tokens granted ... number at most capacity + (b - a) / tick".
TEST(RateConformance, SimultaneousRequestsGetExactlyTheBurst) {
  FakeClock clock;
  TokenBucket bucket({.rate = 1, .capacity = 5, .clock = &clock});
  std::atomic<int> ok{0};
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < 15; ++i) {
      threads.emplace_back([&] {
        if (bucket.TryAcquire()) ok.fetch_add(1);
      });
    }
  }
  EXPECT_EQ(ok.load(), 5);
}

// TestLongRunningQPS, exactly: Go allows [0.999 * ideal, ideal + 1]; herd's
// "Exact arithmetic, in clock ticks" gives exactly 100 (the burst) + 499 (one
// per 10 ms, for requests at 0, 2, ..., 4998 ms).
TEST(RateConformance, LongRunningQpsIsExact) {
  FakeClock clock;
  TokenBucket bucket({.rate = 100, .capacity = 100, .clock = &clock});
  const Clock::time_point end = clock.Now() + seconds(5);
  int ok = 0;
  while (clock.Now() < end) {  // 2,500 steps of fake time
    if (bucket.TryAcquire()) ++ok;
    clock.Advance(milliseconds(2));
  }
  EXPECT_EQ(ok, 599);
}

// TestSimpleReserve. token_bucket.h: "every call is a reservation ... of
// tokens that exist now or will exist at a computed instant, the call's
// ready time; a waiter sleeps exactly until then, once".
TEST(RateConformance, SimpleReserve) {
  Fixture f(10, 2);
  EXPECT_TRUE(f.bucket.TryAcquire(2));  // t0, ready t0
  std::future<bool> a =
      f.Waiter([&] { return f.bucket.AcquireFor(2, hours(1)); }, 2);
  f.At(2);
  EXPECT_TRUE(a.get());
  f.At(3);
  std::future<bool> b = f.Waiter([&] { return f.bucket.Acquire(2, {}); }, 4);
  f.At(4);
  EXPECT_TRUE(b.get());
  EXPECT_EQ(f.clock.deadlines().size(), 2u);  // "once"
}

// TestMix. A call that must wait makes later calls queue behind it:
// token_bucket.h "later callers, TryAcquire included, queue behind every
// reservation"; Available(): "0 while reservations wait".
TEST(RateConformance, Mix) {
  Fixture f(10, 2);
  EXPECT_THROW(f.bucket.TryAcquire(3), std::invalid_argument);  // n > burst
  EXPECT_TRUE(f.bucket.TryAcquire(2));
  f.At(1);
  EXPECT_DOUBLE_EQ(f.bucket.Available(), 1);
  EXPECT_FALSE(f.bucket.TryAcquire(2));
  std::future<bool> r = f.Waiter([&] { return f.bucket.Acquire(2, {}); }, 2);
  EXPECT_DOUBLE_EQ(f.bucket.Available(), 0);
  EXPECT_FALSE(f.bucket.TryAcquire(1));
  EXPECT_FALSE(
      f.bucket.TryAcquire(0));  // "TryAcquire(0) is true iff none waits"
  f.At(2);
  EXPECT_TRUE(r.get());
  EXPECT_TRUE(f.bucket.TryAcquire(0));
  f.At(3);
  EXPECT_DOUBLE_EQ(f.bucket.Available(), 1);
  EXPECT_TRUE(f.bucket.TryAcquire(1));
}

// TestCancelLast. token_bucket.h: "A waiter whose stop token is stopped
// before its ready time cancels its reservation ... and returns false, having
// taken nothing"; "a cancelled reservation gives its tokens back ... when no
// live reservation queues behind it".
TEST(RateConformance, CancelLastGivesTheTokensBack) {
  Fixture f(10, 2);
  EXPECT_TRUE(f.bucket.TryAcquire(2));
  std::stop_source stop;
  std::future<bool> r =
      f.Waiter([&] { return f.bucket.Acquire(2, stop.get_token()); }, 2);
  f.At(1);
  stop.request_stop();
  EXPECT_FALSE(r.get());
  EXPECT_DOUBLE_EQ(f.bucket.Available(), 1);
  std::future<bool> again =
      f.Waiter([&] { return f.bucket.Acquire(2, {}); }, 2);
  f.At(2);
  EXPECT_TRUE(again.get());
}

// TestCancelTooLate. token_bucket.h, Acquire(n, stop): "A stop that races the
// ready time gives exactly one of the two outcomes"; a stop after the call
// returned true changes nothing.
TEST(RateConformance, CancelAfterTheGrantChangesNothing) {
  Fixture f(10, 2);
  EXPECT_TRUE(f.bucket.TryAcquire(2));
  std::stop_source stop;
  std::future<bool> r =
      f.Waiter([&] { return f.bucket.Acquire(2, stop.get_token()); }, 2);
  f.At(3);
  EXPECT_TRUE(r.get());
  stop.request_stop();  // too late: no effect
  std::future<bool> next = f.Waiter([&] { return f.bucket.Acquire(2, {}); }, 4);
  f.At(4);
  EXPECT_TRUE(next.get());
}

// TestCancel0Tokens. A cancelled reservation with a live one behind it
// returns nothing: token_bucket.h "they keep their ready times, and its
// tokens are lost to the bucket".
TEST(RateConformance, CancelWithALiveReservationBehindReturnsNothing) {
  Fixture f(10, 2);
  EXPECT_TRUE(f.bucket.TryAcquire(2));
  std::stop_source stop;
  std::future<bool> r =
      f.Waiter([&] { return f.bucket.Acquire(1, stop.get_token()); }, 1);
  std::future<bool> behind =
      f.Waiter([&] { return f.bucket.Acquire(1, {}); }, 2);
  stop.request_stop();
  EXPECT_FALSE(r.get());
  std::future<bool> next = f.Waiter([&] { return f.bucket.Acquire(1, {}); }, 3);
  f.At(3);
  EXPECT_TRUE(behind.get());
  EXPECT_TRUE(next.get());
}

// TestCancel1Token, where herd differs from Go on purpose. Go refunds one of
// the cancelled reservation's two tokens; token_bucket.h: "A cancelled
// reservation with live ones behind it returns nothing" (so that "At one
// instant ... at most capacity, cancellations included" holds).
TEST(RateConformance, CancelInTheMiddleRefundsNothingUnlikeGo) {
  Fixture f(10, 2);
  EXPECT_TRUE(f.bucket.TryAcquire(2));
  std::stop_source stop;
  std::future<bool> r =
      f.Waiter([&] { return f.bucket.Acquire(2, stop.get_token()); }, 2);
  std::future<bool> behind =
      f.Waiter([&] { return f.bucket.Acquire(1, {}); }, 3);
  f.At(1);
  stop.request_stop();
  EXPECT_FALSE(r.get());
  std::future<bool> next =
      f.Waiter([&] { return f.bucket.Acquire(2, {}); }, 5);  // Go: t4
  f.At(5);
  EXPECT_TRUE(behind.get());
  EXPECT_TRUE(next.get());
}

// TestCancelMulti. The last reservation cancelled refunds (back to the live
// one before it); one cancelled with a live one behind refunds nothing (Go
// refunds it as well). token_bucket.h: "then the tokens of every cancelled
// reservation between it and the live one before it come back too".
TEST(RateConformance, CancelMulti) {
  Fixture f(10, 4);
  EXPECT_TRUE(f.bucket.TryAcquire(4));
  std::stop_source stop_a, stop_c;
  std::future<bool> a =
      f.Waiter([&] { return f.bucket.Acquire(3, stop_a.get_token()); }, 3);
  std::future<bool> b = f.Waiter([&] { return f.bucket.Acquire(1, {}); }, 4);
  std::future<bool> c =
      f.Waiter([&] { return f.bucket.Acquire(1, stop_c.get_token()); }, 5);
  f.At(1);
  stop_c.request_stop();
  EXPECT_FALSE(c.get());
  stop_a.request_stop();
  EXPECT_FALSE(a.get());
  std::future<bool> next =
      f.Waiter([&] { return f.bucket.Acquire(3, {}); }, 7);  // Go: t5
  f.At(7);
  EXPECT_TRUE(b.get());
  EXPECT_TRUE(next.get());
}

// The capacity bound across a refund (the scenario that once granted 20
// tokens at one instant from a bucket of 10). token_bucket.h: "At one
// instant (a == b), at most capacity, cancellations included."
TEST(RateConformance, RefundNeverLetsTwoFullBurstsShareAnInstant) {
  Fixture f(1, 10);  // a token costs 1 s: t(10)
  EXPECT_TRUE(f.bucket.TryAcquire(10));
  std::stop_source stop1;
  std::future<bool> w1 =
      f.Waiter([&] { return f.bucket.Acquire(10, stop1.get_token()); }, 100);
  std::future<bool> w2 =
      f.Waiter([&] { return f.bucket.Acquire(10, {}); }, 200);
  stop1.request_stop();
  EXPECT_FALSE(w1.get());
  std::future<bool> newcomer =
      f.Waiter([&] { return f.bucket.Acquire(10, {}); }, 300);
  f.At(300);
  EXPECT_TRUE(w2.get());
  EXPECT_TRUE(newcomer.get());
}

// TestReserveMax, with the boundary exactly at the deadline. token_bucket.h,
// AcquireFor: "Takes n tokens if they will exist within timeout ... Returns
// false without taking anything if they will not (decided at once, without
// waiting out the timeout)".
TEST(RateConformance, ReserveMaxDecidesAtOnceAndIncludesTheBoundary) {
  Fixture f(10, 2);
  EXPECT_TRUE(f.bucket.AcquireFor(2, d));
  std::future<bool> close = f.Waiter([&] { return f.bucket.AcquireFor(1, d); },
                                     1);    // ready t1 == deadline: within
  EXPECT_FALSE(f.bucket.AcquireFor(1, d));  // ready t2: too far, at once
  EXPECT_FALSE(f.bucket.AcquireFor(1, d - nanoseconds(1)));
  EXPECT_EQ(f.clock.deadlines().size(), 1u);
  f.At(1);
  EXPECT_TRUE(close.get());
  // Nothing was taken by the refusals: the next token is at t2.
  std::future<bool> next =
      f.Waiter([&] { return f.bucket.AcquireFor(1, d); }, 2);
  f.At(2);
  EXPECT_TRUE(next.get());
}

// TestWaitSimple. token_bucket.h, Acquire(n, stop): "false means stop was
// stopped first (or already on entry) and nothing was taken"; n > capacity
// throws; tokens there now are taken without sleeping; later ones are slept
// for exactly.
TEST(RateConformance, WaitSimple) {
  Fixture f(10, 3);
  std::stop_source cancelled;
  cancelled.request_stop();
  EXPECT_FALSE(
      f.bucket.Acquire(1, cancelled.get_token()));  // already-cancelled
  EXPECT_FALSE(f.bucket.AcquireFor(1, hours(1), cancelled.get_token()));
  EXPECT_DOUBLE_EQ(f.bucket.Available(), 3);  // nothing taken
  EXPECT_THROW(f.bucket.Acquire(4, {}), std::invalid_argument);  // exceed-burst
  EXPECT_TRUE(f.bucket.Acquire(2, {}));                          // act-now
  EXPECT_EQ(f.clock.deadlines().size(), 0u);
  std::future<bool> later =
      f.Waiter([&] { return f.bucket.Acquire(3, {}); }, 2);  // act-later: 2 d
  f.At(2);
  EXPECT_TRUE(later.get());
}

// TestWaitCancel: a wait cancelled mid-sleep gives its tokens back.
// token_bucket.h: "cancels its reservation (Go's Reservation.Cancel) and
// returns false, having taken nothing".
TEST(RateConformance, WaitCancelledMidSleepGivesItsTokensBack) {
  Fixture f(10, 3);
  EXPECT_TRUE(f.bucket.Acquire(2, {}));  // one left
  std::stop_source stop;
  std::future<bool> w =
      f.Waiter([&] { return f.bucket.Acquire(3, stop.get_token()); }, 2);
  f.At(1);
  stop.request_stop();
  EXPECT_FALSE(w.get());
  EXPECT_DOUBLE_EQ(f.bucket.Available(), 2);
  EXPECT_TRUE(f.bucket.Acquire(2, {}));  // act-now-after-cancel
  EXPECT_EQ(f.clock.deadlines().size(), 1u);
}

// TestWaitTimeout. token_bucket.h, AcquireFor: false "if they will not
// [exist within timeout] (decided at once ...)".
TEST(RateConformance, WaitTimeoutShorterThanTheReadyTimeFailsAtOnce) {
  Fixture f(10, 3);
  EXPECT_TRUE(f.bucket.AcquireFor(2, d));
  EXPECT_FALSE(f.bucket.AcquireFor(3, d));
  EXPECT_EQ(f.clock.deadlines().size(), 0u);
  EXPECT_DOUBLE_EQ(f.bucket.Available(), 1);
}

// TestZeroLimit, TestTinyLimit, TestEvery: herd requires a positive rate, a
// token that costs at least one tick and a bucket that fills within 1e9 s;
// token_cost() is "round(1 s / rate) of clock time".
TEST(RateConformance, RatesAtTheEndsOfTheRange) {
  FakeClock clock;
  auto make = [&](double rate, std::int64_t capacity) {
    return TokenBucket({.rate = rate, .capacity = capacity, .clock = &clock});
  };
  EXPECT_THROW(make(0, 1), std::invalid_argument);      // Go: Limit(0)
  EXPECT_THROW(make(1e-10, 1), std::invalid_argument);  // 1e10 s per token
  EXPECT_THROW(make(std::numeric_limits<double>::infinity(), 1),
               std::invalid_argument);  // Go: Inf
  EXPECT_THROW(make(2.1e9, 1), std::invalid_argument);
  EXPECT_EQ(make(2e9, 1).token_cost(), nanoseconds(1));
  EXPECT_EQ(make(1e9, 1).token_cost(), nanoseconds(1));
  EXPECT_EQ(make(1e6, 1).token_cost(), std::chrono::microseconds(1));
  EXPECT_EQ(make(10, 1).token_cost(), milliseconds(100));
  EXPECT_EQ(make(0.4, 1).token_cost(), milliseconds(2500));
  EXPECT_EQ(make(3, 1).token_cost(), nanoseconds(333'333'333));
  EXPECT_EQ(make(1, 1'000'000'000).capacity(), 1'000'000'000);
  EXPECT_THROW(make(1, 1'000'000'001), std::invalid_argument);
}

// token_bucket.h: "AcquireFor(n, duration::max()) (any timeout past the
// clock's range) waits as long as it takes"; "Negative or NaN timeouts are
// rejected"; AcquireUntil: "time_point::max(): no limit".
TEST(RateConformance, AcquireForAtTheEndsOfTime) {
  Fixture f(10, 1);
  EXPECT_TRUE(f.bucket.TryAcquire());
  std::future<bool> a =
      f.Waiter([&] { return f.bucket.AcquireFor(1, nanoseconds::max()); }, 1);
  std::future<bool> b =
      f.Waiter([&] { return f.bucket.AcquireFor(1, hours::max()); }, 2);
  std::future<bool> c = f.Waiter(
      [&] { return f.bucket.AcquireUntil(1, Clock::time_point::max()); }, 3);
  f.At(3);
  EXPECT_TRUE(a.get());
  EXPECT_TRUE(b.get());
  EXPECT_TRUE(c.get());
  EXPECT_THROW(f.bucket.AcquireFor(1, nanoseconds(-1)), std::invalid_argument);
  EXPECT_THROW(
      f.bucket.AcquireFor(1, std::chrono::duration<double>(
                                 std::numeric_limits<double>::quiet_NaN())),
      std::invalid_argument);
  EXPECT_TRUE(f.bucket.AcquireFor(0, nanoseconds(0)));
}

// Go's reserveN(t, n, maxFutureReserve) judges "tokens there now" and the
// deadline at one instant t; on a clock that moves between two readings the
// same must hold. token_bucket.h: "AcquireFor(n, 0) succeeds iff the tokens
// are there now" (here on the steady clock, whose time moves on between
// AcquireFor's reading of it and the bucket's); AcquireUntil with a deadline
// already past takes only tokens that are there now.
TEST(RateConformance, ZeroTimeoutTakesTokensThatAreThereOnAMovingClock) {
  TokenBucket full({.rate = 1, .capacity = 2});
  EXPECT_TRUE(full.AcquireFor(1, nanoseconds(0)));
  EXPECT_TRUE(full.AcquireFor(1, nanoseconds(10)));
  EXPECT_FALSE(full.AcquireFor(1, nanoseconds(0)));  // the next is 1 s away
  TokenBucket past({.rate = 1, .capacity = 2});
  EXPECT_TRUE(past.AcquireUntil(1, Clock::Steady().Now() - hours(1)));
  EXPECT_TRUE(past.AcquireUntil(1, Clock::time_point::min()));
  EXPECT_FALSE(past.AcquireUntil(1, Clock::time_point::min()));
}

// Polly: "Given_bucket_capacity_one_and_time_not_advanced_ratelimiter_
// specifies_correct_wait_until_next_execution" (for 1, 2 and 5 s per token):
// the wait is exactly one token's cost.
TEST(RateConformance, CapacityOneWaitsExactlyOneInterval) {
  for (int per : {1, 2, 5}) {
    FakeClock fake;
    RecordingClock clock(fake);
    TokenBucket bucket({.rate = 1.0 / per, .capacity = 1, .clock = &clock});
    EXPECT_TRUE(bucket.TryAcquire());
    EXPECT_FALSE(bucket.TryAcquire());
    std::future<bool> w =
        std::async(std::launch::async, [&] { return bucket.Acquire(1, {}); });
    EXPECT_EQ(clock.AwaitSleep(1) - fake.Now(), seconds(per));
    fake.Advance(seconds(per));
    EXPECT_TRUE(w.get());
  }
}

// Polly: "..._permits_executions_up_to_bucket_capacity" and "..._permits_
// another_execution_per_interval": exactly capacity at once, then exactly
// one per interval, not a tick earlier.
TEST(RateConformance, BurstThenOnePerInterval) {
  for (std::int64_t capacity : {1, 2, 5, 100}) {
    FakeClock clock;
    TokenBucket bucket({.rate = 2, .capacity = capacity, .clock = &clock});
    for (std::int64_t i = 0; i < capacity; ++i)
      EXPECT_TRUE(bucket.TryAcquire());
    EXPECT_FALSE(bucket.TryAcquire());
    for (int i = 0; i < 5; ++i) {
      clock.Advance(milliseconds(500) - nanoseconds(1));
      EXPECT_FALSE(bucket.TryAcquire()) << "capacity " << capacity;
      clock.Advance(nanoseconds(1));
      EXPECT_TRUE(bucket.TryAcquire()) << "capacity " << capacity;
      EXPECT_FALSE(bucket.TryAcquire()) << "capacity " << capacity;
    }
  }
}

// Polly: "..._permits_full_bucket_burst_after_exact_elapsed_time", "..._half_
// full_bucket_burst_after_half_required_refill_time_elapsed" and "..._only_
// full_bucket_burst_even_if_multiple_required_refill_time_elapsed".
TEST(RateConformance, RefillIsExactAndCappedAtCapacity) {
  for (std::int64_t capacity : {2, 4, 10}) {
    FakeClock clock;
    TokenBucket bucket({.rate = 1, .capacity = capacity, .clock = &clock});
    ASSERT_TRUE(bucket.TryAcquire(capacity));
    clock.Advance(seconds(capacity / 2));
    EXPECT_DOUBLE_EQ(bucket.Available(), static_cast<double>(capacity / 2));
    EXPECT_FALSE(bucket.TryAcquire(capacity / 2 + 1));
    EXPECT_TRUE(bucket.TryAcquire(capacity / 2));
    clock.Advance(seconds(capacity));
    EXPECT_TRUE(bucket.TryAcquire(capacity));
    clock.Advance(seconds(capacity) * 3);
    EXPECT_DOUBLE_EQ(bucket.Available(), static_cast<double>(capacity));
    EXPECT_TRUE(bucket.TryAcquire(capacity));
    EXPECT_FALSE(bucket.TryAcquire(1));
  }
}

// Polly: "Given_immediate_parallel_contention_ratelimiter_still_only_permits_
// one".
TEST(RateConformance, ParallelContentionPermitsOne) {
  for (int contention : {2, 5, 16}) {
    FakeClock clock;
    TokenBucket bucket({.rate = 1, .capacity = 1, .clock = &clock});
    std::atomic<int> ok{0};
    {
      std::vector<std::jthread> threads;
      for (int i = 0; i < contention; ++i) {
        threads.emplace_back([&] {
          if (bucket.TryAcquire()) ok.fetch_add(1);
        });
      }
    }
    EXPECT_EQ(ok.load(), 1) << contention << " threads";
  }
}

// resilience4j AtomicRateLimiterTest.rejectedByTimeoutNonBlocking and
// waitingThreadIsInterrupted: a zero wait is refused without waiting; a
// waiter stopped mid-wait gets false and its successor keeps its place.
TEST(RateConformance, ZeroWaitRefusesAndAStoppedWaiterTakesNothing) {
  Fixture f(10, 1);
  EXPECT_TRUE(f.bucket.TryAcquire());
  EXPECT_FALSE(f.bucket.AcquireFor(1, nanoseconds(0)));
  std::stop_source stop;
  std::future<bool> w =
      f.Waiter([&] { return f.bucket.Acquire(1, stop.get_token()); }, 1);
  stop.request_stop();
  EXPECT_FALSE(w.get());
  // Refunded (it was the last): the next caller waits for the same t1.
  std::future<bool> next = f.Waiter([&] { return f.bucket.Acquire(1, {}); }, 1);
  f.At(1);
  EXPECT_TRUE(next.get());
}

// token_bucket.h, WithRateLimit: "If the stop token is stopped before the
// token is granted ... it throws herd::Cancelled without running loader";
// otherwise it takes a token, waiting for it, and then runs the loader.
TEST(RateConformance, WithRateLimitWaitsForATokenOrIsCancelled) {
  Fixture f(10, 1);
  std::atomic<int> runs{0};
  auto limited = WithRateLimit(f.bucket, [&] { return ++runs; });
  std::stop_source stopped;
  stopped.request_stop();
  EXPECT_THROW(limited(stopped.get_token()), Cancelled);
  EXPECT_EQ(runs.load(), 0);
  EXPECT_DOUBLE_EQ(f.bucket.Available(), 1);  // nothing taken
  EXPECT_EQ(limited(std::stop_token()), 1);
  std::future<int> later = std::async(
      std::launch::async, [&] { return limited(std::stop_token()); });
  EXPECT_EQ(f.clock.AwaitSleep(1), f.t(1));
  EXPECT_EQ(runs.load(), 1);  // not before its token exists
  f.At(1);
  EXPECT_EQ(later.get(), 2);
}

}  // namespace
}  // namespace herd
