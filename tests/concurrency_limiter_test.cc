// Copyright 2026 The herd Authors.
//
// Tests herd/concurrency_limiter.h: at most max permits, first-come-first-
// served handoff to queued calls, "nullopt iff stopped first" with the stop
// before, after and racing a release, the ends of the timeouts, WithLimit.
// Each test's name states the contract it checks; a comment quotes the
// header where the name cannot say it all.

#include "herd/concurrency_limiter.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <future>
#include <latch>
#include <limits>
#include <optional>
#include <ratio>
#include <stdexcept>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "herd/errors.h"
#include "tests/testing/sync.h"

namespace herd {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;

TEST(ConcurrencyLimiter, RejectsBadMax) {
  EXPECT_THROW(ConcurrencyLimiter(0), std::invalid_argument);
  EXPECT_THROW(ConcurrencyLimiter(-1), std::invalid_argument);
  EXPECT_THROW(ConcurrencyLimiter(ConcurrencyLimiter::kMaxLimit + 1),
               std::invalid_argument);
  EXPECT_EQ(ConcurrencyLimiter(ConcurrencyLimiter::kMaxLimit).max(),
            ConcurrencyLimiter::kMaxLimit);
}

TEST(ConcurrencyLimiter, TryAcquireGrantsAtMostMax) {
  ConcurrencyLimiter limiter(2);
  auto a = limiter.TryAcquire();
  auto b = limiter.TryAcquire();
  ASSERT_TRUE(a && *a);
  ASSERT_TRUE(b && *b);
  EXPECT_FALSE(limiter.TryAcquire().has_value());
  a.reset();  // destroying the permit returns it
  auto c = limiter.TryAcquire();
  EXPECT_TRUE(c.has_value());
  EXPECT_FALSE(limiter.TryAcquire().has_value());
}

TEST(ConcurrencyLimiter, PermitMovesAndReleasesOnce) {
  ConcurrencyLimiter limiter(1);
  ConcurrencyLimiter::Permit p = limiter.Acquire();
  ConcurrencyLimiter::Permit q = std::move(p);
  EXPECT_FALSE(p);  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_TRUE(q);
  p.Release();  // no-op
  EXPECT_FALSE(limiter.TryAcquire().has_value());
  q.Release();
  EXPECT_FALSE(q);
  q.Release();  // releasing twice returns one permit only
  auto r = limiter.TryAcquire();
  EXPECT_TRUE(r.has_value());
  EXPECT_FALSE(limiter.TryAcquire().has_value());
}

TEST(ConcurrencyLimiter, MoveAssignmentReturnsTheOverwrittenPermit) {
  ConcurrencyLimiter limiter(2);
  ConcurrencyLimiter::Permit a = limiter.Acquire();
  ConcurrencyLimiter::Permit b = limiter.Acquire();
  a = std::move(b);  // a's old permit goes back
  auto c = limiter.TryAcquire();
  EXPECT_TRUE(c.has_value());
  EXPECT_FALSE(limiter.TryAcquire().has_value());
}

TEST(ConcurrencyLimiter, AcquireBlocksUntilAPermitIsReturned) {
  ConcurrencyLimiter limiter(1);
  ConcurrencyLimiter::Permit held = limiter.Acquire();
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    ConcurrencyLimiter::Permit p = limiter.Acquire();
    got = true;
  });
  EXPECT_FALSE(got.load());  // cannot have a permit while we hold the only one
  held.Release();
  waiter.join();
  EXPECT_TRUE(got.load());
}

TEST(ConcurrencyLimiter, TryAcquireForTimesOutOrSucceeds) {
  ConcurrencyLimiter limiter(1);
  ConcurrencyLimiter::Permit held = limiter.Acquire();
  // Real time, kept tiny: no permit can appear, so this must time out.
  EXPECT_FALSE(limiter.TryAcquireFor(milliseconds(1)).has_value());
  std::thread waiter(
      [&] { EXPECT_TRUE(limiter.TryAcquireFor(hours(1)).has_value()); });
  held.Release();
  waiter.join();
}

TEST(ConcurrencyLimiter, WithLimitRunsAtMostMaxLoadersAtOnce) {
  constexpr int kMax = 2, kCallers = 6;
  ConcurrencyLimiter limiter(kMax);
  std::atomic<int> in_flight{0}, max_in_flight{0}, ran{0};
  std::latch full(kMax);  // kMax loaders are inside
  std::latch gate(1);     // lets the loaders finish
  auto loader = WithLimit(limiter, [&] {
    int now = ++in_flight;
    int seen = max_in_flight.load();
    while (now > seen && !max_in_flight.compare_exchange_weak(seen, now)) {
    }
    if (ran.fetch_add(1) < kMax) full.count_down();
    gate.wait();
    --in_flight;
    return 1;
  });
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&] { EXPECT_EQ(loader(std::stop_token()), 1); });
  }
  full.wait();
  EXPECT_FALSE(limiter.TryAcquire().has_value());  // both permits in use
  EXPECT_EQ(ran.load(), kMax);
  gate.count_down();
  for (auto& t : callers) t.join();
  EXPECT_EQ(ran.load(), kCallers);
  EXPECT_EQ(max_in_flight.load(), kMax);
}

TEST(ConcurrencyLimiter, WithLimitReturnsPermitWhenLoaderThrows) {
  ConcurrencyLimiter limiter(1);
  auto loader =
      WithLimit(limiter, []() -> int { throw std::runtime_error("boom"); });
  EXPECT_THROW(loader(std::stop_token()), std::runtime_error);
  EXPECT_TRUE(limiter.TryAcquire().has_value());
}

TEST(ConcurrencyLimiter, WithLimitMaxWaitThrowsLimitExceeded) {
  ConcurrencyLimiter limiter(1);
  auto held = limiter.TryAcquire();
  bool ran = false;
  auto loader = WithLimit(limiter, std::chrono::steady_clock::duration::zero(),
                          [&](std::stop_token) { ran = true; });
  EXPECT_THROW(loader(std::stop_token()), LimitExceeded);
  EXPECT_FALSE(ran);
  held.reset();
  loader(std::stop_token());
  EXPECT_TRUE(ran);
  EXPECT_THROW(WithLimit(limiter, -milliseconds(1), [] { return 0; }),
               std::invalid_argument);
}

TEST(ConcurrencyLimiter, AcquireWithStopTokenGivesUpWhenStopped) {
  ConcurrencyLimiter limiter(1);
  ConcurrencyLimiter::Permit held = limiter.Acquire();
  std::stop_source stop;
  std::thread waiter(
      [&] { EXPECT_FALSE(limiter.Acquire(stop.get_token()).has_value()); });
  stop.request_stop();  // before or during its wait: either way it gives up
  waiter.join();
  held.Release();
  EXPECT_TRUE(limiter.TryAcquire().has_value());  // nothing was leaked
}

TEST(ConcurrencyLimiter, AcquireWithStopTokenGetsAReturnedPermit) {
  ConcurrencyLimiter limiter(1);
  ConcurrencyLimiter::Permit held = limiter.Acquire();
  std::stop_source stop;
  std::thread waiter(
      [&] { EXPECT_TRUE(limiter.Acquire(stop.get_token()).has_value()); });
  held.Release();
  waiter.join();
}

TEST(ConcurrencyLimiter, TryAcquireForWithTokenTimesOutOrIsStopped) {
  ConcurrencyLimiter limiter(1);
  ConcurrencyLimiter::Permit held = limiter.Acquire();
  std::stop_source stop;
  EXPECT_FALSE(
      limiter.TryAcquireFor(milliseconds(1), stop.get_token()).has_value());
  std::thread waiter([&] {
    EXPECT_FALSE(limiter.TryAcquireFor(hours(1), stop.get_token()).has_value());
  });
  stop.request_stop();
  waiter.join();
}

TEST(ConcurrencyLimiter, WithLimitThrowsCancelledWhenStoppedWhileWaiting) {
  ConcurrencyLimiter limiter(1);
  ConcurrencyLimiter::Permit held = limiter.Acquire();
  bool ran = false;
  auto loader = WithLimit(limiter, [&] { ran = true; });
  std::stop_source stop;
  std::thread caller(
      [&] { EXPECT_THROW(loader(stop.get_token()), Cancelled); });
  stop.request_stop();
  caller.join();
  EXPECT_FALSE(ran);
}

// Runs limiter.Acquire(stop) on its own thread; the future holds whether it
// got a permit (which the thread then returns at once).
struct Waiter {
  std::future<bool> got;
  std::jthread thread;
};
Waiter StartWaiter(ConcurrencyLimiter& limiter, std::stop_token stop,
                   std::latch* hold = nullptr) {
  std::promise<bool> promise;
  Waiter w{promise.get_future(), {}};
  w.thread = std::jthread([&limiter, stop, hold,
                           promise = std::move(promise)]() mutable {
    std::optional<ConcurrencyLimiter::Permit> permit = limiter.Acquire(stop);
    promise.set_value(permit.has_value());
    if (hold != nullptr) hold->wait();  // keep the permit until told
  });
  return w;
}

void AwaitWaiting(const ConcurrencyLimiter& limiter, std::ptrdiff_t n) {
  test::AwaitCondition([&] { return limiter.waiting() == n; });
}

constexpr int kRounds = 200;

// concurrency_limiter.h: "a waiter whose token is stopped before a permit is
// returned never receives that permit, which goes to the next waiter or
// becomes free". Exactly, every round.
TEST(ConcurrencyLimiter, WaiterStoppedBeforeAReleaseNeverGetsThatPermit) {
  for (int round = 0; round < kRounds; ++round) {
    ConcurrencyLimiter limiter(1);
    std::optional<ConcurrencyLimiter::Permit> held = limiter.TryAcquire();
    std::stop_source stop;
    Waiter w = StartWaiter(limiter, stop.get_token());
    AwaitWaiting(limiter, 1);
    stop.request_stop();
    EXPECT_EQ(limiter.waiting(), 0);  // left the queue inside request_stop()
    held.reset();
    ASSERT_FALSE(w.got.get()) << "round " << round;
    EXPECT_TRUE(limiter.TryAcquire().has_value());
  }
}

// concurrency_limiter.h: "a waiter handed a permit before its token is
// stopped keeps it."
TEST(ConcurrencyLimiter, WaiterHandedAPermitBeforeTheStopKeepsIt) {
  for (int round = 0; round < kRounds; ++round) {
    ConcurrencyLimiter limiter(1);
    std::optional<ConcurrencyLimiter::Permit> held = limiter.TryAcquire();
    std::stop_source stop;
    std::latch hold(1);
    Waiter w = StartWaiter(limiter, stop.get_token(), &hold);
    AwaitWaiting(limiter, 1);
    held.reset();  // handed to the waiter at once
    stop.request_stop();
    EXPECT_FALSE(limiter.TryAcquire().has_value());
    ASSERT_TRUE(w.got.get()) << "round " << round;
    hold.count_down();
  }
}

// concurrency_limiter.h: "Only a stop and a release that truly race ... can
// go either way, and exactly one of the two outcomes happens": the waiter
// has the permit, or the permit is free. Never both, never neither.
TEST(ConcurrencyLimiter, StopRacingAReleaseHasExactlyOneOutcome) {
  int got = 0;
  for (int round = 0; round < kRounds; ++round) {
    ConcurrencyLimiter limiter(1);
    std::optional<ConcurrencyLimiter::Permit> held = limiter.TryAcquire();
    std::stop_source stop;
    std::latch hold(1);
    Waiter w = StartWaiter(limiter, stop.get_token(), &hold);
    AwaitWaiting(limiter, 1);
    std::latch go(2);
    {
      std::jthread stopper([&] {
        go.arrive_and_wait();
        stop.request_stop();
      });
      go.arrive_and_wait();
      held.reset();
    }
    const bool waiter_got = w.got.get();
    got += waiter_got ? 1 : 0;
    EXPECT_EQ(limiter.TryAcquire().has_value(), !waiter_got) << round;
    hold.count_down();
  }
  std::printf("waiter won %d of %d races\n", got, kRounds);
}

// concurrency_limiter.h: "A returned permit goes to the longest-waiting
// queued call, at the instant it is returned (a handoff: nobody can take it
// in between)".
TEST(ConcurrencyLimiter, ReturnedPermitGoesToTheLongestWaiter) {
  ConcurrencyLimiter limiter(1);
  std::optional<ConcurrencyLimiter::Permit> held = limiter.TryAcquire();
  std::latch hold_first(1), hold_second(1);
  Waiter first = StartWaiter(limiter, std::stop_token(), &hold_first);
  AwaitWaiting(limiter, 1);
  Waiter second = StartWaiter(limiter, std::stop_token(), &hold_second);
  AwaitWaiting(limiter, 2);
  held.reset();
  EXPECT_FALSE(limiter.TryAcquire().has_value());  // handed off, not free
  EXPECT_TRUE(first.got.get());
  EXPECT_EQ(limiter.waiting(), 1);
  hold_first.count_down();
  EXPECT_TRUE(second.got.get());
  EXPECT_FALSE(limiter.TryAcquire().has_value());
  hold_second.count_down();
}

// concurrency_limiter.h: TryAcquireFor(): "Zero: only a permit that is free
// now; duration::max() (any timeout past the clock's range): no limit.
// Negative or NaN: rejected." Both overloads.
TEST(ConcurrencyLimiter, TryAcquireForZeroAndDurationMax) {
  ConcurrencyLimiter limiter(1);
  std::stop_source never;
  EXPECT_TRUE(limiter.TryAcquireFor(hours::zero()).has_value());
  EXPECT_TRUE(limiter.TryAcquireFor(hours::zero(), never.get_token()));
  std::optional<ConcurrencyLimiter::Permit> held = limiter.TryAcquire();
  EXPECT_FALSE(limiter.TryAcquireFor(hours::zero()).has_value());
  EXPECT_FALSE(limiter.TryAcquireFor(hours::zero(), never.get_token()));
  EXPECT_EQ(limiter.waiting(), 0);  // zero never queues
  EXPECT_THROW(limiter.TryAcquireFor(-milliseconds(1)), std::invalid_argument);
  EXPECT_THROW(
      limiter.TryAcquireFor(std::chrono::duration<double>(std::nan("")),
                            never.get_token()),
      std::invalid_argument);
  for (int way = 0; way < 4; ++way) {
    std::promise<bool> promise;
    std::future<bool> got = promise.get_future();
    std::jthread waiter([&] {
      std::optional<ConcurrencyLimiter::Permit> p;
      switch (way) {
        case 0:
          p = limiter.TryAcquireFor(std::chrono::nanoseconds::max());
          break;
        case 1:
          p = limiter.TryAcquireFor(hours::max());
          break;
        case 2:
          p = limiter.TryAcquireFor(std::chrono::nanoseconds::max(),
                                    never.get_token());
          break;
        case 3:
          p = limiter.TryAcquireFor(hours::max(), never.get_token());
          break;
      }
      promise.set_value(p.has_value());
    });
    AwaitWaiting(limiter, 1);  // queued, not timed out
    held.reset();
    EXPECT_TRUE(got.get()) << "way " << way;
    waiter.join();
    held = limiter.TryAcquire();
    ASSERT_TRUE(held.has_value());
  }
}

// concurrency_limiter.h: WithLimit(): "a loader whose token is stopped by
// the time it holds a permit does not run" and, from the limiter, a stop
// before the release: the cancelled loader never runs, every round.
TEST(ConcurrencyLimiter, WithLimitCancelledLoaderNeverRuns) {
  for (int round = 0; round < kRounds; ++round) {
    ConcurrencyLimiter limiter(1);
    std::optional<ConcurrencyLimiter::Permit> held = limiter.TryAcquire();
    std::atomic<bool> ran{false};
    auto loader = WithLimit(limiter, [&] { ran = true; });
    std::stop_source stop;
    std::jthread caller(
        [&] { EXPECT_THROW(loader(stop.get_token()), Cancelled); });
    AwaitWaiting(limiter, 1);
    stop.request_stop();
    held.reset();
    caller.join();
    ASSERT_FALSE(ran.load()) << "round " << round;
    EXPECT_TRUE(limiter.TryAcquire().has_value());
  }
}

// concurrency_limiter.h: WithLimit(max_wait): "zero: only if one is free
// now; duration::max(), or any wait past the clock's range: no limit".
TEST(ConcurrencyLimiter, WithLimitMaxWaitZeroAndDurationMax) {
  ConcurrencyLimiter limiter(1);
  std::optional<ConcurrencyLimiter::Permit> held = limiter.TryAcquire();
  auto zero = WithLimit(limiter, hours::zero(), [] { return 1; });
  EXPECT_THROW(zero(std::stop_token()), LimitExceeded);
  EXPECT_EQ(limiter.waiting(), 0);
  for (auto max_wait : {std::chrono::duration<double, std::ratio<3600>>(
                            std::numeric_limits<double>::infinity()),
                        std::chrono::duration<double, std::ratio<3600>>(
                            static_cast<double>(hours::max().count()))}) {
    auto unlimited = WithLimit(limiter, max_wait, [] { return 2; });
    std::promise<int> promise;
    std::future<int> result = promise.get_future();
    std::jthread caller(
        [&] { promise.set_value(unlimited(std::stop_token())); });
    AwaitWaiting(limiter, 1);
    held.reset();
    EXPECT_EQ(result.get(), 2);
    caller.join();
    held = limiter.TryAcquire();
  }
  auto nanos =
      WithLimit(limiter, std::chrono::nanoseconds::max(), [] { return 3; });
  std::jthread caller([&] { EXPECT_EQ(nanos(std::stop_token()), 3); });
  AwaitWaiting(limiter, 1);
  held.reset();
  caller.join();
  EXPECT_THROW(WithLimit(limiter, std::chrono::duration<double>(std::nan("")),
                         [] { return 0; }),
               std::invalid_argument);
  EXPECT_THROW(WithLimit(limiter, std::function<int()>()),
               std::invalid_argument);
}

// Every way of waiting at once, on two permits: never more than two holders,
// no waiter left behind (a lost wakeup would hang this test), no permit
// leaked.
TEST(ConcurrencyLimiter, MixedWaitersNeverExceedMaxAndLoseNoWakeup) {
  constexpr int kMax = 2, kThreads = 4, kOps = 2000;
  ConcurrencyLimiter limiter(kMax);
  std::atomic<int> holders{0}, max_holders{0};
  std::stop_source never;  // a stoppable token that is never stopped
  auto hold = [&](ConcurrencyLimiter::Permit permit) {
    int now = ++holders;
    int seen = max_holders.load();
    while (now > seen && !max_holders.compare_exchange_weak(seen, now)) {
    }
    --holders;
    permit.Release();
  };
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kOps; ++i) {
          switch ((i + t) % 4) {
            case 0:
              hold(limiter.Acquire());
              break;
            case 1:
              hold(*limiter.Acquire(never.get_token()));
              break;
            case 2:
              if (auto p = limiter.TryAcquire()) hold(std::move(*p));
              break;
            case 3:
              if (auto p = limiter.TryAcquireFor(hours(1), never.get_token())) {
                hold(std::move(*p));
              } else {
                ADD_FAILURE() << "an hour passed?";
              }
              break;
          }
        }
      });
    }
  }
  EXPECT_LE(max_holders.load(), kMax);
  auto a = limiter.TryAcquire(), b = limiter.TryAcquire();
  EXPECT_TRUE(a.has_value() && b.has_value());
  EXPECT_FALSE(limiter.TryAcquire().has_value());
}

}  // namespace
}  // namespace herd
