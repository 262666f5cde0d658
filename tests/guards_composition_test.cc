// Copyright 2026 The herd Authors.
//
// The guards layered around a loader and run through herd::Share and
// herd::LoadingCache, as a service would: the stop token reaches the
// innermost loader, a stalled database costs callers at most the deadline,
// and an outage trips the breaker so that callers fail fast.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <latch>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "herd/circuit_breaker.h"
#include "herd/clock.h"
#include "herd/concurrency_limiter.h"
#include "herd/deadline.h"
#include "herd/errors.h"
#include "herd/loading_cache.h"
#include "herd/retry.h"
#include "herd/share.h"
#include "herd/timer.h"
#include "herd/token_bucket.h"
#include "tests/testing/jump_clock.h"
#include "tests/testing/sync.h"

namespace herd {
namespace {

using ::herd::test::AwaitCondition;
using ::herd::test::JumpClock;

using std::chrono::milliseconds;
using std::chrono::seconds;

struct DbDown : std::runtime_error {
  DbDown() : std::runtime_error("database unavailable") {}
};
struct Stopped : std::runtime_error {
  Stopped() : std::runtime_error("query stopped") {}
};

// A database whose queries block until the test releases them, unless the
// query's stop token is stopped first (then the query throws Stopped), as a
// client library with cancellable queries behaves.
class StalledDb {
 public:
  int Query(std::stop_token stop) {
    started_.fetch_add(1);
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait(lock, stop, [&] { return released_; })) throw Stopped();
    return 42;
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      released_ = true;
    }
    cv_.notify_all();
  }
  int started() const { return started_.load(); }

 private:
  std::atomic<int> started_{0};
  std::mutex mu_;
  std::condition_variable_any cv_;
  bool released_ = false;
};

RetryOptions QuickRetry(const Clock& clock, int attempts) {
  return {.max_attempts = attempts,
          .initial_delay = milliseconds(100),
          .multiplier = 2.0,
          .max_delay = seconds(1),
          .jitter = 0.0,
          .clock = &clock};
}

TEST(GuardsComposition, RetryAroundBreakerThroughShare) {
  JumpClock clock;
  CircuitBreaker breaker({.failure_threshold = 5, .clock = &clock});
  Share<std::string, int> share;
  int calls = 0;
  auto flaky = [&]() -> int {
    if (++calls < 3) throw DbDown();
    return 7;
  };
  EXPECT_EQ(share.Do("k", WithRetry(Retry(QuickRetry(clock, 4)),
                                    WithBreaker(breaker, flaky))),
            7);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(clock.sleeps().size(), 2u);
  EXPECT_EQ(breaker.state(), CircuitBreaker::State::kClosed);
  EXPECT_EQ(share.Stats().executions, 1u);  // retries are inside one flight
}

TEST(GuardsComposition, RetryAroundBreakerThroughLoadingCache) {
  JumpClock clock;
  CircuitBreaker breaker({.failure_threshold = 5, .clock = &clock});
  LoadingCache<int, std::string> cache({.ttl = seconds(60), .clock = &clock});
  int calls = 0;
  auto flaky = [&]() -> std::string {
    if (++calls < 2) throw DbDown();
    return "row";
  };
  auto guarded =
      WithRetry(Retry(QuickRetry(clock, 3)), WithBreaker(breaker, flaky));
  EXPECT_EQ(cache.Get(1, guarded), "row");
  EXPECT_EQ(cache.Get(1, guarded), "row");  // a hit: no load
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(cache.Stats().loads, 1u);
}

TEST(GuardsComposition, EveryLayerComposesWithTheCache) {
  JumpClock clock;
  FakeClock timer_clock;
  Timer timer({.clock = &timer_clock});
  CircuitBreaker breaker({.clock = &clock});
  TokenBucket bucket({.rate = 100, .capacity = 10, .clock = &clock});
  ConcurrencyLimiter limiter(4);
  LoadingCache<int, int> cache({.ttl = seconds(60), .clock = &clock});
  auto loader = WithDeadline(
      timer, seconds(5),
      WithRetry(
          Retry(QuickRetry(clock, 3)),
          WithBreaker(breaker,
                      WithRateLimit(
                          bucket, WithLimit(limiter, [](std::stop_token stop) {
                            return stop.stop_possible() ? 1 : 0;
                          })))));
  EXPECT_EQ(cache.Get(5, loader), 1);  // the deadline's token reached the db
  EXPECT_EQ(timer.Pending(), 0u);
}

TEST(GuardsComposition, StalledDatabaseCostsCallersAtMostTheDeadline) {
  constexpr int kCallers = 4;
  FakeClock clock;
  Timer timer({.clock = &clock});
  StalledDb db;
  Share<int, int> share;
  auto loader = WithDeadline(
      timer, seconds(2), [&](std::stop_token stop) { return db.Query(stop); });
  const Clock::time_point start = clock.Now();
  std::atomic<int> deadline_exceeded{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&] {
      try {
        share.Do(1, loader);
      } catch (const DeadlineExceeded&) {
        deadline_exceeded.fetch_add(1);
        // Fake time stands still until the test moves it, so this is exact.
        EXPECT_EQ(clock.Now() - start, seconds(2));
      }
    });
  }
  // Every caller is in the one flight, and the database is stalled.
  AwaitCondition([&] { return share.Stats().calls == kCallers; });
  AwaitCondition([&] { return db.started() == 1; });
  clock.Advance(seconds(2));
  for (auto& t : callers) t.join();
  EXPECT_EQ(deadline_exceeded.load(), kCallers);
  EXPECT_EQ(db.started(), 1);
  EXPECT_EQ(share.Stats().executions, 1u);
  EXPECT_EQ(share.InFlight(), 0u);
}

TEST(GuardsComposition, DeadlineStopsRetriesAndIsReported) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  StalledDb db;
  CircuitBreaker breaker({.failure_threshold = 10, .clock = &clock});
  Share<int, int> share;
  // The deadline bounds the whole retrying call, not each attempt.
  auto loader =
      WithDeadline(timer, seconds(1),
                   WithRetry(Retry(QuickRetry(clock, 5)),
                             WithBreaker(breaker, [&](std::stop_token stop) {
                               return db.Query(stop);
                             })));
  std::thread caller(
      [&] { EXPECT_THROW(share.Do(1, loader), DeadlineExceeded); });
  AwaitCondition([&] { return db.started() == 1; });
  clock.Advance(seconds(1));
  caller.join();
  // The stop reached the query; retry saw the stopped token and did not try
  // again, and the breaker counted one failure.
  EXPECT_EQ(db.started(), 1);
  EXPECT_EQ(breaker.state(), CircuitBreaker::State::kClosed);
}

TEST(GuardsComposition, DeadlineAlsoBoundsTheWaitForAPermit) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  StalledDb db;
  ConcurrencyLimiter limiter(1);
  Share<int, int> share;
  auto query = [&](std::stop_token stop) { return db.Query(stop); };
  auto slow = WithDeadline(timer, seconds(2), WithLimit(limiter, query));
  auto quick = WithDeadline(timer, seconds(1), WithLimit(limiter, query));
  std::thread holder(
      [&] { EXPECT_THROW(share.Do(1, slow), DeadlineExceeded); });
  AwaitCondition([&] { return db.started() == 1; });  // holds the only permit
  std::thread waiter(
      [&] { EXPECT_THROW(share.Do(2, quick), DeadlineExceeded); });
  AwaitCondition([&] { return timer.Pending() == 2; });  // its deadline is set
  clock.Advance(seconds(1));
  waiter.join();  // gave up waiting for the permit at its deadline
  EXPECT_EQ(db.started(), 1);
  clock.Advance(seconds(1));
  holder.join();
  EXPECT_EQ(db.started(), 1);
  EXPECT_TRUE(limiter.TryAcquire().has_value());
}

TEST(GuardsComposition, ShareCancelReachesTheInnermostLoader) {
  JumpClock clock;
  StalledDb db;
  CircuitBreaker breaker({.clock = &clock});
  Share<int, int> share;
  auto loader = WithRetry(Retry(QuickRetry(clock, 5)),
                          WithBreaker(breaker, [&](std::stop_token stop) {
                            return db.Query(stop);
                          }));
  std::thread caller([&] { EXPECT_THROW(share.Do(1, loader), Cancelled); });
  AwaitCondition([&] { return db.started() == 1; });
  EXPECT_TRUE(share.Cancel(1));
  caller.join();
  EXPECT_EQ(db.started(), 1);  // no retry after the cancellation
}

TEST(GuardsComposition, OutageTripsBreakerSoCallersFailFast) {
  JumpClock clock;
  CircuitBreaker breaker(
      {.failure_threshold = 3, .open_duration = seconds(30), .clock = &clock});
  Share<int, int> share;
  std::atomic<int> db_calls{0};
  bool db_up = false;
  auto loader =
      WithRetry(Retry(QuickRetry(clock, 5)), WithBreaker(breaker, [&]() -> int {
                  db_calls.fetch_add(1);
                  if (!db_up) throw DbDown();
                  return 1;
                }));
  // Three attempts fail; the fourth finds the breaker open, and the retry
  // policy does not retry CircuitOpen.
  EXPECT_THROW(share.Do(1, loader), CircuitOpen);
  EXPECT_EQ(db_calls.load(), 3);
  EXPECT_EQ(clock.sleeps().size(), 3u);
  // While open, callers fail at once: no database call, no backoff.
  for (int i = 0; i < 10; ++i) EXPECT_THROW(share.Do(1, loader), CircuitOpen);
  EXPECT_EQ(db_calls.load(), 3);
  EXPECT_EQ(clock.sleeps().size(), 3u);
  // The database recovers; after the open duration one trial closes it.
  db_up = true;
  clock.Advance(seconds(30));
  EXPECT_EQ(share.Do(1, loader), 1);
  EXPECT_EQ(db_calls.load(), 4);
  EXPECT_EQ(breaker.state(), CircuitBreaker::State::kClosed);
}

}  // namespace
}  // namespace herd
