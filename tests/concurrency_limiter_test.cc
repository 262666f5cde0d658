// Copyright 2026 The herd Authors.

#include "herd/concurrency_limiter.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <latch>
#include <stdexcept>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "herd/errors.h"

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
