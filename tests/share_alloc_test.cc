// Copyright 2026 The herd Authors.
//
// Counts the heap allocations of herd::Share by replacing the global
// operator new and delete (share.h, "Cost"): a flight nobody joins allocates
// nothing (Go's singleflight pays one), whatever its key; a joined flight
// allocates its shared state once (the flight with its copy of the key, and
// its std::promise) and nothing per waiter; and once flights end every
// allocation has been freed.
//
// The counting operator new is tests/testing/counting_new.h's. Under
// ThreadSanitizer, which replaces operator new itself, nothing is counted and
// every test skips.

#include <atomic>
#include <cstdint>
#include <future>
#include <latch>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "herd/errors.h"
#include "herd/share.h"
#include "tests/testing/counting_new.h"
#include "tests/testing/held_load.h"
#include "tests/testing/scripted_executors.h"
#include "tests/testing/sync.h"

namespace herd {
namespace {

using ::herd::test::AwaitCalls;
using ::herd::test::HeldLoad;

#if !HERD_TEST_COUNTING_NEW
#define SKIP_UNDER_SANITIZER()                                             \
  GTEST_SKIP() << "ThreadSanitizer replaces operator new/delete, so this " \
                  "binary cannot count allocations"
#else
#define SKIP_UNDER_SANITIZER() (void)0
#endif

// Allocations and deallocations since construction.
class AllocationCounter {
 public:
  AllocationCounter()
      : allocations_(test::Allocations()),
        deallocations_(test::Deallocations()) {}
  int64_t allocations() const { return test::Allocations() - allocations_; }
  int64_t deallocations() const {
    return test::Deallocations() - deallocations_;
  }

 private:
  const int64_t allocations_;
  const int64_t deallocations_;
};

constexpr int64_t kCalls = 10000;

TEST(ShareAlloc, LeaderPathAllocatesNothing) {
  SKIP_UNDER_SANITIZER();
  Share<int64_t, int64_t> share;
  for (int64_t k = 0; k < 100; ++k) share.Do(k, [k] { return k; });  // warm
  const AllocationCounter counter;
  for (int64_t k = 100; k < 100 + kCalls; ++k) {
    ASSERT_EQ(share.Do(k, [k] { return k; }), k);
  }
  EXPECT_EQ(counter.allocations(), 0);
  EXPECT_EQ(counter.deallocations(), 0);
}

TEST(ShareAlloc, LeaderPathWithShortStringKeysAllocatesNothing) {
  SKIP_UNDER_SANITIZER();
  Share<std::string, int64_t> share;
  std::vector<std::string> keys;
  for (int i = 0; i < 1024; ++i) keys.push_back("user:" + std::to_string(i));
  for (const std::string& key : keys) share.Do(key, [] { return int64_t{1}; });
  const AllocationCounter counter;
  for (int64_t i = 0; i < kCalls; ++i) {
    share.Do(keys[static_cast<size_t>(i) % keys.size()],
             [] { return int64_t{1}; });
  }
  EXPECT_EQ(counter.allocations(), 0);
}

// share.h, "Cost": a flight nobody joins refers to the leader's own key, so
// even a key that would allocate when copied costs nothing.
TEST(ShareAlloc, LeaderPathWithLongStringKeyAllocatesNothing) {
  SKIP_UNDER_SANITIZER();
  Share<std::string, int64_t> share;
  const std::string key(64, 'k');  // beyond the small-string buffer
  share.Do(key, [] { return int64_t{1}; });
  const AllocationCounter counter;
  for (int64_t i = 0; i < kCalls; ++i) share.Do(key, [] { return int64_t{1}; });
  const int64_t allocations = counter.allocations();
  const int64_t deallocations = counter.deallocations();
  EXPECT_EQ(allocations, 0);
  EXPECT_EQ(deallocations, 0);
}

TEST(ShareAlloc, StopTokenLoaderAllocatesOnlyItsStopState) {
  SKIP_UNDER_SANITIZER();
  Share<int64_t, int64_t> share;
  for (int64_t k = 0; k < 100; ++k) share.Do(k, [k] { return k; });  // warm
  const AllocationCounter counter;
  for (int64_t k = 100; k < 100 + kCalls; ++k) {
    share.Do(k, [k](std::stop_token) { return k; });
  }
  EXPECT_EQ(counter.allocations(), kCalls);  // one std::stop_source each
  EXPECT_EQ(counter.deallocations(), kCalls);
}

TEST(ShareAlloc, JoinedFlightAllocatesOneSharedState) {
  SKIP_UNDER_SANITIZER();
  Share<int, int> share;
  share.Do(1, [] { return 0; });  // gives key 1's shard its map
  constexpr int kFollowers = 4;
  HeldLoad held;
  std::latch go(1), returned(kFollowers + 1);
  std::vector<std::thread> threads;
  std::atomic<int> sum{0};
  threads.emplace_back([&] {
    go.wait();
    sum += share.Do(1, held.Returning(5));
    returned.count_down();
  });
  std::latch followers_go(1);
  for (int i = 0; i < kFollowers; ++i) {
    threads.emplace_back([&] {
      followers_go.wait();
      sum += share.Do(1, [] { return -1; });
      returned.count_down();
    });
  }
  const AllocationCounter counter;
  go.count_down();
  held.AwaitEntered();
  followers_go.count_down();
  AwaitCalls(share, 1 + 1 + kFollowers);
  held.Release();
  returned.wait();
  // Read before joining: a std::thread frees its own state as it exits.
  const int64_t allocations = counter.allocations();
  for (auto& t : threads) t.join();
  EXPECT_EQ(sum.load(), 5 * (kFollowers + 1));
  // The heap flight, and the std::promise's two (libstdc++ makes the shared
  // state and the result's storage separately): nothing per waiter.
  EXPECT_EQ(allocations, 3);
}

// Every kind of flight: joined, failed, extra executions, detached,
// cancelled, timed out, async. Run twice: the first run sizes the map;
// after the second, every allocation it made has been freed.
void EveryKindOfFlight(Share<int, std::string>& share) {
  test::InlineExecutor executor;
  {
    HeldLoad held;
    std::thread leader([&] {
      share.Do(1, held.Returning(std::string(100, 'v')));  // allocates
    });
    held.AwaitEntered();
    const uint64_t calls = share.Stats().calls;
    std::thread follower([&] { share.Do(1, [] { return std::string(); }); });
    std::thread timed_out([&] {
      EXPECT_THROW(share.DoFor(1, std::chrono::milliseconds(1),
                               [] { return std::string(); }),
                   WaitTimeout);
    });
    timed_out.join();
    std::shared_future<std::string> async = share.DoAsync(
        1, [] { return std::string(); }, executor);
    AwaitCalls(share, calls + 3);
    held.Release();
    leader.join();
    follower.join();
    EXPECT_EQ(async.get(), std::string(100, 'v'));
  }
  {
    // An extra execution wins while the first still runs; then Forget
    // detaches a flight and Cancel ends another.
    HeldLoad slow;
    std::thread leader(
        [&] { share.Do(2, slow.Returning(std::string("slow"))); });
    slow.AwaitEntered();
    EXPECT_TRUE(share.AllowExtraExecution(2));
    EXPECT_EQ(share.Do(2, [] { return std::string(50, 'f'); }),
              std::string(50, 'f'));
    slow.Release();
    leader.join();
  }
  {
    HeldLoad held;
    std::thread leader([&] {
      EXPECT_THROW(
          share.Do(3, held.Throwing<std::string>(std::runtime_error("failed"))),
          std::runtime_error);
    });
    held.AwaitEntered();
    const uint64_t calls = share.Stats().calls;
    std::thread follower([&] {
      EXPECT_THROW(share.Do(3, [] { return std::string(); }),
                   std::runtime_error);
    });
    AwaitCalls(share, calls + 1);
    held.Release();
    leader.join();
    follower.join();
  }
  {
    HeldLoad held;
    std::thread detached(
        [&] { share.Do(4, held.Returning(std::string(40, 'd'))); });
    held.AwaitEntered();
    EXPECT_TRUE(share.Forget(4));
    EXPECT_EQ(share.Do(4, [] { return std::string("new"); }), "new");
    held.Release();
    detached.join();
  }
  {
    std::latch started(1);
    std::thread cancelled([&] {
      EXPECT_THROW(share.Do(5,
                            [&](std::stop_token stop) {
                              started.count_down();
                              while (!stop.stop_requested()) {
                                std::this_thread::yield();
                              }
                              return std::string();
                            }),
                   Cancelled);
    });
    started.wait();
    const uint64_t calls = share.Stats().calls;
    std::thread follower([&] {
      EXPECT_THROW(share.Do(5, [] { return std::string(); }), Cancelled);
    });
    AwaitCalls(share, calls + 1);
    EXPECT_TRUE(share.Cancel(5));
    cancelled.join();
    follower.join();
  }
  EXPECT_EQ(share
                .DoAsync(
                    6, [] { return std::string(30, 'a'); }, executor)
                .get(),
            std::string(30, 'a'));
}

TEST(ShareAlloc, NothingIsRetainedAfterFlightsEnd) {
  SKIP_UNDER_SANITIZER();
  Share<int, std::string> share;
  EveryKindOfFlight(share);  // warm-up
  const AllocationCounter counter;
  EveryKindOfFlight(share);
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_GT(counter.allocations(), 0);
  EXPECT_EQ(counter.allocations(), counter.deallocations());
}

}  // namespace
}  // namespace herd
