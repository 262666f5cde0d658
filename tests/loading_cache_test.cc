// Copyright 2026 The herd Authors.
//
// Tests of herd::LoadingCache, one section per point of the issue. Time is a
// FakeClock, background work runs on an executor the test drives (or inline),
// and threads are ordered by latches and by waiting for exact counters, so no
// test sleeps or depends on timing.

#include "herd/loading_cache.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <exception>
#include <functional>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "herd/clock.h"
#include "herd/errors.h"
#include "tests/testing/sync.h"

namespace herd {
namespace {

using ::herd::test::AwaitCondition;

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

// A loader's own exception type, with a payload, to check that callers get
// the very exception the loader threw.
struct LoadError : std::runtime_error {
  explicit LoadError(int c) : std::runtime_error("load failed"), code(c) {}
  int code;
};

// Tasks queue here until the test runs them, on the test's thread.
class ManualExecutor {
 public:
  std::function<void(CacheOptions::Task)> Hook() {
    return [this](CacheOptions::Task t) {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(t));
    };
  }
  size_t Pending() {
    std::lock_guard<std::mutex> lock(mu_);
    return tasks_.size();
  }
  // Runs the oldest task. Returns false iff there was none.
  bool RunOne() {
    CacheOptions::Task t;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (tasks_.empty()) return false;
      t = std::move(tasks_.front());
      tasks_.pop_front();
    }
    std::move(t)();
    return true;
  }
  void RunAll() {
    while (RunOne()) {
    }
  }

 private:
  std::mutex mu_;
  std::deque<CacheOptions::Task> tasks_;
};

// Runs each task at once, on the thread that hands it over.
std::function<void(CacheOptions::Task)> Inline() {
  return [](CacheOptions::Task t) { std::move(t)(); };
}

CacheOptions Options(const Clock* clock) {
  CacheOptions o;
  o.ttl = seconds(10);
  o.clock = clock;
  return o;
}

// A loader that must not run.
template <class V = int>
V NoLoad() {
  ADD_FAILURE() << "unexpected load";
  return V();
}

// ---------------------------------------------------------------------------
// 1. Get returns the cached value while fresh; concurrent misses share one
// load, its value or its exception.

TEST(LoadingCache, GetReturnsCachedValueWhileFresh) {
  FakeClock clock;
  LoadingCache<int, std::string> cache(Options(&clock));
  int calls = 0;
  EXPECT_EQ(cache.Get(1,
                      [&] {
                        ++calls;
                        return std::string("one");
                      }),
            "one");
  EXPECT_EQ(cache.Get(1,
                      [&] {
                        ++calls;
                        return std::string("other");
                      }),
            "one");
  EXPECT_EQ(calls, 1);
  CacheStats s = cache.Stats();
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.loads, 1u);
}

// N callers of a missing key: the first runs the loader, which holds until
// all N are registered on its flight; exactly one load, N equal values.
void ConcurrentCallersShareOneLoad(bool expire_first) {
  constexpr int kCallers = 8;
  FakeClock clock;
  LoadingCache<int, std::string> cache(Options(&clock));
  uint64_t calls_before = 0;
  if (expire_first) {
    cache.Get(7, [] { return std::string("old"); });
    clock.Advance(seconds(10));
    calls_before = cache.FlightStats().calls;
  }
  std::atomic<int> loads{0};
  std::latch release(1);
  auto loader = [&] {
    loads.fetch_add(1);
    release.wait();
    return std::string("seven");
  };
  std::vector<std::string> got(kCallers);
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kCallers; ++i) {
      threads.emplace_back([&, i] { got[i] = cache.Get(7, loader); });
    }
    AwaitCondition(
        [&] { return cache.FlightStats().calls == calls_before + kCallers; });
    EXPECT_EQ(loads.load(), 1);
    release.count_down();
  }
  for (const std::string& v : got) EXPECT_EQ(v, "seven");
  EXPECT_EQ(loads.load(), 1);
  EXPECT_EQ(cache.Stats().loads, expire_first ? 2u : 1u);
  EXPECT_EQ(cache.Stats().misses, expire_first ? kCallers + 1u : kCallers);
}

TEST(LoadingCache, ConcurrentMissesShareOneLoad) {
  ConcurrentCallersShareOneLoad(/*expire_first=*/false);
}

TEST(LoadingCache, ConcurrentReadersOfExpiredKeyShareOneReload) {
  ConcurrentCallersShareOneLoad(/*expire_first=*/true);
}

TEST(LoadingCache, ConcurrentMissesShareOneFailure) {
  constexpr int kCallers = 8;
  FakeClock clock;
  LoadingCache<int, int> cache(Options(&clock));
  std::atomic<int> loads{0};
  std::latch release(1);
  auto loader = [&]() -> int {
    loads.fetch_add(1);
    release.wait();
    throw LoadError(42);
  };
  std::vector<int> codes(kCallers, 0);
  std::vector<const void*> objects(kCallers, nullptr);
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kCallers; ++i) {
      threads.emplace_back([&, i] {
        try {
          cache.Get(1, loader);
        } catch (const LoadError& e) {
          codes[i] = e.code;
          objects[i] = &e;
        }
      });
    }
    AwaitCondition([&] { return cache.FlightStats().calls == kCallers; });
    release.count_down();
  }
  for (int i = 0; i < kCallers; ++i) {
    EXPECT_EQ(codes[i], 42);
    EXPECT_EQ(objects[i], objects[0]);  // the loader's own exception object
  }
  EXPECT_EQ(loads.load(), 1);
  EXPECT_EQ(cache.Stats().load_failures, 1u);
  EXPECT_EQ(cache.Size(), 0u);
}

// ---------------------------------------------------------------------------
// 2. ttl: a value expires ttl after it was written (when its load ended).

TEST(LoadingCache, ValueExpiresTtlAfterItWasWritten) {
  FakeClock clock;
  LoadingCache<int, int> cache(Options(&clock));  // ttl 10 s
  // The load takes 3 s: the value is written at its end.
  EXPECT_EQ(cache.Get(1,
                      [&] {
                        clock.Advance(seconds(3));
                        return 1;
                      }),
            1);
  clock.Advance(seconds(10) - nanoseconds(1));
  EXPECT_EQ(cache.Get(1, NoLoad<int>), 1);
  EXPECT_EQ(cache.GetIfPresent(1), 1);
  clock.Advance(nanoseconds(1));
  EXPECT_EQ(cache.GetIfPresent(1), std::nullopt);
  EXPECT_EQ(cache.Get(1, [] { return 2; }), 2);
  EXPECT_EQ(cache.Stats().loads, 2u);
}

// ---------------------------------------------------------------------------
// 3. refresh_after: stale-while-revalidate, one background reload.

CacheOptions RefreshOptions(const Clock* clock, ManualExecutor* executor) {
  CacheOptions o = Options(clock);
  o.refresh_after = seconds(5);
  o.executor = executor->Hook();
  return o;
}

TEST(LoadingCache, StaleReadReturnsOldValueAndStartsOneRefresh) {
  FakeClock clock;
  ManualExecutor executor;
  LoadingCache<int, std::string> cache(RefreshOptions(&clock, &executor));
  cache.Get(1, [] { return std::string("v1"); });
  clock.Advance(seconds(5) - nanoseconds(1));
  EXPECT_EQ(cache.Get(1, NoLoad<std::string>), "v1");
  EXPECT_EQ(executor.Pending(), 0u);  // not yet due

  clock.Advance(nanoseconds(1));
  int refreshes = 0;
  auto loader = [&] {
    ++refreshes;
    return std::string("v2");
  };
  for (int i = 0; i < 5; ++i) EXPECT_EQ(cache.Get(1, loader), "v1");
  EXPECT_EQ(executor.Pending(), 1u);  // readers during it start no other
  EXPECT_EQ(refreshes, 0);
  EXPECT_EQ(cache.Stats().stale_reads, 5u);

  executor.RunAll();
  EXPECT_EQ(refreshes, 1);
  EXPECT_EQ(cache.Get(1, NoLoad<std::string>), "v2");
  EXPECT_EQ(executor.Pending(), 0u);  // the new value is fresh
  CacheStats s = cache.Stats();
  EXPECT_EQ(s.refreshes, 1u);
  EXPECT_EQ(s.loads, 1u);
  EXPECT_EQ(s.stale_reads, 5u);
  // The refreshed value lives ttl from its own write.
  clock.Advance(seconds(10) - nanoseconds(1));
  EXPECT_EQ(cache.GetIfPresent(1), "v2");
}

TEST(LoadingCache, FailedRefreshKeepsOldValueAndLaterReadsRetry) {
  FakeClock clock;
  ManualExecutor executor;
  LoadingCache<int, std::string> cache(RefreshOptions(&clock, &executor));
  cache.Get(1, [] { return std::string("v1"); });
  clock.Advance(seconds(6));
  EXPECT_EQ(cache.Get(1, []() -> std::string { throw LoadError(1); }), "v1");
  executor.RunAll();
  CacheStats s = cache.Stats();
  EXPECT_EQ(s.refreshes, 1u);
  EXPECT_EQ(s.refresh_failures, 1u);
  EXPECT_EQ(cache.GetIfPresent(1), "v1");  // old value kept

  // The failure does not stop later refreshes.
  EXPECT_EQ(cache.Get(1, [] { return std::string("v2"); }), "v1");
  EXPECT_EQ(executor.Pending(), 1u);
  executor.RunAll();
  EXPECT_EQ(cache.Get(1, NoLoad<std::string>), "v2");
  EXPECT_EQ(cache.Stats().refreshes, 2u);
  EXPECT_EQ(cache.Stats().refresh_failures, 1u);
}

TEST(LoadingCache, FailedRefreshValueStillExpiresOnTime) {
  FakeClock clock;
  ManualExecutor executor;
  LoadingCache<int, std::string> cache(RefreshOptions(&clock, &executor));
  cache.Get(1, [] { return std::string("v1"); });
  clock.Advance(seconds(6));
  cache.Get(1, []() -> std::string { throw LoadError(1); });
  executor.RunAll();
  clock.Advance(seconds(4));  // 10 s since written
  EXPECT_EQ(cache.Get(1, [] { return std::string("v2"); }), "v2");
  EXPECT_EQ(cache.Stats().loads, 2u);
}

TEST(LoadingCache, RefreshRunsOnDefaultExecutor) {
  FakeClock clock;
  CacheOptions o = Options(&clock);
  o.refresh_after = seconds(5);
  LoadingCache<int, std::string> cache(o);
  cache.Get(1, [] { return std::string("v1"); });
  clock.Advance(seconds(5));
  std::latch release(1);
  std::atomic<std::thread::id> loader_thread{};
  EXPECT_EQ(cache.Get(1,
                      [&] {
                        loader_thread = std::this_thread::get_id();
                        release.wait();
                        return std::string("v2");
                      }),
            "v1");  // returned while the refresh waits
  release.count_down();
  AwaitCondition([&] { return cache.GetIfPresent(1) == "v2"; });
  EXPECT_NE(loader_thread.load(), std::this_thread::get_id());
  EXPECT_EQ(cache.Stats().refreshes, 1u);
}

// ---------------------------------------------------------------------------
// 4. early_refresh_beta: XFetch spreads reloads before expiry.

// 200 keys, each loaded once by a load that takes delta = 1 s, then all
// rewritten at one instant (Put keeps the load time), so all expire together
// at T, as after a cold start. Readers read every key every 100 ms over
// the last 30 s before T (a read 30 s or more before expiry refreshes early
// with probability below e^-30, so earlier reads would change nothing but
// the test's run time). Returns, per key, when it was reloaded (by an early
// refresh, or by the miss at T).
std::vector<Clock::time_point> ReloadTimes(double beta, Clock::time_point* t,
                                           CacheStats* stats) {
  constexpr int kKeys = 200;
  FakeClock clock;
  CacheOptions o = Options(&clock);
  o.ttl = seconds(300);  // longer than the 200 s of loads
  o.early_refresh_beta = beta;
  o.shards = 1;  // one random stream: reproducible from the seed
  o.seed = 42;
  o.executor = Inline();
  LoadingCache<int, int> cache(o);
  for (int k = 0; k < kKeys; ++k) {
    cache.Get(k, [&] {
      clock.Advance(seconds(1));
      return 0;
    });
  }
  for (int k = 0; k < kKeys; ++k) cache.Put(k, 1);
  const Clock::time_point expiry = clock.Now() + o.ttl;
  std::vector<Clock::time_point> reload(kKeys);
  clock.AdvanceTo(expiry - seconds(30));
  while (clock.Now() <= expiry) {
    for (int k = 0; k < kKeys; ++k) {
      cache.Get(k, [&, k] {
        if (reload[k] == Clock::time_point()) reload[k] = clock.Now();
        return 2;
      });
    }
    clock.Advance(milliseconds(100));
  }
  *t = expiry;
  *stats = cache.Stats();
  return reload;
}

TEST(LoadingCache, WithoutEarlyRefreshReloadsPileUpAtExpiry) {
  Clock::time_point expiry;
  CacheStats stats;
  for (Clock::time_point r : ReloadTimes(0.0, &expiry, &stats)) {
    EXPECT_EQ(r, expiry);  // every key reloads at the same instant
  }
  EXPECT_EQ(stats.early_refreshes, 0u);
  EXPECT_EQ(stats.loads, 400u);
}

TEST(LoadingCache, EarlyRefreshSpreadsReloadsBeforeExpiry) {
  Clock::time_point expiry;
  CacheStats stats;
  std::vector<Clock::time_point> reload = ReloadTimes(1.0, &expiry, &stats);
  // Histogram of how long before expiry each key reloaded, in deltas (1 s).
  std::map<int, int> histogram;
  int early = 0;
  Clock::time_point first = expiry;
  for (Clock::time_point r : reload) {
    ASSERT_NE(r, Clock::time_point());
    ASSERT_LE(r, expiry);
    if (r < expiry) ++early;
    first = std::min(first, r);
    ++histogram[static_cast<int>((expiry - r) / seconds(1))];
  }
  std::printf(
      "seconds before expiry -> keys reloaded (beta = 1, delta = 1 s)\n");
  for (auto [lead, keys] : histogram) std::printf("  %2d: %d\n", lead, keys);
  EXPECT_LT(first, expiry - seconds(4));
  EXPECT_GE(early, 190);  // at least 95% reload before expiry...
  EXPECT_EQ(stats.early_refreshes, static_cast<uint64_t>(early));
  int spread = 0, biggest = 0;
  for (auto [lead, keys] : histogram) {
    if (keys >= 10) ++spread;
    biggest = std::max(biggest, keys);
  }
  EXPECT_GE(spread, 4);     // ...over at least 4 seconds holding >= 5% each
  EXPECT_LE(biggest, 100);  // ...with no second holding half of them
}

TEST(LoadingCache, EarlyRefreshStartsOneReloadAtATime) {
  FakeClock clock;
  ManualExecutor executor;
  CacheOptions o = Options(&clock);
  o.early_refresh_beta = 1e6;  // every read draws an early refresh
  o.executor = executor.Hook();
  LoadingCache<int, int> cache(o);
  cache.Get(1, [&] {
    clock.Advance(seconds(1));
    return 1;
  });
  int reloads = 0;
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(cache.Get(1,
                        [&] {
                          ++reloads;
                          return 2;
                        }),
              1);
  }
  EXPECT_EQ(executor.Pending(), 1u);
  executor.RunAll();
  EXPECT_EQ(reloads, 1);
  EXPECT_EQ(cache.Stats().early_refreshes, 1u);
  EXPECT_EQ(cache.Stats().stale_reads, 0u);  // refresh_after is off
  EXPECT_EQ(cache.GetIfPresent(1), 2);
}

// ---------------------------------------------------------------------------
// 5. error_ttl: negative caching.

TEST(LoadingCache, FailureIsNotCachedByDefault) {
  FakeClock clock;
  LoadingCache<int, int> cache(Options(&clock));
  int calls = 0;
  auto failing = [&]() -> int {
    ++calls;
    throw LoadError(1);
  };
  EXPECT_THROW(cache.Get(1, failing), LoadError);
  EXPECT_THROW(cache.Get(1, failing), LoadError);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(cache.Get(1, [] { return 5; }), 5);
  EXPECT_EQ(cache.Stats().load_failures, 2u);
}

TEST(LoadingCache, ErrorTtlCachesTheSameException) {
  FakeClock clock;
  CacheOptions o = Options(&clock);
  o.error_ttl = seconds(2);
  LoadingCache<int, int> cache(o);
  const void* first = nullptr;
  try {
    cache.Get(1, []() -> int { throw LoadError(7); });
  } catch (const LoadError& e) {
    first = &e;
  }
  ASSERT_NE(first, nullptr);
  clock.Advance(seconds(2) - nanoseconds(1));
  try {
    cache.Get(1, NoLoad<int>);
    ADD_FAILURE() << "no exception";
  } catch (const LoadError& e) {
    EXPECT_EQ(&e, first);
    EXPECT_EQ(e.code, 7);
  }
  // GetAsync and GetThen see it too; GetIfPresent reads it as absent.
  EXPECT_THROW(cache.GetAsync(1, NoLoad<int>).get(), LoadError);
  bool called = false;
  cache.GetThen(1, NoLoad<int>, [&](const int* v, std::exception_ptr e) {
    called = true;
    EXPECT_EQ(v, nullptr);
    EXPECT_NE(e, nullptr);
  });
  EXPECT_TRUE(called);
  EXPECT_EQ(cache.GetIfPresent(1), std::nullopt);
  CacheStats s = cache.Stats();
  EXPECT_EQ(s.loads, 1u);
  EXPECT_EQ(s.negative_hits, 4u);

  clock.Advance(nanoseconds(1));
  EXPECT_EQ(cache.Get(1, [] { return 8; }), 8);
  EXPECT_EQ(cache.Stats().loads, 2u);
}

// ---------------------------------------------------------------------------
// 6. max_entries: LRU, never an entry whose load or refresh is in progress.

TEST(LoadingCache, EvictsLeastRecentlyUsed) {
  FakeClock clock;
  CacheOptions o = Options(&clock);
  o.max_entries = 3;
  LoadingCache<std::string, int> cache(o);
  cache.Get("a", [] { return 1; });
  cache.Get("b", [] { return 2; });
  cache.Get("c", [] { return 3; });
  cache.Get("a", NoLoad<int>);  // a is now the most recently used
  cache.Get("d", [] { return 4; });
  EXPECT_EQ(cache.Size(), 3u);
  EXPECT_EQ(cache.GetIfPresent("b"), std::nullopt);
  EXPECT_EQ(cache.GetIfPresent("a"), 1);
  EXPECT_EQ(cache.GetIfPresent("c"), 3);
  EXPECT_EQ(cache.GetIfPresent("d"), 4);
  EXPECT_EQ(cache.Stats().evictions, 1u);
}

TEST(LoadingCache, NeverEvictsEntryBeingRefreshed) {
  FakeClock clock;
  ManualExecutor executor;
  CacheOptions o = RefreshOptions(&clock, &executor);
  o.max_entries = 2;
  LoadingCache<std::string, int> cache(o);
  cache.Get("a", [] { return 1; });
  clock.Advance(seconds(5));
  cache.Get("b", [] { return 2; });
  EXPECT_EQ(cache.Get("a", [] { return 10; }), 1);  // refresh of a pending
  EXPECT_EQ(cache.Get("b", NoLoad<int>), 2);  // a is least recently used now
  cache.Get("c", [] { return 3; });
  EXPECT_EQ(cache.GetIfPresent("b"), std::nullopt);  // b went, not a
  EXPECT_EQ(cache.GetIfPresent("a"), 1);
  executor.RunAll();
  EXPECT_EQ(cache.GetIfPresent("a"), 10);
  EXPECT_EQ(cache.Size(), 2u);
}

TEST(LoadingCache, NewValueIsNotKeptWhenEveryOtherEntryIsRefreshing) {
  FakeClock clock;
  ManualExecutor executor;
  CacheOptions o = RefreshOptions(&clock, &executor);
  o.max_entries = 1;
  LoadingCache<std::string, int> cache(o);
  cache.Get("a", [] { return 1; });
  clock.Advance(seconds(5));
  cache.Get("a", [] { return 10; });               // refresh of a pending
  EXPECT_EQ(cache.Get("c", [] { return 3; }), 3);  // returned, not kept
  EXPECT_EQ(cache.GetIfPresent("c"), std::nullopt);
  EXPECT_EQ(cache.GetIfPresent("a"), 1);
  EXPECT_EQ(cache.Stats().evictions, 1u);
  executor.RunAll();
  EXPECT_EQ(cache.GetIfPresent("a"), 10);
}

TEST(LoadingCache, LoadInProgressSurvivesEvictionsAndIsStored) {
  FakeClock clock;
  CacheOptions o = Options(&clock);
  o.max_entries = 1;
  LoadingCache<std::string, int> cache(o);
  std::latch started(1), release(1);
  std::jthread loader_thread([&] {
    EXPECT_EQ(cache.Get("x",
                        [&] {
                          started.count_down();
                          release.wait();
                          return 9;
                        }),
              9);
  });
  started.wait();
  cache.Get("a", [] { return 1; });
  cache.Get("b", [] { return 2; });  // evicts a
  release.count_down();
  loader_thread.join();
  EXPECT_EQ(cache.Get("x", NoLoad<int>), 9);  // stored, evicting b
  EXPECT_EQ(cache.Stats().loads, 3u);
  EXPECT_EQ(cache.Stats().evictions, 2u);
}

// ---------------------------------------------------------------------------
// 7. GetAsync and GetThen.

TEST(LoadingCache, GetAsyncOnHitIsReady) {
  FakeClock clock;
  LoadingCache<int, int> cache(Options(&clock));
  cache.Put(1, 11);
  std::shared_future<int> f = cache.GetAsync(1, NoLoad<int>);
  ASSERT_EQ(f.wait_for(seconds(0)), std::future_status::ready);
  EXPECT_EQ(f.get(), 11);
}

TEST(LoadingCache, GetAsyncLoadsOnTheExecutorOncePerKey) {
  FakeClock clock;
  ManualExecutor executor;
  CacheOptions o = Options(&clock);
  o.executor = executor.Hook();
  LoadingCache<int, int> cache(o);
  int calls = 0;
  std::shared_future<int> f1 = cache.GetAsync(1, [&] {
    ++calls;
    return 5;
  });
  std::shared_future<int> f2 = cache.GetAsync(1, [&] {
    ++calls;
    return 6;
  });
  EXPECT_EQ(executor.Pending(), 1u);
  EXPECT_EQ(f1.wait_for(seconds(0)), std::future_status::timeout);
  executor.RunAll();
  EXPECT_EQ(f1.get(), 5);
  EXPECT_EQ(f2.get(), 5);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(cache.Get(1, NoLoad<int>), 5);
}

TEST(LoadingCache, GetAsyncCarriesTheLoadersException) {
  FakeClock clock;
  ManualExecutor executor;
  CacheOptions o = Options(&clock);
  o.executor = executor.Hook();
  LoadingCache<int, int> cache(o);
  std::shared_future<int> f =
      cache.GetAsync(1, []() -> int { throw LoadError(3); });
  executor.RunAll();
  try {
    f.get();
    ADD_FAILURE() << "no exception";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.code, 3);
  }
}

TEST(LoadingCache, GetThenRunsInlineOnHit) {
  FakeClock clock;
  LoadingCache<int, int> cache(Options(&clock));
  cache.Put(1, 11);
  std::thread::id ran_on;
  int got = 0;
  cache.GetThen(1, NoLoad<int>, [&](const int* v, std::exception_ptr e) {
    ran_on = std::this_thread::get_id();
    got = *v;
    EXPECT_EQ(e, nullptr);
  });
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  EXPECT_EQ(got, 11);
}

// The Vert.x regression: many handlers on one pending load, each woken once.
void HundredCallbacksOnOnePendingLoad(bool fail) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  constexpr int kCallbacks = kThreads * kPerThread;
  FakeClock clock;
  LoadingCache<int, int> cache(Options(&clock));  // default executor
  std::atomic<int> loads{0};
  std::latch release(1);
  auto loader = [&]() -> int {
    loads.fetch_add(1);
    release.wait();
    if (fail) throw LoadError(5);
    return 77;
  };
  std::vector<std::atomic<int>> calls(kCallbacks);
  std::vector<std::atomic<int>> values(kCallbacks);
  std::latch done(kCallbacks);
  {
    std::latch go(kThreads);
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        go.arrive_and_wait();
        for (int i = t * kPerThread; i < (t + 1) * kPerThread; ++i) {
          cache.GetThen(1, loader, [&, i](const int* v, std::exception_ptr e) {
            calls[i].fetch_add(1);
            if (v != nullptr) {
              values[i] = *v;
            } else {
              try {
                std::rethrow_exception(e);
              } catch (const LoadError& err) {
                values[i] = -err.code;
              }
            }
            done.count_down();
          });
        }
      });
    }
  }
  // Every GetThen has returned, none of the callbacks has run.
  for (int i = 0; i < kCallbacks; ++i) EXPECT_EQ(calls[i].load(), 0);
  release.count_down();
  done.wait();
  for (int i = 0; i < kCallbacks; ++i) {
    EXPECT_EQ(calls[i].load(), 1) << i;
    EXPECT_EQ(values[i].load(), fail ? -5 : 77) << i;
  }
  EXPECT_EQ(loads.load(), 1);
  EXPECT_EQ(cache.Stats().misses, static_cast<uint64_t>(kCallbacks));
}

TEST(LoadingCache, HundredCallbacksOnOnePendingLoadEachRunOnce) {
  HundredCallbacksOnOnePendingLoad(/*fail=*/false);
}

TEST(LoadingCache, HundredCallbacksOnOneFailingLoadEachRunOnce) {
  HundredCallbacksOnOnePendingLoad(/*fail=*/true);
}

TEST(LoadingCache, BlockingFutureAndCallbackCallersShareOneLoad) {
  FakeClock clock;
  LoadingCache<int, int> cache(Options(&clock));  // default executor
  std::atomic<int> loads{0};
  std::latch started(1), release(1);
  auto loader = [&] {
    loads.fetch_add(1);
    started.count_down();
    release.wait();
    return 3;
  };
  int blocking = 0;
  std::jthread caller([&] { blocking = cache.Get(1, loader); });
  started.wait();
  std::shared_future<int> future = cache.GetAsync(1, loader);
  std::latch called(1);
  int from_callback = 0;
  cache.GetThen(1, loader, [&](const int* v, std::exception_ptr) {
    from_callback = *v;
    called.count_down();
  });
  // The async load task (one, for both) joins the blocking caller's flight.
  AwaitCondition([&] { return cache.FlightStats().calls == 2; });
  release.count_down();
  caller.join();
  called.wait();
  EXPECT_EQ(blocking, 3);
  EXPECT_EQ(future.get(), 3);
  EXPECT_EQ(from_callback, 3);
  EXPECT_EQ(loads.load(), 1);
}

TEST(LoadingCache, ExecutorThatDropsOrRefusesTasksFailsWaitersWithClosed) {
  FakeClock clock;
  for (bool refuse : {false, true}) {
    CacheOptions o = Options(&clock);
    o.executor = [refuse](CacheOptions::Task t) {
      if (refuse) throw Closed();
      CacheOptions::Task dropped = std::move(t);  // destroyed unrun
    };
    LoadingCache<int, int> cache(o);
    std::exception_ptr error;
    std::shared_future<int> f = cache.GetAsync(1, NoLoad<int>);
    cache.GetThen(2, NoLoad<int>,
                  [&](const int*, std::exception_ptr e) { error = e; });
    EXPECT_THROW(f.get(), Closed);
    EXPECT_THROW(std::rethrow_exception(error), Closed);
    // Nothing stays registered: the next call tries again.
    EXPECT_EQ(cache.Get(1, [] { return 1; }), 1);
  }
}

// ---------------------------------------------------------------------------
// 8. GetIfPresent, Put, Invalidate, InvalidateAll, Size.

TEST(LoadingCache, PutGetIfPresentInvalidateAndSize) {
  FakeClock clock;
  LoadingCache<int, std::string> cache(Options(&clock));
  EXPECT_EQ(cache.GetIfPresent(1), std::nullopt);
  cache.Put(1, "one");
  cache.Put(2, "two");
  EXPECT_EQ(cache.Size(), 2u);
  EXPECT_EQ(cache.GetIfPresent(1), "one");
  EXPECT_EQ(cache.Get(2, NoLoad<std::string>), "two");
  cache.Put(2, "deux");
  EXPECT_EQ(cache.GetIfPresent(2), "deux");
  EXPECT_TRUE(cache.Invalidate(1));
  EXPECT_FALSE(cache.Invalidate(1));
  EXPECT_EQ(cache.GetIfPresent(1), std::nullopt);
  EXPECT_EQ(cache.Size(), 1u);
  cache.InvalidateAll();
  EXPECT_EQ(cache.Size(), 0u);
  EXPECT_EQ(cache.GetIfPresent(2), std::nullopt);
}

TEST(LoadingCache, ExpiredEntriesAreRemovedWhenReadOrCrowdedOut) {
  FakeClock clock;
  CacheOptions o = Options(&clock);
  o.shards = 1;  // expired entries are dropped per shard
  LoadingCache<int, int> cache(o);
  cache.Put(1, 1);
  cache.Put(2, 2);
  clock.Advance(seconds(10));
  EXPECT_EQ(cache.Size(), 2u);  // expired, not yet removed
  EXPECT_EQ(cache.GetIfPresent(1), std::nullopt);
  EXPECT_EQ(cache.Size(), 1u);
  cache.Put(3, 3);  // an insertion drops expired entries at the cold end
  EXPECT_EQ(cache.Size(), 1u);
}

TEST(LoadingCache, InvalidateDuringLoadMakesLaterCallersLoadAgain) {
  FakeClock clock;
  LoadingCache<int, int> cache(Options(&clock));
  std::latch started(1), release(1);
  auto old_loader = [&] {
    started.count_down();
    release.wait();
    return 1;
  };
  int first = 0, joined = 0;
  std::jthread a([&] { first = cache.Get(5, old_loader); });
  started.wait();
  std::jthread b([&] { joined = cache.Get(5, old_loader); });
  AwaitCondition([&] { return cache.FlightStats().calls == 2; });

  EXPECT_TRUE(cache.Invalidate(5));
  // A caller after the invalidation does not join the old load.
  EXPECT_EQ(cache.Get(5, [] { return 2; }), 2);
  release.count_down();
  a.join();
  b.join();
  EXPECT_EQ(first, 1);  // the in-progress callers get that load's result
  EXPECT_EQ(joined, 1);
  EXPECT_EQ(cache.Get(5, NoLoad<int>), 2);  // ...which is not stored
  EXPECT_EQ(cache.Stats().loads, 2u);
}

TEST(LoadingCache, PutDuringLoadIsNotOverwrittenByIt) {
  FakeClock clock;
  LoadingCache<int, int> cache(Options(&clock));
  std::latch started(1), release(1);
  int loaded = 0;
  std::jthread a([&] {
    loaded = cache.Get(5, [&] {
      started.count_down();
      release.wait();
      return 1;
    });
  });
  started.wait();
  cache.Put(5, 50);
  release.count_down();
  a.join();
  EXPECT_EQ(loaded, 1);
  EXPECT_EQ(cache.GetIfPresent(5), 50);
}

TEST(LoadingCache, InvalidateAllDuringLoadAndRefresh) {
  FakeClock clock;
  ManualExecutor executor;
  LoadingCache<int, int> cache(RefreshOptions(&clock, &executor));
  cache.Get(1, [] { return 1; });
  clock.Advance(seconds(6));
  cache.Get(1, [] { return 10; });  // refresh of 1 queued
  std::latch started(1), release(1);
  int loaded = 0;
  std::jthread a([&] {
    loaded = cache.Get(2, [&] {
      started.count_down();
      release.wait();
      return 2;
    });
  });
  started.wait();
  cache.InvalidateAll();
  release.count_down();
  a.join();
  executor.RunAll();
  EXPECT_EQ(loaded, 2);
  EXPECT_EQ(cache.Size(), 0u);  // neither result was stored
  EXPECT_EQ(cache.Get(2, [] { return 20; }), 20);
}

TEST(LoadingCache, InvalidateDuringAsyncLoadStartsANewOneForLaterCallers) {
  FakeClock clock;
  ManualExecutor executor;
  CacheOptions o = Options(&clock);
  o.executor = executor.Hook();
  LoadingCache<int, int> cache(o);
  std::shared_future<int> before = cache.GetAsync(1, [] { return 1; });
  EXPECT_TRUE(cache.Invalidate(1));
  std::shared_future<int> after = cache.GetAsync(1, [] { return 2; });
  EXPECT_EQ(executor.Pending(), 2u);
  executor.RunAll();
  EXPECT_EQ(before.get(), 1);
  EXPECT_EQ(after.get(), 2);
  EXPECT_EQ(cache.GetIfPresent(1), 2);
}

// ---------------------------------------------------------------------------
// 9. Stats.

TEST(LoadingCache, StatsCountEveryOutcome) {
  FakeClock clock;
  ManualExecutor executor;
  CacheOptions o = RefreshOptions(&clock, &executor);
  o.error_ttl = seconds(1);
  o.max_entries = 2;
  LoadingCache<int, int> cache(o);
  cache.Get(1, [] { return 1; });  // miss, load
  cache.Get(1, NoLoad<int>);       // hit
  EXPECT_THROW(cache.Get(2, []() -> int { throw LoadError(0); }),
               LoadError);                             // miss, load, failure
  EXPECT_THROW(cache.Get(2, NoLoad<int>), LoadError);  // hit (negative)
  clock.Advance(seconds(6));
  cache.Get(1, []() -> int { throw LoadError(0); });  // stale hit, refresh
  executor.RunAll();                                  // ...which fails
  cache.Get(1, [] { return 11; });                    // stale hit, refresh
  executor.RunAll();                                  // ...which succeeds
  cache.Get(3, [] { return 3; });                     // miss, load
  cache.Get(4, [] { return 4; });                     // miss, load, eviction
  CacheStats s = cache.Stats();
  EXPECT_EQ(s.hits, 4u);
  EXPECT_EQ(s.negative_hits, 1u);
  EXPECT_EQ(s.stale_reads, 2u);
  EXPECT_EQ(s.misses, 4u);  // 1, 2, 3, 4 (2's error expired, dropped)
  EXPECT_EQ(s.loads, 4u);
  EXPECT_EQ(s.load_failures, 1u);
  EXPECT_EQ(s.refreshes, 2u);
  EXPECT_EQ(s.early_refreshes, 0u);
  EXPECT_EQ(s.refresh_failures, 1u);
  EXPECT_EQ(s.evictions, 1u);
  EXPECT_EQ(cache.Size(), 2u);
}

// ---------------------------------------------------------------------------
// 10. Injected clock: every test above runs on a FakeClock; real time never
// moves a value.

TEST(LoadingCache, OnlyTheInjectedClockAgesValues) {
  FakeClock clock;
  CacheOptions o = Options(&clock);
  o.ttl = nanoseconds(1);
  LoadingCache<int, int> cache(o);
  cache.Put(1, 1);
  std::this_thread::yield();
  EXPECT_EQ(cache.GetIfPresent(1), 1);
  clock.Advance(nanoseconds(1));
  EXPECT_EQ(cache.GetIfPresent(1), std::nullopt);
}

TEST(LoadingCache, HugeTtlMeansNeverExpires) {
  FakeClock clock;
  CacheOptions o = Options(&clock);
  o.ttl = nanoseconds::max();
  LoadingCache<int, int> cache(o);
  cache.Put(1, 1);
  clock.Advance(std::chrono::hours(24 * 365 * 100));
  EXPECT_EQ(cache.GetIfPresent(1), 1);
}

// ---------------------------------------------------------------------------
// 11. Bad options.

TEST(LoadingCache, RejectsBadOptions) {
  auto make = [](auto edit) {
    CacheOptions o;
    o.ttl = seconds(10);
    edit(o);
    LoadingCache<int, int> cache(o);
  };
  EXPECT_NO_THROW(make([](CacheOptions&) {}));
  EXPECT_THROW(make([](CacheOptions& o) { o.ttl = seconds(0); }),
               std::invalid_argument);
  EXPECT_THROW(make([](CacheOptions& o) { o.ttl = -seconds(1); }),
               std::invalid_argument);
  EXPECT_THROW(make([](CacheOptions& o) { o.refresh_after = seconds(10); }),
               std::invalid_argument);
  EXPECT_THROW(make([](CacheOptions& o) { o.refresh_after = -seconds(1); }),
               std::invalid_argument);
  EXPECT_THROW(make([](CacheOptions& o) { o.early_refresh_beta = -0.5; }),
               std::invalid_argument);
  EXPECT_THROW(make([](CacheOptions& o) {
                 o.early_refresh_beta =
                     std::numeric_limits<double>::quiet_NaN();
               }),
               std::invalid_argument);
  EXPECT_THROW(make([](CacheOptions& o) { o.error_ttl = -seconds(1); }),
               std::invalid_argument);
}

// ---------------------------------------------------------------------------
// Loaders, recursion, destruction.

TEST(LoadingCache, LoaderMayTakeAStopToken) {
  FakeClock clock;
  LoadingCache<int, int> cache(Options(&clock));
  EXPECT_EQ(cache.Get(1,
                      [](std::stop_token stop) {
                        return stop.stop_requested() ? -1 : 1;
                      }),
            1);
  std::function<int()> empty;
  EXPECT_THROW(cache.Get(2, empty), std::invalid_argument);
}

TEST(LoadingCache, LoaderAskingItsOwnCacheForItsKeyGetsRecursiveCall) {
  FakeClock clock;
  LoadingCache<int, int> cache(Options(&clock));
  bool inner_threw = false;
  EXPECT_EQ(cache.Get(1,
                      [&] {
                        try {
                          cache.Get(1, [] { return 2; });
                        } catch (const RecursiveCall&) {
                          inner_threw = true;
                        }
                        return 1;
                      }),
            1);
  EXPECT_TRUE(inner_threw);
}

TEST(LoadingCache, ValueNeedNotBeAssignable) {
  struct Frozen {
    const int v;
  };
  FakeClock clock;
  LoadingCache<int, Frozen> cache(Options(&clock));
  EXPECT_EQ(cache.Get(1, [] { return Frozen{1}; }).v, 1);
  cache.Put(1, Frozen{2});
  EXPECT_EQ(cache.GetIfPresent(1)->v, 2);
}

TEST(LoadingCache, DestructorWaitsForRefreshInProgress) {
  FakeClock clock;
  CacheOptions o = Options(&clock);
  o.refresh_after = seconds(5);
  auto cache = std::make_unique<LoadingCache<int, std::string>>(o);
  cache->Get(1, [] { return std::string("v1"); });
  clock.Advance(seconds(5));
  std::latch started(1), release(1);
  std::atomic<bool> finished{false};
  cache->Get(1, [&] {
    started.count_down();
    release.wait();
    finished = true;
    return std::string("v2");
  });
  started.wait();
  std::jthread releaser([&] { release.count_down(); });
  cache.reset();  // waits for the refresh, which uses the cache's members
  EXPECT_TRUE(finished.load());
}

TEST(LoadingCache, DestructorRunsCallbacksOfLoadsInProgress) {
  FakeClock clock;
  auto cache = std::make_unique<LoadingCache<int, int>>(Options(&clock));
  std::latch started(1);
  std::atomic<int> called{0};
  cache->GetThen(
      1,
      [&] {
        started.count_down();
        return 1;
      },
      [&](const int*, std::exception_ptr) { called.fetch_add(1); });
  started.wait();
  cache.reset();
  EXPECT_EQ(called.load(), 1);
}

}  // namespace
}  // namespace herd
