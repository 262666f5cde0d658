// Copyright 2026 The herd Authors.
//
// Tests of herd::Share against the contract in herd/share.h; each test's
// comment names the part it checks. Threads are ordered with HeldLoad
// (tests/testing/held_load.h), latches, promises and the Share's own
// counters (Stats().calls counts a call once it has joined or started a
// flight), never with sleeps.

#include "herd/share.h"

#include <atomic>
#include <chrono>
#include <cmath>
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

#include "absl/functional/any_invocable.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "herd/clock.h"
#include "herd/coalesce.h"
#include "herd/errors.h"
#include "herd/thread_pool.h"
#include "tests/testing/held_load.h"
#include "tests/testing/scripted_executors.h"
#include "tests/testing/sync.h"

namespace herd {
namespace {

using ::herd::test::AwaitCalls;
using ::herd::test::AwaitCondition;
using ::herd::test::HeldLoad;

using ::testing::Each;
using ::testing::Eq;

struct Payload {
  int code;
  std::string detail;
};

// share.h: "The first caller of a key (the leader) runs the loader on its own
// thread."
TEST(Share, SingleCallRunsLoaderOnCallerThread) {
  Share<int, std::thread::id> share;
  EXPECT_EQ(share.Do(1, [] { return std::this_thread::get_id(); }),
            std::this_thread::get_id());
  EXPECT_EQ(share.InFlight(), 0u);
}

// share.h: "A loader is invocable as `Value()` or `Value(std::stop_token)`".
TEST(Share, LoaderMayTakeStopToken) {
  Share<int, int> share;
  EXPECT_EQ(
      share.Do(1,
               [](std::stop_token stop) {
                 return stop.stop_possible() && !stop.stop_requested() ? 7 : -1;
               }),
      7);
}

// share.h: callers that arrive while a flight is in progress block until it
// ends and return a copy of the same value.
TEST(Share, ConcurrentCallersShareOneExecution) {
  Share<std::string, int> share;
  HeldLoad held;
  constexpr int kThreads = 64;
  std::vector<int> results(kThreads, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back(
        [&, i] { results[i] = share.Do("user:1", held.Returning(42)); });
  }
  AwaitCalls(share, kThreads);  // every caller has joined the one flight
  held.Release();
  for (auto& t : threads) t.join();
  EXPECT_EQ(held.entered(), 1);
  EXPECT_THAT(results, Each(Eq(42)));
  const ShareStats stats = share.Stats();
  EXPECT_EQ(stats.calls, uint64_t{kThreads});
  EXPECT_EQ(stats.executions, 1u);
  EXPECT_EQ(stats.shared, uint64_t{kThreads - 1});
  EXPECT_EQ(share.InFlight(), 0u);
}

TEST(Share, ThreadPoolWorkersShareOneExecution) {
  Share<int, int> share;
  HeldLoad held;
  constexpr int kCallers = 64;
  std::atomic<int> sum{0};
  {
    ThreadPool pool(kCallers);
    for (int i = 0; i < kCallers; ++i) {
      pool.Schedule([&] { sum += share.Do(9, held.Returning(1)); });
    }
    AwaitCalls(share, kCallers);
    held.Release();
  }  // joins the pool
  EXPECT_EQ(held.entered(), 1);
  EXPECT_EQ(sum.load(), kCallers);
  EXPECT_EQ(share.InFlight(), 0u);
}

// share.h, thread safety: "No lock is held while a loader ... runs".
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
  HeldLoad held;
  std::thread stuck([&] { share.Do(1, held.Returning(1)); });
  held.AwaitEntered();
  EXPECT_EQ(share.Do(2, [] { return 2; }), 2);  // returns while key 1 hangs
  held.Release();
  stuck.join();
}

// share.h: callers "rethrow the same exception object (type and payload
// intact)".
TEST(Share, ExceptionReachesEveryCallerWithTypeAndPayload) {
  Share<int, int> share;
  HeldLoad held;
  constexpr int kThreads = 8;
  std::atomic<int> caught{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      try {
        share.Do(1, held.Throwing<int>(Payload{503, "db down"}));
      } catch (const Payload& p) {
        if (p.code == 503 && p.detail == "db down") caught.fetch_add(1);
      }
    });
  }
  AwaitCalls(share, kThreads);
  held.Release();
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

// share.h: "When the flight ends its key is removed: Share caches nothing".
TEST(Share, FinishedFlightIsForgotten) {
  Share<int, int> share;
  int n = 0;
  EXPECT_EQ(share.Do(1, [&] { return ++n; }), 1);
  EXPECT_EQ(share.Do(1, [&] { return ++n; }), 2);  // nothing cached
  EXPECT_EQ(share.Stats().executions, 2u);
  EXPECT_EQ(share.InFlight(), 0u);
}

// share.h, ForgetMode::kDetach: the old flight ends while a newer flight of
// its key is registered. A joined old flight has moved to the heap, an
// unjoined one has not: both must leave the newer one alone (Go issue
// 31420).
void LateFlightNeverDisturbsNewerFlight(bool old_flight_joined) {
  Share<int, int> share;
  HeldLoad old_load, new_load;
  std::thread old_caller(
      [&] { EXPECT_EQ(share.Do(1, old_load.Returning(1)), 1); });
  old_load.AwaitEntered();
  std::thread old_joiner;
  if (old_flight_joined) {
    old_joiner =
        std::thread([&] { EXPECT_EQ(share.Do(1, [] { return -1; }), 1); });
    AwaitCalls(share, 2);
  }
  const uint64_t old_calls = old_flight_joined ? 2 : 1;
  ASSERT_TRUE(share.Forget(1));
  std::thread new_caller(
      [&] { EXPECT_EQ(share.Do(1, new_load.Returning(2)), 2); });
  new_load.AwaitEntered();
  old_load.Release();
  old_caller.join();
  if (old_joiner.joinable()) old_joiner.join();
  // The new flight is still registered, and a newcomer joins it.
  EXPECT_EQ(share.InFlight(), 1u);
  std::thread joiner([&] { EXPECT_EQ(share.Do(1, [] { return 3; }), 2); });
  AwaitCalls(share, old_calls + 2);
  new_load.Release();
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

// share.h, ShareOptions::extra_execution_rate: "the first success completes
// it for everyone".
TEST(Share, ExtraExecutionFirstSuccessWinsForEveryone) {
  Share<int, std::string> share(ShareOptions{.extra_execution_rate = 1.0});
  HeldLoad slow;
  std::string leader_result;
  std::thread leader([&] {
    leader_result = share.Do(1, slow.Returning(std::string("slow")));
  });
  slow.AwaitEntered();
  CallInfo info;
  EXPECT_EQ(share.Do(
                1, [] { return std::string("fast"); }, &info),
            "fast");
  EXPECT_TRUE(info.executed);
  EXPECT_FALSE(info.shared);
  EXPECT_EQ(share.InFlight(), 0u);  // the flight completed with "fast"
  slow.Release();
  leader.join();
  EXPECT_EQ(leader_result, "fast");  // the late result was dropped
  const ShareStats stats = share.Stats();
  EXPECT_EQ(stats.executions, 2u);
  EXPECT_EQ(stats.extra_executions, 1u);
  EXPECT_EQ(stats.shared, 1u);  // the leader got a value it did not make
}

// share.h, exception safety: "when extra executions race, only once all of
// them have failed".
TEST(Share, FailedExecutionWaitsForOthersToSucceed) {
  Share<int, int> share(ShareOptions{.extra_execution_rate = 1.0});
  HeldLoad leader_load, extra_load;
  int leader_result = 0;
  std::thread leader([&] {
    leader_result = share.Do(
        1, leader_load.Throwing<int>(std::runtime_error("first try failed")));
  });
  leader_load.AwaitEntered();
  int extra_result = 0;
  std::thread extra(
      [&] { extra_result = share.Do(1, extra_load.Returning(8)); });
  extra_load.AwaitEntered();
  leader_load.Release();  // the leader fails while the extra still runs
  AwaitCondition([&] { return share.Stats().failures == 1; });
  EXPECT_EQ(share.InFlight(), 1u);  // a failure alone did not end the flight
  extra_load.Release();
  leader.join();
  extra.join();
  EXPECT_EQ(leader_result, 8);
  EXPECT_EQ(extra_result, 8);
}

TEST(Share, ExceptionWhenEveryExecutionFailed) {
  Share<int, int> share(ShareOptions{.extra_execution_rate = 1.0});
  HeldLoad held;
  std::atomic<int> failures{0};
  auto caller = [&](int code) {
    try {
      share.Do(1, held.Throwing<int>(code));
    } catch (int) {
      failures.fetch_add(1);
    }
  };
  std::thread a(caller, 1);
  std::thread b(caller, 2);
  held.AwaitEntered(2);
  held.Release();
  a.join();
  b.join();
  EXPECT_EQ(failures.load(), 2);
  EXPECT_EQ(share.Stats().failures, 2u);
  EXPECT_EQ(share.InFlight(), 0u);
}

// share.h, AllowExtraExecution(): "Lets the next caller who joins `key`'s
// flight run one extra execution instead of waiting. Returns true iff `key`
// had a flight."
TEST(Share, AllowExtraExecutionLetsNextCallerRunAnExtraExecution) {
  Share<int, int> share;
  EXPECT_FALSE(share.AllowExtraExecution(1));
  HeldLoad held;
  std::thread leader([&] { EXPECT_EQ(share.Do(1, held.Returning(1)), 2); });
  held.AwaitEntered();
  EXPECT_TRUE(share.AllowExtraExecution(1));
  EXPECT_EQ(share.Do(1, [] { return 2; }), 2);  // ran, did not wait
  held.Release();
  leader.join();
  EXPECT_EQ(share.Stats().extra_executions, 1u);
}

// share.h, AllowExtraExecution(): "Calls add up."
TEST(Share, AllowExtraExecutionCallsAddUp) {
  Share<int, int> share;
  HeldLoad leader_load, extras;
  std::thread leader(
      [&] { EXPECT_EQ(share.Do(1, leader_load.Returning(1)), 1); });
  leader_load.AwaitEntered();
  ASSERT_TRUE(share.AllowExtraExecution(1));
  ASSERT_TRUE(share.AllowExtraExecution(1));
  std::thread extra1([&] { EXPECT_EQ(share.Do(1, extras.Returning(-1)), 1); });
  std::thread extra2([&] { EXPECT_EQ(share.Do(1, extras.Returning(-1)), 1); });
  extras.AwaitEntered(2);  // both ran the loader
  std::thread waiter([&] { EXPECT_EQ(share.Do(1, [] { return -2; }), 1); });
  AwaitCalls(share, 4);   // the third caller waits: the credits are spent
  leader_load.Release();  // the leader's success decides for everyone
  leader.join();
  waiter.join();
  extras.Release();
  extra1.join();
  extra2.join();
  EXPECT_EQ(share.Stats().executions, 3u);
  EXPECT_EQ(share.Stats().extra_executions, 2u);
}

// share.h, ForgetMode::kDetach: "Callers arriving afterwards start a new
// flight; the old flight's callers still get the old flight's outcome."
TEST(Share, ForgetDetachStartsNewFlightAndOldCallersKeepOldResult) {
  Share<int, int> share;
  EXPECT_FALSE(share.Forget(1));
  EXPECT_FALSE(share.Forget(1, ForgetMode::kRerunOnNextCall));
  HeldLoad held;
  int old_leader = 0, old_follower = 0;
  std::thread leader([&] { old_leader = share.Do(1, held.Returning(1)); });
  held.AwaitEntered();
  std::thread follower([&] { old_follower = share.Do(1, [] { return -1; }); });
  AwaitCalls(share, 2);
  EXPECT_TRUE(share.Forget(1, ForgetMode::kDetach));
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Do(1, [] { return 2; }), 2);  // a fresh flight
  held.Release();
  leader.join();
  follower.join();
  EXPECT_EQ(old_leader, 1);
  EXPECT_EQ(old_follower, 1);
}

// share.h, ForgetMode::kRerunOnNextCall: "every caller, old and new, gets
// the first successful result. Rescues a batch stuck behind a hung
// execution."
TEST(Share, ForgetRerunOnNextCallRescuesStuckBatch) {
  Share<int, int> share;
  HeldLoad stuck;
  int old_leader = 0, old_follower = 0;
  std::thread leader([&] { old_leader = share.Do(1, stuck.Returning(1)); });
  stuck.AwaitEntered();
  std::thread follower([&] { old_follower = share.Do(1, [] { return -1; }); });
  AwaitCalls(share, 2);
  EXPECT_TRUE(share.Forget(1, ForgetMode::kRerunOnNextCall));
  EXPECT_EQ(share.Do(1, [] { return 2; }), 2);  // the rerun
  follower.join();  // rescued while the first execution is still stuck
  EXPECT_EQ(old_follower, 2);
  stuck.Release();
  leader.join();
  EXPECT_EQ(old_leader, 2);
  EXPECT_EQ(share.Stats().executions, 2u);
}

// share.h: Release() and ForgetMode::kRerun stay one release as deprecated
// aliases of AllowExtraExecution() and kRerunOnNextCall.
TEST(Share, DeprecatedNamesStillWork) {
  Share<int, int> share;
  HeldLoad held;
  std::thread leader([&] { EXPECT_EQ(share.Do(1, held.Returning(1)), 2); });
  held.AwaitEntered();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  static_assert(ForgetMode::kRerun == ForgetMode::kRerunOnNextCall);
  EXPECT_TRUE(share.Release(1));
  EXPECT_EQ(share.Do(1, [] { return 2; }), 2);
  EXPECT_FALSE(share.Release(1));
  EXPECT_FALSE(share.Forget(1, ForgetMode::kRerun));
#pragma GCC diagnostic pop
  held.Release();
  leader.join();
  EXPECT_EQ(share.Stats().extra_executions, 1u);
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

// share.h, Cancel(): "every caller waiting on it throws herd::Cancelled at
// once, the loaders' std::stop_token reports stop_requested() ... and the
// key is free for a new flight at once."
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

// share.h, Cancel(): waiters throw "at once", even while the loader ignores
// the cancellation.
TEST(Share, CancelReturnsWaitersBeforeLoaderEnds) {
  Share<int, int> share;
  HeldLoad held;  // ignores cancellation
  std::thread leader(
      [&] { EXPECT_THROW(share.Do(1, held.Returning(1)), Cancelled); });
  held.AwaitEntered();
  std::thread follower(
      [&] { EXPECT_THROW(share.Do(1, [] { return 0; }), Cancelled); });
  AwaitCalls(share, 2);
  ASSERT_TRUE(share.Cancel(1));
  follower.join();  // returns while the loader is still blocked
  EXPECT_EQ(share.Do(1, [] { return 2; }), 2);  // key free at once
  held.Release();
  leader.join();
  EXPECT_EQ(share.InFlight(), 0u);
}

// share.h, Cancel(): the exception every caller gets is one herd::Cancelled.
TEST(Share, CancelledCallersShareOneCancelledError) {
  Share<int, int> share;
  HeldLoad held;
  std::thread leader(
      [&] { EXPECT_THROW(share.Do(1, held.Returning(1)), Cancelled); });
  held.AwaitEntered();
  ThreadPool pool(1);
  std::shared_future<int> joined = share.DoAsync(
      1, [] { return 0; }, pool);
  ASSERT_TRUE(share.Cancel(1));
  try {
    joined.get();
    ADD_FAILURE() << "a cancelled flight produced a value";
  } catch (const Cancelled& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("cancelled"));
  }
  held.Release();
  leader.join();
}

// share.h, CancelAll(): "Cancel() for every flight. Returns the number
// cancelled."
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
  // The map is usable after CancelAll emptied it.
  EXPECT_EQ(share.Do(1, [] { return 4; }), 4);
  EXPECT_EQ(share.InFlight(), 0u);
}

// share.h, DoFor(): "a caller that waits ... gives up after `timeout` ...
// the flight goes on for everyone else. A caller that runs the loader
// itself is not interrupted".
TEST(Share, DoForWaiterTimesOutAndFlightGoesOn) {
  Share<int, int> share;
  HeldLoad held;
  std::thread leader([&] {
    EXPECT_EQ(share.DoFor(1, std::chrono::milliseconds(0), held.Returning(4)),
              4);
  });
  held.AwaitEntered();
  EXPECT_THROW(share.DoFor(1, std::chrono::milliseconds(1), [] { return 0; }),
               WaitTimeout);
  EXPECT_EQ(share.InFlight(), 1u);
  std::thread patient([&] {
    EXPECT_EQ(share.DoFor(1, std::chrono::hours(1), [] { return 0; }), 4);
  });
  AwaitCalls(share, 3);
  held.Release();
  leader.join();
  patient.join();
  EXPECT_EQ(share.Stats().timeouts, 1u);
  EXPECT_EQ(share.Stats().executions, 1u);
}

// share.h, DoFor(): "A zero timeout only takes a result that is already
// there".
TEST(Share, DoForWithZeroTimeoutGivesUpAtOnce) {
  Share<int, int> share;
  HeldLoad held;
  std::thread leader([&] { EXPECT_EQ(share.Do(1, held.Returning(4)), 4); });
  held.AwaitEntered();
  EXPECT_THROW(
      share.DoFor(1, std::chrono::nanoseconds::zero(), [] { return 0; }),
      WaitTimeout);
  held.Release();
  leader.join();
  EXPECT_EQ(share.Stats().timeouts, 1u);
  // No flight: a zero timeout does not stop this caller from leading one.
  EXPECT_EQ(share.DoFor(1, std::chrono::nanoseconds::zero(), [] { return 5; }),
            5);
}

// share.h, DoFor(): "std::invalid_argument if `timeout` is negative or NaN,
// before anything is looked up".
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

// share.h, DoFor(): "one too long for std::chrono::steady_clock
// (duration::max()) waits without limit", in every representation.
template <class Duration>
void EndlessTimeoutWaitsForTheFlight(Duration timeout) {
  Share<int, int> share;
  HeldLoad held;
  std::thread leader([&] { EXPECT_EQ(share.Do(1, held.Returning(4)), 4); });
  held.AwaitEntered();
  std::thread waiter(
      [&] { EXPECT_EQ(share.DoFor(1, timeout, [] { return -1; }), 4); });
  AwaitCalls(share, 2);
  held.Release();
  leader.join();
  waiter.join();
  EXPECT_EQ(share.Stats().timeouts, 0u);
  EXPECT_EQ(share.Stats().shared, 1u);
}

TEST(Share, DoForWithAnEndlessTimeoutWaitsForTheFlight) {
  EndlessTimeoutWaitsForTheFlight(std::chrono::hours::max());
  EndlessTimeoutWaitsForTheFlight(std::chrono::nanoseconds::max());
  EndlessTimeoutWaitsForTheFlight(std::chrono::steady_clock::duration::max());
  EndlessTimeoutWaitsForTheFlight(std::chrono::duration<double>::max());
  EndlessTimeoutWaitsForTheFlight(std::chrono::duration<double>(INFINITY));
}

// share.h, ShareOptions::clock and "Exception safety": a Clock that throws
// (read for max_flight_age) fails the call before anything is registered.
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

// share.h, DoAsync(): "Returns the future of `key`'s flight without
// blocking. When none is in progress, ... registers it".
TEST(Share, DoAsyncReturnsFutureWithoutBlocking) {
  Share<int, int> share;
  HeldLoad held;
  ThreadPool pool(1);
  std::shared_future<int> f = share.DoAsync(1, held.Returning(6), pool);
  EXPECT_EQ(share.InFlight(), 1u);  // registered before returning
  EXPECT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  // A blocking caller joins the same flight.
  std::thread joiner([&] { EXPECT_EQ(share.Do(1, [] { return 0; }), 6); });
  AwaitCalls(share, 2);
  held.Release();
  EXPECT_EQ(f.get(), 6);
  joiner.join();
  EXPECT_EQ(share.Stats().executions, 1u);
}

TEST(Share, DoAsyncJoinsFlightInProgress) {
  Share<int, int> share;
  HeldLoad held;
  std::thread leader([&] { share.Do(1, held.Returning(3)); });
  held.AwaitEntered();
  ThreadPool pool(1);
  std::shared_future<int> f = share.DoAsync(
      1, [] { return -1; }, pool);
  held.Release();
  EXPECT_EQ(f.get(), 3);
  leader.join();
  EXPECT_EQ(share.Stats().executions, 1u);
}

// --- DoAsync: what each executor behaviour gets (share.h, DoAsync()). ------

// "runs it (at once, or later on any thread): the loader runs there and the
// flight ends with its outcome; DoAsync returns the future".
TEST(Share, DoAsyncExecutorThatRunsAtOnce) {
  Share<int, int> share;
  test::InlineExecutor executor;
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
  EXPECT_EQ(share.Stats().failures, 1u);
}

TEST(Share, DoAsyncExecutorThatRunsLater) {
  Share<int, int> share;
  test::QueueExecutor executor;
  std::shared_future<int> f = share.DoAsync(
      1, [] { return 5; }, executor);
  std::shared_future<int> joined = share.DoAsync(
      1, [] { return -1; }, executor);
  EXPECT_EQ(executor.size(), 1u);  // the joiner scheduled nothing
  EXPECT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  executor.RunNext();
  EXPECT_EQ(f.get(), 5);
  EXPECT_EQ(joined.get(), 5);
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Stats().executions, 1u);
}

// "throws from Schedule without having run it: the flight ends with that
// exception and DoAsync rethrows it".
TEST(Share, DoAsyncExecutorThatRefuses) {
  Share<int, int> share;
  test::RefusingExecutor executor;
  EXPECT_THROW(share.DoAsync(
                   1, [] { return 1; }, executor),
               Closed);
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Stats().failures, 1u);
  EXPECT_EQ(share.Do(1, [] { return 2; }), 2);
}

// "runs it and then throws: the run decides the flight; DoAsync rethrows the
// exception". The flight settles once, with the loader's value.
TEST(Share, DoAsyncExecutorThatRunsThenThrows) {
  Share<int, int> share;
  test::RunThenThrowExecutor executor;
  test::QueueExecutor unused;
  std::shared_future<int> joined;
  EXPECT_THROW(share.DoAsync(
                   1,
                   [&] {
                     // Joins the flight this loader is running for.
                     joined = share.DoAsync(
                         1, [] { return -1; }, unused);
                     return 7;
                   },
                   executor),
               std::runtime_error);
  ASSERT_TRUE(joined.valid());
  EXPECT_EQ(joined.get(), 7);
  EXPECT_EQ(unused.size(), 0u);
  EXPECT_EQ(share.InFlight(), 0u);
  const ShareStats stats = share.Stats();
  EXPECT_EQ(stats.executions, 1u);
  EXPECT_EQ(stats.failures, 0u);
  EXPECT_EQ(share.Do(1, [] { return 8; }), 8);
}

// "throws from Schedule without having run it ... a task kept before
// throwing does nothing when it later runs or is destroyed".
TEST(Share, DoAsyncExecutorThatKeepsThenThrows) {
  Share<int, int> share;
  HeldLoad held;
  std::thread leader([&] { EXPECT_EQ(share.Do(2, held.Returning(2)), 2); });
  held.AwaitEntered();
  std::atomic<int> runs{0};
  test::KeepThenThrowExecutor executor;
  test::QueueExecutor unused;
  struct JoinInSchedule {
    Share<int, int>* share;
    test::KeepThenThrowExecutor* executor;
    test::QueueExecutor* unused;
    std::shared_future<int>* joined;
    void Schedule(Task task) {
      *joined = share->DoAsync(
          1, [] { return -1; }, *unused);
      executor->Schedule(std::move(task));
    }
  };
  std::shared_future<int> joined;
  JoinInSchedule joining{&share, &executor, &unused, &joined};
  EXPECT_THROW(share.DoAsync(
                   1,
                   [&] {
                     runs.fetch_add(1);
                     return 1;
                   },
                   joining),
               std::runtime_error);
  ASSERT_TRUE(joined.valid());
  EXPECT_THROW(joined.get(), std::runtime_error);  // ended at once
  EXPECT_EQ(share.InFlight(), 1u);                 // only key 2's
  ASSERT_EQ(executor.kept.size(), 1u);
  std::move(executor.kept[0])();  // runs nothing
  executor.kept.clear();
  EXPECT_EQ(runs.load(), 0);
  held.Release();
  leader.join();
  EXPECT_EQ(share.Stats().failures, 1u);
  EXPECT_EQ(share.InFlight(), 0u);
}

// "destroys it unrun (during Schedule or later): the flight ends with
// herd::Closed; DoAsync returns the future".
TEST(Share, DoAsyncExecutorThatDropsDuringSchedule) {
  Share<int, int> share;
  test::DroppingExecutor executor;
  std::shared_future<int> f = share.DoAsync(
      1, [] { return 1; }, executor);
  EXPECT_THROW(f.get(), Closed);
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Stats().failures, 1u);
  EXPECT_EQ(share.Do(1, [] { return 2; }), 2);
}

TEST(Share, DoAsyncExecutorThatDropsLater) {
  Share<int, int> share;
  test::QueueExecutor executor;
  std::shared_future<int> f = share.DoAsync(
      1, [] { return 1; }, executor);
  std::thread waiter(
      [&] { EXPECT_THROW(share.Do(1, [] { return 0; }), Closed); });
  AwaitCalls(share, 2);
  executor.DropNext();
  waiter.join();
  EXPECT_THROW(f.get(), Closed);
  EXPECT_EQ(share.InFlight(), 0u);
}

// share.h, DoAsync(): "its loader copy is destroyed before its callers are
// woken", and ~Share(): "Waits until every task DoAsync() handed to an
// executor has run or been destroyed, and with it the loader and the copy of
// the key it held."
struct Lifetimes {
  std::atomic<int> loaders{0};  // live copies of the loader
  std::atomic<int> keys{0};     // live copies of the key
};

struct TrackedKey {
  TrackedKey(int v, Lifetimes* l) : value(v), lifetimes(l) { ++l->keys; }
  TrackedKey(const TrackedKey& o) : value(o.value), lifetimes(o.lifetimes) {
    ++lifetimes->keys;
  }
  ~TrackedKey() { --lifetimes->keys; }
  bool operator==(const TrackedKey& o) const { return value == o.value; }
  template <class H>
  friend H AbslHashValue(H h, const TrackedKey& k) {
    return H::combine(std::move(h), k.value);
  }
  int value;
  Lifetimes* lifetimes;
};

struct TrackedLoader {
  explicit TrackedLoader(Lifetimes* l) : lifetimes(l) { ++l->loaders; }
  TrackedLoader(const TrackedLoader& o) : lifetimes(o.lifetimes) {
    ++lifetimes->loaders;
  }
  TrackedLoader(TrackedLoader&& o) noexcept : lifetimes(o.lifetimes) {
    ++lifetimes->loaders;
  }
  ~TrackedLoader() { --lifetimes->loaders; }  // touches the owner's state
  int operator()() const { return lifetimes->loaders.load(); }
  Lifetimes* lifetimes;
};

TEST(Share, AsyncLoaderIsDestroyedBeforeCallersAreWoken) {
  Lifetimes lifetimes;
  test::QueueExecutor executor;
  {
    Share<TrackedKey, int> share;
    std::shared_future<int> f;
    {
      const TrackedKey key(1, &lifetimes);
      f = share.DoAsync(key, TrackedLoader(&lifetimes), executor);
    }
    EXPECT_EQ(lifetimes.loaders.load(), 1);  // the flight's copy
    EXPECT_EQ(lifetimes.keys.load(), 1);     // the flight's copy
    executor.RunNextAndKeep();  // the spent task stays with the executor
    EXPECT_EQ(f.get(), 1);      // the loader saw only itself
    EXPECT_EQ(lifetimes.loaders.load(), 0);
    EXPECT_EQ(lifetimes.keys.load(), 0);
  }  // ~Share returns: the spent task holds nothing of it
  executor.DestroyKept();
}

TEST(Share, DestructorWaitsForATaskTheExecutorStillHolds) {
  auto lifetimes = std::make_unique<Lifetimes>();
  test::QueueExecutor executor;
  std::latch destroying(1);
  std::atomic<bool> share_gone{false};
  struct Owner {
    explicit Owner(std::latch* l) : canary{l} {}
    Share<TrackedKey, int> share;
    struct Canary {  // destroyed first: ~Owner has begun
      ~Canary() { latch->count_down(); }
      std::latch* latch;
    } canary;
  };
  auto owner = std::make_unique<Owner>(&destroying);
  std::shared_future<int> f = owner->share.DoAsync(
      TrackedKey(1, lifetimes.get()), TrackedLoader(lifetimes.get()), executor);
  std::thread destroyer([&] {
    owner.reset();
    share_gone = true;
  });
  destroying.wait();
  // ~Share cannot return while the executor holds the task.
  EXPECT_FALSE(share_gone.load());
  EXPECT_EQ(lifetimes->loaders.load(), 1);
  executor.DropNext();  // the flight ends with Closed; ~Share may return
  destroyer.join();
  EXPECT_TRUE(share_gone.load());
  EXPECT_EQ(lifetimes->loaders.load(), 0);
  EXPECT_EQ(lifetimes->keys.load(), 0);
  EXPECT_THROW(f.get(), Closed);
}

// share.h, "Cost": a flight nobody joins uses the leader's own key; a flight
// that outlives its leader's call keeps a copy (Key's copy runs under the
// shard lock, and may throw: the caller whose call needed it fails alone).
struct KeyCopyFailed {};

struct FragileKey {
  FragileKey(int v, const std::atomic<bool>* fail)
      : value(v), fail_copy(fail) {}
  FragileKey(const FragileKey& o) : value(o.value), fail_copy(o.fail_copy) {
    if (fail_copy->load()) throw KeyCopyFailed();
  }
  bool operator==(const FragileKey& o) const { return value == o.value; }
  template <class H>
  friend H AbslHashValue(H h, const FragileKey& k) {
    return H::combine(std::move(h), k.value);
  }
  int value;
  const std::atomic<bool>* fail_copy;
};

TEST(Share, LeaderPathNeverCopiesTheKey) {
  std::atomic<bool> fail_copy{true};
  Share<FragileKey, int> share;
  const FragileKey key(1, &fail_copy);
  EXPECT_EQ(share.Do(key, [] { return 1; }), 1);
  EXPECT_EQ(share.Do(key, [] { return 2; }), 2);
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Stats().executions, 2u);
}

TEST(Share, JoinerWhoseKeyCopyThrowsFailsAlone) {
  std::atomic<bool> fail_copy{false};
  Share<FragileKey, int> share;
  const FragileKey key(1, &fail_copy);
  HeldLoad held;
  std::thread leader([&] { EXPECT_EQ(share.Do(key, held.Returning(5)), 5); });
  held.AwaitEntered();
  fail_copy = true;  // the joiner must copy the key to move the flight
  EXPECT_THROW(share.Do(key, [] { return -1; }), KeyCopyFailed);
  test::QueueExecutor executor;
  EXPECT_THROW(share.DoAsync(
                   key, [] { return -1; }, executor),
               KeyCopyFailed);
  EXPECT_EQ(share.InFlight(), 1u);  // the leader's flight, as it was
  fail_copy = false;
  std::thread joiner([&] { EXPECT_EQ(share.Do(key, [] { return -2; }), 5); });
  AwaitCalls(share, 4);
  held.Release();
  leader.join();
  joiner.join();
  EXPECT_EQ(executor.size(), 0u);
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Stats().executions, 1u);
}

TEST(Share, DoAsyncWhoseKeyCopyThrowsRegistersNothing) {
  std::atomic<bool> fail_copy{true};
  Share<FragileKey, int> share;
  test::QueueExecutor executor;
  const FragileKey key(1, &fail_copy);
  EXPECT_THROW(share.DoAsync(
                   key, [] { return 1; }, executor),
               KeyCopyFailed);
  EXPECT_EQ(executor.size(), 0u);
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Do(key, [] { return 2; }), 2);
}

// share.h, Deadlocks: "a loader that calls Do() on the Share running it, for
// the key it is loading, on the same thread, gets herd::RecursiveCall".
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

// share.h, exception safety: "Every caller receives its own copy of the
// value: a copy constructor that throws fails that caller alone."
TEST(Share, FailedValueCopyFailsOnlyItsOwnCaller) {
  Share<int, Touchy> share;
  auto copy_failures = std::make_shared<std::atomic<int>>(0);
  HeldLoad held;
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
      held.Enter();
      *copy_failures = 1;  // the next copy, whoever makes it, throws
      return Touchy(5, copy_failures);
    });
  });
  held.AwaitEntered();
  std::thread waiter([&] { call([&] { return Touchy(-1, copy_failures); }); });
  AwaitCalls(share, 2);
  held.Release();
  leader.join();
  waiter.join();
  EXPECT_EQ(got_copy_failed.load(), 1);
  EXPECT_EQ(got_value.load(), 1);
  EXPECT_EQ(share.Stats().executions, 1u);
  EXPECT_EQ(share.InFlight(), 0u);
}

// share.h, Deadlocks: a waiter joining moves the leader's flight off the
// leader's stack; the re-entrancy check must still recognise the flight the
// loader runs for.
TEST(Share, RecursiveCallIsRefusedAfterAWaiterJoined) {
  Share<int, int> share;
  HeldLoad held;
  std::atomic<bool> refused{false};
  std::thread leader([&] {
    EXPECT_EQ(share.Do(1,
                       [&] {
                         held.Enter();
                         try {
                           share.Do(1, [] { return 0; });
                         } catch (const RecursiveCall&) {
                           refused = true;
                         }
                         return 5;
                       }),
              5);
  });
  held.AwaitEntered();
  std::thread waiter([&] { EXPECT_EQ(share.Do(1, [] { return -1; }), 5); });
  AwaitCalls(share, 2);
  held.Release();
  leader.join();
  waiter.join();
  EXPECT_TRUE(refused);
  EXPECT_EQ(share.Stats().executions, 1u);
  EXPECT_EQ(share.Stats().shared, 1u);
  EXPECT_EQ(share.InFlight(), 0u);
}

// share.h, ShareOptions::max_flight_age: "a flight whose age is at least
// this is detached when the next caller arrives": one nanosecond younger is
// joined, exactly that old is not.
TEST(Share, MaxFlightAgeDetachesOldFlight) {
  FakeClock clock;
  Share<int, int> share(ShareOptions{.max_flight_age = std::chrono::seconds(10),
                                     .clock = &clock});
  HeldLoad held;
  int old_result = 0;
  std::thread leader([&] { old_result = share.Do(1, held.Returning(1)); });
  held.AwaitEntered();
  clock.Advance(std::chrono::seconds(10) - std::chrono::nanoseconds(1));
  std::thread young_joiner(
      [&] { EXPECT_EQ(share.Do(1, [] { return 0; }), 1); });
  AwaitCalls(share, 2);
  clock.Advance(std::chrono::nanoseconds(1));
  EXPECT_EQ(share.Do(1, [] { return 2; }), 2);  // too old: a new flight
  held.Release();
  leader.join();
  young_joiner.join();
  EXPECT_EQ(old_result, 1);
  EXPECT_EQ(share.Stats().executions, 2u);
  EXPECT_EQ(share.InFlight(), 0u);
}

// share.h, CallInfo.
TEST(Share, CallInfoTellsWhetherResultWasShared) {
  Share<int, int> share;
  HeldLoad held;
  CallInfo leader_info, follower_info;
  std::thread leader([&] { share.Do(1, held.Returning(1), &leader_info); });
  held.AwaitEntered();
  std::thread follower([&] {
    share.Do(
        1, [] { return 0; }, &follower_info);
  });
  AwaitCalls(share, 2);
  held.Release();
  leader.join();
  follower.join();
  EXPECT_TRUE(leader_info.executed);
  EXPECT_FALSE(leader_info.shared);
  EXPECT_FALSE(follower_info.executed);
  EXPECT_TRUE(follower_info.shared);
}

// share.h, ShareStats.
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

// herd/errors.h: herd's own refusals are herd::Error subclasses.
TEST(Share, ErrorsShareOneBase) {
  static_assert(std::is_base_of_v<std::runtime_error, Error>);
  static_assert(std::is_base_of_v<Error, Cancelled>);
  static_assert(std::is_base_of_v<Error, WaitTimeout>);
  static_assert(std::is_base_of_v<Error, RecursiveCall>);
  EXPECT_THAT(Cancelled().what(), ::testing::HasSubstr("cancelled"));
}

// share.h, Share(): "Throws: std::invalid_argument if ...".
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
  EXPECT_NO_THROW(
      S(ShareOptions{.max_flight_age = std::chrono::nanoseconds::max()}));
}

int ReturnsSeven() { return 7; }

// share.h, Do(): "std::invalid_argument if `loader` is empty".
TEST(Share, EmptyLoaderIsRejected) {
  Share<int, int> share;
  std::function<int()> empty;
  EXPECT_THROW(share.Do(1, empty), std::invalid_argument);
  int (*null_fn)() = nullptr;
  EXPECT_THROW(share.Do(1, null_fn), std::invalid_argument);
  absl::AnyInvocable<int()> empty_any;
  EXPECT_THROW(share.Do(1, empty_any), std::invalid_argument);
  EXPECT_THROW(share.DoFor(1, std::chrono::seconds(1), empty),
               std::invalid_argument);
  ThreadPool pool(1);
  EXPECT_THROW(share.DoAsync(1, empty, pool), std::invalid_argument);
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Stats().calls, 0u);
  EXPECT_EQ(share.Do(1, &ReturnsSeven), 7);
}

// herd/coalesce.h: "concurrent calls with equal arguments share one
// execution".
TEST(Coalesce, EqualArgumentsShareOneExecution) {
  HeldLoad held;
  auto lookup = Coalesce([&](int id, const std::string& table) {
    held.Enter();
    return table + ":" + std::to_string(id);
  });
  constexpr int kThreads = 6;
  std::vector<std::string> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] { results[i] = lookup(7, "users"); });
  }
  AwaitCondition([&] { return lookup.share().Stats().calls >= kThreads; });
  held.Release();
  for (auto& t : threads) t.join();
  EXPECT_EQ(held.entered(), 1);
  EXPECT_THAT(results, Each(Eq("users:7")));
  EXPECT_EQ(lookup(8, "users"), "users:8");  // other arguments, other key
  EXPECT_EQ(held.entered(), 2);
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
  HeldLoad held;
  ThreadPool pool(1, /*queue_capacity=*/1);
  pool.Schedule([&] { held.Enter(); });
  held.AwaitEntered();                   // the worker is busy
  EXPECT_TRUE(pool.TrySchedule([] {}));  // fills the queue
  EXPECT_FALSE(pool.TrySchedule([] {}));
  held.Release();
}

}  // namespace
}  // namespace herd
