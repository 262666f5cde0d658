// Copyright 2026 The herd Authors.
//
// Fault injection for herd::Share, against share.h's "Exception safety":
// any failure of a call is thrown to that caller alone, with no flight
// registered or changed by it and no other caller affected, and the Share
// stays usable. The faults:
//
//   * every allocation of one call, failed in turn (a sweep: the n-th
//     operator new of the calling thread throws std::bad_alloc, for n = 1,
//     2, ... until the call makes fewer than n), for each kind of call;
//   * Key copies and Key equality that throw;
//   * Value copies and moves that throw;
//   * executors that refuse, drop, run-then-throw or keep-then-throw, in
//     combination with failing allocations.
//
// After each fault the test checks what the contract promises: the call
// returned or threw only what it may, InFlight() is what it was, every
// other caller got its flight's outcome, and a later call works. Leaks and
// use-after-free are AddressSanitizer's to find: this test runs under it.
//
// The allocation sweeps need tests/testing/counting_new.h, which clang's
// ThreadSanitizer runtime does not allow: under TSan they skip, and the
// rest runs.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <new>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "herd/errors.h"
#include "herd/share.h"
#include "herd/thread_pool.h"
#include "tests/testing/counting_new.h"
#include "tests/testing/held_load.h"
#include "tests/testing/scripted_executors.h"
#include "tests/testing/sync.h"

namespace herd {
namespace {

using ::herd::test::AwaitCalls;
using ::herd::test::AwaitCondition;
using ::herd::test::HeldLoad;

#if HERD_TEST_COUNTING_NEW
#define SKIP_WITHOUT_FAILING_NEW() (void)0
#else
#define SKIP_WITHOUT_FAILING_NEW()                                        \
  GTEST_SKIP() << "ThreadSanitizer defines operator new itself, so this " \
                  "binary cannot fail allocations"
#endif

#if defined(__SANITIZE_THREAD__)
#define HERD_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HERD_UNDER_TSAN 1
#endif
#endif

// More allocations than any one call of Share makes; a sweep that reaches
// it has found a call that never stops allocating.
constexpr int64_t kMaxAllocations = 64;

// What one call did with its n-th allocation failing.
struct Injected {
  bool fired = false;            // the call made at least n allocations
  bool threw_bad_alloc = false;  // and it threw std::bad_alloc
};

// Runs `call` on this thread with its n-th allocation failing. Exceptions
// other than std::bad_alloc propagate (and fail the test).
template <class F>
Injected CallFailingNth(int64_t n, F&& call) {
  Injected r;
  test::FailNthAllocation(n);
  try {
    call();
  } catch (const std::bad_alloc&) {
    r.threw_bad_alloc = true;
  } catch (...) {
    test::AllocationFailurePending();
    throw;
  }
  r.fired = !test::AllocationFailurePending();
  return r;
}

// Runs `scenario(n)` for n = 1, 2, ... until it reports that the call it
// made did not reach its n-th allocation. Returns that n - 1: how many
// allocations the call makes when none fails.
int64_t Sweep(const std::function<bool(int64_t)>& scenario) {
  int64_t n = 1;
  while (n < kMaxAllocations && scenario(n)) ++n;
  EXPECT_LT(n, kMaxAllocations) << "the call never stopped allocating";
  return n - 1;
}

// --- Allocation failures, one kind of call at a time. ----------------------

// The first Do of a new Share builds its shard's table: a failure there
// must leave the table as it was (Debian's Abseil sets the new capacity
// before allocating).
TEST(ShareFault, EveryAllocationOfALeaderOnANewShare) {
  SKIP_WITHOUT_FAILING_NEW();
  const int64_t allocations = Sweep([](int64_t n) {
    Share<int, int> share;
    const Injected r =
        CallFailingNth(n, [&] { EXPECT_EQ(share.Do(1, [] { return 1; }), 1); });
    EXPECT_EQ(r.fired, r.threw_bad_alloc);
    EXPECT_EQ(share.InFlight(), 0u);
    EXPECT_EQ(share.Do(1, [] { return 2; }), 2);
    EXPECT_EQ(share.Do(2, [] { return 3; }), 3);
    EXPECT_EQ(share.InFlight(), 0u);
    return r.fired;
  });
  EXPECT_GE(allocations, 1);  // the table
}

TEST(ShareFault, EveryAllocationOfALeaderWithAStopToken) {
  SKIP_WITHOUT_FAILING_NEW();
  Share<std::string, int> share;
  const std::string key(64, 'k');   // a key that allocates when copied
  share.Do(key, [] { return 0; });  // the table exists
  const int64_t allocations = Sweep([&](int64_t n) {
    const Injected r = CallFailingNth(n, [&] {
      EXPECT_EQ(share.Do(key, [](std::stop_token) { return 1; }), 1);
    });
    EXPECT_EQ(r.fired, r.threw_bad_alloc);
    EXPECT_EQ(share.InFlight(), 0u);
    return r.fired;
  });
  EXPECT_EQ(allocations, 1);  // the stop state; the key is not copied
  EXPECT_EQ(share.Do(key, [] { return 2; }), 2);
}

// A second party moves the leader's flight to the heap (the flight, its
// copy of the key, its promise). Here the second party is a DoAsync from
// inside the loader, on the leader's own thread.
TEST(ShareFault, EveryAllocationOfMovingAFlightToTheHeap) {
  SKIP_WITHOUT_FAILING_NEW();
  const int64_t allocations = Sweep([](int64_t n) {
    Share<std::string, std::string> share;
    const std::string key(40, 'k');
    test::QueueExecutor unused;
    Injected r;
    std::shared_future<std::string> joined;
    EXPECT_EQ(share.Do(key,
                       [&] {
                         r = CallFailingNth(n, [&] {
                           joined = share.DoAsync(
                               key, [] { return std::string("no"); }, unused);
                         });
                         return std::string("v");
                       }),
              "v");
    EXPECT_EQ(r.fired, r.threw_bad_alloc);
    EXPECT_EQ(joined.valid(), !r.threw_bad_alloc);
    if (joined.valid()) {
      EXPECT_EQ(joined.get(), "v");
    }
    EXPECT_EQ(unused.size(), 0u);
    EXPECT_EQ(share.InFlight(), 0u);
    EXPECT_EQ(share.Do(key, [] { return std::string("w"); }), "w");
    return r.fired;
  });
  EXPECT_GE(allocations, 2);  // the flight, its key, the promise's state
}

// A blocking joiner on another thread: its failure must not touch the
// leader or the flight.
TEST(ShareFault, EveryAllocationOfABlockingJoiner) {
  SKIP_WITHOUT_FAILING_NEW();
  const int64_t allocations = Sweep([](int64_t n) {
    Share<int, std::string> share;
    HeldLoad held;
    const std::string value(100, 'v');  // a Value that allocates when copied
    std::thread leader(
        [&] { EXPECT_EQ(share.Do(1, held.Returning(value)), value); });
    held.AwaitEntered();
    Injected r;
    std::thread joiner([&] {
      r = CallFailingNth(n, [&] {
        EXPECT_EQ(share.Do(1, [] { return std::string(); }), value);
      });
    });
    AwaitCalls(share, 2);
    // The joiner's lookup is over (it ran under the lock InFlight takes):
    // it either joined the flight or failed.
    EXPECT_EQ(share.InFlight(), 1u);
    held.Release();
    leader.join();
    joiner.join();
    EXPECT_EQ(r.fired, r.threw_bad_alloc);
    EXPECT_EQ(share.InFlight(), 0u);
    EXPECT_EQ(share.Stats().executions, 1u);
    return r.fired;
  });
  EXPECT_GE(allocations, 3);  // the heap flight, and the value's copy
}

// An extra execution (AllowExtraExecution) whose allocations fail.
TEST(ShareFault, EveryAllocationOfAnExtraExecution) {
  SKIP_WITHOUT_FAILING_NEW();
  Sweep([](int64_t n) {
    Share<int, int> share;
    HeldLoad held;
    int leader_result = 0;
    std::thread leader([&] { leader_result = share.Do(1, held.Returning(1)); });
    held.AwaitEntered();
    EXPECT_TRUE(share.AllowExtraExecution(1));
    const Injected r = CallFailingNth(n, [&] {
      EXPECT_EQ(share.Do(1, [](std::stop_token) { return 2; }), 2);
    });
    EXPECT_EQ(r.fired, r.threw_bad_alloc);
    // Either the extra execution won, or the flight goes on as it was.
    EXPECT_EQ(share.InFlight(), r.threw_bad_alloc ? 1u : 0u);
    held.Release();
    leader.join();
    EXPECT_EQ(leader_result, r.threw_bad_alloc ? 1 : 2);
    EXPECT_EQ(share.InFlight(), 0u);
    return r.fired;
  });
}

// A DoFor that times out: the WaitTimeout it throws is built after the
// waiter let go of the flight, so its failure is this caller's alone.
TEST(ShareFault, EveryAllocationOfADoForThatTimesOut) {
  SKIP_WITHOUT_FAILING_NEW();
  Sweep([](int64_t n) {
    Share<int, int> share;
    HeldLoad held;
    std::thread leader([&] { EXPECT_EQ(share.Do(1, held.Returning(1)), 1); });
    held.AwaitEntered();
    bool timed_out = false;
    const Injected r = CallFailingNth(n, [&] {
      try {
        share.DoFor(1, std::chrono::nanoseconds(0), [] { return 2; });
        ADD_FAILURE() << "a zero timeout took an unfinished flight";
      } catch (const WaitTimeout&) {
        timed_out = true;
      }
    });
    EXPECT_NE(timed_out, r.threw_bad_alloc);
    EXPECT_EQ(share.InFlight(), 1u);
    held.Release();
    leader.join();
    EXPECT_EQ(share.InFlight(), 0u);
    return r.fired;
  });
}

// Cancel allocates nothing after its point of no return: the Cancelled its
// callers get is made when the Share is. Whatever fails, no waiter is left
// waiting.
TEST(ShareFault, EveryAllocationOfCancel) {
  SKIP_WITHOUT_FAILING_NEW();
  const int64_t allocations = Sweep([](int64_t n) {
    Share<int, int> share;
    HeldLoad held;  // ignores the cancellation
    std::thread leader([&] {
      try {
        EXPECT_EQ(share.Do(1, held.Returning(1)), 1);
      } catch (const Cancelled&) {
      }
    });
    held.AwaitEntered();
    test::QueueExecutor unused;
    std::shared_future<int> joined = share.DoAsync(
        1, [] { return 0; }, unused);
    bool cancelled = false;
    const Injected r = CallFailingNth(n, [&] { cancelled = share.Cancel(1); });
    EXPECT_NE(cancelled, r.threw_bad_alloc);
    if (cancelled) {
      // "every caller waiting on it throws herd::Cancelled at once"
      EXPECT_EQ(joined.wait_for(std::chrono::seconds(0)),
                std::future_status::ready);
      EXPECT_THROW(joined.get(), Cancelled);
      EXPECT_EQ(share.InFlight(), 0u);
    } else {
      EXPECT_EQ(share.InFlight(), 1u);
    }
    held.Release();
    leader.join();
    if (!cancelled) {
      EXPECT_EQ(joined.get(), 1);
    }
    return r.fired;
  });
  EXPECT_EQ(allocations, 0);
}

// CancelAll: a failure cancels the shards visited before it and leaves the
// others as they were; every flight ends either way.
TEST(ShareFault, EveryAllocationOfCancelAll) {
  SKIP_WITHOUT_FAILING_NEW();
  constexpr int kKeys = 40;
  Sweep([](int64_t n) {
    Share<int, int> share(ShareOptions{.shards = 4});
    test::QueueExecutor executor;
    std::vector<std::shared_future<int>> futures;
    for (int k = 0; k < kKeys; ++k) {
      futures.push_back(share.DoAsync(
          k, [k] { return k; }, executor));
    }
    size_t cancelled = 0;
    const Injected r =
        CallFailingNth(n, [&] { cancelled = share.CancelAll(); });
    size_t ready = 0;
    for (auto& f : futures) {
      if (f.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
        EXPECT_THROW(f.get(), Cancelled);
        ++ready;
      }
    }
    if (!r.threw_bad_alloc) {
      EXPECT_EQ(cancelled, size_t{kKeys});
    }
    EXPECT_EQ(ready + share.InFlight(), size_t{kKeys});
    EXPECT_EQ(share.Stats().cancellations, ready);
    executor.RunAll();
    for (int k = 0; k < kKeys; ++k) {
      try {
        EXPECT_EQ(futures[k].get(), k);
      } catch (const Cancelled&) {
      }
    }
    EXPECT_EQ(share.InFlight(), 0u);
    return r.fired;
  });
}

// DoAsync, with every kind of executor. A call that throws std::bad_alloc
// registered nothing, or registered a flight that has already ended.
template <class Exec>
void SweepDoAsync(bool returns_future, bool rethrows) {
  Sweep([&](int64_t n) {
    Share<std::string, std::string> share;
    Exec executor;
    const std::string key(40, 'k');
    std::shared_future<std::string> f;
    bool executor_threw = false;
    const Injected r = CallFailingNth(n, [&] {
      try {
        f = share.DoAsync(
            key, [] { return std::string("v"); }, executor);
      } catch (const std::runtime_error&) {  // the executor's, or Closed
        executor_threw = true;
      }
    });
    EXPECT_EQ(share.InFlight(), 0u);
    if (r.threw_bad_alloc) {
      EXPECT_FALSE(f.valid());
    } else {
      EXPECT_EQ(f.valid(), returns_future);
      EXPECT_EQ(executor_threw, rethrows);
    }
    if (f.valid()) {
      EXPECT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready);
    }
    EXPECT_EQ(share.Do(key, [] { return std::string("w"); }), "w");
    return r.fired;
  });
}

TEST(ShareFault, EveryAllocationOfDoAsyncRunAtOnce) {
  SKIP_WITHOUT_FAILING_NEW();
  SweepDoAsync<test::InlineExecutor>(/*returns_future=*/true,
                                     /*rethrows=*/false);
}

TEST(ShareFault, EveryAllocationOfDoAsyncRefused) {
  SKIP_WITHOUT_FAILING_NEW();
  SweepDoAsync<test::RefusingExecutor>(false, true);
}

TEST(ShareFault, EveryAllocationOfDoAsyncRunThenThrow) {
  SKIP_WITHOUT_FAILING_NEW();
  SweepDoAsync<test::RunThenThrowExecutor>(false, true);
}

TEST(ShareFault, EveryAllocationOfDoAsyncKeepThenThrow) {
  SKIP_WITHOUT_FAILING_NEW();
  SweepDoAsync<test::KeepThenThrowExecutor>(false, true);
}

TEST(ShareFault, EveryAllocationOfDoAsyncDropped) {
  SKIP_WITHOUT_FAILING_NEW();
  SweepDoAsync<test::DroppingExecutor>(true, false);
}

// A task kept for later: the flight stays registered until the executor
// runs the task, on the test's schedule.
TEST(ShareFault, EveryAllocationOfDoAsyncRunLater) {
  SKIP_WITHOUT_FAILING_NEW();
  Sweep([](int64_t n) {
    Share<int, int> share;
    test::QueueExecutor executor;
    std::shared_future<int> f;
    const Injected r = CallFailingNth(n, [&] {
      f = share.DoAsync(
          1, [] { return 1; }, executor);
    });
    EXPECT_EQ(r.fired, r.threw_bad_alloc);
    EXPECT_EQ(share.InFlight(), r.threw_bad_alloc ? 0u : 1u);
    EXPECT_EQ(executor.size(), r.threw_bad_alloc ? 0u : 1u);
    executor.RunAll();
    if (f.valid()) {
      EXPECT_EQ(f.get(), 1);
    }
    EXPECT_EQ(share.InFlight(), 0u);
    return r.fired;
  });
}

// ThreadPool's Schedule allocates (its queue) on the calling thread.
TEST(ShareFault, EveryAllocationOfDoAsyncOnAThreadPool) {
  SKIP_WITHOUT_FAILING_NEW();
  ThreadPool pool(1);
  Sweep([&](int64_t n) {
    Share<int, int> share;
    std::shared_future<int> f;
    const Injected r = CallFailingNth(n, [&] {
      f = share.DoAsync(
          1, [] { return 1; }, pool);
    });
    EXPECT_EQ(r.fired, r.threw_bad_alloc);
    if (f.valid()) {
      EXPECT_EQ(f.get(), 1);
    }
    AwaitCondition([&] { return share.InFlight() == 0; });
    return r.fired;
  });
}

// Growing the map: hold many flights at once (DoAsync on a queue), failing
// each allocation of each insert in turn, so that every growth of the table
// fails once at each of its allocations.
TEST(ShareFault, EveryAllocationOfGrowingTheMap) {
  SKIP_WITHOUT_FAILING_NEW();
  constexpr int kKeys = 120;
  Share<int, int> share(ShareOptions{.shards = 1});
  test::QueueExecutor executor;
  std::vector<std::shared_future<int>> futures;
  for (int k = 0; k < kKeys; ++k) {
    // Fails the 1st, 2nd, ... allocation until a try succeeds.
    Sweep([&](int64_t n) {
      std::shared_future<int> f;
      const Injected r = CallFailingNth(n, [&] {
        f = share.DoAsync(
            k, [k] { return k; }, executor);
      });
      EXPECT_EQ(r.fired, r.threw_bad_alloc);
      EXPECT_EQ(share.InFlight(), size_t(k) + (r.threw_bad_alloc ? 0 : 1));
      EXPECT_EQ(executor.size(), size_t(k) + (r.threw_bad_alloc ? 0 : 1));
      if (!r.threw_bad_alloc) futures.push_back(std::move(f));
      return r.threw_bad_alloc;
    });
  }
  EXPECT_EQ(share.InFlight(), size_t{kKeys});
  executor.RunAll();
  for (int k = 0; k < kKeys; ++k) EXPECT_EQ(futures[k].get(), k);
  EXPECT_EQ(share.InFlight(), 0u);
}

// What the map's exception safety rests on (internal/share_impl.h): an
// insert into a table herd has made room in never allocates, however many
// erased slots churn has left behind.
TEST(ShareFault, InsertsBetweenGrowthsNeverAllocate) {
  SKIP_WITHOUT_FAILING_NEW();
  Share<int, int> share(ShareOptions{.shards = 1});
  test::QueueExecutor executor;
  std::vector<std::shared_future<int>> held;
  for (int k = 0; k < 200; ++k) {
    held.push_back(share.DoAsync(
        -1 - k, [] { return 0; }, executor));
    share.Do(-1000, [] { return 0; });  // grows the table if it is due
    // At every fill level, churn: many leaders come and go.
    const int64_t before = test::Allocations();
    for (int i = 0; i < 300; ++i) {
      const int key = k * 1000 + i;
      share.Do(key, [key] { return key; });
    }
    EXPECT_EQ(test::Allocations() - before, 0) << "with " << k + 1 << " held";
  }
  executor.RunAll();
  EXPECT_EQ(share.InFlight(), 0u);
}

// --- Keys that throw. ------------------------------------------------------

struct KeyFault {};

// A key whose copies and comparisons throw on demand.
struct FaultyKey {
  struct Faults {
    std::atomic<int> copies_until_failure{0};  // 0: never
    std::atomic<bool> fail_equality{false};
  };
  FaultyKey(int v, Faults* f) : value(v), faults(f) {}
  FaultyKey(const FaultyKey& o) : value(o.value), faults(o.faults) {
    if (faults->copies_until_failure.load() > 0 &&
        faults->copies_until_failure.fetch_sub(1) == 1) {
      throw KeyFault();
    }
  }
  bool operator==(const FaultyKey& o) const {
    if (faults->fail_equality.load()) throw KeyFault();
    return value == o.value;
  }
  template <class H>
  friend H AbslHashValue(H h, const FaultyKey& k) {
    return H::combine(std::move(h), k.value);
  }
  int value;
  Faults* faults;
};

// share.h, "Exception safety": "what the Key's Eq or copy constructor
// throws is thrown to that caller alone, with no flight registered or
// changed by it".
TEST(ShareFault, KeyCopyThatThrowsInEachCall) {
  FaultyKey::Faults faults;
  Share<FaultyKey, int> share;
  const FaultyKey key(1, &faults);
  HeldLoad held;
  std::thread leader([&] { EXPECT_EQ(share.Do(key, held.Returning(1)), 1); });
  held.AwaitEntered();
  test::QueueExecutor executor;
  // The first copy of each call throws: the join that moves the flight,
  // and DoAsync's copy for a new flight.
  faults.copies_until_failure = 1;
  EXPECT_THROW(share.Do(key, [] { return 2; }), KeyFault);
  faults.copies_until_failure = 1;
  EXPECT_THROW(share.DoAsync(
                   key, [] { return 2; }, executor),
               KeyFault);
  faults.copies_until_failure = 1;
  EXPECT_THROW(share.DoAsync(
                   FaultyKey(2, &faults), [] { return 2; }, executor),
               KeyFault);
  EXPECT_EQ(executor.size(), 0u);
  EXPECT_EQ(share.InFlight(), 1u);
  faults.copies_until_failure = 0;
  std::shared_future<int> joined = share.DoAsync(
      key, [] { return 3; }, executor);
  held.Release();
  leader.join();
  EXPECT_EQ(joined.get(), 1);
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Stats().executions, 1u);
}

TEST(ShareFault, KeyEqualityThatThrowsInEachCall) {
  FaultyKey::Faults faults;
  Share<FaultyKey, int> share(ShareOptions{.shards = 1});
  const FaultyKey key(1, &faults);
  HeldLoad held;
  std::thread leader([&] { EXPECT_EQ(share.Do(key, held.Returning(1)), 1); });
  held.AwaitEntered();
  test::QueueExecutor executor;
  faults.fail_equality = true;  // every lookup that finds key 1 throws
  EXPECT_THROW(share.Do(key, [] { return 2; }), KeyFault);
  EXPECT_THROW(share.DoFor(key, std::chrono::seconds(1), [] { return 2; }),
               KeyFault);
  EXPECT_THROW(share.DoAsync(
                   key, [] { return 2; }, executor),
               KeyFault);
  EXPECT_THROW(share.Forget(key), KeyFault);
  EXPECT_THROW(share.AllowExtraExecution(key), KeyFault);
  EXPECT_THROW(share.Cancel(key), KeyFault);
  faults.fail_equality = false;
  EXPECT_EQ(executor.size(), 0u);
  EXPECT_EQ(share.InFlight(), 1u);
  std::thread joiner([&] { EXPECT_EQ(share.Do(key, [] { return 3; }), 1); });
  AwaitCalls(share, 5);  // the leader, three failed lookups, the joiner
  held.Release();
  leader.join();
  joiner.join();
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Stats().executions, 1u);
  EXPECT_EQ(share.Stats().extra_executions, 0u);
}

// --- Values that throw. ----------------------------------------------------

struct ValueFault {};

// A value whose copies, or its n-th move from now, throw on demand.
struct FaultyValue {
  struct Faults {
    std::atomic<bool> fail_copy{false};
    std::atomic<int> moves_until_failure{0};  // 0: never
  };
  FaultyValue(int v, Faults* f) : value(v), faults(f) {}
  FaultyValue(const FaultyValue& o) : value(o.value), faults(o.faults) {
    if (faults->fail_copy.load()) throw ValueFault();
  }
  FaultyValue(FaultyValue&& o) : value(o.value), faults(o.faults) {
    if (faults->moves_until_failure.load() > 0 &&
        faults->moves_until_failure.fetch_sub(1) == 1) {
      throw ValueFault();
    }
  }
  int value;
  Faults* faults;
};

// share.h, "Every caller receives its own copy of the value: a copy
// constructor that throws fails that caller alone."
TEST(ShareFault, ValueCopyThatThrowsFailsEachCallerAlone) {
  FaultyValue::Faults faults;
  Share<int, FaultyValue> share;
  HeldLoad held;
  std::thread leader([&] {
    EXPECT_THROW(share.Do(1,
                          [&] {
                            held.Enter();
                            return FaultyValue(1, &faults);
                          }),
                 ValueFault);
  });
  held.AwaitEntered();
  constexpr int kWaiters = 3;
  std::vector<std::thread> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.emplace_back([&] {
      EXPECT_THROW(share.Do(1, [&] { return FaultyValue(-1, &faults); }),
                   ValueFault);
    });
  }
  AwaitCalls(share, 1 + kWaiters);
  faults.fail_copy = true;  // every copy out of the flight's future throws
  held.Release();
  leader.join();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(share.InFlight(), 0u);
  faults.fail_copy = false;
  EXPECT_EQ(share.Do(1, [&] { return FaultyValue(2, &faults); }).value, 2);
}

// share.h, "A Value whose move constructor throws fails the flight with that
// exception". The loader's value is moved into the execution's result (the
// first move), then to the leader's return or into the flight's promise
// (the second): each may throw.
TEST(ShareFault, ValueMoveThatThrowsFailsTheFlight) {
  FaultyValue::Faults faults;
  Share<int, FaultyValue> share;
  // A flight nobody joined: the first move is part of the execution, the
  // second the leader's own return.
  for (int move = 1; move <= 2; ++move) {
    faults.moves_until_failure = move;
    EXPECT_THROW(share.Do(1, [&] { return FaultyValue(1, &faults); }),
                 ValueFault);
    EXPECT_EQ(share.InFlight(), 0u);
  }
  faults.moves_until_failure = 0;
  EXPECT_EQ(share.Do(1, [&] { return FaultyValue(2, &faults); }).value, 2);
  // A joined flight: the second move sets the flight's promise.
  for (int move = 1; move <= 2; ++move) {
#if HERD_UNDER_TSAN
    // A std::promise whose set_value throws while moving the value: its
    // std::call_once does not recover from the throw under ThreadSanitizer's
    // pthread_once interceptor, and the flight would hang (glibc's
    // pthread_once does recover). share.h says so. Only this case skips.
    if (move == 2) continue;
#endif
    HeldLoad held;
    std::thread leader([&] {
      EXPECT_THROW(share.Do(1,
                            [&] {
                              held.Enter();
                              faults.moves_until_failure = move;
                              return FaultyValue(1, &faults);
                            }),
                   ValueFault);
    });
    held.AwaitEntered();
    const uint64_t calls = share.Stats().calls;
    std::thread waiter([&] {
      EXPECT_THROW(share.Do(1, [&] { return FaultyValue(-1, &faults); }),
                   ValueFault);
    });
    AwaitCalls(share, calls + 1);
    held.Release();
    leader.join();
    waiter.join();
    EXPECT_EQ(share.InFlight(), 0u);
  }
}

// --- Executors that throw or drop, with loaders that need the task. --------

// A task dropped by the executor still destroys the loader and settles the
// flight for every caller who joined it, blocking callers included.
TEST(ShareFault, DroppedTaskEndsTheFlightForEveryCaller) {
  Share<int, int> share;
  test::QueueExecutor executor;
  std::shared_future<int> f = share.DoAsync(
      1, [] { return 1; }, executor);
  std::thread waiter(
      [&] { EXPECT_THROW(share.Do(1, [] { return 0; }), Closed); });
  std::thread timed([&] {
    EXPECT_THROW(share.DoFor(1, std::chrono::hours(1), [] { return 0; }),
                 Closed);
  });
  AwaitCalls(share, 3);
  executor.DropNext();
  waiter.join();
  timed.join();
  EXPECT_THROW(f.get(), Closed);
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Stats().failures, 1u);
}

// An executor that keeps the task and throws: the flight ends at once with
// that exception for its blocking callers too, and the loader never runs.
TEST(ShareFault, KeptThenThrownTaskEndsTheFlightAtOnce) {
  Share<int, int> share;
  std::atomic<int> runs{0};
  test::KeepThenThrowExecutor executor;
  std::thread waiter;
  struct Joining {
    Share<int, int>* share;
    std::thread* waiter;
    test::KeepThenThrowExecutor* inner;
    void Schedule(Task task) {
      *waiter = std::thread([s = share] {
        EXPECT_THROW(s->Do(1, [] { return 0; }), std::runtime_error);
      });
      AwaitCalls(*share, 2);  // the waiter joined the flight
      inner->Schedule(std::move(task));
    }
  } joining{&share, &waiter, &executor};
  EXPECT_THROW(share.DoAsync(
                   1,
                   [&] {
                     runs.fetch_add(1);
                     return 1;
                   },
                   joining),
               std::runtime_error);
  waiter.join();
  ASSERT_EQ(executor.kept.size(), 1u);
  std::move(executor.kept[0])();
  EXPECT_EQ(runs.load(), 0);
  EXPECT_EQ(share.InFlight(), 0u);
}

}  // namespace
}  // namespace herd
