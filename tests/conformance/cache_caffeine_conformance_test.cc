// Copyright 2026 The herd Authors.
//
// Caffeine's cache test suites (com.github.benmanes.caffeine.cache:
// LoadingCacheTest, CacheTest, ExpirationTest, ExpireAfterAccessTest,
// ExpireAfterWriteTest, ExpireAfterVarTest, RefreshAfterWriteTest,
// EvictionTest, the removal-listener cases spread over them, and
// stats.CacheStatsTest) restated against herd/loading_cache.h. Each test
// names the Caffeine test it restates and the header sentence it checks;
// where herd's contract differs from Caffeine's behaviour on purpose, the
// comment says so and the test checks herd's contract.
//
// Caffeine's tests complete a reload's future by hand (Loader.ASYNC_
// INCOMPLETE); here reloads run on a ManualExecutor the test drives, which
// gives the same control over when a reload lands. Time is a FakeClock,
// moved exactly to the boundaries Caffeine's FakeTicker is.
// Only public headers are used (herd/*.h, and tests/testing/'s helpers,
// which are built on them).

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
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::nanoseconds;
using std::chrono::seconds;

using Cache = LoadingCache<int, int>;
using Options = CacheOptions<int, int>;
using Event = std::tuple<int, int, RemovalCause>;
using Events = std::vector<Event>;

// --- Helpers ---------------------------------------------------------------

// Caffeine's IllegalStateException (unchecked)...
struct LoadError : std::runtime_error {
  explicit LoadError(int c) : std::runtime_error("load failed"), code(c) {}
  int code;
};
// ...and its checked exceptions and Errors: a type outside std::exception.
struct Fatal {
  int code;
};

// Records every removal notification, thread-safely.
class Removals {
 public:
  std::function<void(const int&, const int&, RemovalCause)> Listener() {
    return [this](const int& k, const int& v, RemovalCause c) {
      std::lock_guard<std::mutex> lock(mu_);
      events_.emplace_back(k, v, c);
    };
  }
  Events events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  // Caffeine's removalNotifications()...exclusively(): order-insensitive.
  Events sorted() const {
    Events e = events();
    std::sort(e.begin(), e.end());
    return e;
  }
  size_t size() const { return events().size(); }
  size_t Count(RemovalCause cause) const {
    size_t n = 0;
    for (const Event& e : events()) n += std::get<2>(e) == cause;
    return n;
  }

 private:
  mutable std::mutex mu_;
  Events events_;
};

Events Sorted(Events e) {
  std::sort(e.begin(), e.end());
  return e;
}

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
         << s.load_failures << "; want " << hits << " " << misses << " "
         << successes << " " << failures;
}

std::map<int, int> Sorted(const Cache::Map& m) { return {m.begin(), m.end()}; }

// Caffeine's Loader.NEGATIVE: key -> -key, counting its calls.
struct NegativeLoader {
  std::shared_ptr<std::atomic<int>> calls =
      std::make_shared<std::atomic<int>>(0);
  int operator()(int k) const {
    calls->fetch_add(1);
    return -k;
  }
  int count() const { return calls->load(); }
};

// Loader.BULK_NEGATIVE: every key -> -key in one call.
struct BulkNegative {
  std::shared_ptr<std::atomic<int>> calls =
      std::make_shared<std::atomic<int>>(0);
  Cache::Map operator()(std::span<const int> keys) const {
    calls->fetch_add(1);
    Cache::Map m;
    for (int k : keys) m.emplace(k, -k);
    return m;
  }
};

// Destroys the tasks still queued before the cache (declared after it) is
// destroyed: ~LoadingCache waits for every task it handed out.
struct DropAtEnd {
  ManualExecutor& executor;
  ~DropAtEnd() { executor.DropAll(); }
};

// A cache over a ManualExecutor with a removal recorder, Caffeine's usual
// CacheContext.
struct Context {
  FakeClock clock;
  ManualExecutor executor;
  Removals removals;
  Options Opts() {
    Options o;
    o.clock = &clock;
    o.executor = executor;
    o.removal_listener = removals.Listener();
    return o;
  }
};

// Caffeine's Population.FULL, small: keys 1..10 -> -key.
constexpr int kFirst = 1;
constexpr int kMiddle = 5;
constexpr int kLast = 10;
constexpr int kAbsent = 1000;
void Populate(Cache& cache) {
  for (int k = kFirst; k <= kLast; ++k) cache.Put(k, -k);
}
std::vector<int> Absent(int n) {
  std::vector<int> keys;
  for (int i = 0; i < n; ++i) keys.push_back(kAbsent + i);
  return keys;
}

// ---------------------------------------------------------------------------
// LoadingCacheTest

// LoadingCacheTest.get_absent / get_present. CacheStats: "Every lookup ...
// counts exactly one hit or one miss"; load_successes per execution.
TEST(CaffeineLoadingCache, GetAbsentAndPresent) {
  Context ctx;
  Cache cache(ctx.Opts(), NegativeLoader{});
  DropAtEnd drop{ctx.executor};
  EXPECT_EQ(cache.Get(kAbsent), -kAbsent);
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 1, 1, 0));
  Populate(cache);
  EXPECT_EQ(cache.Get(kFirst), -kFirst);
  EXPECT_EQ(cache.Get(kMiddle), -kMiddle);
  EXPECT_EQ(cache.Get(kLast), -kLast);
  EXPECT_TRUE(StatsAre(cache.Stats(), 3, 1, 1, 0));
}

// LoadingCacheTest.get_absent_throwsException / _throwsCheckedException
// (and CacheTest.get_absent_throwsError): the loader's exception, of any
// type, reaches the caller unchanged; one miss, one failure; nothing is
// stored. loading_cache.h: "type and payload intact".
TEST(CaffeineLoadingCache, GetAbsentThrows) {
  Context ctx;
  Cache cache(ctx.Opts(), [](int k) -> int {
    if (k == 1) throw LoadError(k);
    throw Fatal{k};
  });
  DropAtEnd drop{ctx.executor};
  EXPECT_THROW(cache.Get(1), LoadError);
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 1, 0, 1));
  try {
    cache.Get(2);
    ADD_FAILURE() << "no exception";
  } catch (const Fatal& f) {
    EXPECT_EQ(f.code, 2);
  }
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 2, 0, 2));
  EXPECT_EQ(cache.Size(), 0u);
}

// LoadingCacheTest.getAll_iterable_empty: no keys, no lookups.
TEST(CaffeineLoadingCache, GetAllEmpty) {
  Context ctx;
  Cache cache(ctx.Opts(), NegativeLoader{}, BulkNegative{});
  DropAtEnd drop{ctx.executor};
  EXPECT_TRUE(cache.GetAll(std::vector<int>{}).empty());
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 0, 0, 0));
}

// LoadingCacheTest.getAll_absent / getAll_absent_partial /
// getAll_present_partial / getAll_present_full, with Loader.NEGATIVE and
// BULK_NEGATIVE. loading_cache.h GetAll: the misses load "together in one
// call of the batch loader ..., or one by one with the loader if none is
// bound"; a batch call counts one load.
TEST(CaffeineLoadingCache, GetAllAbsentAndPresent) {
  for (bool bulk : {false, true}) {
    SCOPED_TRACE(bulk);
    Context ctx;
    NegativeLoader loader;
    BulkNegative batch;
    std::optional<Cache> cache;
    if (bulk) {
      cache.emplace(ctx.Opts(), loader, batch);
    } else {
      cache.emplace(ctx.Opts(), loader);
    }
    DropAtEnd drop{ctx.executor};
    const std::vector<int> absent = Absent(5);
    std::map<int, int> want;
    for (int k : absent) want[k] = -k;
    EXPECT_EQ(Sorted(cache->GetAll(absent)), want);
    EXPECT_TRUE(StatsAre(cache->Stats(), 0, 5, bulk ? 1 : 5, 0));
    Populate(*cache);
    std::vector<int> mixed = {kFirst, kMiddle, kLast, 2000, 2001};
    want = {{kFirst, -kFirst}, {kMiddle, -kMiddle}, {kLast, -kLast},
            {2000, -2000}, {2001, -2001}};
    EXPECT_EQ(Sorted(cache->GetAll(mixed)), want);
    EXPECT_TRUE(StatsAre(cache->Stats(), 3, 7, bulk ? 2 : 7, 0));
    std::vector<int> all;
    for (int k = kFirst; k <= kLast; ++k) all.push_back(k);
    EXPECT_EQ(cache->GetAll(all).size(), 10u);
    EXPECT_TRUE(StatsAre(cache->Stats(), 13, 7, bulk ? 2 : 7, 0));
    EXPECT_EQ(bulk ? batch.calls->load() : loader.count(), bulk ? 2 : 7);
  }
}

// LoadingCacheTest.getAll_absent_throwsException (Loader.EXCEPTIONAL,
// BULK_EXCEPTIONAL): GetAll throws the load's exception; every key is a
// miss; nothing is stored. With a batch loader one failure; without one,
// Caffeine's synchronous cache stops at the first failing key, while herd
// loads every key (they were claimed for this call, and other callers may
// wait on them) and throws the first error after: one failure per key.
// loading_cache.h GetAll: "Throws: the first load error met".
TEST(CaffeineLoadingCache, GetAllAbsentThrows) {
  for (bool bulk : {false, true}) {
    SCOPED_TRACE(bulk);
    Context ctx;
    auto failing = [](int k) -> int { throw LoadError(k); };
    std::optional<Cache> cache;
    if (bulk) {
      cache.emplace(ctx.Opts(), failing,
                    [](std::span<const int>) -> Cache::Map {
                      throw LoadError(-1);
                    });
    } else {
      cache.emplace(ctx.Opts(), failing);
    }
    DropAtEnd drop{ctx.executor};
    EXPECT_THROW(cache->GetAll(Absent(4)), LoadError);
    EXPECT_TRUE(StatsAre(cache->Stats(), 0, 4, 0, bulk ? 1 : 4));
    EXPECT_EQ(cache->Size(), 0u);
  }
}

// LoadingCacheTest.getAll_absent_throwsException with a cached error
// (error_ttl): loading_cache.h GetAll "Throws: the first load error met (a
// cached one included)"; the other keys are loaded and stored all the same.
TEST(CaffeineLoadingCache, GetAllMeetsACachedError) {
  Context ctx;
  Options o = ctx.Opts();
  o.error_ttl = minutes(1);
  std::atomic<int> calls{0};
  Cache cache(o, [&](int k) -> int {
    calls.fetch_add(1);
    if (k == 2) throw LoadError(k);
    return -k;
  });
  DropAtEnd drop{ctx.executor};
  EXPECT_THROW(cache.Get(2), LoadError);
  try {
    cache.GetAll(std::vector<int>{1, 2, 3});
    ADD_FAILURE() << "no exception";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.code, 2);
  }
  EXPECT_EQ(calls.load(), 3);  // 2 was not loaded again
  EXPECT_EQ(cache.GetIfPresent(1), -1);
  EXPECT_EQ(cache.GetIfPresent(3), -3);
  EXPECT_EQ(cache.Stats().negative_hits, 1u);
}

// LoadingCacheTest.getAll_exceeds (Loader.BULK_EXCEEDS_NEGATIVE). Caffeine
// stores the extra entries; loading_cache.h: "keys it adds are ignored".
// The result holds exactly the keys asked for; one load.
TEST(CaffeineLoadingCache, GetAllExceeds) {
  Context ctx;
  Cache cache(ctx.Opts(), NegativeLoader{}, [](std::span<const int> keys) {
    Cache::Map m;
    for (int k : keys) {
      m.emplace(k, -k);
      m.emplace(k + 100000, 0);
    }
    return m;
  });
  DropAtEnd drop{ctx.executor};
  const std::vector<int> keys = Absent(5);
  Cache::Map got = cache.GetAll(keys);
  EXPECT_EQ(got.size(), keys.size());
  for (int k : keys) EXPECT_EQ(got.at(k), -k);
  EXPECT_EQ(cache.Size(), keys.size());
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 5, 1, 0));
}

// LoadingCacheTest.getAll_different (Loader.BULK_DIFFERENT): a batch that
// answers none of the keys asked for: an empty result, one (successful)
// load, every key a miss, nothing stored. loading_cache.h: "Keys the batch
// loader leaves out are absent from the result".
TEST(CaffeineLoadingCache, GetAllDifferent) {
  Context ctx;
  Cache cache(ctx.Opts(), NegativeLoader{}, [](std::span<const int> keys) {
    Cache::Map m;
    for (int k : keys) m.emplace(-k, k);
    return m;
  });
  DropAtEnd drop{ctx.executor};
  EXPECT_TRUE(cache.GetAll(Absent(5)).empty());
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 5, 1, 0));
  EXPECT_EQ(cache.Size(), 0u);
}

// LoadingCacheTest.getAll_duplicates: "Duplicate keys count once" — one
// hit per present key, one miss per absent key, one batch.
TEST(CaffeineLoadingCache, GetAllDuplicates) {
  Context ctx;
  Cache cache(ctx.Opts(), NegativeLoader{}, BulkNegative{});
  DropAtEnd drop{ctx.executor};
  Populate(cache);
  std::vector<int> keys;
  for (int round = 0; round < 2; ++round) {
    for (int k : Absent(3)) keys.push_back(k);
    for (int k = kFirst; k <= kLast; ++k) keys.push_back(k);
  }
  Cache::Map got = cache.GetAll(keys);
  EXPECT_EQ(got.size(), 13u);
  EXPECT_TRUE(StatsAre(cache.Stats(), 10, 3, 1, 0));
}

// LoadingCacheTest.getAll_jdk8186171: keys that all share one hash; one is
// cached, the batch answers none of the others: the result holds the one.
TEST(CaffeineLoadingCache, GetAllOneBucket) {
  struct Zero {
    size_t operator()(int) const { return 0; }
  };
  FakeClock clock;
  CacheOptions<int, int> o;
  o.clock = &clock;
  LoadingCache<int, int, Zero> cache(
      o, [](int k) { return k; },
      [](std::span<const int>) { return LoadingCache<int, int, Zero>::Map(); });
  std::vector<int> keys;
  for (int k = 0; k < 50; ++k) keys.push_back(k);
  cache.Put(49, 4900);
  auto got = cache.GetAll(keys);
  EXPECT_EQ(got.size(), 1u);
  EXPECT_EQ(got.at(49), 4900);
}

// LoadingCacheTest.refresh_dedupe: concurrent Refresh() calls share one
// load. loading_cache.h Refresh(): "Concurrent Refresh() calls ... share
// one load".
TEST(CaffeineLoadingCache, RefreshDedupe) {
  Context ctx;
  NegativeLoader loader;
  Cache cache(ctx.Opts(), loader);
  DropAtEnd drop{ctx.executor};
  cache.Put(kFirst, 7);
  std::shared_future<int> f1 = cache.Refresh(kFirst);
  std::shared_future<int> f2 = cache.Refresh(kFirst);
  EXPECT_EQ(ctx.executor.Pending(), 1u);
  ctx.executor.RunAll();
  EXPECT_EQ(f1.get(), -kFirst);
  EXPECT_EQ(f2.get(), -kFirst);
  EXPECT_EQ(loader.count(), 1);
  EXPECT_EQ(cache.GetIfPresent(kFirst), -kFirst);
}

// LoadingCacheTest.refresh_failure: failed reloads fail their futures and
// leave the cache as it was (absent stays absent, present keeps its
// value); three failures, no success, no lookups.
TEST(CaffeineLoadingCache, RefreshFailure) {
  Context ctx;
  Cache cache(ctx.Opts(), [](int k) -> int { throw LoadError(k); });
  DropAtEnd drop{ctx.executor};
  Populate(cache);
  std::shared_future<int> f1 = cache.Refresh(kAbsent);
  std::shared_future<int> f2 = cache.Refresh(kFirst);
  std::shared_future<int> f3 = cache.Refresh(kLast);
  EXPECT_EQ(ctx.executor.RunAll(), 3u);
  EXPECT_THROW(f1.get(), LoadError);
  EXPECT_THROW(f2.get(), LoadError);
  EXPECT_THROW(f3.get(), LoadError);
  EXPECT_EQ(cache.Size(), 10u);
  EXPECT_EQ(cache.GetIfPresent(kFirst), -kFirst);
  EXPECT_TRUE(StatsAre(cache.Stats(), 1, 0, 0, 3));
  EXPECT_EQ(cache.Stats().refresh_failures, 3u);
  EXPECT_EQ(ctx.removals.size(), 0u);
}

// LoadingCacheTest.refresh_absent: Refresh() of an absent key loads it: one
// success, no hit, no miss.
TEST(CaffeineLoadingCache, RefreshAbsent) {
  Context ctx;
  Cache cache(ctx.Opts(), NegativeLoader{});
  DropAtEnd drop{ctx.executor};
  std::shared_future<int> f = cache.Refresh(kAbsent);
  ctx.executor.RunAll();
  EXPECT_EQ(f.get(), -kAbsent);
  EXPECT_EQ(cache.Size(), 1u);
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 0, 1, 0));
  EXPECT_EQ(cache.GetIfPresent(kAbsent), -kAbsent);
}

// LoadingCacheTest.refresh_present_sameValue / _differentValue: each
// reload replaces the value; the old one is reported kReplaced (herd has
// no identity of values: an equal value is still a replacement).
// RemovalCause::kReplaced: "a load or refresh stored a new value over a
// fresh one".
TEST(CaffeineLoadingCache, RefreshPresentReplaces) {
  Context ctx;
  std::atomic<bool> same{true};
  Cache cache(ctx.Opts(), [&](int k) { return same.load() ? -k : k; });
  DropAtEnd drop{ctx.executor};
  Populate(cache);
  for (int k : {kFirst, kMiddle, kLast}) (void)cache.Refresh(k);
  EXPECT_EQ(ctx.executor.RunAll(), 3u);
  same.store(false);
  for (int k : {kFirst, kMiddle, kLast}) {
    std::shared_future<int> f = cache.Refresh(k);
    ctx.executor.RunAll();
    EXPECT_EQ(f.get(), k);
    EXPECT_EQ(cache.GetIfPresent(k), k);
  }
  EXPECT_EQ(cache.Size(), 10u);
  EXPECT_EQ(ctx.removals.sorted(),
            Sorted({{kFirst, -kFirst, RemovalCause::kReplaced},
                    {kFirst, -kFirst, RemovalCause::kReplaced},
                    {kMiddle, -kMiddle, RemovalCause::kReplaced},
                    {kMiddle, -kMiddle, RemovalCause::kReplaced},
                    {kLast, -kLast, RemovalCause::kReplaced},
                    {kLast, -kLast, RemovalCause::kReplaced}}));
  EXPECT_TRUE(StatsAre(cache.Stats(), 3, 0, 6, 0));
}

// LoadingCacheTest.refresh_conflict / refresh_put: a Put while a reload is
// queued, or running, wins: the reload still answers its future, but its
// result is not stored. Caffeine also reports the discarded reload as
// REPLACED; herd reports only values that were in the cache
// (removal_listener: "exactly once per value that leaves the cache").
// loading_cache.h Put: "A load of `key` in progress still answers its own
// callers, but its result is not stored".
TEST(CaffeineLoadingCache, RefreshConflictAndPut) {
  for (bool running : {false, true}) {
    SCOPED_TRACE(running);
    Context ctx;
    HeldLoad held;
    Cache cache(ctx.Opts(), [&](int) {
      held.Enter();
      return 3;  // refreshed
    });
    DropAtEnd drop{ctx.executor};
    cache.Put(kAbsent, 1);  // original
    std::shared_future<int> f = cache.Refresh(kAbsent);
    std::thread runner;
    if (running) {
      runner = std::thread([&] { ctx.executor.RunAll(); });
      held.AwaitEntered();
    }
    cache.Put(kAbsent, 2);  // updated
    held.Release();
    if (running) {
      runner.join();
    } else {
      ctx.executor.RunAll();
    }
    EXPECT_EQ(f.get(), 3);
    EXPECT_EQ(cache.GetIfPresent(kAbsent), 2);
    EXPECT_TRUE(StatsAre(cache.Stats(), 1, 0, 1, 0));
    EXPECT_EQ(ctx.removals.events(),
              (Events{{kAbsent, 1, RemovalCause::kReplaced}}));
  }
}

// LoadingCacheTest.refresh_invalidate and RefreshAfterWriteTest.invalidate
// / refreshIfNeeded_absent_newValue: Invalidate during a reload (explicit
// or refresh-ahead) discards it: the key stays absent. (Caffeine also
// reports the discarded reload as EXPLICIT.) loading_cache.h Invalidate():
// "detaches its load: ... its result is not stored".
TEST(CaffeineLoadingCache, RefreshInvalidate) {
  for (bool automatic : {false, true}) {
    SCOPED_TRACE(automatic);
    Context ctx;
    HeldLoad held;
    Options o = ctx.Opts();
    if (automatic) o.refresh_after = minutes(1);
    Cache cache(o, [&](int) {
      held.Enter();
      return 2;
    });
    DropAtEnd drop{ctx.executor};
    cache.Put(kAbsent, 1);
    if (automatic) {
      ctx.clock.Advance(minutes(2));
      EXPECT_EQ(cache.Get(kAbsent), 1);
    } else {
      (void)cache.Refresh(kAbsent);
    }
    std::thread runner([&] { ctx.executor.RunAll(); });
    held.AwaitEntered();
    EXPECT_TRUE(cache.Invalidate(kAbsent));
    held.Release();
    runner.join();
    EXPECT_EQ(cache.GetIfPresent(kAbsent), std::nullopt);
    EXPECT_EQ(cache.Size(), 0u);
    EXPECT_EQ(ctx.removals.events(),
              (Events{{kAbsent, 1, RemovalCause::kExplicit}}));
    EXPECT_EQ(cache.Stats().load_successes, 1u);
  }
}

// LoadingCacheTest.refresh_expired and RefreshAfterWriteTest.
// refreshIfNeeded_expired: the value expires while its reload runs. Caffeine
// discards the reload; herd, as Guava, stores it (a reload's result is
// stored while it is attached, and expiry does not detach it), and reports
// the expired value once as kExpired when the reload replaces it.
// loading_cache.h Refresh(): "readers keep its current value until the
// reload lands"; RemovalCause::kExpired: "or it was expired when it was
// replaced".
TEST(CaffeineLoadingCache, RefreshExpired) {
  Context ctx;
  HeldLoad held;
  Options o = ctx.Opts();
  o.ttl = minutes(1);
  Cache cache(o, [&](int) {
    held.Enter();
    return 2;
  });
  DropAtEnd drop{ctx.executor};
  cache.Put(kAbsent, 1);
  std::shared_future<int> f = cache.Refresh(kAbsent);
  std::thread runner([&] { ctx.executor.RunAll(); });
  held.AwaitEntered();
  ctx.clock.Advance(minutes(10));
  EXPECT_EQ(cache.GetIfPresent(kAbsent), std::nullopt);
  EXPECT_EQ(cache.Size(), 0u);
  held.Release();
  runner.join();
  EXPECT_EQ(f.get(), 2);
  EXPECT_EQ(cache.GetIfPresent(kAbsent), 2);
  EXPECT_EQ(ctx.removals.events(),
            (Events{{kAbsent, 1, RemovalCause::kExpired}}));
  EXPECT_EQ(cache.Stats().expirations, 1u);
  EXPECT_EQ(cache.Stats().load_successes, 1u);
}

// LoadingCacheTest.refresh_evicted. Caffeine evicts the entry under reload
// and discards the reload; herd's size bound "never touches an entry with
// a load or refresh in progress": the other entry goes, and the reload
// lands.
TEST(CaffeineLoadingCache, RefreshIsNeverEvicted) {
  Context ctx;
  Options o = ctx.Opts();
  o.max_entries = 1;
  Cache cache(o, [](int) { return 2; });
  DropAtEnd drop{ctx.executor};
  constexpr int kKey1 = kAbsent;
  constexpr int kKey2 = kAbsent + 1;
  cache.Put(kKey1, 1);
  std::shared_future<int> f = cache.Refresh(kKey1);
  cache.Put(kKey2, 1);
  cache.CleanUp();
  EXPECT_EQ(cache.GetIfPresent(kKey1), 1);
  EXPECT_EQ(cache.GetIfPresent(kKey2), std::nullopt);
  ctx.executor.RunAll();
  EXPECT_EQ(f.get(), 2);
  EXPECT_EQ(cache.GetIfPresent(kKey1), 2);
  EXPECT_EQ(cache.Size(), 1u);
  EXPECT_EQ(ctx.removals.sorted(),
            Sorted({{kKey2, 1, RemovalCause::kEvicted},
                    {kKey1, 1, RemovalCause::kReplaced}}));
}

// RefreshAfterWriteTest.refresh_absentThenInvalidate(All)_doesNotResurrect:
// a reload of an absent key, then Invalidate (or InvalidateAll): the
// reload lands nowhere.
TEST(CaffeineLoadingCache, RefreshAbsentThenInvalidateDoesNotResurrect) {
  for (bool all : {false, true}) {
    SCOPED_TRACE(all);
    Context ctx;
    Cache cache(ctx.Opts(), NegativeLoader{});
    DropAtEnd drop{ctx.executor};
    std::shared_future<int> f = cache.Refresh(kAbsent);
    if (all) {
      cache.InvalidateAll();
    } else {
      EXPECT_TRUE(cache.Invalidate(kAbsent));
    }
    ctx.executor.RunAll();
    EXPECT_EQ(f.get(), -kAbsent);
    EXPECT_EQ(cache.GetIfPresent(kAbsent), std::nullopt);
    EXPECT_EQ(cache.Size(), 0u);
  }
}

// RefreshAfterWriteTest.refresh_staleCompletion_doesNotDiscardSuccessor
// and refreshIfNeeded_staleCompletion_doesNotDiscardSuccessor: reload R1,
// a Put, reload R2; R1 lands first and must neither store nor disturb R2,
// whose result is stored.
TEST(CaffeineLoadingCache, StaleReloadDoesNotDiscardItsSuccessor) {
  for (bool automatic : {false, true}) {
    SCOPED_TRACE(automatic);
    Context ctx;
    Options o = ctx.Opts();
    if (automatic) o.refresh_after = minutes(1);
    std::atomic<int> calls{0};
    Cache cache(o, [&](int) { return calls.fetch_add(1) == 0 ? -1 : 3; });
    DropAtEnd drop{ctx.executor};
    cache.Put(kAbsent, 1);
    if (automatic) {
      ctx.clock.Advance(minutes(2));
      EXPECT_EQ(cache.Get(kAbsent), 1);  // R1
    } else {
      (void)cache.Refresh(kAbsent);
    }
    cache.Put(kAbsent, 2);
    if (automatic) {
      ctx.clock.Advance(minutes(2));
      EXPECT_EQ(cache.Get(kAbsent), 2);  // R2
    } else {
      (void)cache.Refresh(kAbsent);
    }
    ASSERT_EQ(ctx.executor.Pending(), 2u);
    ASSERT_TRUE(ctx.executor.RunOne());  // R1: stale
    EXPECT_EQ(cache.GetIfPresent(kAbsent), 2);
    ASSERT_TRUE(ctx.executor.RunOne());  // R2
    EXPECT_EQ(cache.GetIfPresent(kAbsent), 3);
    EXPECT_EQ(ctx.removals.events(),
              (Events{{kAbsent, 1, RemovalCause::kReplaced},
                      {kAbsent, 2, RemovalCause::kReplaced}}));
  }
}

// RefreshAfterWriteTest.refresh_staleAbsentCompletion_doesNotDiscard
// Successor: reload R1, Invalidate, reload R2 of the now absent key; R1
// lands first and must not disturb R2, which populates the key.
TEST(CaffeineLoadingCache, StaleAbsentReloadDoesNotDiscardItsSuccessor) {
  Context ctx;
  std::atomic<int> calls{0};
  Cache cache(ctx.Opts(), [&](int) { return calls.fetch_add(1) == 0 ? 5 : 6; });
  DropAtEnd drop{ctx.executor};
  cache.Put(kAbsent, 1);
  std::shared_future<int> r1 = cache.Refresh(kAbsent);
  EXPECT_TRUE(cache.Invalidate(kAbsent));
  std::shared_future<int> r2 = cache.Refresh(kAbsent);
  ASSERT_EQ(ctx.executor.Pending(), 2u);
  ctx.executor.RunOne();
  EXPECT_EQ(r1.get(), 5);
  EXPECT_EQ(cache.GetIfPresent(kAbsent), std::nullopt);
  ctx.executor.RunOne();
  EXPECT_EQ(r2.get(), 6);
  EXPECT_EQ(cache.GetIfPresent(kAbsent), 6);
}

// RefreshAfterWriteTest.put_insert_discardsRefresh: a Put of a key whose
// reload is queued wins over it; nothing is reported (the reload's value
// never entered the cache).
TEST(CaffeineLoadingCache, PutInsertDiscardsRefresh) {
  Context ctx;
  Cache cache(ctx.Opts(), NegativeLoader{});
  DropAtEnd drop{ctx.executor};
  std::shared_future<int> f = cache.Refresh(kAbsent);
  cache.Put(kAbsent, 7);
  ctx.executor.RunAll();
  EXPECT_EQ(f.get(), -kAbsent);
  EXPECT_EQ(cache.GetIfPresent(kAbsent), 7);
  EXPECT_EQ(ctx.removals.size(), 0u);
}

// RefreshAfterWriteTest.refresh_absent_sideLoad_dupLoads (the async view's
// half): a Get of a key whose reload is running joins it: one load.
// loading_cache.h: "every concurrent caller of a key shares one load".
TEST(CaffeineLoadingCache, GetJoinsARefreshOfAnAbsentKey) {
  Context ctx;
  HeldLoad held;
  std::atomic<int> loads{0};
  Cache cache(ctx.Opts(), [&](int k) {
    loads.fetch_add(1);
    held.Enter();
    return -k;
  });
  DropAtEnd drop{ctx.executor};
  std::shared_future<int> f = cache.Refresh(kAbsent);
  std::thread runner([&] { ctx.executor.RunAll(); });
  held.AwaitEntered();
  int got = 0;
  std::thread getter([&] { got = cache.Get(kAbsent); });
  ctx.clock.WaitForSleepers(1);
  held.Release();
  runner.join();
  getter.join();
  EXPECT_EQ(got, -kAbsent);
  EXPECT_EQ(f.get(), -kAbsent);
  EXPECT_EQ(loads.load(), 1);
}

// RefreshAfterWriteTest.refresh: Refresh() of a key whose refresh-ahead
// reload is in flight returns that reload (no second task); after it lands,
// the next due read starts a new one.
TEST(CaffeineLoadingCache, RefreshJoinsAnAutomaticReload) {
  Context ctx;
  Options o = ctx.Opts();
  o.refresh_after = minutes(1);
  std::atomic<int> calls{0};
  Cache cache(o, [&](int) { return 100 + calls.fetch_add(1); });
  DropAtEnd drop{ctx.executor};
  cache.Put(kAbsent, 1);
  ctx.clock.Advance(minutes(2));
  EXPECT_EQ(cache.Get(kAbsent), 1);
  EXPECT_EQ(ctx.executor.Scheduled(), 1u);
  std::shared_future<int> f1 = cache.Refresh(kAbsent);
  EXPECT_EQ(ctx.executor.Scheduled(), 1u);
  ctx.executor.RunAll();
  EXPECT_EQ(f1.get(), 100);
  ctx.clock.Advance(minutes(2));
  EXPECT_EQ(cache.Get(kAbsent), 100);
  EXPECT_EQ(ctx.executor.Scheduled(), 2u);
  std::shared_future<int> f2 = cache.Refresh(kAbsent);
  EXPECT_EQ(ctx.executor.Scheduled(), 2u);
  ctx.executor.RunAll();
  EXPECT_EQ(f2.get(), 101);
  EXPECT_EQ(calls.load(), 2);
}

// ---------------------------------------------------------------------------
// CacheTest (Cache: getIfPresent, get(key, mappingFunction), put,
// invalidate, invalidateAll, cleanUp)

// CacheTest.getIfPresent_absent / _present: a miss, then three hits; no
// load.
TEST(CaffeineCache, GetIfPresent) {
  Context ctx;
  Cache cache(ctx.Opts());
  DropAtEnd drop{ctx.executor};
  EXPECT_EQ(cache.GetIfPresent(kAbsent), std::nullopt);
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 1, 0, 0));
  Populate(cache);
  EXPECT_EQ(cache.GetIfPresent(kFirst), -kFirst);
  EXPECT_EQ(cache.GetIfPresent(kMiddle), -kMiddle);
  EXPECT_EQ(cache.GetIfPresent(kLast), -kLast);
  EXPECT_TRUE(StatsAre(cache.Stats(), 3, 1, 0, 0));
}

// CacheTest.get_absent / get_present / get_absent_throws*: Get(key,
// loader) runs its loader only on a miss, and its exception, of any type,
// reaches the caller; nothing is stored on failure.
TEST(CaffeineCache, GetWithLoader) {
  Context ctx;
  Cache cache(ctx.Opts());
  DropAtEnd drop{ctx.executor};
  EXPECT_EQ(cache.Get(kAbsent, [] { return 42; }), 42);
  EXPECT_TRUE(StatsAre(cache.Stats(), 0, 1, 1, 0));
  Populate(cache);
  auto never = []() -> int { throw std::logic_error("loader on a hit"); };
  EXPECT_EQ(cache.Get(kFirst, never), -kFirst);
  EXPECT_EQ(cache.Get(kMiddle, never), -kMiddle);
  EXPECT_EQ(cache.Get(kLast, never), -kLast);
  EXPECT_TRUE(StatsAre(cache.Stats(), 3, 1, 1, 0));
  EXPECT_THROW(cache.Get(2000, []() -> int { throw LoadError(1); }),
               LoadError);
  EXPECT_THROW(cache.Get(2001, []() -> int { throw Fatal{1}; }), Fatal);
  EXPECT_TRUE(StatsAre(cache.Stats(), 3, 3, 1, 2));
  EXPECT_EQ(cache.GetIfPresent(2000), std::nullopt);
}

// CacheTest.put_insert / put_replace_sameValue / put_replace_differentValue
// / putAll_replace: Put adds or replaces; each replaced value is reported
// kReplaced, once.
TEST(CaffeineCache, Put) {
  Context ctx;
  Cache cache(ctx.Opts());
  DropAtEnd drop{ctx.executor};
  Populate(cache);
  cache.Put(kAbsent, 1);
  EXPECT_EQ(cache.Size(), 11u);
  EXPECT_EQ(cache.GetIfPresent(kAbsent), 1);
  cache.Put(kFirst, -kFirst);  // the same value
  cache.Put(kMiddle, 99);      // a different one
  EXPECT_EQ(cache.Size(), 11u);
  EXPECT_EQ(cache.GetIfPresent(kMiddle), 99);
  EXPECT_EQ(ctx.removals.sorted(),
            Sorted({{kFirst, -kFirst, RemovalCause::kReplaced},
                    {kMiddle, -kMiddle, RemovalCause::kReplaced}}));
  EXPECT_TRUE(StatsAre(cache.Stats(), 2, 0, 0, 0));
}

// CacheTest.invalidate_absent / invalidate_present / invalidateAll /
// invalidateAll_partial / invalidateAll_full / invalidateAll_empty.
// Invalidate "Returns true iff the key had a value ..."; each value
// removed is reported kExplicit, once.
TEST(CaffeineCache, Invalidate) {
  Context ctx;
  Cache cache(ctx.Opts());
  DropAtEnd drop{ctx.executor};
  Populate(cache);
  EXPECT_FALSE(cache.Invalidate(kAbsent));
  EXPECT_EQ(cache.Size(), 10u);
  EXPECT_EQ(ctx.removals.size(), 0u);
  for (int k : {kFirst, kMiddle, kLast}) EXPECT_TRUE(cache.Invalidate(k));
  EXPECT_EQ(cache.Size(), 7u);
  cache.InvalidateAll(std::vector<int>{});
  EXPECT_EQ(cache.Size(), 7u);
  cache.InvalidateAll(std::vector<int>{2, 4, kAbsent});
  EXPECT_EQ(cache.Size(), 5u);
  cache.InvalidateAll();
  EXPECT_EQ(cache.Size(), 0u);
  Events want;
  for (int k = kFirst; k <= kLast; ++k) {
    want.emplace_back(k, -k, RemovalCause::kExplicit);
  }
  EXPECT_EQ(ctx.removals.sorted(), Sorted(want));
  EXPECT_EQ(cache.Stats().hits + cache.Stats().misses, 0u);
}

// CacheTest.invalidateAll_removalListener_writeback: a listener that puts
// key -> key back during InvalidateAll (it runs "with no cache lock
// held"): every original is reported once, and every write-back stays.
TEST(CaffeineCache, InvalidateAllListenerWriteback) {
  FakeClock clock;
  Removals removals;
  Cache* self = nullptr;
  Options o;
  o.clock = &clock;
  auto record = removals.Listener();
  o.removal_listener = [&](const int& k, const int& v, RemovalCause c) {
    record(k, v, c);
    self->Put(k, k);
  };
  Cache cache(o);
  self = &cache;
  Populate(cache);
  cache.InvalidateAll();
  Events want;
  for (int k = kFirst; k <= kLast; ++k) {
    want.emplace_back(k, -k, RemovalCause::kExplicit);
  }
  EXPECT_EQ(removals.sorted(), Sorted(want));
  EXPECT_EQ(cache.Size(), 10u);
  for (int k = kFirst; k <= kLast; ++k) EXPECT_EQ(cache.GetIfPresent(k), k);
}

// CacheTest.removalListener_error_log (and EvictionTest.removalListener_
// fails): a listener that throws is ignored; the cache goes on.
// CacheOptions::removal_listener: "Exceptions it throws are ignored."
TEST(CaffeineCache, ThrowingListenerIsIgnored) {
  FakeClock clock;
  std::atomic<int> calls{0};
  Options o;
  o.clock = &clock;
  o.max_entries = 3;
  o.removal_listener = [&](const int&, const int&, RemovalCause) {
    calls.fetch_add(1);
    throw LoadError(0);
  };
  Cache cache(o);
  for (int k = 0; k < 10; ++k) cache.Put(k, k);
  EXPECT_EQ(cache.Size(), 3u);
  EXPECT_EQ(calls.load(), 7);
  cache.Put(20, 1);
  cache.Put(20, 2);
  (void)cache.Invalidate(20);
  cache.InvalidateAll();
  EXPECT_EQ(cache.Size(), 0u);
  EXPECT_EQ(calls.load(), 12);  // each of the 12 values put, once
}

// The removal listener's contract under concurrent writers (Caffeine's
// RemovalListener / EvictionListener cases, run from two threads): every
// value put leaves the cache exactly once — replaced, invalidated, evicted
// or cleared — whatever the interleaving of Put, Invalidate and eviction.
// CacheOptions::removal_listener: "Called exactly once per value that
// leaves the cache".
TEST(CaffeineCache, ListenerExactlyOnceUnderConcurrentWrites) {
  constexpr int kThreads = 2;
  constexpr int kOps = 2000;
  FakeClock clock;
  std::mutex mu;
  std::vector<int> reported;  // guarded by mu
  Options o;
  o.clock = &clock;
  o.max_entries = 16;
  o.removal_listener = [&](const int&, const int& v, RemovalCause) {
    std::lock_guard<std::mutex> lock(mu);
    reported.push_back(v);
  };
  Cache cache(o);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&cache, t] {
        for (int i = 0; i < kOps; ++i) {
          const int key = (i * 7 + t) % 40;
          cache.Put(key, t * kOps + i);  // every value is distinct
          if (i % 5 == 0) (void)cache.Invalidate((key + 3) % 40);
        }
      });
    }
  }
  cache.InvalidateAll();
  EXPECT_EQ(cache.Size(), 0u);
  std::lock_guard<std::mutex> lock(mu);
  std::sort(reported.begin(), reported.end());
  EXPECT_EQ(std::adjacent_find(reported.begin(), reported.end()),
            reported.end());  // none twice
  EXPECT_EQ(reported.size(), static_cast<size_t>(kThreads * kOps));
}

// CacheTest.cleanUp: CleanUp of live values changes nothing.
TEST(CaffeineCache, CleanUp) {
  Context ctx;
  Cache cache(ctx.Opts());
  DropAtEnd drop{ctx.executor};
  Populate(cache);
  cache.CleanUp();
  EXPECT_EQ(cache.Size(), 10u);
  EXPECT_EQ(ctx.removals.size(), 0u);
}

// CacheTest.get_expired_throwsInterruptedException: Get(key, loader) of
// an expired value whose loader throws: the exception reaches the caller;
// the expired value is reported (kExpired) once; nothing is stored.
TEST(CaffeineCache, GetExpiredWithAThrowingLoader) {
  Context ctx;
  Options o = ctx.Opts();
  o.ttl = minutes(1);
  Cache cache(o);
  DropAtEnd drop{ctx.executor};
  cache.Put(1, 1);
  ctx.clock.Advance(minutes(2));
  EXPECT_THROW(cache.Get(1, []() -> int { throw Fatal{1}; }), Fatal);
  EXPECT_EQ(cache.Size(), 0u);
  EXPECT_EQ(ctx.removals.events(), (Events{{1, 1, RemovalCause::kExpired}}));
  EXPECT_EQ(cache.Stats().expirations, 1u);
}

// ---------------------------------------------------------------------------
// ExpirationTest, ExpireAfterWriteTest, ExpireAfterAccessTest

// The expiry configurations of Caffeine's mustExpireWithAnyOf: after write
// (ttl), after access, and variable (expire_after).
enum class Expiry { kWrite, kAccess, kVariable };
constexpr Expiry kExpiries[] = {Expiry::kWrite, Expiry::kAccess,
                                Expiry::kVariable};

Options Expiring(Options o, Expiry e, nanoseconds d) {
  switch (e) {
    case Expiry::kWrite:
      o.ttl = d;
      break;
    case Expiry::kAccess:
      o.expire_after_access = d;
      break;
    case Expiry::kVariable:
      o.expire_after = [d](const int&, const int&) { return d; };
      break;
  }
  return o;
}

// Every value reported kExpired is counted once in CacheStats::expirations.
void ExpectExpirationsCounted(const Cache& cache, const Removals& removals) {
  EXPECT_EQ(cache.Stats().expirations,
            removals.Count(RemovalCause::kExpired));
}

// ExpirationTest.expire_zero (and ExpireAfterVarTest.get_absent_expired):
// a value whose lifetime is zero is expired as soon as it is written.
// CacheOptions::expire_after: "negative means already expired" (zero, the
// write time itself, too; ttl and expire_after_access take 0 as "off").
TEST(CaffeineExpiration, ExpireZero) {
  for (nanoseconds d : {nanoseconds(0), nanoseconds(-1), nanoseconds::min()}) {
    SCOPED_TRACE(d.count());
    Context ctx;
    Cache cache(Expiring(ctx.Opts(), Expiry::kVariable, d), NegativeLoader{});
    DropAtEnd drop{ctx.executor};
    cache.Put(kAbsent, 1);
    EXPECT_EQ(cache.GetIfPresent(kAbsent), std::nullopt);
    EXPECT_EQ(cache.Size(), 0u);
    EXPECT_EQ(cache.Get(kAbsent + 1), -(kAbsent + 1));
    EXPECT_EQ(cache.Size(), 0u);
    EXPECT_EQ(ctx.removals.sorted(),
              Sorted({{kAbsent, 1, RemovalCause::kExpired},
                      {kAbsent + 1, -(kAbsent + 1), RemovalCause::kExpired}}));
    ExpectExpirationsCounted(cache, ctx.removals);
  }
}

// ExpirationTest.get_writeTime (Cache and AsyncCache): a load that takes
// longer than the lifetime still stores its value, which lives a whole
// lifetime from the load's end.
TEST(CaffeineExpiration, WriteTimeIsTheLoadsEnd) {
  for (Expiry e : {Expiry::kWrite, Expiry::kVariable}) {
    SCOPED_TRACE(static_cast<int>(e));
    Context ctx;
    Cache cache(Expiring(ctx.Opts(), e, minutes(1)), [&](int) {
      ctx.clock.Advance(minutes(5));
      return 7;
    });
    DropAtEnd drop{ctx.executor};
    EXPECT_EQ(cache.Get(kAbsent), 7);
    EXPECT_EQ(cache.Size(), 1u);
    EXPECT_EQ(cache.GetIfPresent(kAbsent), 7);
    ctx.clock.Advance(minutes(1) - nanoseconds(1));
    EXPECT_EQ(cache.Size(), 1u);
    ctx.clock.Advance(nanoseconds(1));
    EXPECT_EQ(cache.Size(), 0u);
  }
}

// ExpirationTest.put_insert / putAll_insert: past every lifetime, a Put of
// a populated key is an insert; every old value, the put key's included,
// is reported kExpired (not kReplaced).
TEST(CaffeineExpiration, PutInsertAfterExpiry) {
  for (Expiry e : kExpiries) {
    SCOPED_TRACE(static_cast<int>(e));
    Context ctx;
    Cache cache(Expiring(ctx.Opts(), e, minutes(1)));
    DropAtEnd drop{ctx.executor};
    Populate(cache);
    ctx.clock.Advance(minutes(2));
    cache.Put(kFirst, 1);
    EXPECT_EQ(cache.Size(), 1u);
    Events want;
    for (int k = kFirst; k <= kLast; ++k) {
      want.emplace_back(k, -k, RemovalCause::kExpired);
    }
    EXPECT_EQ(ctx.removals.sorted(), Sorted(want));
    ExpectExpirationsCounted(cache, ctx.removals);
  }
}

// ExpirationTest.put_replace / putAll_replace (and ExpireAfterVarTest.
// put_replace): a Put at 30 s gives its key a whole new lifetime; at 75 s
// the untouched values are gone, and exactly they are reported kExpired.
TEST(CaffeineExpiration, PutReplaceRenewsTheLifetime) {
  for (Expiry e : kExpiries) {
    SCOPED_TRACE(static_cast<int>(e));
    Context ctx;
    Cache cache(Expiring(ctx.Opts(), e, minutes(1)));
    DropAtEnd drop{ctx.executor};
    Populate(cache);
    ctx.clock.Advance(seconds(30));
    cache.Put(kFirst, 1);
    cache.Put(kAbsent, 1);
    ctx.clock.Advance(seconds(45));
    EXPECT_EQ(cache.GetIfPresent(kFirst), 1);
    EXPECT_EQ(cache.GetIfPresent(kAbsent), 1);
    EXPECT_EQ(cache.GetIfPresent(kMiddle), std::nullopt);
    cache.CleanUp();
    EXPECT_EQ(cache.Size(), 2u);
    EXPECT_EQ(ctx.removals.Count(RemovalCause::kExpired), 9u);
    EXPECT_EQ(ctx.removals.Count(RemovalCause::kReplaced), 1u);
    ExpectExpirationsCounted(cache, ctx.removals);
  }
}

// ExpirationTest.invalidate / invalidateAll_iterable / invalidateAll_full /
// cleanUp: removing expired values reports them kExpired; Invalidate of an
// expired value returns false ("true iff the key had a value (fresh or kept
// for stale_if_error)...").
TEST(CaffeineExpiration, InvalidateAndCleanUpReportExpired) {
  for (int how = 0; how < 4; ++how) {
    for (Expiry e : kExpiries) {
      SCOPED_TRACE(how * 10 + static_cast<int>(e));
      Context ctx;
      Cache cache(Expiring(ctx.Opts(), e, minutes(1)));
      DropAtEnd drop{ctx.executor};
      Populate(cache);
      ctx.clock.Advance(minutes(1));  // exactly the lifetime
      switch (how) {
        case 0:
          EXPECT_FALSE(cache.Invalidate(kFirst));
          break;
        case 1:
          cache.InvalidateAll(std::vector<int>{kFirst, kMiddle, kLast});
          break;
        case 2:
          cache.InvalidateAll();
          break;
        case 3:
          cache.CleanUp();
          break;
      }
      cache.CleanUp();
      EXPECT_EQ(cache.Size(), 0u);
      Events want;
      for (int k = kFirst; k <= kLast; ++k) {
        want.emplace_back(k, -k, RemovalCause::kExpired);
      }
      EXPECT_EQ(ctx.removals.sorted(), Sorted(want));
      ExpectExpirationsCounted(cache, ctx.removals);
    }
  }
}

// ExpirationTest.refresh (LoadingCache) and ExpireAfterVarTest.
// refresh_present: Refresh() of an expired value loads anew; the old value
// is reported kExpired.
TEST(CaffeineExpiration, RefreshOfAnExpiredValue) {
  for (Expiry e : kExpiries) {
    SCOPED_TRACE(static_cast<int>(e));
    Context ctx;
    Cache cache(Expiring(ctx.Opts(), e, minutes(1)), [](int k) { return k; });
    DropAtEnd drop{ctx.executor};
    Populate(cache);
    ctx.clock.Advance(minutes(2));
    std::shared_future<int> f = cache.Refresh(kFirst);
    ctx.executor.RunAll();
    EXPECT_EQ(f.get(), kFirst);
    EXPECT_EQ(cache.GetIfPresent(kFirst), kFirst);
    cache.CleanUp();
    Events want;
    for (int k = kFirst; k <= kLast; ++k) {
      want.emplace_back(k, -k, RemovalCause::kExpired);
    }
    EXPECT_EQ(ctx.removals.sorted(), Sorted(want));
    ExpectExpirationsCounted(cache, ctx.removals);
  }
}

// ExpirationTest.getAll (and ExpireAfterAccessTest.getAll_loading): GetAll
// of expired keys loads them again; the old values are reported kExpired.
TEST(CaffeineExpiration, GetAllOfExpiredKeys) {
  for (Expiry e : kExpiries) {
    SCOPED_TRACE(static_cast<int>(e));
    Context ctx;
    Cache cache(Expiring(ctx.Opts(), e, minutes(1)), [](int k) { return k; },
                [](std::span<const int> keys) {
                  Cache::Map m;
                  for (int k : keys) m.emplace(k, k);
                  return m;
                });
    DropAtEnd drop{ctx.executor};
    cache.Put(kFirst, -kFirst);
    ctx.clock.Advance(minutes(2));
    const std::vector<int> keys = {kFirst, kMiddle, kLast};
    EXPECT_EQ(Sorted(cache.GetAll(keys)),
              (std::map<int, int>{{kFirst, kFirst},
                                  {kMiddle, kMiddle},
                                  {kLast, kLast}}));
    EXPECT_EQ(ctx.removals.events(),
              (Events{{kFirst, -kFirst, RemovalCause::kExpired}}));
    ExpectExpirationsCounted(cache, ctx.removals);
  }
}

// ExpireAfterVarTest.expire_acrossZeroBoundary and ExpirationTest's
// StartTime.ONE_MINUTE_FROM_MAX: lifetimes are exact whatever the clock
// reads, before zero or near the end of its range.
TEST(CaffeineExpiration, ClockExtremes) {
  const Clock::time_point starts[] = {
      Clock::time_point(-minutes(1)),
      FakeClock::kEndOfTime - minutes(3),
  };
  for (Clock::time_point start : starts) {
    for (Expiry e : kExpiries) {
      SCOPED_TRACE(static_cast<int>(e));
      FakeClock clock(start);
      Removals removals;
      Options o;
      o.clock = &clock;
      o.removal_listener = removals.Listener();
      Cache cache(Expiring(o, e, minutes(1)));
      Populate(cache);
      clock.Advance(minutes(1) - nanoseconds(1));
      EXPECT_EQ(cache.Size(), 10u);
      clock.Advance(nanoseconds(1));
      cache.CleanUp();
      EXPECT_EQ(cache.Size(), 0u);
      EXPECT_EQ(removals.Count(RemovalCause::kExpired), 10u);
      Populate(cache);
      clock.Advance(minutes(2));  // to the end of the clock's range, or past 0
      cache.CleanUp();
      EXPECT_EQ(cache.Size(), 0u);
      EXPECT_EQ(removals.Count(RemovalCause::kExpired), 20u);
    }
  }
}

// ExpireAfterVarTest.expire_largeDelta: a year's jump expires everything.
TEST(CaffeineExpiration, LargeDelta) {
  for (Expiry e : kExpiries) {
    SCOPED_TRACE(static_cast<int>(e));
    Context ctx;
    Cache cache(Expiring(ctx.Opts(), e, minutes(1)));
    DropAtEnd drop{ctx.executor};
    Populate(cache);
    ctx.clock.Advance(hours(24 * 365));
    cache.CleanUp();
    EXPECT_EQ(cache.Size(), 0u);
    EXPECT_EQ(ctx.removals.Count(RemovalCause::kExpired), 10u);
  }
}

// ExpireAfterAccessTest.getIfPresent / get / getAll and ExpireAfterWriteTest
// .getIfPresent / get / getAll: a read at 30 s extends an after-access
// lifetime (so the key is alive at 75 s) and does not extend an after-write
// one (so it is gone at 60 s).
TEST(CaffeineExpiration, ReadsExtendOnlyAfterAccess) {
  for (int read = 0; read < 3; ++read) {
    for (Expiry e : {Expiry::kAccess, Expiry::kWrite}) {
      SCOPED_TRACE(read * 10 + static_cast<int>(e));
      Context ctx;
      Cache cache(Expiring(ctx.Opts(), e, minutes(1)), NegativeLoader{});
      DropAtEnd drop{ctx.executor};
      Populate(cache);
      ctx.clock.Advance(seconds(30));
      switch (read) {
        case 0:
          EXPECT_EQ(cache.GetIfPresent(kFirst), -kFirst);
          break;
        case 1:
          EXPECT_EQ(cache.Get(kFirst), -kFirst);
          break;
        case 2:
          EXPECT_EQ(cache.GetAll(std::vector<int>{kFirst}).at(kFirst),
                    -kFirst);
          break;
      }
      ctx.clock.Advance(seconds(30));  // 60 s
      cache.CleanUp();
      EXPECT_EQ(cache.Size(), e == Expiry::kAccess ? 1u : 0u);
      ctx.clock.Advance(seconds(15));  // 75 s
      EXPECT_EQ(cache.GetIfPresent(kFirst),
                e == Expiry::kAccess ? std::optional<int>(-kFirst)
                                     : std::nullopt);
      EXPECT_EQ(cache.GetIfPresent(kLast), std::nullopt);
      ExpectExpirationsCounted(cache, ctx.removals);
    }
  }
}

// ExpireAfterAccessTest: a write is an access too (CacheOptions::
// expire_after_access: "after the last read or write of the key"), and the
// value expires exactly that long after it.
TEST(CaffeineExpiration, WritesResetAfterAccess) {
  Context ctx;
  Cache cache(Expiring(ctx.Opts(), Expiry::kAccess, minutes(1)));
  DropAtEnd drop{ctx.executor};
  cache.Put(1, 1);
  ctx.clock.Advance(seconds(50));
  cache.Put(1, 2);
  ctx.clock.Advance(minutes(1) - nanoseconds(1));
  EXPECT_EQ(cache.Size(), 1u);
  ctx.clock.Advance(nanoseconds(1));
  EXPECT_EQ(cache.Size(), 0u);
  EXPECT_EQ(ctx.removals.events(), (Events{{1, 1, RemovalCause::kReplaced},
                                           {1, 2, RemovalCause::kExpired}}));
}

// ExpireAfterVarTest.expiry_bounds (Expire.FOREVER) and the boundaries
// TEAM.md asks every duration to be tested at: nanoseconds::max() in every
// duration option means "no limit" — a century later the value is still
// served, from the cache, with no reload. CacheOptions: "nanoseconds::max()
// means never"; herd/clock.h: "duration::max() ... means no limit".
TEST(CaffeineExpiration, ForeverDurations) {
  Context ctx;
  Options o = ctx.Opts();
  o.ttl = nanoseconds::max();
  o.expire_after_access = nanoseconds::max();
  o.refresh_after = nanoseconds::max() - nanoseconds(1);
  o.error_ttl = nanoseconds::max();
  o.stale_if_error = nanoseconds::max();
  o.fail_safe_backoff = nanoseconds::max();
  o.soft_timeout = nanoseconds::max();
  o.hard_timeout = nanoseconds::max();
  o.max_flight_age = nanoseconds::max();
  NegativeLoader loader;
  Cache cache(o, loader);
  DropAtEnd drop{ctx.executor};
  cache.Put(kFirst, 1);
  // With hard_timeout set, a blocking caller's load runs on the executor
  // while the caller waits (on the cache's clock).
  int got = 0;
  std::thread getter([&] { got = cache.Get(kAbsent); });
  ctx.clock.WaitForSleepers(1);
  EXPECT_EQ(ctx.executor.RunAll(), 1u);
  getter.join();
  EXPECT_EQ(got, -kAbsent);
  ctx.clock.Advance(hours(24 * 365 * 100));
  EXPECT_EQ(cache.Get(kFirst), 1);
  EXPECT_EQ(cache.GetIfPresent(kAbsent), -kAbsent);
  cache.CleanUp();
  EXPECT_EQ(cache.Size(), 2u);
  EXPECT_EQ(ctx.executor.Pending(), 0u);
  EXPECT_EQ(loader.count(), 1);
  EXPECT_EQ(ctx.removals.size(), 0u);
}

// ---------------------------------------------------------------------------
// ExpireAfterVarTest: expire_after is asked on every write (create,
// update, reload), never on a read; what it throws, and its extremes.

// ExpireAfterVarTest.get_absent / get_present / getIfPresent / getAll_present
// / put_replace / refresh_present: one call per write, none per read.
TEST(CaffeineExpireAfterVar, AskedOnWritesNotReads) {
  Context ctx;
  std::atomic<int> asked{0};
  Options o = ctx.Opts();
  o.expire_after = [&](const int&, const int&) {
    asked.fetch_add(1);
    return minutes(1);
  };
  Cache cache(o, NegativeLoader{});
  DropAtEnd drop{ctx.executor};
  cache.Get(kFirst);  // create
  EXPECT_EQ(asked.load(), 1);
  cache.Get(kFirst);
  cache.GetIfPresent(kFirst);
  cache.GetAll(std::vector<int>{kFirst});
  EXPECT_EQ(asked.load(), 1);  // reads
  cache.Put(kFirst, 5);  // update
  EXPECT_EQ(asked.load(), 2);
  (void)cache.Refresh(kFirst);
  ctx.executor.RunAll();  // reload
  EXPECT_EQ(asked.load(), 3);
}

// ExpireAfterVarTest.put_insert_expiryFails / put_update_expiryFails /
// put_insert_replaceExpired_expiryFails: a Put whose expire_after throws
// throws it and changes nothing: the old value stays, with its old
// deadline. CacheOptions::expire_after: "(Put: Put throws)"; Put: "with
// nothing stored".
TEST(CaffeineExpireAfterVar, PutExpiryFails) {
  Context ctx;
  std::atomic<bool> fail{false};
  Options o = ctx.Opts();
  o.expire_after = [&](const int&, const int&) -> nanoseconds {
    if (fail.load()) throw LoadError(0);
    return minutes(1);
  };
  Cache cache(o);
  DropAtEnd drop{ctx.executor};
  Populate(cache);
  ctx.clock.Advance(seconds(30));
  fail.store(true);
  EXPECT_THROW(cache.Put(kAbsent, 1), LoadError);  // insert
  EXPECT_THROW(cache.Put(kFirst, 1), LoadError);   // update
  EXPECT_EQ(cache.GetIfPresent(kAbsent), std::nullopt);
  EXPECT_EQ(cache.GetIfPresent(kFirst), -kFirst);
  EXPECT_EQ(cache.Size(), 10u);
  ctx.clock.Advance(seconds(30) - nanoseconds(1));
  EXPECT_EQ(cache.Size(), 10u);
  ctx.clock.Advance(nanoseconds(1));  // the old deadline holds
  EXPECT_EQ(cache.Size(), 0u);
  EXPECT_THROW(cache.Put(kFirst, 1), LoadError);  // over an expired value
  EXPECT_EQ(cache.Size(), 0u);
  EXPECT_EQ(ctx.removals.Count(RemovalCause::kExpired), 10u);
  EXPECT_EQ(ctx.removals.size(), 10u);
}

// ExpireAfterVarTest.get_expiryFails_create / getAll_expiryFails /
// getAll_expiryFails_newEntries / refresh_expiryFails_absent /
// refresh_expiryFails_present. Caffeine fails the call; herd's contract:
// "if it throws, the value is delivered but not stored" — the callers get
// the loaded value; the cache is unchanged.
TEST(CaffeineExpireAfterVar, LoadExpiryFails) {
  Context ctx;
  std::atomic<bool> fail{false};
  Options o = ctx.Opts();
  o.expire_after = [&](const int&, const int&) -> nanoseconds {
    if (fail.load()) throw LoadError(0);
    return minutes(1);
  };
  Cache cache(o, [](int k) { return k; }, [](std::span<const int> keys) {
    Cache::Map m;
    for (int k : keys) m.emplace(k, k);
    return m;
  });
  DropAtEnd drop{ctx.executor};
  Populate(cache);
  fail.store(true);
  EXPECT_EQ(cache.Get(kAbsent), kAbsent);
  EXPECT_EQ(cache.Get(kAbsent + 1, [] { return 3; }), 3);
  EXPECT_EQ(Sorted(cache.GetAll(std::vector<int>{2000, 2001})),
            (std::map<int, int>{{2000, 2000}, {2001, 2001}}));
  std::shared_future<int> absent = cache.Refresh(3000);
  std::shared_future<int> present = cache.Refresh(kFirst);
  ctx.executor.RunAll();
  EXPECT_EQ(absent.get(), 3000);
  EXPECT_EQ(present.get(), kFirst);
  EXPECT_EQ(cache.Size(), 10u);
  EXPECT_EQ(cache.GetIfPresent(kFirst), -kFirst);
  for (int k : {kAbsent, kAbsent + 1, 2000, 2001, 3000}) {
    EXPECT_EQ(cache.GetIfPresent(k), std::nullopt) << k;
  }
  EXPECT_EQ(ctx.removals.size(), 0u);
  EXPECT_EQ(cache.Stats().load_failures, 0u);
}

// ExpireAfterVarTest.refresh_present_expired: a reload whose lifetime is
// negative replaces the value (kReplaced) and is itself expired at once
// (kExpired).
TEST(CaffeineExpireAfterVar, RefreshToAnExpiredValue) {
  Context ctx;
  std::atomic<bool> expired{false};
  Options o = ctx.Opts();
  o.expire_after = [&](const int&, const int&) {
    return expired.load() ? nanoseconds::min() : nanoseconds(minutes(1));
  };
  Cache cache(o, [](int k) { return -k; });
  DropAtEnd drop{ctx.executor};
  cache.Put(kAbsent, 1);
  expired.store(true);
  (void)cache.Refresh(kAbsent);
  ctx.executor.RunAll();
  ctx.clock.Advance(seconds(2));
  cache.CleanUp();
  EXPECT_EQ(cache.Size(), 0u);
  EXPECT_EQ(ctx.removals.sorted(),
            Sorted({{kAbsent, 1, RemovalCause::kReplaced},
                    {kAbsent, -kAbsent, RemovalCause::kExpired}}));
}

// ExpireAfterVarTest (Expire.FOREVER) and CacheOptions::expire_after:
// "nanoseconds::max() means never"; every lifetime is per entry.
TEST(CaffeineExpireAfterVar, EachEntryItsOwnLifetime) {
  Context ctx;
  Options o = ctx.Opts();
  o.expire_after = [](const int& k, const int&) -> nanoseconds {
    if (k == 0) return nanoseconds::max();
    if (k == 1) return nanoseconds::max() / 2;  // ~146 years
    return seconds(k);
  };
  Cache cache(o);
  DropAtEnd drop{ctx.executor};
  for (int k = 0; k < 5; ++k) cache.Put(k, k);
  ctx.clock.Advance(seconds(2) - nanoseconds(1));
  EXPECT_EQ(cache.Size(), 5u);
  ctx.clock.Advance(nanoseconds(1));  // 2 expires
  EXPECT_EQ(cache.Size(), 4u);
  ctx.clock.Advance(seconds(2));  // 3 and 4
  EXPECT_EQ(cache.Size(), 2u);
  ctx.clock.Advance(hours(24 * 365 * 100));
  EXPECT_EQ(cache.Size(), 2u);
  EXPECT_EQ(cache.GetIfPresent(0), 0);
  EXPECT_EQ(cache.GetIfPresent(1), 1);
}

// ---------------------------------------------------------------------------
// RefreshAfterWriteTest

Options Refreshing(Context& ctx) {
  Options o = ctx.Opts();
  o.refresh_after = minutes(1);
  return o;
}

// RefreshAfterWriteTest.refreshIfNeeded_nonblocking / get_delayed /
// get_immediate / refreshIfNeeded_replace: a read of a due value returns it
// at once; however many reads follow, one reload runs; when it lands the
// new value is read and the old reported kReplaced.
TEST(CaffeineRefreshAfterWrite, NonBlockingAndOnce) {
  Context ctx;
  std::atomic<int> reloads{0};
  Cache cache(Refreshing(ctx), [&](int) { return 100 + reloads.fetch_add(1); });
  DropAtEnd drop{ctx.executor};
  cache.Put(kAbsent, 1);
  ctx.clock.Advance(minutes(2));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(cache.Get(kAbsent), 1);
  EXPECT_EQ(ctx.executor.Pending(), 1u);
  ctx.executor.RunAll();
  EXPECT_EQ(reloads.load(), 1);
  EXPECT_EQ(cache.Get(kAbsent), 100);
  EXPECT_EQ(ctx.removals.events(),
            (Events{{kAbsent, 1, RemovalCause::kReplaced}}));
  ctx.clock.Advance(minutes(2));
  EXPECT_EQ(cache.Get(kAbsent), 100);
  ctx.executor.RunAll();
  EXPECT_EQ(cache.Get(kAbsent), 101);
  EXPECT_EQ(cache.Stats().refreshes, 2u);
  EXPECT_EQ(cache.Stats().stale_refresh_ahead, 6u);
}

// RefreshAfterWriteTest.refreshIfNeeded_failure: a reload that fails five
// times leaves the value, and each later due read starts one more.
TEST(CaffeineRefreshAfterWrite, Failure) {
  Context ctx;
  std::atomic<int> reloads{0};
  Cache cache(Refreshing(ctx), [&](int) -> int {
    reloads.fetch_add(1);
    throw LoadError(0);
  });
  DropAtEnd drop{ctx.executor};
  cache.Put(kAbsent, kAbsent);
  for (int i = 0; i < 5; ++i) {
    ctx.clock.Advance(minutes(2));
    EXPECT_EQ(cache.Get(kAbsent), kAbsent);
    ctx.executor.RunAll();
    EXPECT_EQ(reloads.load(), i + 1);
  }
  EXPECT_EQ(cache.Stats().refresh_failures, 5u);
  EXPECT_EQ(ctx.removals.size(), 0u);
}

// RefreshAfterWriteTest.refreshIfNeeded_replaced / put: a Put while the
// reload is queued or running wins; only the Put's replacement is reported.
TEST(CaffeineRefreshAfterWrite, PutDuringReloadWins) {
  Context ctx;
  Cache cache(Refreshing(ctx), [](int) { return 3; });
  DropAtEnd drop{ctx.executor};
  cache.Put(kAbsent, 1);
  ctx.clock.Advance(minutes(2));
  EXPECT_EQ(cache.Get(kAbsent), 1);
  cache.Put(kAbsent, 2);
  ctx.executor.RunAll();
  EXPECT_EQ(cache.GetIfPresent(kAbsent), 2);
  EXPECT_EQ(ctx.removals.events(),
            (Events{{kAbsent, 1, RemovalCause::kReplaced}}));
  EXPECT_EQ(cache.Stats().load_successes, 1u);
}

// RefreshAfterWriteTest.refreshIfNeeded_rejected_preservesWriteTime (and
// its sameInstance / sameReload variants): a reload discarded by a Put
// does not move the Put's write time: the value expires exactly ttl after
// the Put.
TEST(CaffeineRefreshAfterWrite, RejectedReloadPreservesWriteTime) {
  Context ctx;
  Options o = Refreshing(ctx);
  o.ttl = minutes(5);
  Cache cache(o, [](int) { return 3; });
  DropAtEnd drop{ctx.executor};
  cache.Put(kAbsent, 1);
  ctx.clock.Advance(minutes(2));
  EXPECT_EQ(cache.Get(kAbsent), 1);
  cache.Put(kAbsent, 1);  // written at t = 2 min
  ctx.clock.Advance(seconds(30));
  ctx.executor.RunAll();  // the discarded reload lands at 2.5 min
  ctx.clock.Advance(minutes(5) - seconds(30) - nanoseconds(1));
  EXPECT_EQ(cache.Size(), 1u);
  ctx.clock.Advance(nanoseconds(1));  // 5 min after the Put
  EXPECT_EQ(cache.Size(), 0u);
}

// RefreshAfterWriteTest.refresh_sameInstance_updatesWriteTime: a reload
// that lands is a write, even of an equal value: the lifetime restarts
// when it lands.
TEST(CaffeineRefreshAfterWrite, ReloadUpdatesWriteTime) {
  Context ctx;
  Options o = ctx.Opts();
  o.ttl = minutes(1);
  Cache cache(o, [](int) { return 1; });
  DropAtEnd drop{ctx.executor};
  cache.Put(kAbsent, 1);
  (void)cache.Refresh(kAbsent);
  ctx.clock.Advance(seconds(30));
  ctx.executor.RunAll();
  ctx.clock.Advance(minutes(1) - nanoseconds(1));
  EXPECT_EQ(cache.Size(), 1u);
  ctx.clock.Advance(nanoseconds(1));
  EXPECT_EQ(cache.Size(), 0u);
  EXPECT_EQ(ctx.removals.events(), (Events{{kAbsent, 1, RemovalCause::kReplaced},
                                           {kAbsent, 1, RemovalCause::kExpired}}));
}

// RefreshAfterWriteTest.getIfPresent_immediate / _delayed /
// getAllPresent_*: Caffeine's getIfPresent starts a refresh; herd's
// GetIfPresent "never loads, never waits, never refreshes".
TEST(CaffeineRefreshAfterWrite, GetIfPresentDoesNotRefresh) {
  Context ctx;
  Cache cache(Refreshing(ctx), NegativeLoader{});
  DropAtEnd drop{ctx.executor};
  Populate(cache);
  ctx.clock.Advance(seconds(75));
  EXPECT_EQ(cache.GetIfPresent(kMiddle), -kMiddle);
  EXPECT_EQ(ctx.executor.Scheduled(), 0u);
  EXPECT_EQ(cache.Stats().stale_refresh_ahead, 1u);
}

// RefreshAfterWriteTest.getFunc_delayed / getFunc_immediate: Get(key,
// loader) of a due value returns it at once and starts a reload with the
// bound loader; the call's loader is not used ("refreshes of the key use
// the bound loader").
TEST(CaffeineRefreshAfterWrite, GetWithLoaderRefreshesWithTheBoundLoader) {
  Context ctx;
  Cache cache(Refreshing(ctx), [](int k) { return k; });
  DropAtEnd drop{ctx.executor};
  Populate(cache);
  ctx.clock.Advance(seconds(75));
  int calls = 0;
  EXPECT_EQ(cache.Get(kLast,
                      [&] {
                        ++calls;
                        return 0;
                      }),
            -kLast);
  EXPECT_EQ(ctx.executor.Pending(), 1u);
  ctx.executor.RunAll();
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(cache.GetIfPresent(kLast), kLast);
  EXPECT_EQ(ctx.removals.events(),
            (Events{{kLast, -kLast, RemovalCause::kReplaced}}));
}

// RefreshAfterWriteTest.getAll_delayed / getAll_immediate: GetAll of due
// values returns them at once and starts one reload per key.
TEST(CaffeineRefreshAfterWrite, GetAll) {
  Context ctx;
  Cache cache(Refreshing(ctx), [](int k) { return k; });
  DropAtEnd drop{ctx.executor};
  Populate(cache);
  ctx.clock.Advance(seconds(75));
  const std::vector<int> keys = {kFirst, kMiddle, kLast};
  EXPECT_EQ(Sorted(cache.GetAll(keys)),
            (std::map<int, int>{{kFirst, -kFirst},
                                {kMiddle, -kMiddle},
                                {kLast, -kLast}}));
  EXPECT_EQ(ctx.executor.RunAll(), 3u);
  EXPECT_EQ(Sorted(cache.GetAll(keys)),
            (std::map<int, int>{{kFirst, kFirst},
                                {kMiddle, kMiddle},
                                {kLast, kLast}}));
  EXPECT_EQ(ctx.removals.sorted(),
            Sorted({{kFirst, -kFirst, RemovalCause::kReplaced},
                    {kMiddle, -kMiddle, RemovalCause::kReplaced},
                    {kLast, -kLast, RemovalCause::kReplaced}}));
}

// RefreshAfterWriteTest.get_slowRefresh / get_sameFuture: while a reload
// runs longer than another refresh_after, reads keep the old value and no
// second reload starts.
TEST(CaffeineRefreshAfterWrite, SlowRefresh) {
  Context ctx;
  HeldLoad held;
  std::atomic<int> reloads{0};
  Cache cache(Refreshing(ctx), [&](int) {
    reloads.fetch_add(1);
    held.Enter();
    return 2;
  });
  DropAtEnd drop{ctx.executor};
  cache.Put(kAbsent, 1);
  ctx.clock.Advance(minutes(2));
  EXPECT_EQ(cache.Get(kAbsent), 1);
  std::thread runner([&] { ctx.executor.RunAll(); });
  held.AwaitEntered();
  ctx.clock.Advance(minutes(2));
  EXPECT_EQ(cache.Get(kAbsent), 1);
  EXPECT_EQ(cache.GetIfPresent(kAbsent), 1);
  EXPECT_EQ(ctx.executor.Pending(), 0u);
  held.Release();
  runner.join();
  EXPECT_EQ(reloads.load(), 1);
  EXPECT_EQ(cache.GetIfPresent(kAbsent), 2);
}

// CacheStats::refresh_failures: "refreshes that threw, or were never run" —
// a reload the executor drops or refuses is a refresh failure, and the
// value stays (RefreshAfterWriteTest.refreshIfNeeded_cancel_noLog /
// refreshIfNeeded_rejected's executor half).
TEST(CaffeineRefreshAfterWrite, UnrunReloadIsARefreshFailure) {
  Context ctx;
  std::atomic<int> reloads{0};
  Cache cache(Refreshing(ctx), [&](int k) {
    reloads.fetch_add(1);
    return k;
  });
  DropAtEnd drop{ctx.executor};
  cache.Put(kAbsent, 1);
  ctx.clock.Advance(minutes(2));
  EXPECT_EQ(cache.Get(kAbsent), 1);
  ctx.executor.DropAll();  // dropped: never run
  EXPECT_EQ(cache.Stats().refresh_failures, 1u);
  EXPECT_EQ(cache.Get(kAbsent), 1);  // kept; this read starts another
  ctx.executor.DropAll();
  EXPECT_EQ(cache.Stats().refresh_failures, 2u);
  ctx.executor.RefuseNext(std::make_exception_ptr(LoadError(9)));
  std::shared_future<int> f = cache.Refresh(kAbsent);  // refused
  EXPECT_THROW(f.get(), LoadError);
  EXPECT_EQ(cache.Stats().refresh_failures, 3u);
  EXPECT_EQ(cache.GetIfPresent(kAbsent), 1);
  EXPECT_EQ(reloads.load(), 0);
  EXPECT_EQ(cache.Stats().refreshes, 0u);
}

// ---------------------------------------------------------------------------
// EvictionTest

// EvictionTest.evict (Maximum.ONE / FULL, weigher DISABLED / TEN): after
// putting as many new keys as the bound, the bound holds; exactly the
// values no longer held are reported kEvicted, and counted.
TEST(CaffeineEviction, Evict) {
  for (bool weighted : {false, true}) {
    SCOPED_TRACE(weighted);
    Context ctx;
    Options o = ctx.Opts();
    if (weighted) {
      o.max_weight = 100;
      o.weigher = [](const int&, const int&) -> uint64_t { return 10; };
    } else {
      o.max_entries = 10;
    }
    Cache cache(o);
    DropAtEnd drop{ctx.executor};
    Populate(cache);
    for (int k : Absent(10)) cache.Put(k, -k);
    EXPECT_EQ(cache.Size(), 10u);
    EXPECT_EQ(cache.Weight(), weighted ? 100u : 10u);
    Events want;
    for (int k = kFirst; k <= kLast; ++k) {
      if (!cache.GetIfPresent(k)) want.emplace_back(k, -k, RemovalCause::kEvicted);
    }
    for (int k : Absent(10)) {
      if (!cache.GetIfPresent(k)) want.emplace_back(k, -k, RemovalCause::kEvicted);
    }
    EXPECT_EQ(want.size(), 10u);
    EXPECT_EQ(ctx.removals.sorted(), Sorted(want));
    EXPECT_EQ(cache.Stats().evictions, 10u);
    EXPECT_EQ(cache.Stats().eviction_weight, weighted ? 100u : 10u);
  }
}

// EvictionTest.evict_weighted_entryTooBig: with max_weight 10, values of
// weight 9 and 1 fit; one of weight 20 is evicted at once, alone.
TEST(CaffeineEviction, EntryTooBig) {
  Context ctx;
  Options o = ctx.Opts();
  o.max_weight = 10;
  o.weigher = [](const int&, const int& v) -> uint64_t { return v; };
  Cache cache(o);
  DropAtEnd drop{ctx.executor};
  cache.Put(9, 9);
  cache.Put(1, 1);
  EXPECT_EQ(cache.Size(), 2u);
  EXPECT_EQ(cache.Weight(), 10u);
  cache.Put(20, 20);
  EXPECT_EQ(cache.Size(), 2u);
  EXPECT_EQ(cache.Weight(), 10u);
  EXPECT_EQ(ctx.removals.events(), (Events{{20, 20, RemovalCause::kEvicted}}));
  EXPECT_EQ(cache.Stats().evictions, 1u);
  EXPECT_EQ(cache.Stats().eviction_weight, 20u);
}

// EvictionTest.put_zeroWeight / put / put_sameWeight / put_changeWeight /
// invalidateAll: Weight() sums the weigher's values as they change; a zero
// weight is held and weighs nothing.
TEST(CaffeineEviction, Weights) {
  Context ctx;
  Options o = ctx.Opts();
  o.max_weight = 100;
  o.weigher = [](const int&, const int& v) -> uint64_t { return v; };
  Cache cache(o);
  DropAtEnd drop{ctx.executor};
  cache.Put(0, 0);
  EXPECT_EQ(cache.GetIfPresent(0), 0);
  EXPECT_EQ(cache.Size(), 1u);
  EXPECT_EQ(cache.Weight(), 0u);
  cache.Put(1, 3);
  EXPECT_EQ(cache.Weight(), 3u);
  cache.Put(2, 1);
  cache.Put(1, 3);  // same weight
  EXPECT_EQ(cache.Weight(), 4u);
  cache.Put(1, 4);  // changed weight
  EXPECT_EQ(cache.Weight(), 5u);
  EXPECT_EQ(cache.Size(), 3u);
  cache.InvalidateAll();
  EXPECT_EQ(cache.Size(), 0u);
  EXPECT_EQ(cache.Weight(), 0u);
}

// EvictionTest.put_weigherFails_insert / put_weigherFails_update: a Put
// whose weigher throws throws it and changes nothing, weight included.
// CacheOptions::weigher: "(Put: Put throws)".
TEST(CaffeineEviction, PutWeigherFails) {
  Context ctx;
  std::atomic<bool> fail{false};
  Options o = ctx.Opts();
  o.max_weight = 100;
  o.weigher = [&](const int&, const int&) -> uint64_t {
    if (fail.load()) throw LoadError(0);
    return 1;
  };
  Cache cache(o);
  DropAtEnd drop{ctx.executor};
  Populate(cache);
  fail.store(true);
  EXPECT_THROW(cache.Put(kAbsent, 1), LoadError);
  EXPECT_THROW(cache.Put(kFirst, 1), LoadError);
  EXPECT_EQ(cache.GetIfPresent(kAbsent), std::nullopt);
  EXPECT_EQ(cache.GetIfPresent(kFirst), -kFirst);
  EXPECT_EQ(cache.Size(), 10u);
  EXPECT_EQ(cache.Weight(), 10u);
  EXPECT_EQ(ctx.removals.size(), 0u);
}

// EvictionTest.refresh_weigherFails_absent / _present and
// getAll_weigherFails(_newEntries): a loaded value whose weigher throws is
// "delivered but not stored" (Caffeine fails getAll instead); the cache is
// unchanged.
TEST(CaffeineEviction, LoadWeigherFails) {
  Context ctx;
  std::atomic<bool> fail{false};
  Options o = ctx.Opts();
  o.max_weight = 100;
  o.weigher = [&](const int&, const int&) -> uint64_t {
    if (fail.load()) throw LoadError(0);
    return 1;
  };
  Cache cache(o, [](int k) { return k; }, [](std::span<const int> keys) {
    Cache::Map m;
    for (int k : keys) m.emplace(k, k);
    return m;
  });
  DropAtEnd drop{ctx.executor};
  Populate(cache);
  fail.store(true);
  std::shared_future<int> absent = cache.Refresh(kAbsent);
  std::shared_future<int> present = cache.Refresh(kFirst);
  ctx.executor.RunAll();
  EXPECT_EQ(absent.get(), kAbsent);
  EXPECT_EQ(present.get(), kFirst);
  EXPECT_EQ(cache.GetAll(Absent(3)).size(), 3u);
  EXPECT_EQ(cache.Size(), 10u);
  EXPECT_EQ(cache.Weight(), 10u);
  EXPECT_EQ(cache.GetIfPresent(kFirst), -kFirst);
  EXPECT_EQ(cache.GetIfPresent(kAbsent), std::nullopt);
  EXPECT_EQ(ctx.removals.size(), 0u);
}

}  // namespace
}  // namespace herd
