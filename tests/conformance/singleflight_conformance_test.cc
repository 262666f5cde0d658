// Copyright 2026 The herd Authors.
//
// Go's golang.org/x/sync/singleflight tests (singleflight_test.go), restated
// against herd/share.h and herd/coalesce.h, plus the boundaries the header
// promises beyond Go's (DoFor's zero and duration::max(), Cancel mid-wait,
// max_flight_age exactly at the age, executors that run, drop or throw).
// Each test names the Go test it restates (or "herd only") and quotes the
// header sentence it checks. Public headers only.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "herd/clock.h"
#include "herd/coalesce.h"
#include "herd/errors.h"
#include "herd/share.h"
#include "herd/thread_pool.h"
#include "tests/conformance/conformance.h"
#include "tests/testing/held_load.h"
#include "tests/testing/scripted_executors.h"
#include "tests/testing/sync.h"

namespace herd {
namespace {

using conformance::Await;
using conformance::Payload;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using test::Gate;
using test::HeldLoad;
using test::InlineExecutor;
using test::KeepThenThrowExecutor;
using test::QueueExecutor;
using test::RefusingExecutor;
using test::RunThenThrowExecutor;

// Counts its live copies in *live: a loader's captures, to see when the
// copies a Share made of a loader are destroyed.
struct Counted {
  explicit Counted(std::atomic<int>* live) : live(live) { ++*live; }
  Counted(const Counted& o) : live(o.live) { ++*live; }
  ~Counted() { --*live; }
  std::atomic<int>* live;
};

// Runs share.Do(key, held.Returning(value)) on a thread of its own and
// returns once that loader is inside, held: the leader of key's flight.
template <class K, class V>
std::future<V> HeldLeader(Share<K, V>& share, const K& key, HeldLoad& held,
                          V value) {
  const int before = held.entered();
  std::future<V> leader = std::async(std::launch::async, [&, key, value] {
    return share.Do(key, held.Returning(value));
  });
  held.AwaitEntered(before + 1);
  return leader;
}

// Runs share.Do(key, ...) on a thread of its own as a caller that must join
// the flight in progress (its own loader fails the test if it runs), and
// returns once the Share has counted `calls` calls in all.
template <class K, class V>
std::future<V> Joiner(Share<K, V>& share, const K& key, uint64_t calls) {
  std::future<V> joiner = std::async(std::launch::async, [&share, key] {
    return share.Do(key, []() -> V {
      ADD_FAILURE() << "a joiner's loader ran";
      return V();
    });
  });
  EXPECT_TRUE(Await([&] { return share.Stats().calls >= calls; }));
  return joiner;
}

// TestDo. share.h: "Returns the value of key's flight, starting one
// (running loader on this thread) when none is in progress"; "When the
// flight ends its key is removed: Share caches nothing".
TEST(SingleflightConformance, DoReturnsTheLoadersValue) {
  Share<std::string, std::string> share;
  CallInfo info;
  const std::thread::id caller = std::this_thread::get_id();
  std::thread::id ran_on;
  EXPECT_EQ(share.Do(
                "key",
                [&] {
                  ran_on = std::this_thread::get_id();
                  return std::string("bar");
                },
                &info),
            "bar");
  EXPECT_EQ(ran_on, caller);
  EXPECT_TRUE(info.executed);
  EXPECT_FALSE(info.shared);
  EXPECT_EQ(share.InFlight(), 0u);
  // Nothing cached: the next call runs the loader again.
  EXPECT_EQ(share.Do("key", [] { return std::string("baz"); }), "baz");
  const ShareStats stats = share.Stats();
  EXPECT_EQ(stats.calls, 2u);
  EXPECT_EQ(stats.executions, 2u);
  EXPECT_EQ(stats.shared, 0u);
}

// TestDoErr. share.h: callers "rethrow the same exception object (type and
// payload intact)"; errors.h: "Exceptions thrown by user loaders are never
// wrapped".
TEST(SingleflightConformance, DoRethrowsTheLoadersExceptionUnwrapped) {
  Share<std::string, int> share;
  try {
    share.Do("key", []() -> int { throw Payload(42); });
    FAIL() << "Do returned";
  } catch (const Payload& e) {
    EXPECT_EQ(e.value, 42);
  }
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Stats().failures, 1u);
}

// TestDoDupSuppress, with exact counts where Go allows a range: the loader
// returns only once all ten callers are in, so exactly one execution.
// share.h: "Callers that arrive while that flight is in progress block until
// it ends and return a copy of the same value"; ShareStats: calls, shared.
TEST(SingleflightConformance, ConcurrentCallersShareOneExecution) {
  constexpr int kCallers = 10;
  Share<std::string, std::string> share;
  std::atomic<int> executions{0};
  auto fn = [&] {
    executions.fetch_add(1);
    // Every caller has joined (or started) the flight before it ends.
    EXPECT_TRUE(Await([&] { return share.Stats().calls == kCallers; }));
    return std::string("bar");
  };
  std::vector<CallInfo> infos(kCallers);
  std::vector<std::string> got(kCallers);
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kCallers; ++i) {
      threads.emplace_back([&, i] { got[i] = share.Do("key", fn, &infos[i]); });
    }
  }
  EXPECT_EQ(executions.load(), 1);
  int executed = 0, shared = 0;
  for (int i = 0; i < kCallers; ++i) {
    EXPECT_EQ(got[i], "bar");
    executed += infos[i].executed ? 1 : 0;
    shared += infos[i].shared ? 1 : 0;
    EXPECT_NE(infos[i].executed, infos[i].shared);
  }
  EXPECT_EQ(executed, 1);
  EXPECT_EQ(shared, kCallers - 1);
  const ShareStats stats = share.Stats();
  EXPECT_EQ(stats.calls, static_cast<uint64_t>(kCallers));
  EXPECT_EQ(stats.executions, 1u);
  EXPECT_EQ(stats.shared, static_cast<uint64_t>(kCallers - 1));
}

// TestForget (go.dev/issue/31420). share.h, ForgetMode::kDetach: "Callers
// arriving afterwards start a new flight; the old flight's callers still get
// the old flight's outcome"; InFlight(): "detached flights not counted".
TEST(SingleflightConformance, ForgetDetachesAndTheNextCallerStartsAnew) {
  Share<std::string, int> share;
  HeldLoad held_first, held_second;
  const std::string key = "key";
  std::future<int> first = HeldLeader(share, key, held_first, 1);
  EXPECT_TRUE(share.Forget(key));
  EXPECT_EQ(share.InFlight(), 0u);

  std::future<int> second = HeldLeader(share, key, held_second, 2);
  held_first.Release();
  EXPECT_EQ(first.get(), 1);  // the old flight's outcome

  // The third caller joins the second flight: its own loader never runs.
  std::future<int> third = Joiner(share, key, 3);
  held_second.Release();
  EXPECT_EQ(second.get(), 2);
  EXPECT_EQ(third.get(), 2);
  EXPECT_EQ(share.Stats().executions, 2u);
  // share.h: Forget "Returns true iff key had a flight".
  EXPECT_FALSE(share.Forget(key));
}

// TestDoChan. share.h, DoAsync: "runs it (at once, or later on any thread):
// the loader runs there and the flight ends with its outcome; DoAsync
// returns the future".
TEST(SingleflightConformance, DoAsyncDeliversTheValueThroughTheFuture) {
  Share<std::string, std::string> share;
  InlineExecutor inline_executor;
  std::shared_future<std::string> f = share.DoAsync(
      "key", [] { return std::string("bar"); }, inline_executor);
  ASSERT_EQ(f.wait_for(seconds(0)), std::future_status::ready);
  EXPECT_EQ(f.get(), "bar");
  EXPECT_EQ(share.InFlight(), 0u);
}

// TestPanicDo: every caller of a flight whose loader throws gets the
// exception, and none hangs. share.h: callers "rethrow the same exception
// object (type and payload intact)".
TEST(SingleflightConformance, EveryCallerOfAFailedFlightGetsTheSameException) {
  constexpr int kCallers = 5;
  Share<std::string, int> share;
  auto fn = [&]() -> int {
    EXPECT_TRUE(Await([&] { return share.Stats().calls == kCallers; }));
    throw Payload(7);
  };
  std::vector<const void*> objects(kCallers, nullptr);
  std::vector<int> payloads(kCallers, 0);
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kCallers; ++i) {
      threads.emplace_back([&, i] {
        try {
          share.Do("key", fn);
        } catch (const Payload& e) {
          objects[i] = &e;
          payloads[i] = e.value;
        }
      });
    }
  }
  for (int i = 0; i < kCallers; ++i) {
    EXPECT_EQ(payloads[i], 7) << "caller " << i;
    EXPECT_EQ(objects[i], objects[0]) << "caller " << i << ": another object";
  }
  EXPECT_EQ(share.Stats().executions, 1u);
  EXPECT_EQ(share.Stats().failures, 1u);
  EXPECT_EQ(share.InFlight(), 0u);
}

// TestPanicDoChan (Go crashes the process; herd hands the exception to the
// future). share.h, DoAsync: "the flight ends with its outcome".
TEST(SingleflightConformance, DoAsyncLoaderExceptionReachesTheFuture) {
  Share<std::string, int> share;
  InlineExecutor inline_executor;
  std::shared_future<int> f = share.DoAsync(
      "", []() -> int { throw Payload(3); }, inline_executor);
  try {
    f.get();
    FAIL() << "get() returned";
  } catch (const Payload& e) {
    EXPECT_EQ(e.value, 3);
  }
  EXPECT_EQ(share.InFlight(), 0u);
}

// TestPanicDoSharedByDoChan: a DoAsync that joins a Do's flight never runs
// its own loader and gets the Do's exception. share.h, DoAsync: "Returns the
// future of key's flight without blocking. When none is in progress, builds
// one".
TEST(SingleflightConformance, DoAsyncJoiningADoGetsItsException) {
  Share<std::string, int> share;
  HeldLoad held;
  std::future<void> leader = std::async(std::launch::async, [&] {
    EXPECT_THROW(share.Do("", held.Throwing<int>(Payload(9))), Payload);
  });
  held.AwaitEntered();
  QueueExecutor executor;
  std::shared_future<int> f = share.DoAsync(
      "",
      []() -> int {
        ADD_FAILURE() << "DoAsync's loader ran";
        return 0;
      },
      executor);
  EXPECT_EQ(executor.size(), 0u);  // joined: nothing to schedule
  EXPECT_EQ(f.wait_for(seconds(0)), std::future_status::timeout);
  held.Release();
  leader.get();
  try {
    f.get();
    FAIL() << "get() returned";
  } catch (const Payload& e) {
    EXPECT_EQ(e.value, 9);
  }
}

// ExampleGroup: two DoAsync calls with one key while the first is pending:
// only the first function runs, both see its result. share.h: "Async
// callers never run extra executions".
TEST(SingleflightConformance, SecondDoAsyncSharesTheFirstsExecution) {
  Share<std::string, std::string> share;
  QueueExecutor executor;
  std::shared_future<std::string> res1 = share.DoAsync(
      "key", [] { return std::string("func 1"); }, executor);
  std::shared_future<std::string> res2 = share.DoAsync(
      "key", [] { return std::string("func 2"); }, executor);
  ASSERT_EQ(executor.size(), 1u);
  executor.RunNext();
  EXPECT_EQ(res1.get(), "func 1");
  EXPECT_EQ(res2.get(), "func 1");
  EXPECT_EQ(share.Stats().executions, 1u);
  EXPECT_EQ(share.Stats().calls, 2u);
}

// --- herd only: the boundaries the header adds to Go's API. -------------

// share.h, DoFor: "A zero timeout only takes a result that is already
// there"; "the flight goes on for everyone else"; ShareStats::timeouts.
TEST(SingleflightConformance, DoForZeroGivesUpAtOnceOnSomeoneElsesFlight) {
  Share<int, int> share;
  HeldLoad held;
  std::future<int> leader = HeldLeader(share, 1, held, 10);
  EXPECT_THROW(share.DoFor(1, nanoseconds(0), [] { return 0; }), WaitTimeout);
  EXPECT_THROW(share.DoFor(1, seconds(0), [] { return 0; }), WaitTimeout);
  EXPECT_EQ(share.InFlight(), 1u);
  held.Release();
  EXPECT_EQ(leader.get(), 10);
  EXPECT_EQ(share.Stats().timeouts, 2u);
  EXPECT_EQ(share.Stats().executions, 1u);
}

// share.h, DoFor: "A caller that runs the loader itself is not interrupted":
// with no flight in progress a zero timeout still runs the loader.
TEST(SingleflightConformance, DoForZeroRunsTheLoaderWhenNoFlightExists) {
  Share<int, int> share;
  CallInfo info;
  EXPECT_EQ(share.DoFor(
                1, nanoseconds(0), [] { return 5; }, &info),
            5);
  EXPECT_TRUE(info.executed);
  EXPECT_EQ(share.Stats().timeouts, 0u);
}

// share.h, DoFor: "one too long for std::chrono::steady_clock
// (duration::max()) waits without limit".
TEST(SingleflightConformance, DoForDurationMaxWaitsWithoutLimit) {
  Share<int, int> share;
  HeldLoad held;
  std::future<int> leader = HeldLeader(share, 1, held, 10);
  std::future<int> a = std::async(std::launch::async, [&] {
    return share.DoFor(1, nanoseconds::max(), [] { return -1; });
  });
  std::future<int> b = std::async(std::launch::async, [&] {
    return share.DoFor(1, std::chrono::hours::max(), [] { return -1; });
  });
  std::future<int> c = std::async(std::launch::async, [&] {
    return share.DoFor(1, std::chrono::duration<double>(1e300),
                       [] { return -1; });
  });
  ASSERT_TRUE(Await([&] { return share.Stats().calls == 4; }));
  EXPECT_EQ(a.wait_for(seconds(0)), std::future_status::timeout);
  held.Release();
  EXPECT_EQ(leader.get(), 10);
  EXPECT_EQ(a.get(), 10);
  EXPECT_EQ(b.get(), 10);
  EXPECT_EQ(c.get(), 10);
  EXPECT_EQ(share.Stats().timeouts, 0u);
}

// share.h, DoFor: "Throws: ... std::invalid_argument if timeout is negative
// or NaN, before anything is looked up".
TEST(SingleflightConformance, DoForRejectsNegativeAndNaNBeforeLookingUp) {
  Share<int, int> share;
  bool ran = false;
  auto loader = [&] {
    ran = true;
    return 0;
  };
  EXPECT_THROW(share.DoFor(1, nanoseconds(-1), loader), std::invalid_argument);
  EXPECT_THROW(share.DoFor(1, nanoseconds::min(), loader),
               std::invalid_argument);
  EXPECT_THROW(share.DoFor(1,
                           std::chrono::duration<double>(
                               std::numeric_limits<double>::quiet_NaN()),
                           loader),
               std::invalid_argument);
  EXPECT_FALSE(ran);
  EXPECT_EQ(share.Stats().calls, 0u);
}

// share.h, Cancel(): "every caller waiting on it throws herd::Cancelled at
// once, the loaders' std::stop_token reports stop_requested(), their results
// are dropped when they return (their callers throw herd::Cancelled too),
// and the key is free for a new flight at once".
TEST(SingleflightConformance, CancelWakesWaitersAndFreesTheKeyAtOnce) {
  Share<int, int> share;
  HeldLoad held;
  std::atomic<bool> saw_stop{false};
  std::future<int> leader = std::async(std::launch::async, [&] {
    return share.Do(1, [&](std::stop_token stop) {
      held.Enter();
      saw_stop = stop.stop_requested();
      return 10;
    });
  });
  held.AwaitEntered();
  std::future<int> waiter = Joiner(share, 1, 2);
  EXPECT_TRUE(share.Cancel(1));
  // At once: the waiter returns while the leader's loader is still held.
  EXPECT_THROW(waiter.get(), Cancelled);
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Do(1, [] { return 20; }), 20);  // a new flight, at once
  held.Release();
  EXPECT_THROW(leader.get(), Cancelled);
  EXPECT_TRUE(saw_stop.load());
  EXPECT_EQ(share.Stats().cancellations, 1u);
  EXPECT_FALSE(share.Cancel(1));  // "Returns true iff key had a flight"
}

// share.h, CancelAll(): "Cancel() for every flight ... Returns the number
// cancelled".
TEST(SingleflightConformance, CancelAllCountsTheFlightsItCancelled) {
  Share<int, int> share;
  EXPECT_EQ(share.CancelAll(), 0u);
  Gate started1, started2;
  auto hold = [&](Gate& started) {
    return [&started](std::stop_token stop) {
      started.Open();
      // Ends when the flight is cancelled.
      std::mutex mu;
      std::condition_variable_any cv;
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, stop, [] { return false; });
      return 0;
    };
  };
  std::future<int> a = std::async(std::launch::async,
                                  [&] { return share.Do(1, hold(started1)); });
  std::future<int> b = std::async(std::launch::async,
                                  [&] { return share.Do(2, hold(started2)); });
  started1.Wait();
  started2.Wait();
  EXPECT_EQ(share.CancelAll(), 2u);
  EXPECT_THROW(a.get(), Cancelled);
  EXPECT_THROW(b.get(), Cancelled);
  EXPECT_EQ(share.InFlight(), 0u);
}

// share.h: "a loader that calls Do() on the Share running it, for the key it
// is loading, on the same thread, gets herd::RecursiveCall".
TEST(SingleflightConformance, RecursiveCallIsRefusedNotDeadlocked) {
  Share<int, int> share;
  bool refused = false;
  EXPECT_EQ(share.Do(1,
                     [&] {
                       try {
                         share.Do(1, [] { return 2; });
                       } catch (const RecursiveCall&) {
                         refused = true;
                       }
                       // Another key from inside a loader is fine.
                       return share.Do(2, [] { return 3; });
                     }),
            3);
  EXPECT_TRUE(refused);
}

// share.h, Do: "std::invalid_argument if loader is empty (an empty
// std::function or absl::AnyInvocable, a null pointer)".
TEST(SingleflightConformance, EmptyLoadersAreRejected) {
  Share<int, int> share;
  std::function<int()> empty;
  int (*null_fn)() = nullptr;
  EXPECT_THROW(share.Do(1, empty), std::invalid_argument);
  EXPECT_THROW(share.Do(1, null_fn), std::invalid_argument);
  EXPECT_THROW(share.DoFor(1, seconds(1), empty), std::invalid_argument);
  InlineExecutor inline_executor;
  EXPECT_THROW(share.DoAsync(1, empty, inline_executor), std::invalid_argument);
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Do(1, [] { return 4; }), 4);
}

// share.h, Share(): "std::invalid_argument if options.extra_execution_rate is
// NaN or outside [0, 1], or options.max_flight_age is negative".
TEST(SingleflightConformance, ConstructorRejectsInvalidOptions) {
  using S = Share<int, int>;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(S({.extra_execution_rate = nan}), std::invalid_argument);
  EXPECT_THROW(S({.extra_execution_rate = -0.01}), std::invalid_argument);
  EXPECT_THROW(S({.extra_execution_rate = 1.01}), std::invalid_argument);
  EXPECT_THROW(S({.max_flight_age = nanoseconds(-1)}), std::invalid_argument);
  EXPECT_NO_THROW(S({.extra_execution_rate = 0.0}));
  EXPECT_NO_THROW(S({.extra_execution_rate = 1.0}));
  EXPECT_NO_THROW(S({.max_flight_age = nanoseconds(0)}));
}

// ShareOptions::max_flight_age: "a flight whose age is at least this is
// detached when the next caller arrives". One tick short of the age, a
// caller joins; exactly at it, the caller starts a new flight.
TEST(SingleflightConformance, MaxFlightAgeDetachesExactlyAtTheAge) {
  FakeClock clock;
  Share<int, int> share({.max_flight_age = seconds(10), .clock = &clock});
  HeldLoad held;
  std::future<int> leader = HeldLeader(share, 1, held, 1);
  clock.Advance(seconds(10) - nanoseconds(1));
  std::future<int> joiner = Joiner(share, 1, 2);
  clock.Advance(nanoseconds(1));  // the flight's age is now exactly 10 s
  CallInfo info;
  EXPECT_EQ(share.Do(
                1, [] { return 2; }, &info),
            2);
  EXPECT_TRUE(info.executed);
  held.Release();
  EXPECT_EQ(leader.get(), 1);
  EXPECT_EQ(joiner.get(), 1);  // the old flight's callers get its outcome
}

// ShareOptions::max_flight_age at the end of time: duration::max() is an age
// no flight reaches, even with the clock at its last instant (no overflow
// into "too old").
TEST(SingleflightConformance, MaxFlightAgeDurationMaxNeverDetaches) {
  FakeClock clock;
  Share<int, int> share(
      {.max_flight_age = std::chrono::nanoseconds::max(), .clock = &clock});
  HeldLoad held;
  std::future<int> leader = HeldLeader(share, 1, held, 1);
  clock.Advance(Clock::duration::max());  // FakeClock::kEndOfTime
  std::future<int> joiner = Joiner(share, 1, 2);
  EXPECT_EQ(share.InFlight(), 1u);
  held.Release();
  EXPECT_EQ(leader.get(), 1);
  EXPECT_EQ(joiner.get(), 1);
  EXPECT_EQ(share.Stats().executions, 1u);
}

// ForgetMode::kRerunOnNextCall: "The next caller of the key runs the loader
// again, as an extra execution of the same flight: every caller, old and
// new, gets the first successful result."
TEST(SingleflightConformance, RerunOnNextCallRescuesAStuckFlight) {
  Share<int, int> share;
  HeldLoad held;
  std::future<int> leader = HeldLeader(share, 1, held, 1);
  std::future<int> waiter = Joiner(share, 1, 2);
  EXPECT_TRUE(share.Forget(1, ForgetMode::kRerunOnNextCall));
  CallInfo info;
  EXPECT_EQ(share.Do(
                1, [] { return 2; }, &info),
            2);
  EXPECT_TRUE(info.executed);
  EXPECT_EQ(waiter.get(), 2);  // without waiting for the stuck execution
  held.Release();
  EXPECT_EQ(leader.get(), 2);  // the first success, not its own result
  EXPECT_EQ(share.Stats().extra_executions, 1u);
}

// share.h, AllowExtraExecution: "Lets the next caller who joins key's flight
// run one extra execution instead of waiting. Calls add up."
TEST(SingleflightConformance, AllowExtraExecutionCallsAddUp) {
  Share<int, int> share;
  EXPECT_FALSE(share.AllowExtraExecution(1));
  HeldLoad held;
  std::future<int> leader = HeldLeader(share, 1, held, 1);
  EXPECT_TRUE(share.AllowExtraExecution(1));
  EXPECT_TRUE(share.AllowExtraExecution(1));
  // Two joiners run extra executions, which fail: "a loader's exception
  // reaches every caller of the flight (when extra executions race, only
  // once all of them have failed)", so they wait for the leader's.
  std::atomic<int> extra_runs{0};
  auto failing = [&]() -> int {
    extra_runs.fetch_add(1);
    throw Payload(1);
  };
  std::future<int> e1 =
      std::async(std::launch::async, [&] { return share.Do(1, failing); });
  std::future<int> e2 =
      std::async(std::launch::async, [&] { return share.Do(1, failing); });
  ASSERT_TRUE(Await([&] { return extra_runs.load() == 2; }));
  // The third joiner has no extra execution left: it waits.
  std::future<int> waiter = Joiner(share, 1, 4);
  EXPECT_EQ(share.Stats().extra_executions, 2u);
  held.Release();
  EXPECT_EQ(leader.get(), 1);
  EXPECT_EQ(e1.get(), 1);
  EXPECT_EQ(e2.get(), 1);
  EXPECT_EQ(waiter.get(), 1);
  EXPECT_EQ(share.Stats().extra_executions, 2u);
  EXPECT_EQ(share.Stats().executions, 3u);
}

// share.h, DoAsync: "destroys it unrun (during Schedule or later): the
// flight ends with herd::Closed".
TEST(SingleflightConformance, DoAsyncTaskDroppedByTheExecutorEndsWithClosed) {
  Share<int, int> share;
  QueueExecutor executor;
  std::shared_future<int> f = share.DoAsync(
      1, [] { return 1; }, executor);
  EXPECT_EQ(share.InFlight(), 1u);
  executor.DropNext();
  EXPECT_THROW(f.get(), Closed);
  EXPECT_EQ(share.InFlight(), 0u);
}

// share.h, DoAsync: "throws from Schedule without having run it: the flight
// ends with that exception and DoAsync rethrows it".
TEST(SingleflightConformance, DoAsyncScheduleThatThrowsEndsTheFlight) {
  RefusingExecutor refusing;  // throws herd::Closed from Schedule
  Share<int, int> share;
  EXPECT_THROW(share.DoAsync(
                   1, [] { return 1; }, refusing),
               Closed);
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Do(1, [] { return 2; }), 2);
}

// share.h, DoAsync: "runs it and then throws: the run decides the flight;
// DoAsync rethrows the exception". A caller that joined during the run gets
// the run's value.
TEST(SingleflightConformance, DoAsyncRunThenThrowLetsTheRunDecide) {
  RunThenThrowExecutor executor;  // runs the task, then throws
  Share<int, int> share;
  std::future<int> joiner;
  EXPECT_THROW(share.DoAsync(
                   1,
                   [&] {
                     joiner = Joiner(share, 1, 2);
                     return 8;
                   },
                   executor),
               std::runtime_error);
  EXPECT_EQ(joiner.get(), 8);
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Stats().executions, 1u);
}

// share.h, DoAsync: "throws from Schedule without having run it: the flight
// ends with that exception and DoAsync rethrows it; a task kept before
// throwing does nothing when it later runs or is destroyed".
TEST(SingleflightConformance, DoAsyncTaskKeptBeforeAThrowDoesNothingLater) {
  KeepThenThrowExecutor executor;  // keeps the task, then throws
  Share<int, int> share;
  bool ran = false;
  EXPECT_THROW(share.DoAsync(
                   1,
                   [&] {
                     ran = true;
                     return 1;
                   },
                   executor),
               std::runtime_error);
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Do(1, [] { return 2; }), 2);  // a new flight
  ASSERT_EQ(executor.kept.size(), 1u);
  std::move(executor.kept.front())();
  EXPECT_FALSE(ran);
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Do(1, [] { return 3; }), 3);
}

// share.h, DoAsync: "In every case the flight ends exactly once, and its
// loader copy is destroyed before its callers are woken."
TEST(SingleflightConformance, DoAsyncLoaderIsDestroyedBeforeCallersWake) {
  ThreadPool pool(2);
  Share<int, int> share;
  for (int round = 0; round < 50; ++round) {
    std::atomic<int> live{0};
    std::shared_future<int> f;
    {
      Counted counted(&live);
      f = share.DoAsync(
          round, [counted] { return 1; }, pool);
    }
    EXPECT_EQ(f.get(), 1);
    EXPECT_EQ(live.load(), 0) << "round " << round;
  }
}

// share.h, Cancel(): "every caller waiting on it throws herd::Cancelled at
// once ... and the key is free for a new flight at once", for a DoAsync
// flight whose task has not run yet; when it runs later, its token is
// stopped and nothing it returns reaches anyone.
TEST(SingleflightConformance, CancelADoAsyncFlightBeforeItsTaskRuns) {
  Share<int, int> share;
  QueueExecutor executor;
  bool ran = false, saw_stop = false;
  std::shared_future<int> f = share.DoAsync(
      1,
      [&](std::stop_token stop) {
        ran = true;
        saw_stop = stop.stop_requested();
        return 1;
      },
      executor);
  EXPECT_TRUE(share.Cancel(1));
  EXPECT_THROW(f.get(), Cancelled);
  EXPECT_EQ(share.InFlight(), 0u);
  std::shared_future<int> g = share.DoAsync(
      1, [] { return 2; }, executor);  // a new flight
  EXPECT_EQ(executor.size(), 2u);
  executor.RunNext();  // the cancelled flight's task
  // Whether it runs its loader or not, a loader that runs sees the stop.
  if (ran) {
    EXPECT_TRUE(saw_stop);
  }
  executor.RunNext();
  EXPECT_EQ(g.get(), 2);
  EXPECT_EQ(share.InFlight(), 0u);
}

// share.h, ~Share: "Waits until every task DoAsync() handed to an executor
// has run or been destroyed, and with it the loader and the copy of the key
// it held."
TEST(SingleflightConformance, DestructorWaitsForDoAsyncTasksAndTheirLoaders) {
  std::atomic<int> live{0};
  Gate pool_busy;
  ThreadPool pool(1);
  pool.Schedule([&] { pool_busy.Wait(); });
  auto share = std::make_unique<Share<int, int>>();
  {
    Counted counted(&live);
    share->DoAsync(
        1, [counted] { return 1; }, pool);
  }
  EXPECT_GE(live.load(), 1);  // the task's copy, queued behind pool_busy
  std::future<void> destroyed =
      std::async(std::launch::async, [&] { share.reset(); });
  pool_busy.Open();
  destroyed.get();
  EXPECT_EQ(live.load(), 0);  // destroyed before ~Share returned
}

// coalesce.h: "concurrent equal calls share one execution"; "copies share one
// herd::Share, so calls through any copy coalesce". Unequal arguments do not.
TEST(SingleflightConformance, CoalesceSharesEqualCallsOnly) {
  std::atomic<int> runs{0};
  HeldLoad held;
  auto load = Coalesce([&](int id, const std::string& db) {
    if (runs.fetch_add(1) == 0) held.Enter();
    return db + ":" + std::to_string(id);
  });
  auto copy = load;
  std::future<std::string> a =
      std::async(std::launch::async, [&] { return load(42, "primary"); });
  held.AwaitEntered();
  std::future<std::string> b =
      std::async(std::launch::async, [&] { return copy(42, "primary"); });
  ASSERT_TRUE(Await([&] { return load.share().Stats().calls == 2; }));
  EXPECT_EQ(load(43, "primary"), "primary:43");  // other arguments: own run
  held.Release();
  EXPECT_EQ(a.get(), "primary:42");
  EXPECT_EQ(b.get(), "primary:42");
  EXPECT_EQ(runs.load(), 2);
}

}  // namespace
}  // namespace herd
