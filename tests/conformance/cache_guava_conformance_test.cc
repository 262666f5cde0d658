// Copyright 2026 The herd Authors.
//
// Guava's cache test suites (com.google.common.cache: CacheLoadingTest,
// CacheExpirationTest, CacheEvictionTest, CacheRefreshTest, CacheStatsTest,
// LocalLoadingCacheTest, PopulatedCachesTest, NullCacheTest) restated
// against herd/loading_cache.h. Each test names the Guava test it restates
// and the header sentence it checks; where herd's contract differs from
// Guava's behaviour on purpose, the comment says so and the test checks
// herd's contract.
//
// Only public headers are used (herd/*.h, and tests/testing/'s helpers,
// which are built on them). Time is a FakeClock; background loads run on a
// ManualExecutor the test drives; threads are ordered with HeldLoad,
// latches and FakeClock::WaitForSleepers (a caller waiting on a load sleeps
// on the cache's clock), never with sleeps.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "herd/clock.h"
#include "herd/errors.h"
#include "herd/loading_cache.h"
#include "tests/testing/held_load.h"
#include "tests/testing/manual_executor.h"

namespace herd {
namespace {

using ::herd::test::HeldLoad;
using ::herd::test::ManualExecutor;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::nanoseconds;
using std::chrono::seconds;

using StrCache = LoadingCache<int, std::string>;
using StrOptions = CacheOptions<int, std::string>;
using IntCache = LoadingCache<int, int>;
using IntOptions = CacheOptions<int, int>;

// --- Helpers ---------------------------------------------------------------

// An unchecked exception (Guava: RuntimeException), with a payload.
struct LoadError : std::runtime_error {
  explicit LoadError(int c) : std::runtime_error("load failed"), code(c) {}
  int code;
};
// What C++ has for Guava's checked exceptions and Errors: an exception type
// outside std::exception, which the cache must pass through unchanged.
struct Fatal {
  int code;
};

// Records every removal notification, thread-safely.
template <class K, class V>
class Removals {
 public:
  using Event = std::tuple<K, V, RemovalCause>;
  std::function<void(const K&, const V&, RemovalCause)> Listener() {
    return [this](const K& k, const V& v, RemovalCause c) {
      std::lock_guard<std::mutex> lock(mu_);
      events_.emplace_back(k, v, c);
    };
  }
  std::vector<Event> events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  size_t size() const { return events().size(); }
  size_t Count(RemovalCause cause) const {
    size_t n = 0;
    for (const Event& e : events()) n += std::get<2>(e) == cause;
    return n;
  }
  // The keys removed with `cause`, in the order of their notifications.
  std::vector<K> Keys(RemovalCause cause) const {
    std::vector<K> keys;
    for (const Event& e : events()) {
      if (std::get<2>(e) == cause) keys.push_back(std::get<0>(e));
    }
    return keys;
  }

 private:
  mutable std::mutex mu_;
  std::vector<Event> events_;
};

// Guava's CacheStats checks: hits, misses, load successes, load failures.
::testing::AssertionResult StatsAre(const CacheStats& s, uint64_t hits,
                                    uint64_t misses, uint64_t successes,
                                    uint64_t failures) {
  if (s.hits == hits && s.misses == misses && s.load_successes == successes &&
      s.load_failures == failures && s.loads == successes + failures) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "stats are hits " << s.hits << " misses " << s.misses
         << " successes " << s.load_successes << " failures "
         << s.load_failures << " loads " << s.loads << "; want " << hits
         << " " << misses << " " << successes << " " << failures;
}

template <class M>
std::map<typename M::key_type, typename M::mapped_type> Sorted(const M& m) {
  return {m.begin(), m.end()};
}

// Guava's identityLoader, counting its calls.
struct IdentityLoader {
  std::shared_ptr<std::atomic<int>> calls =
      std::make_shared<std::atomic<int>>(0);
  int operator()(int k) const {
    calls->fetch_add(1);
    return k;
  }
  int count() const { return calls->load(); }
};

// Destroys the tasks still queued before the cache (declared after it) is
// destroyed: ~LoadingCache waits for every task it handed out.
struct DropAtEnd {
  ManualExecutor& executor;
  ~DropAtEnd() { executor.DropAll(); }
};

IntOptions IntOpts(const Clock* clock) {
  IntOptions o;
  o.clock = clock;
  return o;
}
StrOptions StrOpts(const Clock* clock) {
  StrOptions o;
  o.clock = clock;
  return o;
}

// ---------------------------------------------------------------------------
// CacheLoadingTest

// CacheLoadingTest.testLoad. loading_cache.h: "Every lookup (Get,
// Get(key, loader), ...) counts exactly one hit or one miss"; Refresh() is
// no lookup, but its loader execution is a load; Get(key, loader) runs its
// loader "only on a miss".
TEST(GuavaCacheLoading, Load) {
  FakeClock clock;
  ManualExecutor executor;
  IntOptions o = IntOpts(&clock);
  o.executor = executor;
  IntCache cache(o, IdentityLoader{});
  DropAtEnd drop{executor};
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 0, 0, 0));
  EXPECT_EQ(cache.Get(1), 1);
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 1, 1, 0));
  EXPECT_EQ(cache.Get(2), 2);
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 2, 2, 0));
  std::shared_future<int> refreshed = cache.Refresh(3);  // absent: loads it
  EXPECT_EQ(executor.RunAll(), 1u);
  EXPECT_EQ(refreshed.get(), 3);
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 2, 3, 0));
  EXPECT_EQ(cache.Get(3), 3);
  EXPECT_TRUE(StatsAre(cache.Stats(), 1, 2, 3, 0));
  // The call's loader is not called on a hit.
  EXPECT_EQ(cache.Get(3, []() -> int { throw LoadError(0); }), 3);
  EXPECT_TRUE(StatsAre(cache.Stats(), 2, 2, 3, 0));
  EXPECT_EQ(cache.Get(4, [] { return 40; }), 40);
  EXPECT_TRUE(StatsAre(cache.Stats(), 2, 3, 4, 0));
}

// CacheLoadingTest.testReload. loading_cache.h: Refresh() "Reloads `key`
// now, on the executor; readers keep its current value until the reload
// lands".
TEST(GuavaCacheLoading, Reload) {
  FakeClock clock;
  ManualExecutor executor;
  IntOptions o = IntOpts(&clock);
  o.executor = executor;
  std::atomic<int> calls{0};
  IntCache cache(o, [&](int) { return calls.fetch_add(1) == 0 ? 1 : 2; });
  DropAtEnd drop{executor};
  EXPECT_EQ(cache.Get(7), 1);
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 1, 1, 0));
  std::shared_future<int> f = cache.Refresh(7);
  EXPECT_EQ(cache.Get(7), 1);  // the reload has not landed
  executor.RunAll();
  EXPECT_EQ(f.get(), 2);
  EXPECT_TRUE(StatsAre(cache.Stats(), 1, 1, 2, 0));
  EXPECT_EQ(cache.Get(7), 2);
  EXPECT_TRUE(StatsAre(cache.Stats(), 2, 1, 2, 0));
}

// CacheLoadingTest.testRefresh (refreshAfterWrite). CacheOptions::
// refresh_after: "A read of a value at least this old returns it at once
// and starts one background reload". (Guava refreshes only once the age
// exceeds the interval, and its synchronous reload answers the read that
// started it; herd refreshes at exactly refresh_after, on the executor.)
TEST(GuavaCacheLoading, RefreshAfterWrite) {
  FakeClock clock;
  ManualExecutor executor;
  IntOptions o = IntOpts(&clock);
  o.refresh_after = milliseconds(1);
  o.executor = executor;
  std::atomic<int> calls{0};
  IntCache cache(o, [&](int) { return calls.fetch_add(1) == 0 ? 1 : 2; });
  DropAtEnd drop{executor};
  EXPECT_EQ(cache.Get(0), 1);
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 1, 1, 0));
  clock.Advance(milliseconds(1) - nanoseconds(1));
  EXPECT_EQ(cache.Get(0), 1);
  EXPECT_EQ(executor.Pending(), 0u);
  EXPECT_TRUE(StatsAre(cache.Stats(), 1, 1, 1, 0));
  clock.Advance(nanoseconds(1));
  EXPECT_EQ(cache.Get(0), 1);  // old value at once, one reload queued
  EXPECT_EQ(executor.Pending(), 1u);
  EXPECT_EQ(executor.RunAll(), 1u);
  EXPECT_TRUE(StatsAre(cache.Stats(), 2, 1, 2, 0));
  EXPECT_EQ(cache.Get(0), 2);
  EXPECT_TRUE(StatsAre(cache.Stats(), 3, 1, 2, 0));
  EXPECT_EQ(executor.Pending(), 0u);  // the new value is young again
  EXPECT_EQ(cache.Stats().refreshes, 1u);
}

// CacheLoadingTest.testRefresh_getIfPresent. Guava's getIfPresent starts a
// refresh; herd's does not. loading_cache.h: GetIfPresent "never loads,
// never waits, never refreshes" — and counts a hit.
TEST(GuavaCacheLoading, GetIfPresentNeverRefreshes) {
  FakeClock clock;
  ManualExecutor executor;
  IntOptions o = IntOpts(&clock);
  o.refresh_after = milliseconds(1);
  o.executor = executor;
  IntCache cache(o, IdentityLoader{});
  DropAtEnd drop{executor};
  EXPECT_EQ(cache.Get(0), 0);
  clock.Advance(milliseconds(5));
  EXPECT_EQ(cache.GetIfPresent(0), 0);
  EXPECT_EQ(cache.GetIfPresent(0), 0);
  EXPECT_EQ(executor.Scheduled(), 0u);
  EXPECT_TRUE(StatsAre(cache.Stats(), 2, 1, 1, 0));
}

// CacheLoadingTest.testBulkLoad_default. loading_cache.h GetAll: with no
// batch loader the misses load "one by one with the loader"; "Duplicate
// keys count once"; each key is one hit or one miss.
TEST(GuavaCacheLoading, BulkLoadDefault) {
  FakeClock clock;
  IdentityLoader loader;
  IntCache cache(IntOpts(&clock), loader);
  EXPECT_TRUE(cache.GetAll(std::vector<int>{}).empty());
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 0, 0, 0));
  EXPECT_EQ(Sorted(cache.GetAll(std::vector<int>{1})),
            (std::map<int, int>{{1, 1}}));
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 1, 1, 0));
  EXPECT_EQ(Sorted(cache.GetAll(std::vector<int>{1, 2, 3, 4})),
            (std::map<int, int>{{1, 1}, {2, 2}, {3, 3}, {4, 4}}));
  EXPECT_TRUE(StatsAre(cache.Stats(), 1, 4, 4, 0));
  EXPECT_EQ(Sorted(cache.GetAll(std::vector<int>{2, 3})),
            (std::map<int, int>{{2, 2}, {3, 3}}));
  EXPECT_TRUE(StatsAre(cache.Stats(), 3, 4, 4, 0));
  // Duplicates are ignored and do not count.
  EXPECT_EQ(Sorted(cache.GetAll(std::vector<int>{4, 5, 4, 5})),
            (std::map<int, int>{{4, 4}, {5, 5}}));
  EXPECT_TRUE(StatsAre(cache.Stats(), 4, 5, 5, 0));
  EXPECT_EQ(loader.count(), 5);
}

// CacheLoadingTest.testBulkLoad_loadAll. CacheStats::load_successes: "a
// batch-loader call counts once".
TEST(GuavaCacheLoading, BulkLoadLoadAll) {
  FakeClock clock;
  std::atomic<int> batches{0};
  IntCache cache(
      IntOpts(&clock), [](int) -> int { throw LoadError(0); },
      [&](std::span<const int> keys) {
        batches.fetch_add(1);
        IntCache::Map m;
        for (int k : keys) m.emplace(k, k);
        return m;
      });
  EXPECT_TRUE(cache.GetAll(std::vector<int>{}).empty());
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 0, 0, 0));
  EXPECT_EQ(cache.GetAll(std::vector<int>{1}).size(), 1u);
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 1, 1, 0));
  EXPECT_EQ(Sorted(cache.GetAll(std::vector<int>{1, 2, 3, 4})),
            (std::map<int, int>{{1, 1}, {2, 2}, {3, 3}, {4, 4}}));
  EXPECT_TRUE(StatsAre(cache.Stats(), 1, 4, 2, 0));
  EXPECT_EQ(cache.GetAll(std::vector<int>{2, 3}).size(), 2u);
  EXPECT_TRUE(StatsAre(cache.Stats(), 3, 4, 2, 0));
  EXPECT_EQ(Sorted(cache.GetAll(std::vector<int>{4, 5, 5})),
            (std::map<int, int>{{4, 4}, {5, 5}}));
  EXPECT_TRUE(StatsAre(cache.Stats(), 4, 5, 3, 0));
  EXPECT_EQ(batches.load(), 3);
}

// CacheLoadingTest.testBulkLoad_extra and testBulkLoad_clobber. Guava
// stores (and lets clobber) the extra entries a bulk loader returns;
// loading_cache.h: "keys it adds are ignored" — not returned, not stored,
// and a cached value of such a key is left alone.
TEST(GuavaCacheLoading, BulkLoadExtraKeysAreIgnored) {
  FakeClock clock;
  IntCache cache(
      IntOpts(&clock), [](int) -> int { throw LoadError(0); },
      [](std::span<const int> keys) {
        IntCache::Map m;
        for (int k : keys) {
          m.emplace(k, k * 10);
          m.emplace(k + 1000, -k);  // extra entries
        }
        m.emplace(99, 99);  // clobbers key 99's cached value, in Guava
        return m;
      });
  cache.Put(99, -99);
  const std::vector<int> keys = {1, 2, 3};
  EXPECT_EQ(Sorted(cache.GetAll(keys)),
            (std::map<int, int>{{1, 10}, {2, 20}, {3, 30}}));
  EXPECT_EQ(cache.GetIfPresent(1001), std::nullopt);
  EXPECT_EQ(cache.GetIfPresent(99), -99);
  EXPECT_EQ(cache.Size(), 4u);
}

// CacheLoadingTest.testBulkLoad_partial. Guava throws
// InvalidCacheLoadException when the bulk loader leaves requested keys out;
// loading_cache.h: "Keys the batch loader leaves out are absent from the
// result (their other callers get std::out_of_range)".
TEST(GuavaCacheLoading, BulkLoadPartialLeavesKeysOut) {
  FakeClock clock;
  HeldLoad held;
  IntCache cache(
      IntOpts(&clock), [](int) -> int { throw LoadError(0); },
      [&](std::span<const int>) {
        held.Enter();
        IntCache::Map m;
        m.emplace(1000, 1);  // none of the keys asked for
        return m;
      });
  IntCache::Map got;
  std::thread all([&] { got = cache.GetAll(std::vector<int>{1, 2, 3}); });
  held.AwaitEntered();
  // A single-key caller of a key in the batch joins its load.
  std::exception_ptr joined;
  std::thread single([&] {
    try {
      cache.Get(2);
    } catch (...) {
      joined = std::current_exception();
    }
  });
  clock.WaitForSleepers(1);
  held.Release();
  all.join();
  single.join();
  EXPECT_TRUE(got.empty());
  ASSERT_NE(joined, nullptr);
  EXPECT_THROW(std::rethrow_exception(joined), std::out_of_range);
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 4, 1, 0));
  EXPECT_EQ(cache.Size(), 0u);
  EXPECT_EQ(cache.GetIfPresent(1000), std::nullopt);
}

// CacheLoadingTest.testLoadError / testLoadCheckedException: a loader
// exception outside std::exception (Guava's Error / checked exception)
// reaches Get, Get(key, loader), Refresh's future and GetAll unchanged, and
// each failed execution counts one load failure. loading_cache.h: "a
// loader's exception reaches every caller of its load, type and payload
// intact".
TEST(GuavaCacheLoading, LoadErrorOfAnyTypeIsRethrownUnchanged) {
  FakeClock clock;
  ManualExecutor executor;
  IntOptions o = IntOpts(&clock);
  o.executor = executor;
  IntCache cache(o, [](int k) -> int { throw Fatal{k}; });
  DropAtEnd drop{executor};
  try {
    cache.Get(1);
    ADD_FAILURE() << "no exception";
  } catch (const Fatal& f) {
    EXPECT_EQ(f.code, 1);
  }
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 1, 0, 1));
  std::shared_future<int> refreshed = cache.Refresh(2);
  executor.RunAll();
  EXPECT_THROW(refreshed.get(), Fatal);
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 1, 0, 2));
  EXPECT_THROW(cache.Get(3, []() -> int { throw Fatal{3}; }), Fatal);
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 2, 0, 3));
  EXPECT_THROW(cache.GetAll(std::vector<int>{4}), Fatal);
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 3, 0, 4));
  EXPECT_EQ(cache.Size(), 0u);
}

// CacheLoadingTest.testReloadUncheckedException / testReloadAfterFailure
// (refresh half): a reload that throws leaves the value cached.
// loading_cache.h Refresh(): readers keep its current value until the
// reload lands; CacheStats::refresh_failures counts it.
TEST(GuavaCacheLoading, FailedReloadKeepsTheValue) {
  FakeClock clock;
  ManualExecutor executor;
  IntOptions o = IntOpts(&clock);
  o.executor = executor;
  std::atomic<int> calls{0};
  IntCache cache(o, [&](int) -> int {
    if (calls.fetch_add(1) > 0) throw LoadError(1);
    return 1;
  });
  DropAtEnd drop{executor};
  EXPECT_EQ(cache.Get(0), 1);
  std::shared_future<int> f = cache.Refresh(0);
  executor.RunAll();
  EXPECT_THROW(f.get(), LoadError);
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 1, 1, 1));
  EXPECT_EQ(cache.Get(0), 1);
  EXPECT_TRUE(StatsAre(cache.Stats(), 1, 1, 1, 1));
  EXPECT_EQ(cache.Stats().refresh_failures, 1u);
}

// CacheLoadingTest.testRefreshUncheckedException (refreshAfterWrite):
// every due read after a failed reload starts another one.
// CacheOptions::refresh_after: "A failed reload leaves it, and a later
// read tries again."
TEST(GuavaCacheLoading, FailedRefreshAfterWriteIsRetriedByALaterRead) {
  FakeClock clock;
  ManualExecutor executor;
  IntOptions o = IntOpts(&clock);
  o.refresh_after = milliseconds(1);
  o.executor = executor;
  std::atomic<int> calls{0};
  IntCache cache(o, [&](int) -> int {
    if (calls.fetch_add(1) > 0) throw LoadError(1);
    return 1;
  });
  DropAtEnd drop{executor};
  EXPECT_EQ(cache.Get(0), 1);
  clock.Advance(milliseconds(1));
  EXPECT_EQ(cache.Get(0), 1);
  EXPECT_EQ(executor.RunAll(), 1u);
  EXPECT_TRUE(StatsAre(cache.Stats(), 1, 1, 1, 1));
  clock.Advance(milliseconds(1));
  EXPECT_EQ(cache.Get(0), 1);
  EXPECT_EQ(executor.RunAll(), 1u);
  EXPECT_TRUE(StatsAre(cache.Stats(), 2, 1, 1, 2));
  EXPECT_EQ(cache.Stats().refresh_failures, 2u);
}

// CacheLoadingTest.testBulkLoadUncheckedException: the batch loader's
// exception reaches GetAll unchanged; one failure for the batch. Nothing is
// stored.
TEST(GuavaCacheLoading, BulkLoadException) {
  FakeClock clock;
  IntCache cache(
      IntOpts(&clock), [](int) -> int { throw LoadError(0); },
      [](std::span<const int>) -> IntCache::Map { throw LoadError(7); });
  try {
    cache.GetAll(std::vector<int>{1, 2});
    ADD_FAILURE() << "no exception";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.code, 7);
  }
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 2, 0, 1));
  EXPECT_EQ(cache.Size(), 0u);
}

// CacheLoadingTest.testReloadAfterFailure: a failed load is not cached
// (error_ttl is 0): the next Get loads again; no removal is reported.
// CacheOptions::error_ttl: "0 caches nothing"; removal_listener: "Cached
// errors are not reported".
TEST(GuavaCacheLoading, ReloadAfterFailure) {
  FakeClock clock;
  ManualExecutor executor;
  Removals<int, std::string> removals;
  StrOptions o = StrOpts(&clock);
  o.executor = executor;
  o.removal_listener = removals.Listener();
  std::atomic<int> count{0};
  StrCache cache(o, [&](int k) {
    if (count.fetch_add(1) == 0) throw LoadError(k);
    return std::to_string(k);
  });
  DropAtEnd drop{executor};
  EXPECT_THROW(cache.Get(1), LoadError);
  EXPECT_EQ(cache.Get(1), "1");
  EXPECT_EQ(removals.size(), 0u);
  count.store(0);
  std::shared_future<std::string> f = cache.Refresh(2);
  executor.RunAll();
  EXPECT_THROW(f.get(), LoadError);
  EXPECT_EQ(cache.Get(2), "2");
  EXPECT_EQ(removals.size(), 0u);
}

// CacheLoadingTest.testConcurrentLoading / testConcurrentExpirationLoading
// (Default, UncheckedException, CheckedException): concurrent callers of
// one key, some by Get and some by Refresh-then-Get, share one execution,
// all get its value or its very exception object, and a failure is not
// cached: the next Get runs the loader again. loading_cache.h: "every
// concurrent caller of a key shares one load, its value or exception";
// Refresh: "a load already in progress [shares] one load".
enum class Outcome { kValue, kUnchecked, kChecked };

void ConcurrentLoading(std::chrono::nanoseconds ttl, Outcome outcome) {
  constexpr int kCallers = 9;
  FakeClock clock;
  ManualExecutor executor;
  HeldLoad held;
  std::atomic<int> calls{0};
  StrOptions o = StrOpts(&clock);
  o.ttl = ttl;
  o.executor = executor;
  StrCache cache(o, [&](int) -> std::string {
    calls.fetch_add(1);
    held.Enter();
    if (outcome == Outcome::kUnchecked) throw LoadError(1);
    if (outcome == Outcome::kChecked) throw Fatal{2};
    return "result";
  });
  std::vector<std::string> values(kCallers);
  std::vector<std::exception_ptr> errors(kCallers);
  auto call = [&](int i) {
    try {
      if (i % 3 == 2) (void)cache.Refresh(0);
      values[i] = cache.Get(0);
    } catch (...) {
      errors[i] = std::current_exception();
    }
  };
  {
    std::vector<std::jthread> threads;
    threads.emplace_back(call, 0);
    held.AwaitEntered();  // caller 0 runs the load
    for (int i = 1; i < kCallers; ++i) threads.emplace_back(call, i);
    clock.WaitForSleepers(kCallers - 1);  // every other caller waits on it
    held.Release();
  }
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(executor.Scheduled(), 0u);  // Refresh joined the load
  const void* first = nullptr;
  for (int i = 0; i < kCallers; ++i) {
    SCOPED_TRACE(i);
    switch (outcome) {
      case Outcome::kValue:
        EXPECT_EQ(values[i], "result");
        EXPECT_EQ(errors[i], nullptr);
        break;
      case Outcome::kUnchecked:
      case Outcome::kChecked: {
        ASSERT_NE(errors[i], nullptr);
        try {
          std::rethrow_exception(errors[i]);
        } catch (const LoadError& e) {
          EXPECT_EQ(outcome, Outcome::kUnchecked);
          if (first == nullptr) first = &e;
          EXPECT_EQ(&e, first);  // the very same exception object
        } catch (const Fatal& f) {
          EXPECT_EQ(outcome, Outcome::kChecked);
          if (first == nullptr) first = &f;
          EXPECT_EQ(&f, first);
        }
        break;
      }
    }
  }
  const CacheStats s = cache.Stats();
  EXPECT_EQ(s.misses, static_cast<uint64_t>(kCallers));
  EXPECT_EQ(s.loads, 1u);
  if (outcome != Outcome::kValue) {
    // Not cached: the next call runs the loader again.
    EXPECT_ANY_THROW(cache.Get(0));
    EXPECT_EQ(calls.load(), 2);
  }
}

TEST(GuavaCacheLoading, ConcurrentLoading) {
  ConcurrentLoading(nanoseconds(0), Outcome::kValue);
  ConcurrentLoading(nanoseconds(0), Outcome::kUnchecked);
  ConcurrentLoading(nanoseconds(0), Outcome::kChecked);
}

TEST(GuavaCacheLoading, ConcurrentExpirationLoading) {
  ConcurrentLoading(seconds(10), Outcome::kValue);
  ConcurrentLoading(seconds(10), Outcome::kUnchecked);
  ConcurrentLoading(seconds(10), Outcome::kChecked);
}

// CacheLoadingTest.testAsMapDuringLoading: while a load (Get) and a reload
// (Refresh) are in progress, the cache shows neither result: Size() counts
// "the keys whose GetIfPresent() would return a value now", and GetIfPresent
// reads "a load in progress ... as absent" and the refreshed key as its
// current value. Afterwards both results are visible.
TEST(GuavaCacheLoading, CacheDuringLoading) {
  FakeClock clock;
  ManualExecutor executor;
  HeldLoad held;
  StrOptions o = StrOpts(&clock);
  o.executor = executor;
  StrCache cache(o, [&](int k) {
    held.Enter();
    return std::to_string(k) + "Suffix";
  });
  constexpr int kGet = 1;
  constexpr int kRefresh = 2;
  cache.Put(kRefresh, "refresh");
  std::string got;
  std::thread getter([&] { got = cache.Get(kGet); });
  std::shared_future<std::string> refreshed = cache.Refresh(kRefresh);
  std::thread runner([&] { executor.RunAll(); });
  held.AwaitEntered(2);
  EXPECT_EQ(cache.Size(), 1u);
  EXPECT_EQ(cache.GetIfPresent(kGet), std::nullopt);
  EXPECT_EQ(cache.GetIfPresent(kRefresh), "refresh");
  held.Release();
  getter.join();
  runner.join();
  EXPECT_EQ(got, "1Suffix");
  EXPECT_EQ(refreshed.get(), "2Suffix");
  EXPECT_EQ(cache.Size(), 2u);
  EXPECT_EQ(cache.GetIfPresent(kGet), "1Suffix");
  EXPECT_EQ(cache.GetIfPresent(kRefresh), "2Suffix");
}

// CacheLoadingTest.testInvalidateDuringLoading. Guava stores both results
// anyway; loading_cache.h Invalidate(): the load "still answers its own
// callers, its result is not stored" (Caffeine's linearizable choice), and
// Invalidate returns true for "a load in progress".
TEST(GuavaCacheLoading, InvalidateDuringLoading) {
  FakeClock clock;
  ManualExecutor executor;
  HeldLoad held;
  Removals<int, std::string> removals;
  StrOptions o = StrOpts(&clock);
  o.executor = executor;
  o.removal_listener = removals.Listener();
  StrCache cache(o, [&](int k) {
    held.Enter();
    return std::to_string(k) + "Suffix";
  });
  constexpr int kGet = 1;
  constexpr int kRefresh = 2;
  cache.Put(kRefresh, "refresh");
  std::string got;
  std::thread getter([&] { got = cache.Get(kGet); });
  std::shared_future<std::string> refreshed = cache.Refresh(kRefresh);
  std::thread runner([&] { executor.RunAll(); });
  held.AwaitEntered(2);
  EXPECT_TRUE(cache.Invalidate(kGet));
  EXPECT_TRUE(cache.Invalidate(kRefresh));
  EXPECT_EQ(cache.GetIfPresent(kGet), std::nullopt);
  EXPECT_EQ(cache.GetIfPresent(kRefresh), std::nullopt);
  held.Release();
  getter.join();
  runner.join();
  EXPECT_EQ(got, "1Suffix");
  EXPECT_EQ(refreshed.get(), "2Suffix");
  EXPECT_EQ(cache.Size(), 0u);
  EXPECT_EQ(removals.events(),
            (std::vector<Removals<int, std::string>::Event>{
                {kRefresh, "refresh", RemovalCause::kExplicit}}));
}

// CacheLoadingTest.testExpandDuringLoading: callers that join a load
// before and after the cache's table grows share its one execution.
// loading_cache.h: "every concurrent caller of a key shares one load".
TEST(GuavaCacheLoading, ExpandDuringLoading) {
  FakeClock clock;
  HeldLoad held;
  std::atomic<int> calls{0};
  StrOptions o = StrOpts(&clock);
  o.shards = 1;
  StrCache cache(o, [&](int k) {
    if (k == 0) {
      calls.fetch_add(1);
      held.Enter();
      return std::string("barfoo");
    }
    return std::to_string(k);
  });
  std::string r0, r1, r2;
  std::thread t0([&] { r0 = cache.Get(0); });
  held.AwaitEntered();
  std::thread t1([&] { r1 = cache.Get(0); });
  clock.WaitForSleepers(1);
  for (int k = 1; k <= 1000; ++k) cache.Put(k, std::to_string(k));  // grows
  std::thread t2([&] { r2 = cache.Get(0); });
  clock.WaitForSleepers(2);
  held.Release();
  t0.join();
  t1.join();
  t2.join();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(r0, "barfoo");
  EXPECT_EQ(r1, "barfoo");
  EXPECT_EQ(r2, "barfoo");
  EXPECT_EQ(cache.Get(0), "barfoo");
  EXPECT_EQ(cache.Size(), 1001u);
}

// CacheLoadingTest.testExpandDuringRefresh: readers keep the old value
// while a reload runs, across a growth of the table; one execution.
TEST(GuavaCacheLoading, ExpandDuringRefresh) {
  FakeClock clock;
  ManualExecutor executor;
  HeldLoad held;
  std::atomic<int> calls{0};
  StrOptions o = StrOpts(&clock);
  o.shards = 1;
  o.executor = executor;
  StrCache cache(o, [&](int k) {
    if (k == 0) {
      calls.fetch_add(1);
      held.Enter();
      return std::string("barSuffix");
    }
    return std::to_string(k);
  });
  cache.Put(0, "bar");
  std::shared_future<std::string> f = cache.Refresh(0);
  std::thread runner([&] { executor.RunAll(); });
  held.AwaitEntered();
  EXPECT_EQ(cache.Get(0), "bar");
  for (int k = 1; k <= 1000; ++k) cache.Put(k, std::to_string(k));
  EXPECT_EQ(cache.Get(0), "bar");
  held.Release();
  runner.join();
  EXPECT_EQ(f.get(), "barSuffix");
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(cache.Get(0), "barSuffix");
}

// ---------------------------------------------------------------------------
// LocalLoadingCacheTest

// LocalLoadingCacheTest.testStats: exact counters and rates after each
// call; the load time by the cache's clock; one eviction once a third key
// goes into a cache of two. CacheStats: "Each is exact".
TEST(GuavaLocalLoadingCache, Stats) {
  FakeClock clock;
  IntOptions o = IntOpts(&clock);
  o.max_entries = 2;
  o.shards = 1;
  IntCache cache(o, [&](int k) {
    clock.Advance(milliseconds(1));  // each load takes 1 ms
    return k;
  });
  CacheStats s = cache.Stats();
  EXPECT_TRUE(StatsAre(s, 0, 0, 0, 0));
  EXPECT_EQ(s.hit_rate(), 1.0);
  EXPECT_EQ(s.miss_rate(), 0.0);
  cache.Get(1);
  s = cache.Stats();
  EXPECT_TRUE(StatsAre(s, 0, 1, 1, 0));
  EXPECT_EQ(s.hit_rate(), 0.0);
  EXPECT_EQ(s.miss_rate(), 1.0);
  EXPECT_EQ(s.total_load_time_ns, 1'000'000u);
  EXPECT_EQ(s.average_load_penalty_ns(), 1'000'000.0);
  EXPECT_EQ(s.evictions, 0u);
  cache.Get(1);
  s = cache.Stats();
  EXPECT_TRUE(StatsAre(s, 1, 1, 1, 0));
  EXPECT_EQ(s.hit_rate(), 1.0 / 2);
  EXPECT_EQ(s.miss_rate(), 1.0 / 2);
  cache.Get(2);
  s = cache.Stats();
  EXPECT_TRUE(StatsAre(s, 1, 2, 2, 0));
  EXPECT_EQ(s.hit_rate(), 1.0 / 3);
  EXPECT_EQ(s.miss_rate(), 2.0 / 3);
  EXPECT_EQ(s.total_load_time_ns, 2'000'000u);
  EXPECT_EQ(s.evictions, 0u);
  cache.Get(3);
  s = cache.Stats();
  EXPECT_TRUE(StatsAre(s, 1, 3, 3, 0));
  EXPECT_EQ(s.hit_rate(), 1.0 / 4);
  EXPECT_EQ(s.miss_rate(), 3.0 / 4);
  EXPECT_EQ(s.total_load_time_ns, 3'000'000u);
  EXPECT_EQ(s.average_load_penalty_ns(), 1'000'000.0);
  EXPECT_EQ(s.evictions, 1u);
  EXPECT_EQ(s.eviction_weight, 1u);
  EXPECT_EQ(cache.Size(), 2u);
}

// LocalLoadingCacheTest.testStatsNoops: writes, invalidations and
// bookkeeping calls are no lookups and count nothing. CacheStats: "Every
// lookup (Get, ..., GetIfPresent, and each key of GetAll) counts exactly
// one hit or one miss" — and nothing else does.
TEST(GuavaLocalLoadingCache, StatsNoops) {
  FakeClock clock;
  IntCache cache(IntOpts(&clock), IdentityLoader{});
  cache.Put(1, 1);
  cache.Put(1, 2);
  EXPECT_TRUE(cache.Invalidate(1));
  EXPECT_FALSE(cache.Invalidate(1));
  cache.Put(2, 3);
  cache.Put(3, 1);
  cache.InvalidateAll(std::vector<int>{2});
  EXPECT_EQ(cache.Size(), 1u);
  EXPECT_EQ(cache.Weight(), 1u);
  cache.CleanUp();
  cache.InvalidateAll();
  const CacheStats s = cache.Stats();
  EXPECT_TRUE(StatsAre(s, 0, 0, 0, 0));
  EXPECT_EQ(s.evictions + s.expirations + s.refreshes + s.stale_served, 0u);
}

// LocalLoadingCacheTest.testRecursiveComputation: a loader may Get other
// keys of its cache; one that Gets its own key gets herd::RecursiveCall at
// once (Guava: IllegalStateException) instead of hanging. loading_cache.h:
// "a loader that calls Get() for its own key on its own thread gets
// herd::RecursiveCall".
TEST(GuavaLocalLoadingCache, RecursiveComputation) {
  FakeClock clock;
  StrCache* self = nullptr;
  StrCache chain(StrOpts(&clock), [&](int k) -> std::string {
    if (k > 0) return std::to_string(k) + ", " + self->Get(k - 1);
    return "0";
  });
  self = &chain;
  EXPECT_EQ(chain.Get(3), "3, 2, 1, 0");
  EXPECT_EQ(chain.Size(), 4u);

  StrCache* other = nullptr;
  StrCache loop(StrOpts(&clock),
                [&](int k) -> std::string { return other->Get(k); });
  other = &loop;
  EXPECT_THROW(loop.Get(3), RecursiveCall);
  EXPECT_EQ(loop.Size(), 0u);
}

// ---------------------------------------------------------------------------
// CacheExpirationTest

// Guava's WatchedCreatorLoader: key -> prefix + key, counting its calls.
struct WatchedLoader {
  std::shared_ptr<std::atomic<int>> prefix =
      std::make_shared<std::atomic<int>>(12345);
  std::shared_ptr<std::atomic<int>> calls =
      std::make_shared<std::atomic<int>>(0);
  int operator()(int k) const {
    calls->fetch_add(1);
    return prefix->load() + k;
  }
};

enum class ExpiryKind { kWrite, kAccess, kBoth };

IntOptions ExpiringOpts(const Clock* clock, ExpiryKind kind,
                        std::chrono::nanoseconds d) {
  IntOptions o = IntOpts(clock);
  if (kind != ExpiryKind::kAccess) o.ttl = d;
  if (kind != ExpiryKind::kWrite) o.expire_after_access = d;
  return o;
}

// CacheExpirationTest.testExpiration_expireAfterWrite/_expireAfterAccess
// (checkExpiration): reads inside the lifetime call no loader; exactly at
// the lifetime every value is gone, each reported once as kExpired, and a
// second lifetime reports nothing more. CacheOptions: ttl / expire_after_
// access; removal_listener "exactly once per value that leaves".
TEST(GuavaCacheExpiration, ExpirationReportsEachValueOnce) {
  for (ExpiryKind kind : {ExpiryKind::kWrite, ExpiryKind::kAccess}) {
    SCOPED_TRACE(static_cast<int>(kind));
    FakeClock clock;
    Removals<int, int> removals;
    WatchedLoader loader;
    IntOptions o = ExpiringOpts(&clock, kind, milliseconds(1000));
    o.removal_listener = removals.Listener();
    IntCache cache(o, loader);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(cache.Get(i), 12345 + i);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(cache.Get(i), 12345 + i);
    EXPECT_EQ(loader.calls->load(), 10);
    clock.Advance(milliseconds(1000));
    cache.CleanUp();
    EXPECT_EQ(cache.Size(), 0u);
    EXPECT_EQ(removals.Count(RemovalCause::kExpired), 10u);
    EXPECT_EQ(removals.size(), 10u);
    clock.Advance(milliseconds(1000));
    cache.CleanUp();
    EXPECT_EQ(removals.size(), 10u);
    EXPECT_EQ(cache.Stats().expirations, 10u);
  }
}

// CacheExpirationTest.testExpiringGet_expireAfterWrite/_expireAfterAccess
// (runExpirationTest): expired values are not exposed (Size() "counts live
// values only"), each is reported once, and a Get of an expired key calls
// the loader.
TEST(GuavaCacheExpiration, ExpiringGet) {
  for (ExpiryKind kind : {ExpiryKind::kWrite, ExpiryKind::kAccess}) {
    SCOPED_TRACE(static_cast<int>(kind));
    FakeClock clock;
    Removals<int, int> removals;
    WatchedLoader loader;
    IntOptions o = ExpiringOpts(&clock, kind, milliseconds(1000));
    o.removal_listener = removals.Listener();
    IntCache cache(o, loader);
    for (int i = 0; i < 10; ++i) cache.Get(i);
    clock.Advance(milliseconds(10 * 1000));
    cache.Get(11);  // a single unexpired entry
    EXPECT_EQ(cache.Size(), 1u);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(cache.GetIfPresent(i), std::nullopt);
    clock.Advance(milliseconds(1000));
    cache.CleanUp();
    EXPECT_EQ(removals.size(), 11u);
    EXPECT_EQ(cache.Size(), 0u);
    for (int i = 0; i < 10; ++i) {
      const int before = loader.calls->load();
      EXPECT_EQ(cache.Get(i), 12345 + i);
      EXPECT_EQ(loader.calls->load(), before + 1);
    }
    clock.Advance(milliseconds(1000));
    cache.CleanUp();
    EXPECT_EQ(removals.size(), 21u);
    clock.Advance(milliseconds(1000));
    cache.CleanUp();
    EXPECT_EQ(removals.size(), 21u);
    EXPECT_EQ(removals.Count(RemovalCause::kExpired), 21u);
  }
}

// CacheExpirationTest.testRemovalListener_expireAfterWrite: a value read
// and changed every millisecond with a 10 ms ttl: every value but the last
// is reported expired exactly once, so reported + remaining counts every
// increment, and loads = reports + 1.
TEST(GuavaCacheExpiration, RemovalListenerExpireAfterWrite) {
  using Counter = std::shared_ptr<std::atomic<int>>;
  FakeClock clock;
  std::atomic<int> evictions{0};
  std::atomic<int> applied{0};
  std::atomic<int> total{0};
  CacheOptions<int, Counter> o;
  o.ttl = milliseconds(10);
  o.clock = &clock;
  o.removal_listener = [&](const int&, const Counter& v, RemovalCause c) {
    if (WasEvicted(c)) {
      evictions.fetch_add(1);
      total.fetch_add(v->load());
    }
  };
  LoadingCache<int, Counter> cache(o, [&](int) {
    applied.fetch_add(1);
    return std::make_shared<std::atomic<int>>(0);
  });
  for (int i = 0; i < 100; ++i) {
    cache.Get(10)->fetch_add(1);
    clock.Advance(milliseconds(1));
  }
  EXPECT_EQ(evictions.load() + 1, applied.load());
  const int remaining = cache.Get(10)->load();
  EXPECT_EQ(total.load() + remaining, 100);
}

// CacheExpirationTest.testRemovalScheduler_expireAfterWrite/Access/Both:
// values invalidated and reloaded part-way through a lifetime get a whole
// lifetime of their own; the old deadlines remove nothing.
TEST(GuavaCacheExpiration, RemovalScheduler) {
  for (ExpiryKind kind :
       {ExpiryKind::kWrite, ExpiryKind::kAccess, ExpiryKind::kBoth}) {
    SCOPED_TRACE(static_cast<int>(kind));
    FakeClock clock;
    Removals<int, int> removals;
    WatchedLoader loader;
    IntOptions o = ExpiringOpts(&clock, kind, milliseconds(1000));
    o.removal_listener = removals.Listener();
    IntCache cache(o, loader);
    loader.prefix->store(10);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(cache.Get(i), 10 + i);
    EXPECT_EQ(removals.size(), 0u);
    clock.Advance(milliseconds(666));
    EXPECT_EQ(removals.size(), 0u);
    loader.prefix->store(20);
    for (int i = 0; i < 10; ++i) {
      EXPECT_TRUE(cache.Invalidate(i));
      EXPECT_EQ(cache.Get(i), 20 + i);
    }
    EXPECT_EQ(removals.Count(RemovalCause::kExplicit), 10u);
    clock.Advance(milliseconds(666));  // past the old values' deadlines
    cache.CleanUp();
    EXPECT_EQ(removals.size(), 10u);
    const int calls = loader.calls->load();
    for (int i = 0; i < 10; ++i) EXPECT_EQ(cache.Get(i), 20 + i);
    EXPECT_EQ(loader.calls->load(), calls);
    EXPECT_EQ(removals.size(), 10u);
  }
}

// CacheExpirationTest.testExpirationOrder_access: with expire_after_access
// every read and write moves a key's deadline; keys expire in the order of
// their last access, each exactly 11 ms after it. (Guava's key set is read
// without touching; here Size() removes and reports what expired.)
TEST(GuavaCacheExpiration, ExpirationOrderAccess) {
  FakeClock clock;
  Removals<int, int> removals;
  IntOptions o = IntOpts(&clock);
  o.expire_after_access = milliseconds(11);
  o.shards = 1;
  o.removal_listener = removals.Listener();
  IntCache cache(o, IdentityLoader{});
  auto expired = [&] { return removals.Keys(RemovalCause::kExpired); };
  for (int i = 0; i < 10; ++i) {
    cache.Get(i);
    clock.Advance(milliseconds(1));
  }
  EXPECT_EQ(cache.Size(), 10u);
  clock.Advance(milliseconds(1));  // 0 expires
  EXPECT_EQ(cache.Size(), 9u);
  EXPECT_EQ(expired(), std::vector<int>{0});
  for (int k : {0, 1, 2}) cache.Get(k);  // reorder
  clock.Advance(milliseconds(2));
  EXPECT_EQ(cache.Size(), 10u);
  clock.Advance(milliseconds(1));  // 3 expires
  EXPECT_EQ(cache.Size(), 9u);
  EXPECT_EQ(expired(), (std::vector<int>{0, 3}));
  for (int k : {5, 7, 9}) cache.Get(k);  // reorder
  clock.Advance(milliseconds(1));  // 4 expires
  EXPECT_EQ(cache.Size(), 8u);
  clock.Advance(milliseconds(1));
  EXPECT_EQ(cache.Size(), 8u);
  clock.Advance(milliseconds(1));  // 6 expires
  EXPECT_EQ(cache.Size(), 7u);
  clock.Advance(milliseconds(1));
  EXPECT_EQ(cache.Size(), 7u);
  clock.Advance(milliseconds(1));  // 8 expires
  EXPECT_EQ(cache.Size(), 6u);
  EXPECT_EQ(expired(), (std::vector<int>{0, 3, 4, 6, 8}));
}

// CacheExpirationTest.testExpirationOrder_write: with ttl, reads (Get,
// Get(key, loader)) do not move a deadline; a write (Put) does.
// CacheOptions::ttl: "after each write".
TEST(GuavaCacheExpiration, ExpirationOrderWrite) {
  FakeClock clock;
  Removals<int, int> removals;
  IntOptions o = IntOpts(&clock);
  o.ttl = milliseconds(11);
  o.shards = 1;
  o.removal_listener = removals.Listener();
  IntCache cache(o, IdentityLoader{});
  auto expired = [&] { return removals.Keys(RemovalCause::kExpired); };
  for (int i = 0; i < 10; ++i) {
    cache.Get(i);
    clock.Advance(milliseconds(1));
  }
  EXPECT_EQ(cache.Size(), 10u);
  clock.Advance(milliseconds(1));  // 0 expires
  EXPECT_EQ(cache.Size(), 9u);
  for (int k : {0, 1, 2}) cache.Get(k);  // 0 reloads; 1, 2 are not saved
  clock.Advance(milliseconds(1));  // 1 expires
  EXPECT_EQ(cache.Size(), 9u);
  EXPECT_EQ(cache.Get(2, [] { return -2; }), 2);  // a hit does not save 2
  clock.Advance(milliseconds(1));  // 2 expires
  EXPECT_EQ(cache.Size(), 8u);
  cache.Put(3, -3);  // saves 3
  clock.Advance(milliseconds(1));
  EXPECT_EQ(cache.Size(), 8u);
  cache.Put(4, -4);  // saves 4
  clock.Advance(milliseconds(1));
  EXPECT_EQ(cache.Size(), 8u);
  clock.Advance(milliseconds(1));  // 5 expires
  EXPECT_EQ(cache.Size(), 7u);
  EXPECT_EQ(expired(), (std::vector<int>{0, 1, 2, 5}));
  EXPECT_EQ(cache.GetIfPresent(3), -3);
  EXPECT_EQ(cache.GetIfPresent(4), -4);
}

// CacheExpirationTest.testExpirationOrder_writeAccess: with both rules a
// value expires at the earlier deadline. CacheOptions: "an entry expires
// at the earliest enabled one".
TEST(GuavaCacheExpiration, ExpirationOrderWriteAccess) {
  FakeClock clock;
  Removals<int, int> removals;
  IntOptions o = IntOpts(&clock);
  o.ttl = milliseconds(5);
  o.expire_after_access = milliseconds(3);
  o.shards = 1;
  o.removal_listener = removals.Listener();
  IntCache cache(o, IdentityLoader{});
  auto expired = [&] {
    std::vector<int> keys = removals.Keys(RemovalCause::kExpired);
    std::sort(keys.begin(), keys.end());
    return keys;
  };
  for (int i = 0; i < 5; ++i) cache.Get(i);
  clock.Advance(milliseconds(1));
  for (int i = 5; i < 10; ++i) cache.Get(i);
  clock.Advance(milliseconds(1));
  EXPECT_EQ(cache.Size(), 10u);
  for (int k : {1, 3}) cache.Get(k);  // saves 1, 3
  clock.Advance(milliseconds(1));   // 0, 2, 4 expire
  EXPECT_EQ(cache.Size(), 7u);
  EXPECT_EQ(expired(), (std::vector<int>{0, 2, 4}));
  for (int k : {6, 8}) cache.Get(k);  // saves 6, 8
  clock.Advance(milliseconds(1));   // 5, 7, 9 expire
  EXPECT_EQ(cache.Size(), 4u);
  cache.Put(3, -3);  // saves 3
  cache.Get(1);      // cannot save 1: written 5 ms ago at the next tick
  clock.Advance(milliseconds(1));
  EXPECT_EQ(cache.Size(), 3u);
  cache.Put(6, -6);  // saves 6
  EXPECT_EQ(cache.Get(8, [] { return -8; }), 8);  // cannot save 8
  clock.Advance(milliseconds(1));
  EXPECT_EQ(cache.Size(), 2u);
  EXPECT_EQ(expired(), (std::vector<int>{0, 1, 2, 4, 5, 7, 8, 9}));
  EXPECT_EQ(cache.GetIfPresent(3), -3);
  EXPECT_EQ(cache.GetIfPresent(6), -6);
}

// CacheExpirationTest.testExpiration_invalidateAll: InvalidateAll of an
// expired value reports it as kExpired. RemovalCause::kExpired: "or it was
// expired when it was replaced or invalidated".
TEST(GuavaCacheExpiration, InvalidateAllOfAnExpiredValue) {
  FakeClock clock;
  Removals<int, int> removals;
  IntOptions o = IntOpts(&clock);
  o.expire_after_access = minutes(1);
  o.removal_listener = removals.Listener();
  IntCache cache(o);
  cache.Put(1, 1);
  clock.Advance(minutes(10));
  cache.InvalidateAll();
  EXPECT_EQ(removals.events(), (std::vector<Removals<int, int>::Event>{
                                   {1, 1, RemovalCause::kExpired}}));
}

// ---------------------------------------------------------------------------
// CacheEvictionTest

// CacheEvictionTest.testEviction_maxSizeOneSegment/_maxWeightOneSegment:
// the bound holds after every call. CacheOptions: max_entries "values
// held"; max_weight "total weigher() of the values held".
TEST(GuavaCacheEviction, BoundHoldsAfterEveryCall) {
  for (bool weighted : {false, true}) {
    SCOPED_TRACE(weighted);
    FakeClock clock;
    IntOptions o = IntOpts(&clock);
    o.shards = 1;
    if (weighted) {
      o.max_weight = 200;
      o.weigher = [](const int&, const int&) -> uint64_t { return 2; };
    } else {
      o.max_entries = 100;
    }
    IntCache cache(o, IdentityLoader{});
    for (int i = 0; i < 200; ++i) {
      cache.Get(i);
      ASSERT_EQ(cache.Size(), static_cast<size_t>(std::min(i + 1, 100)))
          << "after key " << i;
    }
    EXPECT_EQ(cache.Weight(), weighted ? 200u : 100u);
  }
}

// CacheEvictionTest.testEviction_maxSize/_maxWeight: with the default
// shards, twice the bound loaded leaves the bound, and the listener is
// told of each eviction (kEvicted), as the stats count them.
TEST(GuavaCacheEviction, EvictionsAreReported) {
  for (bool weighted : {false, true}) {
    SCOPED_TRACE(weighted);
    FakeClock clock;
    Removals<int, int> removals;
    IntOptions o = IntOpts(&clock);
    if (weighted) {
      o.max_weight = 200;
      o.weigher = [](const int&, const int&) -> uint64_t { return 2; };
    } else {
      o.max_entries = 100;
    }
    o.removal_listener = removals.Listener();
    IntCache cache(o, IdentityLoader{});
    for (int i = 0; i < 200; ++i) {
      cache.Get(i);
      ASSERT_LE(cache.Size(), 100u);
    }
    EXPECT_EQ(cache.Size(), 100u);
    EXPECT_EQ(removals.Count(RemovalCause::kEvicted), 100u);
    EXPECT_EQ(removals.size(), 100u);
    EXPECT_EQ(cache.Stats().evictions, 100u);
    EXPECT_EQ(cache.Stats().eviction_weight, weighted ? 200u : 100u);
  }
}

// CacheEvictionTest.testEviction_overweight: a value of exactly the
// maximum weight fits (alone); one heavier than the maximum is never kept.
// CacheOptions::max_weight bounds "total weigher() of the values held".
TEST(GuavaCacheEviction, Overweight) {
  FakeClock clock;
  Removals<int, int> removals;
  IntOptions o = IntOpts(&clock);
  o.shards = 1;
  o.max_weight = 45;
  o.weigher = [](const int& k, const int&) -> uint64_t { return k; };
  o.removal_listener = removals.Listener();
  IntCache cache(o, IdentityLoader{});
  for (int i = 0; i < 10; ++i) cache.Get(i);  // 0 + 1 + ... + 9 = 45
  EXPECT_EQ(cache.Weight(), 45u);
  EXPECT_EQ(cache.Get(45), 45);
  EXPECT_LE(cache.Weight(), 45u);
  EXPECT_EQ(cache.Get(46), 46);  // delivered, but never kept
  EXPECT_EQ(cache.GetIfPresent(46), std::nullopt);
  EXPECT_LE(cache.Weight(), 45u);
  std::vector<int> evicted = removals.Keys(RemovalCause::kEvicted);
  EXPECT_NE(std::find(evicted.begin(), evicted.end(), 46), evicted.end());
}

// CacheEvictionTest.testEviction_invalidateAll: InvalidateAll resets the
// held weight: refilling below the bound evicts nothing. loading_cache.h:
// Size()/Weight() of the values held.
TEST(GuavaCacheEviction, InvalidateAllResetsTheWeight) {
  FakeClock clock;
  IntOptions o = IntOpts(&clock);
  o.shards = 1;
  o.max_entries = 10;
  IntCache cache(o, IdentityLoader{});
  for (int k = 0; k < 5; ++k) cache.Get(k);
  EXPECT_EQ(cache.Size(), 5u);
  cache.InvalidateAll();
  EXPECT_EQ(cache.Size(), 0u);
  EXPECT_EQ(cache.Weight(), 0u);
  for (int k = 5; k <= 12; ++k) cache.Get(k);
  EXPECT_EQ(cache.Size(), 8u);
  for (int k = 5; k <= 12; ++k) EXPECT_EQ(cache.GetIfPresent(k), k);
  EXPECT_EQ(cache.Stats().evictions, 0u);
}

// ---------------------------------------------------------------------------
// CacheRefreshTest

// CacheRefreshTest.testAutoRefresh: refresh_after 3 ms, ttl 6 ms; Guava's
// loader counts loads and reloads (a reload answers old + 1). A read at
// refresh_after or later returns the value it has and starts one reload; a
// Put restarts a key's refresh clock. (Timeline shifted by herd's
// inclusive boundary and background reloads, see RefreshAfterWrite.)
TEST(GuavaCacheRefresh, AutoRefresh) {
  FakeClock clock;
  ManualExecutor executor;
  IntOptions o = IntOpts(&clock);
  o.refresh_after = milliseconds(3);
  o.ttl = milliseconds(6);
  o.executor = executor;
  std::mutex mu;
  std::map<int, int> last;  // guarded by mu
  int loads = 0;            // guarded by mu
  int reloads = 0;          // guarded by mu
  IntCache cache(o, [&](int k) {
    std::lock_guard<std::mutex> lock(mu);
    auto [it, inserted] = last.try_emplace(k, k);
    if (inserted) {
      ++loads;
    } else {
      ++reloads;
      ++it->second;
    }
    return it->second;
  });
  DropAtEnd drop{executor};
  auto counts = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return std::make_pair(loads, reloads);
  };
  for (int i = 0; i < 3; ++i) {  // key i written at t = i ms
    EXPECT_EQ(cache.Get(i), i);
    clock.Advance(milliseconds(1));
  }
  EXPECT_EQ(counts(), std::make_pair(3, 0));
  // t = 3: key 0 is 3 ms old: its read starts a reload.
  EXPECT_EQ(cache.Get(0), 0);
  EXPECT_EQ(cache.Get(1), 1);
  EXPECT_EQ(cache.Get(2), 2);
  EXPECT_EQ(executor.RunAll(), 1u);
  EXPECT_EQ(counts(), std::make_pair(3, 1));
  EXPECT_EQ(cache.Get(0), 1);
  // A write to 1 delays its refresh. (Guava's reload answers the old value
  // + 1, which herd's loader, given no old value, keeps itself.)
  {
    std::lock_guard<std::mutex> lock(mu);
    last[1] = -1;
  }
  cache.Put(1, -1);
  clock.Advance(milliseconds(1));  // t = 4: key 1 is 0 ms old, key 2 is 2
  EXPECT_EQ(cache.Get(1), -1);
  EXPECT_EQ(cache.Get(2), 2);
  EXPECT_EQ(executor.RunAll(), 0u);
  clock.Advance(milliseconds(1));  // t = 5: key 2 is 3 ms old
  EXPECT_EQ(cache.Get(0), 1);
  EXPECT_EQ(cache.Get(1), -1);
  EXPECT_EQ(cache.Get(2), 2);
  EXPECT_EQ(executor.RunAll(), 1u);
  EXPECT_EQ(cache.Get(2), 3);
  EXPECT_EQ(counts(), std::make_pair(3, 2));
  clock.Advance(milliseconds(1));  // t = 6: key 0 (reloaded at 3) is 3 old
  EXPECT_EQ(cache.Get(0), 1);
  EXPECT_EQ(cache.Get(1), -1);  // written at t = 3 too: reloads as well
  EXPECT_EQ(cache.Get(2), 3);
  EXPECT_EQ(executor.RunAll(), 2u);
  EXPECT_EQ(cache.Get(0), 2);
  EXPECT_EQ(cache.Get(1), 0);
  EXPECT_EQ(counts(), std::make_pair(3, 4));
}

// ---------------------------------------------------------------------------
// NullCacheTest: a cache that keeps nothing. herd has no maximumSize(0);
// expire_after returning zero (or less) stores every value already expired
// (CacheOptions::expire_after: "negative means already expired"; zero is
// the same deadline as the write).

// NullCacheTest.testGet / _expireAfterWrite / _expireAfterAccess: the
// caller gets the computed value; the listener hears of it exactly once;
// the cache stays empty; the next Get loads again.
TEST(GuavaNullCache, Get) {
  for (nanoseconds lifetime : {nanoseconds(0), nanoseconds(-1)}) {
    SCOPED_TRACE(lifetime.count());
    FakeClock clock;
    Removals<int, std::string> removals;
    std::atomic<int> calls{0};
    StrOptions o = StrOpts(&clock);
    o.expire_after = [&](const int&, const std::string&) { return lifetime; };
    o.removal_listener = removals.Listener();
    StrCache cache(o, [&](int) {
      calls.fetch_add(1);
      return std::string("computed");
    });
    EXPECT_EQ(cache.Get(1), "computed");
    EXPECT_EQ(cache.Size(), 0u);
    EXPECT_EQ(removals.events(),
              (std::vector<Removals<int, std::string>::Event>{
                  {1, "computed", RemovalCause::kExpired}}));
    EXPECT_EQ(cache.GetIfPresent(1), std::nullopt);
    EXPECT_EQ(cache.Get(1), "computed");
    EXPECT_EQ(calls.load(), 2);
    cache.CleanUp();
    EXPECT_EQ(removals.size(), 2u);
  }
}

// NullCacheTest.testGet_runtimeException: a failing load reaches its
// caller; nothing is stored or reported.
TEST(GuavaNullCache, GetRuntimeException) {
  FakeClock clock;
  Removals<int, std::string> removals;
  StrOptions o = StrOpts(&clock);
  o.expire_after = [](const int&, const std::string&) { return nanoseconds(0); };
  o.removal_listener = removals.Listener();
  StrCache cache(o, [](int) -> std::string { throw LoadError(1); });
  EXPECT_THROW(cache.Get(1), LoadError);
  EXPECT_EQ(cache.Size(), 0u);
  cache.CleanUp();
  EXPECT_EQ(removals.size(), 0u);
}

// ---------------------------------------------------------------------------
// PopulatedCachesTest: caches of every configuration, warmed with 15
// values, count them, hit them, replace them and drop them.

struct Config {
  size_t shards;
  uint64_t max_entries;
  nanoseconds ttl;
  nanoseconds expire_after_access;
  nanoseconds refresh_after;
};

std::vector<Config> Configs() {
  std::vector<Config> configs;
  const nanoseconds day = std::chrono::hours(24);
  for (size_t shards : {1, 4, 16, 64}) {
    for (uint64_t max : {uint64_t{0}, uint64_t{400}, uint64_t{1000}}) {
      for (nanoseconds ttl : {nanoseconds(0), nanoseconds(seconds(1)), day}) {
        for (nanoseconds access : {nanoseconds(0), nanoseconds(seconds(1)),
                                   day}) {
          for (nanoseconds refresh :
               {nanoseconds(0), nanoseconds(seconds(1)), day}) {
            // CacheOptions::refresh_after: "< ttl when ttl > 0".
            if (ttl.count() > 0 && refresh >= ttl) continue;
            configs.push_back({shards, max, ttl, access, refresh});
          }
        }
      }
    }
  }
  return configs;
}

constexpr int kWarmupMin = 120;
constexpr int kWarmupMax = 135;
constexpr size_t kWarmupSize = kWarmupMax - kWarmupMin;

IntOptions PopulatedOpts(const Config& c, const Clock* clock,
                         ManualExecutor& executor) {
  IntOptions o = IntOpts(clock);
  o.shards = c.shards;
  o.max_entries = c.max_entries;
  o.ttl = c.ttl;
  o.expire_after_access = c.expire_after_access;
  o.refresh_after = c.refresh_after;
  o.executor = executor;
  return o;
}

// PopulatedCachesTest.testSize_populated / testContainsKey_found: Size()
// counts the warmed values; reading them again is a hit.
TEST(GuavaPopulatedCaches, SizeAndHits) {
  for (const Config& c : Configs()) {
    FakeClock clock;
    ManualExecutor executor;
    IntCache cache(PopulatedOpts(c, &clock, executor), IdentityLoader{});
    DropAtEnd drop{executor};
    for (int i = kWarmupMin; i < kWarmupMax; ++i) cache.Get(i);
    ASSERT_EQ(cache.Size(), kWarmupSize) << c.shards << " " << c.max_entries;
    for (int i = kWarmupMin; i < kWarmupMax; ++i) {
      ASSERT_EQ(cache.GetIfPresent(i), i);
      ASSERT_EQ(cache.Get(i), i);
    }
    ASSERT_EQ(cache.Stats().misses, kWarmupSize);
    ASSERT_EQ(cache.Stats().hits, 2 * kWarmupSize);
  }
}

// PopulatedCachesTest.testPut_populated / testPutAll_populated: Put
// replaces a warmed value and adds new keys; reading either is a hit.
TEST(GuavaPopulatedCaches, Put) {
  for (const Config& c : Configs()) {
    FakeClock clock;
    ManualExecutor executor;
    IntCache cache(PopulatedOpts(c, &clock, executor), IdentityLoader{});
    DropAtEnd drop{executor};
    for (int i = kWarmupMin; i < kWarmupMax; ++i) cache.Get(i);
    for (int i = kWarmupMin; i < kWarmupMax; ++i) {
      cache.Put(i, -i);
      cache.Put(i + 1000, i);
      ASSERT_EQ(cache.Get(i), -i);
      ASSERT_EQ(cache.Get(i + 1000), i);
    }
    ASSERT_EQ(cache.Stats().misses, kWarmupSize);
    ASSERT_EQ(cache.Size(), 2 * kWarmupSize);
  }
}

// PopulatedCachesTest.testRemove_byKey: Invalidate drops each warmed value
// once (true, then false) and leaves the cache empty.
TEST(GuavaPopulatedCaches, InvalidateByKey) {
  for (const Config& c : Configs()) {
    FakeClock clock;
    ManualExecutor executor;
    IntCache cache(PopulatedOpts(c, &clock, executor), IdentityLoader{});
    DropAtEnd drop{executor};
    for (int i = kWarmupMin; i < kWarmupMax; ++i) cache.Get(i);
    for (int i = kWarmupMin; i < kWarmupMax; ++i) {
      ASSERT_TRUE(cache.Invalidate(i));
      ASSERT_FALSE(cache.Invalidate(i));
      ASSERT_EQ(cache.GetIfPresent(i), std::nullopt);
    }
    ASSERT_EQ(cache.Size(), 0u);
    ASSERT_EQ(cache.Weight(), 0u);
  }
}

// ---------------------------------------------------------------------------
// CacheStatsTest (Guava's and Caffeine's): the derived rates.

// CacheStatsTest.testEmpty / testSingle. CacheStats: hit_rate "or 1 with no
// lookups"; miss_rate "or 0"; average_load_penalty_ns "or 0 with no loads".
TEST(GuavaCacheStats, Rates) {
  const CacheStats empty;
  EXPECT_EQ(empty.hit_rate(), 1.0);
  EXPECT_EQ(empty.miss_rate(), 0.0);
  EXPECT_EQ(empty.average_load_penalty_ns(), 0.0);
  CacheStats s;
  s.hits = 11;
  s.misses = 13;
  s.load_successes = 17;
  s.load_failures = 19;
  s.loads = 36;
  s.total_load_time_ns = 23;
  EXPECT_DOUBLE_EQ(s.hit_rate(), 11.0 / 24);
  EXPECT_DOUBLE_EQ(s.miss_rate(), 13.0 / 24);
  EXPECT_DOUBLE_EQ(s.average_load_penalty_ns(), 23.0 / 36);
}

}  // namespace
}  // namespace herd
