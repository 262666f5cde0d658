// Copyright 2026 The herd Authors.
//
// Tests of herd::Share. Threads are ordered with latches, promises and the
// Share's own counters (Stats().calls counts a call once it has joined or
// started a flight), never with sleeps.

#include "herd/share.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <latch>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "herd/clock.h"
#include "herd/coalesce.h"
#include "herd/errors.h"
#include "herd/thread_pool.h"
#include "tests/testing/sync.h"

namespace herd {
namespace {

using ::herd::test::AwaitCalls;
using ::herd::test::AwaitCondition;
using ::herd::test::Gate;

using ::testing::Each;
using ::testing::Eq;

struct Payload {
  int code;
  std::string detail;
};

TEST(Share, SingleCallRunsLoaderOnCallerThread) {
  Share<int, std::thread::id> share;
  EXPECT_EQ(share.Do(1, [] { return std::this_thread::get_id(); }),
            std::this_thread::get_id());
  EXPECT_EQ(share.InFlight(), 0u);
}

TEST(Share, LoaderMayTakeStopToken) {
  Share<int, int> share;
  EXPECT_EQ(
      share.Do(1,
               [](std::stop_token stop) {
                 return stop.stop_possible() && !stop.stop_requested() ? 7 : -1;
               }),
      7);
}

TEST(Share, ConcurrentCallersShareOneExecution) {
  Share<std::string, int> share;
  Gate gate;
  std::atomic<int> executions{0};
  auto loader = [&] {
    executions.fetch_add(1);
    gate.Wait();
    return 42;
  };
  constexpr int kThreads = 64;
  std::vector<int> results(kThreads, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] { results[i] = share.Do("user:1", loader); });
  }
  AwaitCalls(share, kThreads);  // every caller has joined the one flight
  gate.Open();
  for (auto& t : threads) t.join();
  EXPECT_EQ(executions.load(), 1);
  EXPECT_THAT(results, Each(Eq(42)));
  const ShareStats stats = share.Stats();
  EXPECT_EQ(stats.calls, uint64_t{kThreads});
  EXPECT_EQ(stats.executions, 1u);
  EXPECT_EQ(stats.shared, uint64_t{kThreads - 1});
  EXPECT_EQ(share.InFlight(), 0u);
}

TEST(Share, ThreadPoolWorkersShareOneExecution) {
  Share<int, int> share;
  Gate gate;
  std::atomic<int> executions{0};
  constexpr int kCallers = 64;
  std::atomic<int> sum{0};
  {
    ThreadPool pool(kCallers);
    for (int i = 0; i < kCallers; ++i) {
      pool.Schedule([&] {
        sum += share.Do(9, [&] {
          executions.fetch_add(1);
          gate.Wait();
          return 1;
        });
      });
    }
    AwaitCalls(share, kCallers);
    gate.Open();
  }  // joins the pool
  EXPECT_EQ(executions.load(), 1);
  EXPECT_EQ(sum.load(), kCallers);
  EXPECT_EQ(share.InFlight(), 0u);
}

TEST(Share, NoLockIsHeldWhileLoaderRuns) {
  // One shard: if the shard lock were held, the nested calls would deadlock.
  Share<int, int> share(ShareOptions{.shards = 1});
  int v = share.Do(1, [&] {
    EXPECT_EQ(share.InFlight(), 1u);
    EXPECT_EQ(share.Stats().calls, 1u);
    EXPECT_FALSE(share.Forget(3));
    return share.Do(2, [] { return 5; }) + 1;
  });
  EXPECT_EQ(v, 6);
}

TEST(Share, StuckKeyDoesNotDelayOtherKeys) {
  Share<int, int> share(ShareOptions{.shards = 1});
  Gate gate;
  std::latch started(1);
  std::thread stuck([&] {
    share.Do(1, [&] {
      started.count_down();
      gate.Wait();
      return 1;
    });
  });
  started.wait();
  EXPECT_EQ(share.Do(2, [] { return 2; }), 2);  // returns while key 1 hangs
  gate.Open();
  stuck.join();
}

TEST(Share, ExceptionReachesEveryCallerWithTypeAndPayload) {
  Share<int, int> share;
  Gate gate;
  constexpr int kThreads = 8;
  std::atomic<int> caught{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      try {
        share.Do(1, [&]() -> int {
          gate.Wait();
          throw Payload{503, "db down"};
        });
      } catch (const Payload& p) {
        if (p.code == 503 && p.detail == "db down") caught.fetch_add(1);
      }
    });
  }
  AwaitCalls(share, kThreads);
  gate.Open();
  for (auto& t : threads) t.join();
  EXPECT_EQ(caught.load(), kThreads);
  EXPECT_EQ(share.Stats().executions, 1u);
  EXPECT_EQ(share.Stats().failures, 1u);
  EXPECT_EQ(share.InFlight(), 0u);
}

TEST(Share, StdExceptionKeepsItsDynamicType) {
  Share<int, int> share;
  EXPECT_THROW(share.Do(1, []() -> int { throw std::out_of_range("k"); }),
               std::out_of_range);
  EXPECT_THROW(share.Do(1, []() -> int { throw 17; }), int);
  EXPECT_EQ(share.InFlight(), 0u);
}

TEST(Share, FinishedFlightIsForgotten) {
  Share<int, int> share;
  int n = 0;
  EXPECT_EQ(share.Do(1, [&] { return ++n; }), 1);
  EXPECT_EQ(share.Do(1, [&] { return ++n; }), 2);  // nothing cached
  EXPECT_EQ(share.Stats().executions, 2u);
  EXPECT_EQ(share.InFlight(), 0u);
}

// Go issue 31420: a flight that ends after it was replaced must not remove
// or complete its successor.
// The old flight ends while a newer flight of its key is registered. A
// joined old flight has moved to the heap, an unjoined one has not: both
// must leave the newer one alone (Go issue 31420).
void LateFlightNeverDisturbsNewerFlight(bool old_flight_joined) {
  Share<int, int> share;
  Gate old_gate, new_gate;
  std::latch old_started(1), new_started(1);
  std::thread old_caller([&] {
    EXPECT_EQ(share.Do(1,
                       [&] {
                         old_started.count_down();
                         old_gate.Wait();
                         return 1;
                       }),
              1);
  });
  old_started.wait();
  std::thread old_joiner;
  if (old_flight_joined) {
    old_joiner =
        std::thread([&] { EXPECT_EQ(share.Do(1, [] { return -1; }), 1); });
    AwaitCalls(share, 2);
  }
  const uint64_t old_calls = old_flight_joined ? 2 : 1;
  ASSERT_TRUE(share.Forget(1));
  std::thread new_caller([&] {
    EXPECT_EQ(share.Do(1,
                       [&] {
                         new_started.count_down();
                         new_gate.Wait();
                         return 2;
                       }),
              2);
  });
  new_started.wait();
  old_gate.Open();
  old_caller.join();
  if (old_joiner.joinable()) old_joiner.join();
  // The new flight is still registered, and a newcomer joins it.
  EXPECT_EQ(share.InFlight(), 1u);
  std::thread joiner([&] { EXPECT_EQ(share.Do(1, [] { return 3; }), 2); });
  AwaitCalls(share, old_calls + 2);
  new_gate.Open();
  new_caller.join();
  joiner.join();
  EXPECT_EQ(share.Stats().executions, 2u);
  EXPECT_EQ(share.InFlight(), 0u);
}

TEST(Share, LateFlightNeverDisturbsNewerFlight) {
  LateFlightNeverDisturbsNewerFlight(/*old_flight_joined=*/false);
}

TEST(Share, LateJoinedFlightNeverDisturbsNewerFlight) {
  LateFlightNeverDisturbsNewerFlight(/*old_flight_joined=*/true);
}

TEST(Share, ExtraExecutionFirstSuccessWinsForEveryone) {
  Share<int, std::string> share(ShareOptions{.extra_execution_rate = 1.0});
  Gate slow_gate;
  std::latch slow_started(1);
  std::string leader_result;
  std::thread leader([&] {
    leader_result = share.Do(1, [&] {
      slow_started.count_down();
      slow_gate.Wait();
      return std::string("slow");
    });
  });
  slow_started.wait();
  CallInfo info;
  EXPECT_EQ(share.Do(
                1, [] { return std::string("fast"); }, &info),
            "fast");
  EXPECT_TRUE(info.executed);
  EXPECT_FALSE(info.shared);
  EXPECT_EQ(share.InFlight(), 0u);  // the flight completed with "fast"
  slow_gate.Open();
  leader.join();
  EXPECT_EQ(leader_result, "fast");  // the late result was dropped
  const ShareStats stats = share.Stats();
  EXPECT_EQ(stats.executions, 2u);
  EXPECT_EQ(stats.extra_executions, 1u);
  EXPECT_EQ(stats.shared, 1u);  // the leader got a value it did not make
}

TEST(Share, FailedExecutionWaitsForOthersToSucceed) {
  Share<int, int> share(ShareOptions{.extra_execution_rate = 1.0});
  Gate extra_gate;
  std::latch leader_started(1), extra_started(1);
  Gate leader_gate;
  int leader_result = 0;
  std::thread leader([&] {
    leader_result = share.Do(1, [&]() -> int {
      leader_started.count_down();
      leader_gate.Wait();
      throw std::runtime_error("first try failed");
    });
  });
  leader_started.wait();
  int extra_result = 0;
  std::thread extra([&] {
    extra_result = share.Do(1, [&] {
      extra_started.count_down();
      extra_gate.Wait();
      return 8;
    });
  });
  extra_started.wait();
  leader_gate.Open();  // the leader fails while the extra still runs
  AwaitCondition([&] { return share.Stats().failures == 1; });
  EXPECT_EQ(share.InFlight(), 1u);  // a failure alone did not end the flight
  extra_gate.Open();
  leader.join();
  extra.join();
  EXPECT_EQ(leader_result, 8);
  EXPECT_EQ(extra_result, 8);
}

TEST(Share, ExceptionWhenEveryExecutionFailed) {
  Share<int, int> share(ShareOptions{.extra_execution_rate = 1.0});
  Gate gate;
  std::latch started(2);
  std::atomic<int> failures{0};
  auto caller = [&](int code) {
    try {
      share.Do(1, [&]() -> int {
        started.count_down();
        gate.Wait();
        throw code;
      });
    } catch (int) {
      failures.fetch_add(1);
    }
  };
  std::thread a(caller, 1);
  std::thread b(caller, 2);
  started.wait();
  gate.Open();
  a.join();
  b.join();
  EXPECT_EQ(failures.load(), 2);
  EXPECT_EQ(share.Stats().failures, 2u);
  EXPECT_EQ(share.InFlight(), 0u);
}

TEST(Share, ReleaseLetsNextCallerRunAnExtraExecution) {
  Share<int, int> share;
  EXPECT_FALSE(share.Release(1));
  Gate gate;
  std::latch started(1);
  std::thread leader([&] {
    EXPECT_EQ(share.Do(1,
                       [&] {
                         started.count_down();
                         gate.Wait();
                         return 1;
                       }),
              2);
  });
  started.wait();
  EXPECT_TRUE(share.Release(1));
  EXPECT_EQ(share.Do(1, [] { return 2; }), 2);  // ran, did not wait
  gate.Open();
  leader.join();
  EXPECT_EQ(share.Stats().extra_executions, 1u);
}

TEST(Share, ForgetDetachStartsNewFlightAndOldCallersKeepOldResult) {
  Share<int, int> share;
  EXPECT_FALSE(share.Forget(1));
  EXPECT_FALSE(share.Forget(1, ForgetMode::kRerun));
  Gate gate;
  std::latch started(1);
  int old_leader = 0, old_follower = 0;
  std::thread leader([&] {
    old_leader = share.Do(1, [&] {
      started.count_down();
      gate.Wait();
      return 1;
    });
  });
  started.wait();
  std::thread follower([&] { old_follower = share.Do(1, [] { return -1; }); });
  AwaitCalls(share, 2);
  EXPECT_TRUE(share.Forget(1, ForgetMode::kDetach));
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Do(1, [] { return 2; }), 2);  // a fresh flight
  gate.Open();
  leader.join();
  follower.join();
  EXPECT_EQ(old_leader, 1);
  EXPECT_EQ(old_follower, 1);
}

TEST(Share, ForgetRerunRescuesStuckBatch) {
  Share<int, int> share;
  Gate stuck;
  std::latch started(1);
  int old_leader = 0, old_follower = 0;
  std::thread leader([&] {
    old_leader = share.Do(1, [&] {
      started.count_down();
      stuck.Wait();
      return 1;
    });
  });
  started.wait();
  std::thread follower([&] { old_follower = share.Do(1, [] { return -1; }); });
  AwaitCalls(share, 2);
  EXPECT_TRUE(share.Forget(1, ForgetMode::kRerun));
  EXPECT_EQ(share.Do(1, [] { return 2; }), 2);  // the rerun
  follower.join();  // rescued while the first execution is still stuck
  EXPECT_EQ(old_follower, 2);
  stuck.Open();
  leader.join();
  EXPECT_EQ(old_leader, 2);
  EXPECT_EQ(share.Stats().executions, 2u);
}

// A loader that returns only when its stop_token is stopped.
int WaitForStop(std::stop_token stop, std::latch* started) {
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock<std::mutex> lock(mu);
  started->count_down();
  cv.wait(lock, stop, [] { return false; });
  return stop.stop_requested() ? -1 : 0;
}

TEST(Share, CancelWakesWaitersStopsLoaderAndFreesKey) {
  Share<int, int> share;
  EXPECT_FALSE(share.Cancel(1));
  std::latch started(1);
  std::atomic<bool> saw_stop{false};
  std::thread leader([&] {
    EXPECT_THROW(share.Do(1,
                          [&](std::stop_token stop) {
                            int r = WaitForStop(stop, &started);
                            saw_stop = stop.stop_requested();
                            return r;
                          }),
                 Cancelled);
  });
  started.wait();
  std::thread follower(
      [&] { EXPECT_THROW(share.Do(1, [] { return 0; }), Cancelled); });
  AwaitCalls(share, 2);
  EXPECT_TRUE(share.Cancel(1));
  EXPECT_EQ(share.InFlight(), 0u);
  follower.join();
  leader.join();
  EXPECT_TRUE(saw_stop.load());
  EXPECT_EQ(share.Do(1, [] { return 3; }), 3);
  EXPECT_EQ(share.Stats().cancellations, 1u);
}

TEST(Share, CancelReturnsWaitersBeforeLoaderEnds) {
  Share<int, int> share;
  Gate gate;
  std::latch started(1);
  std::thread leader([&] {
    EXPECT_THROW(share.Do(1,
                          [&] {
                            started.count_down();
                            gate.Wait();  // ignores cancellation
                            return 1;
                          }),
                 Cancelled);
  });
  started.wait();
  std::thread follower(
      [&] { EXPECT_THROW(share.Do(1, [] { return 0; }), Cancelled); });
  AwaitCalls(share, 2);
  ASSERT_TRUE(share.Cancel(1));
  follower.join();  // returns while the loader is still blocked
  EXPECT_EQ(share.Do(1, [] { return 2; }), 2);  // key free at once
  gate.Open();
  leader.join();
  EXPECT_EQ(share.InFlight(), 0u);
}

TEST(Share, CancelAllCancelsEveryFlight) {
  Share<int, int> share;
  constexpr int kKeys = 5;
  std::latch started(kKeys);
  std::vector<std::thread> threads;
  for (int k = 0; k < kKeys; ++k) {
    threads.emplace_back([&, k] {
      EXPECT_THROW(share.Do(k,
                            [&](std::stop_token stop) {
                              return WaitForStop(stop, &started);
                            }),
                   Cancelled);
    });
  }
  started.wait();
  EXPECT_EQ(share.CancelAll(), size_t{kKeys});
  for (auto& t : threads) t.join();
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Stats().cancellations, uint64_t{kKeys});
  EXPECT_EQ(share.CancelAll(), 0u);
}

TEST(Share, DoForWaiterTimesOutAndFlightGoesOn) {
  Share<int, int> share;
  Gate gate;
  std::latch started(1);
  std::thread leader([&] {
    // The leader's own timeout does not bound its own loader.
    EXPECT_EQ(share.DoFor(1, std::chrono::milliseconds(0),
                          [&] {
                            started.count_down();
                            gate.Wait();
                            return 4;
                          }),
              4);
  });
  started.wait();
  EXPECT_THROW(share.DoFor(1, std::chrono::milliseconds(1), [] { return 0; }),
               WaitTimeout);
  EXPECT_EQ(share.InFlight(), 1u);
  std::thread patient([&] {
    EXPECT_EQ(share.DoFor(1, std::chrono::hours(1), [] { return 0; }), 4);
  });
  AwaitCalls(share, 3);
  gate.Open();
  leader.join();
  patient.join();
  EXPECT_EQ(share.Stats().timeouts, 1u);
  EXPECT_EQ(share.Stats().executions, 1u);
}

TEST(Share, DoForRejectsNegativeTimeout) {
  Share<int, int> share;
  EXPECT_THROW(share.DoFor(1, std::chrono::seconds(-1), [] { return 0; }),
               std::invalid_argument);
  EXPECT_THROW(share.DoFor(1,
                           std::chrono::duration<double>(
                               std::numeric_limits<double>::quiet_NaN()),
                           [] { return 0; }),
               std::invalid_argument);
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Stats().calls, 0u);
}

// A timeout beyond steady_clock's range (hours::max() overflows it) means
// no limit, not a deadline already past.
TEST(Share, DoForWithAnEndlessTimeoutWaitsForTheFlight) {
  Share<int, int> share;
  Gate gate;
  std::latch started(1);
  std::thread leader([&] {
    EXPECT_EQ(share.Do(1,
                       [&] {
                         started.count_down();
                         gate.Wait();
                         return 4;
                       }),
              4);
  });
  started.wait();
  std::thread waiter([&] {
    EXPECT_EQ(share.DoFor(1, std::chrono::hours::max(), [] { return -1; }), 4);
  });
  AwaitCalls(share, 2);
  gate.Open();
  leader.join();
  waiter.join();
  EXPECT_EQ(share.Stats().timeouts, 0u);
  EXPECT_EQ(share.Stats().shared, 1u);
}

// A Clock that throws (read for max_flight_age) fails the call before
// anything is registered.
TEST(Share, ThrowingClockLeavesNothingBehind) {
  struct BrokenClock final : Clock {
    time_point Now() const override {
      if (broken) throw std::runtime_error("clock unavailable");
      return time_point{};
    }
    bool SleepUntil(time_point, std::stop_token) const override { return true; }
    bool broken = true;
  } clock;
  Share<int, int> share(
      ShareOptions{.max_flight_age = std::chrono::seconds(1), .clock = &clock});
  EXPECT_THROW(share.Do(1, [] { return 0; }), std::runtime_error);
  ThreadPool pool(1);
  EXPECT_THROW(share.DoAsync(
                   1, [] { return 0; }, pool),
               std::runtime_error);
  EXPECT_EQ(share.InFlight(), 0u);
  clock.broken = false;
  EXPECT_EQ(share.Do(1, [] { return 5; }), 5);
  EXPECT_EQ(share.InFlight(), 0u);
}

TEST(Share, DoAsyncReturnsFutureWithoutBlocking) {
  Share<int, int> share;
  Gate gate;
  ThreadPool pool(1);
  std::shared_future<int> f = share.DoAsync(
      1,
      [&] {
        gate.Wait();
        return 6;
      },
      pool);
  EXPECT_EQ(share.InFlight(), 1u);  // registered before returning
  EXPECT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  // A blocking caller joins the same flight.
  std::thread joiner([&] { EXPECT_EQ(share.Do(1, [] { return 0; }), 6); });
  AwaitCalls(share, 2);
  gate.Open();
  EXPECT_EQ(f.get(), 6);
  joiner.join();
  EXPECT_EQ(share.Stats().executions, 1u);
}

TEST(Share, DoAsyncJoinsFlightInProgress) {
  Share<int, int> share;
  Gate gate;
  std::latch started(1);
  std::thread leader([&] {
    share.Do(1, [&] {
      started.count_down();
      gate.Wait();
      return 3;
    });
  });
  started.wait();
  ThreadPool pool(1);
  std::shared_future<int> f = share.DoAsync(
      1, [] { return -1; }, pool);
  gate.Open();
  EXPECT_EQ(f.get(), 3);
  leader.join();
  EXPECT_EQ(share.Stats().executions, 1u);
}

struct RefusingExecutor {
  template <class F>
  void Schedule(F&&) {
    throw Closed("executor is shut down");
  }
};

TEST(Share, DoAsyncExecutorRefusalLeavesNothingBehind) {
  Share<int, int> share;
  RefusingExecutor executor;
  EXPECT_THROW(share.DoAsync(
                   1, [] { return 1; }, executor),
               Closed);
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Do(1, [] { return 2; }), 2);
}

struct InlineExecutor {
  template <class F>
  void Schedule(F&& f) {
    std::forward<F>(f)();
  }
};

TEST(Share, DoAsyncWorksWithAnyExecutorType) {
  Share<int, int> share;
  InlineExecutor executor;
  EXPECT_EQ(share
                .DoAsync(
                    1, [] { return 5; }, executor)
                .get(),
            5);
  EXPECT_THROW(share
                   .DoAsync(
                       2,
                       []() -> int {
                         throw Payload{1, "x"};
                       },
                       executor)
                   .get(),
               Payload);
  EXPECT_EQ(share.InFlight(), 0u);
}

TEST(Share, RecursiveCallForOwnKeyIsRefused) {
  Share<int, int> share;
  bool refused = false;
  int v = share.Do(1, [&] {
    try {
      share.Do(1, [] { return 0; });
    } catch (const RecursiveCall&) {
      refused = true;
    }
    return share.Do(2, [] { return 10; });  // another key is fine
  });
  EXPECT_TRUE(refused);
  EXPECT_EQ(v, 10);
  EXPECT_EQ(share.InFlight(), 0u);
  // The refusal propagates like any exception when the loader lets it.
  EXPECT_THROW(share.Do(3, [&] { return share.Do(3, [] { return 0; }); }),
               RecursiveCall);
  EXPECT_EQ(share.InFlight(), 0u);
}

// A Value whose next `failures` copies throw; moves never throw.
struct CopyFailed {};
struct Touchy {
  Touchy(int v, std::shared_ptr<std::atomic<int>> failures)
      : value(v), copy_failures(std::move(failures)) {}
  Touchy(const Touchy& other)
      : value(other.value), copy_failures(other.copy_failures) {
    if (copy_failures->fetch_sub(1) > 0) throw CopyFailed();
  }
  Touchy(Touchy&&) noexcept = default;
  int value;
  std::shared_ptr<std::atomic<int>> copy_failures;
};

// Every caller of a joined flight gets its own copy of the value. A copy
// that throws fails that caller alone: the other callers get the value,
// and nobody is left waiting.
TEST(Share, FailedValueCopyFailsOnlyItsOwnCaller) {
  Share<int, Touchy> share;
  auto copy_failures = std::make_shared<std::atomic<int>>(0);
  std::latch started(1);
  Gate waiter_joined;
  std::atomic<int> got_value{0}, got_copy_failed{0};
  auto call = [&](auto loader) {
    try {
      if (share.Do(1, loader).value == 5) got_value.fetch_add(1);
    } catch (const CopyFailed&) {
      got_copy_failed.fetch_add(1);
    }
  };
  std::thread leader([&] {
    call([&] {
      started.count_down();
      waiter_joined.Wait();
      *copy_failures = 1;  // the next copy, whoever makes it, throws
      return Touchy(5, copy_failures);
    });
  });
  started.wait();
  std::thread waiter([&] { call([&] { return Touchy(-1, copy_failures); }); });
  AwaitCalls(share, 2);
  waiter_joined.Open();
  leader.join();
  waiter.join();
  EXPECT_EQ(got_copy_failed.load(), 1);
  EXPECT_EQ(got_value.load(), 1);
  EXPECT_EQ(share.Stats().executions, 1u);
  EXPECT_EQ(share.InFlight(), 0u);
}

// A waiter joining moves the leader's flight off the leader's stack; the
// re-entrancy check must still recognise the flight the loader runs for.
TEST(Share, RecursiveCallIsRefusedAfterAWaiterJoined) {
  Share<int, int> share;
  std::latch started(1);
  Gate waiter_joined;
  std::atomic<bool> refused{false};
  std::thread leader([&] {
    EXPECT_EQ(share.Do(1,
                       [&] {
                         started.count_down();
                         waiter_joined.Wait();
                         try {
                           share.Do(1, [] { return 0; });
                         } catch (const RecursiveCall&) {
                           refused = true;
                         }
                         return 5;
                       }),
              5);
  });
  started.wait();
  std::thread waiter([&] { EXPECT_EQ(share.Do(1, [] { return -1; }), 5); });
  AwaitCalls(share, 2);
  waiter_joined.Open();
  leader.join();
  waiter.join();
  EXPECT_TRUE(refused);
  EXPECT_EQ(share.Stats().executions, 1u);
  EXPECT_EQ(share.Stats().shared, 1u);
  EXPECT_EQ(share.InFlight(), 0u);
}

TEST(Share, MaxFlightAgeDetachesOldFlight) {
  FakeClock clock;
  Share<int, int> share(ShareOptions{.max_flight_age = std::chrono::seconds(10),
                                     .clock = &clock});
  Gate gate;
  std::latch started(1);
  int old_result = 0;
  std::thread leader([&] {
    old_result = share.Do(1, [&] {
      started.count_down();
      gate.Wait();
      return 1;
    });
  });
  started.wait();
  clock.Advance(std::chrono::seconds(9));
  std::thread young_joiner(
      [&] { EXPECT_EQ(share.Do(1, [] { return 0; }), 1); });
  AwaitCalls(share, 2);
  clock.Advance(std::chrono::seconds(1));
  EXPECT_EQ(share.Do(1, [] { return 2; }), 2);  // too old: a new flight
  gate.Open();
  leader.join();
  young_joiner.join();
  EXPECT_EQ(old_result, 1);
  EXPECT_EQ(share.Stats().executions, 2u);
  EXPECT_EQ(share.InFlight(), 0u);
}

TEST(Share, CallInfoTellsWhetherResultWasShared) {
  Share<int, int> share;
  Gate gate;
  std::latch started(1);
  CallInfo leader_info, follower_info;
  std::thread leader([&] {
    share.Do(
        1,
        [&] {
          started.count_down();
          gate.Wait();
          return 1;
        },
        &leader_info);
  });
  started.wait();
  std::thread follower([&] {
    share.Do(
        1, [] { return 0; }, &follower_info);
  });
  AwaitCalls(share, 2);
  gate.Open();
  leader.join();
  follower.join();
  EXPECT_TRUE(leader_info.executed);
  EXPECT_FALSE(leader_info.shared);
  EXPECT_FALSE(follower_info.executed);
  EXPECT_TRUE(follower_info.shared);
}

TEST(Share, StatsCountEveryKindOfCall) {
  Share<int, int> share;
  share.Do(1, [] { return 1; });
  EXPECT_THROW(share.Do(1, []() -> int { throw 1; }), int);
  const ShareStats s = share.Stats();
  EXPECT_EQ(s.calls, 2u);
  EXPECT_EQ(s.executions, 2u);
  EXPECT_EQ(s.failures, 1u);
  EXPECT_EQ(s.shared, 0u);
  EXPECT_EQ(s.extra_executions, 0u);
  EXPECT_EQ(s.cancellations, 0u);
  EXPECT_EQ(s.timeouts, 0u);
}

TEST(Share, ErrorsShareOneBase) {
  static_assert(std::is_base_of_v<std::runtime_error, Error>);
  static_assert(std::is_base_of_v<Error, Cancelled>);
  static_assert(std::is_base_of_v<Error, WaitTimeout>);
  static_assert(std::is_base_of_v<Error, RecursiveCall>);
  EXPECT_THAT(Cancelled().what(), ::testing::HasSubstr("cancelled"));
}

TEST(Share, InvalidOptionsAreRejected) {
  using S = Share<int, int>;
  EXPECT_THROW(S(ShareOptions{.extra_execution_rate = -0.1}),
               std::invalid_argument);
  EXPECT_THROW(S(ShareOptions{.extra_execution_rate = 1.5}),
               std::invalid_argument);
  EXPECT_THROW(S(ShareOptions{.extra_execution_rate = std::nan("")}),
               std::invalid_argument);
  EXPECT_THROW(S(ShareOptions{.max_flight_age = std::chrono::seconds(-1)}),
               std::invalid_argument);
  EXPECT_NO_THROW(S(ShareOptions{.extra_execution_rate = 1.0}));
}

int ReturnsSeven() { return 7; }

TEST(Share, EmptyLoaderIsRejected) {
  Share<int, int> share;
  std::function<int()> empty;
  EXPECT_THROW(share.Do(1, empty), std::invalid_argument);
  int (*null_fn)() = nullptr;
  EXPECT_THROW(share.Do(1, null_fn), std::invalid_argument);
  ThreadPool pool(1);
  EXPECT_THROW(share.DoAsync(1, empty, pool), std::invalid_argument);
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Do(1, &ReturnsSeven), 7);
}

TEST(Coalesce, EqualArgumentsShareOneExecution) {
  Gate gate;
  std::atomic<int> executions{0};
  auto lookup = Coalesce([&](int id, const std::string& table) {
    executions.fetch_add(1);
    gate.Wait();
    return table + ":" + std::to_string(id);
  });
  constexpr int kThreads = 6;
  std::vector<std::string> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] { results[i] = lookup(7, "users"); });
  }
  AwaitCondition([&] { return lookup.share().Stats().calls >= kThreads; });
  gate.Open();
  for (auto& t : threads) t.join();
  EXPECT_EQ(executions.load(), 1);
  EXPECT_THAT(results, Each(Eq("users:7")));
  EXPECT_EQ(lookup(8, "users"), "users:8");  // other arguments, other key
  EXPECT_EQ(executions.load(), 2);
}

TEST(Coalesce, WrapsFunctionPointersAndPassesOptions) {
  auto f = Coalesce(&ReturnsSeven, ShareOptions{.extra_execution_rate = 0.5});
  EXPECT_EQ(f(), 7);
  EXPECT_THROW(Coalesce(&ReturnsSeven, ShareOptions{.extra_execution_rate = 2}),
               std::invalid_argument);
}

TEST(ThreadPool, RunsEveryQueuedTaskBeforeJoining) {
  std::atomic<int> ran{0};
  {
    ThreadPool pool(2);
    for (int i = 0; i < 1000; ++i) pool.Schedule([&] { ran.fetch_add(1); });
  }
  EXPECT_EQ(ran.load(), 1000);
}

TEST(ThreadPool, RejectsZeroThreads) {
  EXPECT_THROW(ThreadPool(0), std::invalid_argument);
}

TEST(ThreadPool, TryScheduleFailsWhenQueueIsFull) {
  Gate gate;
  std::latch running(1);
  ThreadPool pool(1, /*queue_capacity=*/1);
  pool.Schedule([&] {
    running.count_down();
    gate.Wait();
  });
  running.wait();                        // the worker is busy
  EXPECT_TRUE(pool.TrySchedule([] {}));  // fills the queue
  EXPECT_FALSE(pool.TrySchedule([] {}));
  gate.Open();
}

}  // namespace
}  // namespace herd
