// Copyright 2026 The herd Authors.
//
// Go's golang.org/x/sync/semaphore tests (semaphore_test.go), resilience4j's
// bulkhead tests (SemaphoreBulkheadTest, BulkheadTest) and Polly's bulkhead
// specs (BulkheadSpecsBase), restated against herd/concurrency_limiter.h.
// herd's limiter is Go's Weighted with every weight 1, a stop token for the
// context, and a queue with no bound (so Polly's queue-full rejections have
// no counterpart). Public headers only.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <future>
#include <limits>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "herd/concurrency_limiter.h"
#include "herd/errors.h"
#include "tests/conformance/conformance.h"

namespace herd {
namespace {

using conformance::Await;
using conformance::Payload;
using Permit = ConcurrencyLimiter::Permit;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

// Runs `call`, an acquisition that must queue, on a thread of its own, and
// returns once `limiter` counts one more queued call (concurrency_limiter.h:
// waiting() is how "a test learns ... that a thread it started is
// waiting").
template <class Call>
auto Queued(const ConcurrencyLimiter& limiter, Call call) {
  const std::ptrdiff_t before = limiter.waiting();
  auto queued = std::async(std::launch::async, call);
  EXPECT_TRUE(Await([&] { return limiter.waiting() == before + 1; }));
  return queued;
}

// Blocks until `limiter` has `n` queued calls.
[[nodiscard]] bool AwaitWaiting(const ConcurrencyLimiter& limiter,
                                std::ptrdiff_t n) {
  return Await([&] { return limiter.waiting() == n; });
}

// TestWeightedTryAcquire. concurrency_limiter.h, TryAcquire(): "Returns a
// permit iff one is free now. Never blocks".
TEST(SemaphoreConformance, TryAcquire) {
  ConcurrencyLimiter sem(2);
  std::vector<bool> tries;
  Permit held = sem.Acquire();
  std::optional<Permit> second = sem.TryAcquire();
  tries.push_back(second.has_value());
  tries.push_back(sem.TryAcquire().has_value());
  held.Release();
  second.reset();
  std::optional<Permit> third = sem.TryAcquire();
  tries.push_back(third.has_value());
  Permit fourth = sem.Acquire();
  tries.push_back(sem.TryAcquire().has_value());
  EXPECT_EQ(tries, (std::vector<bool>{true, false, true, false}));
}

// TestWeightedAcquire, with a 10 ms timeout for Go's 10 ms context.
// concurrency_limiter.h, TryAcquireFor: "giving up after timeout of real
// time".
TEST(SemaphoreConformance, AcquireWithTimeout) {
  ConcurrencyLimiter sem(2);
  auto try_acquire = [&] {
    const auto start = steady_clock::now();
    std::optional<Permit> p = sem.TryAcquireFor(milliseconds(10));
    if (!p) {
      EXPECT_GE(steady_clock::now() - start, milliseconds(10));
    }
    return p;
  };
  std::vector<bool> tries;
  Permit held = sem.Acquire();
  std::optional<Permit> second = try_acquire();
  tries.push_back(second.has_value());
  tries.push_back(try_acquire().has_value());
  held.Release();
  second.reset();
  std::optional<Permit> third = try_acquire();
  tries.push_back(third.has_value());
  Permit fourth = sem.Acquire();
  tries.push_back(try_acquire().has_value());
  EXPECT_EQ(tries, (std::vector<bool>{true, false, true, false}));
}

// TestWeightedAcquireCanceled (go.dev/issue/63615): a stop that comes before
// the permit is returned wins, and the permit is not lost; a token already
// stopped gets nothing even when a permit is free. concurrency_limiter.h: "a
// waiter whose token is stopped before a permit is returned never receives
// that permit, which goes to the next waiter or becomes free"; "A token
// already stopped on entry gets nullopt even when a permit is free".
TEST(SemaphoreConformance, StopBeforeReleaseWinsAndThePermitIsNotLost) {
  ConcurrencyLimiter sem(1);
  std::optional<Permit> held = sem.Acquire();
  std::stop_source stop;
  std::future<std::optional<Permit>> waiter =
      Queued(sem, [&] { return sem.Acquire(stop.get_token()); });
  stop.request_stop();
  held.reset();  // returned after the stop
  EXPECT_FALSE(waiter.get().has_value());
  EXPECT_TRUE(sem.TryAcquire().has_value());
  EXPECT_FALSE(sem.Acquire(stop.get_token()).has_value());
  EXPECT_FALSE(sem.TryAcquireFor(seconds(1), stop.get_token()).has_value());
  EXPECT_TRUE(sem.TryAcquire().has_value());
}

// The same race the other way round: concurrency_limiter.h "a waiter handed
// a permit before its token is stopped keeps it".
TEST(SemaphoreConformance, ReleaseBeforeStopKeepsThePermit) {
  ConcurrencyLimiter sem(1);
  std::optional<Permit> held = sem.Acquire();
  std::stop_source stop;
  std::future<std::optional<Permit>> waiter =
      Queued(sem, [&] { return sem.Acquire(stop.get_token()); });
  held.reset();
  ASSERT_TRUE(AwaitWaiting(sem, 0));  // handed off (the queue is empty)
  stop.request_stop();
  std::optional<Permit> got = waiter.get();
  EXPECT_TRUE(got.has_value());
  EXPECT_FALSE(sem.TryAcquire().has_value());
}

// TestAllocCancelDoesntStarve: cancelling the waiter at the head of the
// queue lets the one behind it through.
TEST(SemaphoreConformance, CancelledHeadDoesNotStarveTheNextWaiter) {
  ConcurrencyLimiter sem(1);
  std::optional<Permit> held = sem.Acquire();
  std::stop_source stop;
  std::future<std::optional<Permit>> head =
      Queued(sem, [&] { return sem.Acquire(stop.get_token()); });
  std::future<Permit> next = Queued(sem, [&] { return sem.Acquire(); });
  std::jthread canceller([&] { stop.request_stop(); });
  held.reset();
  canceller.join();
  std::optional<Permit> h = head.get();
  if (h) h->Release();  // the release came first: it was the head's
  Permit n = next.get();
  EXPECT_TRUE(n);
}

// TestLargeAcquireDoesntStarve, as herd states it: concurrency_limiter.h "A
// returned permit goes to the longest-waiting queued call, at the instant it
// is returned (a handoff: nobody can take it in between)".
TEST(SemaphoreConformance, PermitsAreHandedOffInArrivalOrder) {
  ConcurrencyLimiter sem(1);
  std::optional<Permit> held = sem.Acquire();
  std::future<Permit> first = Queued(sem, [&] { return sem.Acquire(); });
  std::future<Permit> second = Queued(sem, [&] { return sem.Acquire(); });
  held.reset();
  EXPECT_FALSE(sem.TryAcquire().has_value());  // the newcomer gets nothing
  Permit p1 = first.get();
  EXPECT_EQ(sem.waiting(), 1);
  EXPECT_EQ(second.wait_for(seconds(0)), std::future_status::timeout);
  p1.Release();
  Permit p2 = second.get();
  EXPECT_TRUE(p2);
  EXPECT_FALSE(sem.TryAcquire().has_value());
}

// TestWeighted (the hammer), with weight 1 and exact counts: never more than
// max holders at once, and every acquisition happens.
TEST(SemaphoreConformance, HammerNeverExceedsTheLimit) {
  constexpr int kThreads = 4, kLoops = 250, kMax = 2;
  ConcurrencyLimiter sem(kMax);
  std::atomic<int> in_use{0}, peak{0}, total{0};
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kLoops; ++i) {
          std::optional<Permit> p;
          switch ((t + i) % 3) {
            case 0:
              p.emplace(sem.Acquire());
              break;
            case 1:
              p = sem.Acquire(std::stop_token());
              break;
            default:
              p = sem.TryAcquireFor(hours(1));
              break;
          }
          ASSERT_TRUE(p.has_value());
          const int now = in_use.fetch_add(1) + 1;
          int seen = peak.load();
          while (now > seen && !peak.compare_exchange_weak(seen, now)) {
          }
          total.fetch_add(1);
          in_use.fetch_sub(1);
        }
      });
    }
  }
  EXPECT_EQ(total.load(), kThreads * kLoops);
  EXPECT_LE(peak.load(), kMax);
  EXPECT_EQ(sem.waiting(), 0);
  EXPECT_TRUE(sem.TryAcquire().has_value());
}

// TestWeightedPanic has no counterpart (a Permit cannot be released twice);
// concurrency_limiter.h, Permit::Release: "no-op if it holds none".
TEST(SemaphoreConformance, ReleasingTwiceOrAMovedFromPermitReturnsOnePermit) {
  ConcurrencyLimiter sem(1);
  Permit p = sem.Acquire();
  Permit moved = std::move(p);
  EXPECT_FALSE(p);  // NOLINT(bugprone-use-after-move): the contract says so
  p.Release();
  moved.Release();
  moved.Release();
  std::optional<Permit> a = sem.TryAcquire();
  EXPECT_TRUE(a.has_value());
  EXPECT_FALSE(sem.TryAcquire().has_value());
}

// concurrency_limiter.h, TryAcquireFor: "Zero: only a permit that is free
// now; duration::max() (any timeout past the clock's range): no limit.
// Negative or NaN: rejected."
TEST(SemaphoreConformance, TryAcquireForAtTheEndsOfTime) {
  ConcurrencyLimiter sem(1);
  std::optional<Permit> p = sem.TryAcquireFor(nanoseconds(0));
  ASSERT_TRUE(p.has_value());
  EXPECT_FALSE(sem.TryAcquireFor(nanoseconds(0)).has_value());
  EXPECT_THROW(sem.TryAcquireFor(nanoseconds(-1)), std::invalid_argument);
  EXPECT_THROW(sem.TryAcquireFor(std::chrono::duration<double>(
                   std::numeric_limits<double>::quiet_NaN())),
               std::invalid_argument);
  std::future<std::optional<Permit>> a =
      Queued(sem, [&] { return sem.TryAcquireFor(nanoseconds::max()); });
  std::future<std::optional<Permit>> b =
      Queued(sem, [&] { return sem.TryAcquireFor(hours::max()); });
  std::stop_source never;
  std::future<std::optional<Permit>> c = Queued(sem, [&] {
    return sem.TryAcquireFor(std::chrono::duration<double>(1e300),
                             never.get_token());
  });
  p.reset();
  std::optional<Permit> pa = a.get();
  ASSERT_TRUE(pa.has_value());
  pa.reset();
  std::optional<Permit> pb = b.get();
  ASSERT_TRUE(pb.has_value());
  pb.reset();
  EXPECT_TRUE(c.get().has_value());
}

// resilience4j testZeroMaxConcurrentCalls, where herd refuses the setting:
// "REQUIRES: 1 <= max <= kMaxLimit. Throws: std::invalid_argument
// otherwise."
TEST(SemaphoreConformance, LimitOutsideItsRangeIsRejected) {
  EXPECT_THROW(ConcurrencyLimiter(0), std::invalid_argument);
  EXPECT_THROW(ConcurrencyLimiter(-1), std::invalid_argument);
  EXPECT_THROW(ConcurrencyLimiter(ConcurrencyLimiter::kMaxLimit + 1),
               std::invalid_argument);
  ConcurrencyLimiter largest(ConcurrencyLimiter::kMaxLimit);
  EXPECT_EQ(largest.max(), ConcurrencyLimiter::kMaxLimit);
  EXPECT_TRUE(largest.TryAcquire().has_value());
}

// concurrency_limiter.h: "returning a permit happens before the acquisition
// that obtains it" (a plain int handed over through the limiter alone; TSan
// checks it).
TEST(SemaphoreConformance, ReturningAPermitHappensBeforeItsAcquisition) {
  ConcurrencyLimiter sem(1);
  std::optional<Permit> held = sem.Acquire();
  int data = 0;
  std::future<int> reader = std::async(std::launch::async, [&] {
    Permit p = sem.Acquire();
    return data;
  });
  ASSERT_TRUE(AwaitWaiting(sem, 1));
  data = 42;
  held.reset();
  EXPECT_EQ(reader.get(), 42);
}

// resilience4j BulkheadTest.shouldReturnFailureWithBulkheadFullException.
// concurrency_limiter.h, WithLimit(max_wait): "throws herd::LimitExceeded,
// without running loader, if no permit comes within max_wait (zero: only if
// one is free now ...)".
TEST(SemaphoreConformance, FullBulkheadThrowsLimitExceededWithoutRunning) {
  ConcurrencyLimiter sem(1);
  Permit held = sem.Acquire();
  bool ran = false;
  auto now_only = WithLimit(sem, nanoseconds(0), [&] {
    ran = true;
    return 1;
  });
  EXPECT_THROW(now_only(std::stop_token()), LimitExceeded);
  // SemaphoreBulkheadTest.testEntryTimeout: the same after a short wait.
  auto briefly = WithLimit(sem, milliseconds(10), [&] {
    ran = true;
    return 1;
  });
  const auto start = steady_clock::now();
  EXPECT_THROW(briefly(std::stop_token()), LimitExceeded);
  EXPECT_GE(steady_clock::now() - start, milliseconds(10));
  EXPECT_FALSE(ran);
  held.Release();
  EXPECT_EQ(now_only(std::stop_token()), 1);
}

// resilience4j BulkheadTest.shouldDecorateSupplierAndReturnWithException:
// the loader's exception passes unchanged and the permit is returned.
// concurrency_limiter.h, WithLimit: "holds a permit from limiter while loader
// runs".
TEST(SemaphoreConformance, WithLimitPassesExceptionsAndReturnsThePermit) {
  ConcurrencyLimiter sem(1);
  auto failing = WithLimit(sem, [&]() -> int {
    EXPECT_FALSE(sem.TryAcquire().has_value());  // held while it runs
    throw Payload(4);
  });
  try {
    failing(std::stop_token());
    FAIL() << "returned";
  } catch (const Payload& e) {
    EXPECT_EQ(e.value, 4);
  }
  EXPECT_TRUE(sem.TryAcquire().has_value());
}

// SemaphoreBulkheadTest.testTryEnterWithInterruptDuringTimeout and Polly's
// cancelQueuing scenarios: a queued call whose token is stopped leaves the
// queue without a permit, and through WithLimit its loader never runs.
// concurrency_limiter.h: "WithLimit() waits with the loader's stop token, so
// a deadline or a Share::Cancel also ends a wait for a permit".
TEST(SemaphoreConformance, StoppingAQueuedCallEndsItsWait) {
  ConcurrencyLimiter sem(1);
  Permit held = sem.Acquire();
  std::stop_source stop_wait, stop_loader;
  std::future<std::optional<Permit>> timed = Queued(
      sem, [&] { return sem.TryAcquireFor(hours(1), stop_wait.get_token()); });
  std::atomic<bool> ran{false};
  auto limited = WithLimit(sem, [&] {
    ran = true;
    return 1;
  });
  std::future<int> queued =
      Queued(sem, [&] { return limited(stop_loader.get_token()); });
  stop_wait.request_stop();
  EXPECT_FALSE(timed.get().has_value());
  stop_loader.request_stop();
  EXPECT_THROW(queued.get(), Cancelled);
  EXPECT_FALSE(ran.load());
  EXPECT_EQ(sem.waiting(), 0);
  held.Release();
  EXPECT_TRUE(sem.TryAcquire().has_value());  // no permit was lost
}

// concurrency_limiter.h, WithLimit: "a loader whose token is stopped by the
// time it holds a permit does not run" (and the permit is returned).
TEST(SemaphoreConformance, WithLimitDoesNotStartAStoppedLoader) {
  ConcurrencyLimiter sem(1);
  bool ran = false;
  auto limited = WithLimit(sem, hours::max(), [&] {
    ran = true;
    return 1;
  });
  std::stop_source stopped;
  stopped.request_stop();
  EXPECT_THROW(limited(stopped.get_token()), Cancelled);
  EXPECT_FALSE(ran);
  EXPECT_TRUE(sem.TryAcquire().has_value());
  EXPECT_THROW(WithLimit(sem, nanoseconds(-1), [] { return 1; }),
               std::invalid_argument);
}

// concurrency_limiter.h, WithLimit(max_wait): "duration::max(), or any wait
// past the clock's range: no limit".
TEST(SemaphoreConformance, WithLimitDurationMaxWaitsForAPermit) {
  ConcurrencyLimiter sem(1);
  std::optional<Permit> held = sem.Acquire();
  auto limited = WithLimit(sem, nanoseconds::max(), [] { return 7; });
  std::future<int> r = Queued(sem, [&] { return limited(std::stop_token()); });
  held.reset();
  EXPECT_EQ(r.get(), 7);
}

}  // namespace
}  // namespace herd
