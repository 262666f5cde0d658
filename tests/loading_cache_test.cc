// Copyright 2026 The herd Authors.
//
// Tests of herd::LoadingCache against the contract in
// herd/loading_cache.h. Time is a FakeClock; background work runs on an
// executor the test drives (tests/testing/manual_executor.h); threads are
// ordered with latches, promises and FakeClock::WaitForSleepers (a waiter
// blocked on a load sleeps on the cache's clock), never with sleeps. Counts
// are exact.

#include "herd/loading_cache.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "herd/clock.h"
#include "herd/errors.h"
#include "herd/internal/lru_policy.h"
#include "tests/testing/held_load.h"
#include "tests/testing/manual_executor.h"
#include "tests/testing/sync.h"

namespace herd {
namespace {

using ::herd::test::AwaitCondition;
using ::herd::test::HeldLoad;
using ::herd::test::ManualExecutor;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

using Cache = LoadingCache<int, std::string>;
using Options = CacheOptions<int, std::string>;

// A loader's own exception, with a payload.
struct LoadError : std::runtime_error {
  explicit LoadError(int c) : std::runtime_error("load failed"), code(c) {}
  int code;
};

// A loader that counts its calls and answers "<key>:<n>" (n = call number).
struct CountingLoader {
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);
  std::string operator()(int key) const {
    return std::to_string(key) + ":" + std::to_string(calls->fetch_add(1) + 1);
  }
  int count() const { return calls->load(); }
};

Options Opts(const Clock* clock) {
  Options o;
  o.ttl = seconds(10);
  o.clock = clock;
  return o;
}

std::string Take(std::shared_future<std::string> f) { return f.get(); }

// ---------------------------------------------------------------------------
// The loader bound at construction, and the calls.

// loading_cache.h: Get(key) answers from the cache while the value is
// fresh; the first call loads. Stats count one miss, one hit, one load.
TEST(LoadingCache, GetLoadsOnceThenHits) {
  FakeClock clock;
  CountingLoader loader;
  Cache cache(Opts(&clock), loader);
  EXPECT_EQ(cache.Get(1), "1:1");
  EXPECT_EQ(cache.Get(1), "1:1");
  EXPECT_EQ(loader.count(), 1);
  const CacheStats s = cache.Stats();
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.load_successes, 1u);
  EXPECT_EQ(s.load_failures, 0u);
  EXPECT_EQ(s.loads, 1u);
  EXPECT_DOUBLE_EQ(s.hit_rate(), 0.5);
  EXPECT_DOUBLE_EQ(s.miss_rate(), 0.5);
}

// loading_cache.h: the bound loader may take a std::stop_token.
TEST(LoadingCache, BoundLoaderMayTakeAStopToken) {
  FakeClock clock;
  Cache cache(Opts(&clock), [](int k, std::stop_token st) {
    return std::to_string(k) + (st.stop_possible() ? "+token" : "");
  });
  EXPECT_EQ(cache.Get(3), "3+token");
}

// loading_cache.h: LoadingCache(options) binds no loader: Get(key),
// GetAsync, GetThen, GetAll and Refresh throw std::logic_error; the rest
// works.
TEST(LoadingCache, WithoutABoundLoaderOnlyPerCallLoadsWork) {
  FakeClock clock;
  Cache cache(Opts(&clock));
  EXPECT_THROW(cache.Get(1), std::logic_error);
  EXPECT_THROW(cache.GetAsync(1), std::logic_error);
  EXPECT_THROW(cache.GetThen(1, [](const std::string*, std::exception_ptr) {}),
               std::logic_error);
  const int keys[] = {1};
  EXPECT_THROW(cache.GetAll(keys), std::logic_error);
  EXPECT_THROW(cache.Refresh(1), std::logic_error);
  EXPECT_EQ(cache.Get(1, [] { return std::string("one"); }), "one");
  EXPECT_EQ(cache.GetIfPresent(1), "one");
  cache.Put(2, "two");
  EXPECT_EQ(cache.Size(), 2u);
}

// loading_cache.h: an empty loader throws std::invalid_argument, bound or
// per call.
TEST(LoadingCache, EmptyLoaderIsInvalid) {
  FakeClock clock;
  std::function<std::string(int)> empty;
  EXPECT_THROW(Cache(Opts(&clock), empty), std::invalid_argument);
  Cache cache(Opts(&clock));
  std::function<std::string()> none;
  EXPECT_THROW(cache.Get(1, none), std::invalid_argument);
  EXPECT_EQ(cache.Size(), 0u);
}

// loading_cache.h: Get(key, loader) takes Value(), Value(std::stop_token),
// Value(const Key&) or Value(const Key&, std::stop_token).
TEST(LoadingCache, PerCallLoaderForms) {
  FakeClock clock;
  Cache cache(Opts(&clock));
  EXPECT_EQ(cache.Get(1, [] { return std::string("a"); }), "a");
  EXPECT_EQ(cache.Get(2, [](std::stop_token) { return std::string("b"); }),
            "b");
  EXPECT_EQ(cache.Get(3, [](int k) { return std::to_string(k); }), "3");
  EXPECT_EQ(cache.Get(4, [](const int& k, std::stop_token) {
              return std::to_string(k * 2);
            }),
            "8");
}

// loading_cache.h: Get(key, loader) is answered from the cache like
// Get(key): the call's loader runs only on a miss.
TEST(LoadingCache, PerCallLoaderRunsOnlyOnAMiss) {
  FakeClock clock;
  CountingLoader bound;
  Cache cache(Opts(&clock), bound);
  EXPECT_EQ(cache.Get(1), "1:1");
  int calls = 0;
  EXPECT_EQ(cache.Get(1,
                      [&] {
                        ++calls;
                        return std::string("x");
                      }),
            "1:1");
  EXPECT_EQ(calls, 0);
}

// CacheOptions: every REQUIRES is checked by the constructor.
TEST(LoadingCache, RejectsBadOptions) {
  FakeClock clock;
  auto bad = [&](auto edit) {
    Options o = Opts(&clock);
    edit(o);
    EXPECT_THROW(Cache(o, CountingLoader{}), std::invalid_argument);
  };
  bad([](Options& o) { o.ttl = nanoseconds(-1); });
  bad([](Options& o) { o.expire_after_access = nanoseconds(-1); });
  bad([](Options& o) { o.refresh_after = seconds(10); });  // == ttl
  bad([](Options& o) { o.refresh_after = nanoseconds(-1); });
  bad([](Options& o) { o.early_refresh_beta = -1; });
  bad([](Options& o) { o.early_refresh_beta = std::nan(""); });
  bad([](Options& o) { o.error_ttl = nanoseconds(-1); });
  bad([](Options& o) { o.stale_if_error = nanoseconds(-1); });
  bad([](Options& o) { o.fail_safe_backoff = nanoseconds(-1); });
  bad([](Options& o) { o.soft_timeout = nanoseconds(-1); });
  bad([](Options& o) { o.hard_timeout = nanoseconds(-1); });
  bad([](Options& o) { o.extra_execution_rate = 1.5; });
  bad([](Options& o) { o.extra_execution_rate = std::nan(""); });
  bad([](Options& o) { o.max_flight_age = nanoseconds(-1); });
  bad([](Options& o) {
    o.max_entries = 1;
    o.max_weight = 1;
  });
  bad([](Options& o) { o.max_weight = 10; });  // no weigher
  Options ok = Opts(&clock);
  ok.ttl = nanoseconds(0);  // no expiry
  ok.refresh_after = seconds(5);
  EXPECT_NO_THROW(Cache(ok, CountingLoader{}));
}

// ---------------------------------------------------------------------------
// Concurrent misses share one load (Guava, Caffeine).

// loading_cache.h: "every concurrent caller of a key shares one load, its
// value or exception".
TEST(LoadingCache, ConcurrentMissesShareOneLoad) {
  constexpr int kCallers = 8;
  FakeClock clock;
  HeldLoad held;
  Cache cache(Opts(&clock), [&](int k) {
    held.Enter();
    return std::to_string(k);
  });
  std::vector<std::string> got(kCallers);
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kCallers; ++i) {
      threads.emplace_back([&, i] { got[i] = cache.Get(7); });
    }
    held.AwaitEntered();
    clock.WaitForSleepers(kCallers - 1);  // all but the loader are waiting
    EXPECT_EQ(held.entered(), 1);
    held.Release();
  }
  for (const std::string& v : got) EXPECT_EQ(v, "7");
  EXPECT_EQ(held.entered(), 1);
  EXPECT_EQ(cache.Stats().misses, static_cast<uint64_t>(kCallers));
  EXPECT_EQ(cache.Stats().load_successes, 1u);
}

TEST(LoadingCache, ConcurrentMissesShareOneException) {
  constexpr int kCallers = 6;
  FakeClock clock;
  HeldLoad held;
  Cache cache(Opts(&clock), [&](int) -> std::string {
    held.Enter();
    throw LoadError(42);
  });
  std::vector<const void*> objects(kCallers);
  std::vector<int> codes(kCallers);
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kCallers; ++i) {
      threads.emplace_back([&, i] {
        try {
          cache.Get(1);
        } catch (const LoadError& e) {
          codes[i] = e.code;
          objects[i] = &e;
        }
      });
    }
    held.AwaitEntered();
    clock.WaitForSleepers(kCallers - 1);
    held.Release();
  }
  EXPECT_EQ(held.entered(), 1);
  for (int i = 0; i < kCallers; ++i) {
    EXPECT_EQ(codes[i], 42);
    EXPECT_EQ(objects[i], objects[0]);  // the very same exception object
  }
  EXPECT_EQ(cache.Stats().load_failures, 1u);
  EXPECT_EQ(cache.Size(), 0u);
}

// loading_cache.h: blocking, future and callback callers of one key share
// one load.
TEST(LoadingCache, BlockingFutureAndCallbackCallersShareOneLoad) {
  FakeClock clock;
  ManualExecutor executor;
  CountingLoader loader;
  Options o = Opts(&clock);
  o.executor = executor;
  Cache cache(o, loader);
  std::shared_future<std::string> f = cache.GetAsync(5);
  std::string from_callback;
  cache.GetThen(5, [&](const std::string* v, std::exception_ptr) {
    from_callback = *v;
  });
  std::string from_get;
  std::jthread getter([&] { from_get = cache.Get(5); });
  clock.WaitForSleepers(1);
  EXPECT_EQ(executor.Pending(), 1u);
  executor.RunAll();
  getter.join();
  EXPECT_EQ(f.get(), "5:1");
  EXPECT_EQ(from_callback, "5:1");
  EXPECT_EQ(from_get, "5:1");
  EXPECT_EQ(loader.count(), 1);
}

// ---------------------------------------------------------------------------
// Refresh ahead, Refresh().

// CacheOptions::refresh_after: a read of a value at least that old returns
// it at once and starts one background reload; readers keep it until the
// reload lands (Caffeine: "refresh returns the old value at once and runs
// once").
TEST(LoadingCache, RefreshAheadReturnsTheOldValueAtOnceAndRunsOnce) {
  FakeClock clock;
  ManualExecutor executor;
  CountingLoader loader;
  Options o = Opts(&clock);
  o.refresh_after = seconds(5);
  o.executor = executor;
  Cache cache(o, loader);
  EXPECT_EQ(cache.Get(1), "1:1");
  clock.Advance(seconds(5) - nanoseconds(1));
  EXPECT_EQ(cache.Get(1), "1:1");
  EXPECT_EQ(executor.Pending(), 0u);  // not yet due
  clock.Advance(nanoseconds(1));
  EXPECT_EQ(cache.Get(1), "1:1");  // at once, old value
  EXPECT_EQ(cache.Get(1), "1:1");
  EXPECT_EQ(cache.GetIfPresent(1), "1:1");
  EXPECT_EQ(executor.Pending(), 1u);  // one reload, however many reads
  EXPECT_EQ(loader.count(), 1);
  executor.RunAll();
  EXPECT_EQ(loader.count(), 2);
  EXPECT_EQ(cache.Get(1), "1:2");
  const CacheStats s = cache.Stats();
  EXPECT_EQ(s.refreshes, 1u);
  EXPECT_EQ(s.stale_refresh_ahead, 3u);
  EXPECT_EQ(s.stale_served, 3u);
  EXPECT_EQ(s.hits, 5u);
  EXPECT_EQ(s.misses, 1u);
}

// CacheOptions::refresh_after: a failed reload leaves the value, and a
// later read tries again.
TEST(LoadingCache, FailedRefreshKeepsTheValueAndALaterReadRetries) {
  FakeClock clock;
  ManualExecutor executor;
  std::atomic<int> calls{0};
  Options o = Opts(&clock);
  o.refresh_after = seconds(5);
  o.executor = executor;
  Cache cache(o, [&](int) -> std::string {
    if (calls.fetch_add(1) == 1) throw LoadError(1);
    return "v" + std::to_string(calls.load());
  });
  EXPECT_EQ(cache.Get(1), "v1");
  clock.Advance(seconds(6));
  EXPECT_EQ(cache.Get(1), "v1");
  executor.RunAll();  // the refresh fails
  EXPECT_EQ(cache.Get(1), "v1");  // kept; this read starts another
  EXPECT_EQ(executor.Pending(), 1u);
  executor.RunAll();
  EXPECT_EQ(cache.Get(1), "v3");
  EXPECT_EQ(cache.Stats().refresh_failures, 1u);
  EXPECT_EQ(cache.Stats().refreshes, 2u);
}

// CacheOptions::refresh_after: a value refreshed ahead still expires ttl
// after it was written, if the refresh fails.
TEST(LoadingCache, FailedRefreshValueStillExpiresOnTime) {
  FakeClock clock;
  ManualExecutor executor;
  std::atomic<int> calls{0};
  Options o = Opts(&clock);
  o.refresh_after = seconds(5);
  o.executor = executor;
  Cache cache(o, [&](int) -> std::string {
    if (calls.fetch_add(1) > 0) throw LoadError(1);
    return "v";
  });
  EXPECT_EQ(cache.Get(1), "v");
  clock.Advance(seconds(6));
  EXPECT_EQ(cache.Get(1), "v");
  executor.RunAll();
  clock.Advance(seconds(4));  // 10 s: expired
  EXPECT_EQ(cache.GetIfPresent(1), std::nullopt);
  EXPECT_THROW(cache.Get(1), LoadError);
}

// loading_cache.h: Refresh() reloads now on the executor; readers keep the
// current value until it lands; concurrent Refresh calls share one load.
TEST(LoadingCache, RefreshSharesOneLoadAndReadersKeepTheValue) {
  FakeClock clock;
  ManualExecutor executor;
  CountingLoader loader;
  Options o = Opts(&clock);
  o.executor = executor;
  Cache cache(o, loader);
  EXPECT_EQ(cache.Get(1), "1:1");
  std::shared_future<std::string> a = cache.Refresh(1);
  std::shared_future<std::string> b = cache.Refresh(1);
  EXPECT_EQ(executor.Pending(), 1u);
  EXPECT_EQ(cache.Get(1), "1:1");
  executor.RunAll();
  EXPECT_EQ(a.get(), "1:2");
  EXPECT_EQ(b.get(), "1:2");
  EXPECT_EQ(cache.Get(1), "1:2");
  EXPECT_EQ(loader.count(), 2);
  EXPECT_EQ(cache.Stats().refreshes, 1u);
  // Refresh of an absent key loads it.
  std::shared_future<std::string> c = cache.Refresh(2);
  executor.RunAll();
  EXPECT_EQ(Take(c), "2:3");
  EXPECT_EQ(cache.GetIfPresent(2), "2:3");
}

// XFetch (early_refresh_beta): reads shortly before expiry start one early
// reload at random; with beta large enough every read in the window does,
// and one reload runs at a time.
TEST(LoadingCache, EarlyRefreshStartsOneReloadBeforeExpiry) {
  FakeClock clock;
  ManualExecutor executor;
  Options o = Opts(&clock);
  o.early_refresh_beta = 1e6;  // gap <= delta * beta * -ln(u): always, here
  o.executor = executor;
  o.seed = 3;
  std::atomic<int> calls{0};
  Cache cache(o, [&](int) {
    calls.fetch_add(1);
    clock.Advance(milliseconds(1));  // delta = 1 ms
    return std::string("v");
  });
  EXPECT_EQ(cache.Get(1), "v");
  cache.Get(1);
  cache.Get(1);
  EXPECT_EQ(executor.Pending(), 1u);
  executor.RunAll();
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(cache.Stats().early_refreshes, 1u);
  EXPECT_EQ(cache.Stats().refreshes, 1u);
}

// ---------------------------------------------------------------------------
// Invalidate and Put during a load (Guava, Caffeine).

// loading_cache.h: Invalidate detaches the key's load: it still answers its
// own callers, its result is not stored, and callers arriving after
// Invalidate returns start a new load.
TEST(LoadingCache, InvalidateDuringALoadDiscardsItsResult) {
  FakeClock clock;
  std::atomic<int> calls{0};
  HeldLoad held;
  Cache cache(Opts(&clock), [&](int) {
    if (calls.fetch_add(1) == 0) {
      held.Enter();
      return std::string("old");
    }
    return std::string("new");
  });
  std::string first;
  std::jthread t([&] { first = cache.Get(1); });
  held.AwaitEntered();
  EXPECT_TRUE(cache.Invalidate(1));
  EXPECT_EQ(cache.Get(1), "new");  // a new load, not the detached one
  held.Release();
  t.join();
  EXPECT_EQ(first, "old");  // the load answers its own caller
  EXPECT_EQ(cache.GetIfPresent(1), "new");
  EXPECT_EQ(cache.Size(), 1u);
}

// loading_cache.h: "a Put during a load wins".
TEST(LoadingCache, PutDuringALoadWins) {
  FakeClock clock;
  HeldLoad held;
  Cache cache(Opts(&clock), [&](int) {
    held.Enter();
    return std::string("loaded");
  });
  std::string got;
  std::jthread t([&] { got = cache.Get(1); });
  held.AwaitEntered();
  cache.Put(1, "put");
  held.Release();
  t.join();
  EXPECT_EQ(got, "loaded");
  EXPECT_EQ(cache.Get(1), "put");
}

// The defect of issue 12: GetAsync queues a load, Invalidate returns true,
// then the queued load runs: its result must not be stored.
TEST(LoadingCache, QueuedLoadThenInvalidateIsNotStored) {
  FakeClock clock;
  ManualExecutor executor;
  CountingLoader loader;
  Options o = Opts(&clock);
  o.executor = executor;
  Cache cache(o, loader);
  std::shared_future<std::string> f = cache.GetAsync(1);
  EXPECT_TRUE(cache.Invalidate(1));
  EXPECT_FALSE(cache.Invalidate(1));
  executor.RunAll();
  EXPECT_EQ(f.get(), "1:1");  // its caller still gets it
  EXPECT_EQ(cache.Size(), 0u);
  EXPECT_EQ(cache.GetIfPresent(1), std::nullopt);
}

// The same with InvalidateAll and GetThen.
TEST(LoadingCache, QueuedCallbackLoadThenInvalidateAllIsNotStored) {
  FakeClock clock;
  ManualExecutor executor;
  CountingLoader loader;
  Options o = Opts(&clock);
  o.executor = executor;
  Cache cache(o, loader);
  std::string got;
  cache.GetThen(1, [&](const std::string* v, std::exception_ptr) { got = *v; });
  cache.Put(2, "two");
  cache.InvalidateAll();
  executor.RunAll();
  EXPECT_EQ(got, "1:1");
  EXPECT_EQ(cache.Size(), 0u);
  EXPECT_EQ(cache.GetIfPresent(2), std::nullopt);
}

// loading_cache.h: InvalidateAll(keys) invalidates each of them.
TEST(LoadingCache, InvalidateAllOfAList) {
  FakeClock clock;
  Cache cache(Opts(&clock));
  for (int k = 0; k < 5; ++k) cache.Put(k, std::to_string(k));
  const int keys[] = {1, 3, 9};
  cache.InvalidateAll(keys);
  EXPECT_EQ(cache.Size(), 3u);
  EXPECT_EQ(cache.GetIfPresent(1), std::nullopt);
  EXPECT_EQ(cache.GetIfPresent(2), "2");
}

// ---------------------------------------------------------------------------
// Expiry, exactly at the boundaries.

// CacheOptions::ttl: fresh until exactly ttl after the write, expired at it.
TEST(LoadingCache, ValueExpiresExactlyTtlAfterItsWrite) {
  FakeClock clock;
  CountingLoader loader;
  Cache cache(Opts(&clock), loader);
  EXPECT_EQ(cache.Get(1), "1:1");
  clock.Advance(seconds(10) - nanoseconds(1));
  EXPECT_EQ(cache.GetIfPresent(1), "1:1");
  EXPECT_EQ(cache.Size(), 1u);
  clock.Advance(nanoseconds(1));
  EXPECT_EQ(cache.GetIfPresent(1), std::nullopt);
  EXPECT_EQ(cache.Size(), 0u);
  EXPECT_EQ(cache.Get(1), "1:2");
}

// CacheOptions: ttl zero never expires; duration::max() never expires.
TEST(LoadingCache, ZeroAndMaxTtlNeverExpire) {
  for (nanoseconds ttl : {nanoseconds(0), nanoseconds::max()}) {
    FakeClock clock;
    Options o = Opts(&clock);
    o.ttl = ttl;
    CountingLoader loader;
    Cache cache(o, loader);
    cache.Get(1);
    clock.Advance(hours(24 * 365 * 100));
    EXPECT_EQ(cache.Get(1), "1:1");
    EXPECT_EQ(cache.Size(), 1u);
    EXPECT_EQ(loader.count(), 1);
  }
}

// CacheOptions::expire_after_access: expires exactly that long after the
// last read or write; every read extends it.
TEST(LoadingCache, ExpireAfterAccessExtendsOnEveryRead) {
  FakeClock clock;
  Options o = Opts(&clock);
  o.ttl = nanoseconds(0);
  o.expire_after_access = seconds(3);
  CountingLoader loader;
  Cache cache(o, loader);
  cache.Get(1);
  for (int i = 0; i < 5; ++i) {
    clock.Advance(seconds(2));
    EXPECT_EQ(cache.Get(1), "1:1");
  }
  clock.Advance(seconds(3) - nanoseconds(1));
  EXPECT_EQ(cache.Size(), 1u);
  EXPECT_EQ(cache.GetIfPresent(1), "1:1");  // a read: extends again
  clock.Advance(seconds(3));
  EXPECT_EQ(cache.Size(), 0u);
  EXPECT_EQ(cache.Get(1), "1:2");
}

// CacheOptions::expire_after: the lifetime comes from key and value and
// replaces ttl; nanoseconds::max() is never.
TEST(LoadingCache, ExpireAfterGivesEachEntryItsLifetime) {
  FakeClock clock;
  Options o = Opts(&clock);
  o.expire_after = [](const int& k, const std::string&) {
    return k == 0 ? nanoseconds::max() : seconds(k);
  };
  CountingLoader loader;
  Cache cache(o, loader);
  for (int k = 0; k < 4; ++k) cache.Get(k);
  clock.Advance(seconds(1));
  EXPECT_EQ(cache.Size(), 3u);  // key 1 expired at exactly 1 s
  clock.Advance(seconds(2));
  EXPECT_EQ(cache.Size(), 1u);  // only key 0
  clock.Advance(hours(1000));
  EXPECT_EQ(cache.GetIfPresent(0), "0:1");
}

// loading_cache.h: "a value is never returned once its expiry had passed
// when the call began" — the defect of issue 12: ttl 1 s, a value stored
// at t0, and a GetAsync at t0 + 5 s returned it.
TEST(LoadingCache, AnExpiredValueIsNeverReturned) {
  FakeClock clock;
  ManualExecutor executor;
  Options o = Opts(&clock);
  o.ttl = seconds(1);
  o.executor = executor;
  CountingLoader loader;
  Cache cache(o, loader);
  EXPECT_EQ(cache.Get(1), "1:1");
  clock.Advance(seconds(5));
  std::shared_future<std::string> f = cache.GetAsync(1);
  std::string from_callback;
  cache.GetThen(1, [&](const std::string* v, std::exception_ptr) {
    from_callback = *v;
  });
  EXPECT_EQ(cache.GetIfPresent(1), std::nullopt);
  executor.RunAll();
  EXPECT_EQ(f.get(), "1:2");
  EXPECT_EQ(from_callback, "1:2");
}

// loading_cache.h: Size() counts the keys GetIfPresent would return, and
// removes expired values first (their listener runs on this thread).
TEST(LoadingCache, SizeCountsLiveValuesOnly) {
  FakeClock clock;
  std::vector<std::pair<int, RemovalCause>> removed;
  Options o = Opts(&clock);
  o.error_ttl = seconds(60);
  o.removal_listener = [&](const int& k, const std::string&, RemovalCause c) {
    removed.emplace_back(k, c);
  };
  Cache cache(o, [](int k) -> std::string {
    if (k < 0) throw LoadError(k);
    return std::to_string(k);
  });
  cache.Get(1);
  clock.Advance(seconds(5));
  cache.Get(2);
  EXPECT_THROW(cache.Get(-1), LoadError);  // a cached error: not counted
  EXPECT_EQ(cache.Size(), 2u);
  clock.Advance(seconds(5));
  EXPECT_EQ(cache.Size(), 1u);
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0], std::make_pair(1, RemovalCause::kExpired));
  EXPECT_EQ(cache.Stats().expirations, 1u);
}

// ---------------------------------------------------------------------------
// Failures.

// CacheOptions::error_ttl: zero caches nothing; positive caches the very
// exception, and readers within it rethrow it without a load.
TEST(LoadingCache, ErrorTtlCachesTheSameException) {
  for (bool cache_errors : {false, true}) {
    FakeClock clock;
    Options o = Opts(&clock);
    if (cache_errors) o.error_ttl = seconds(2);
    std::atomic<int> calls{0};
    Cache cache(o, [&](int) -> std::string {
      throw LoadError(calls.fetch_add(1));
    });
    // While the first exception is held, a second one with the same
    // address can only be the same object.
    std::exception_ptr first;
    try {
      cache.Get(1);
    } catch (const LoadError&) {
      first = std::current_exception();
    }
    try {
      cache.Get(1);
    } catch (const LoadError& e) {
      EXPECT_EQ(e.code, cache_errors ? 0 : 1);
      try {
        std::rethrow_exception(first);
      } catch (const LoadError& f) {
        EXPECT_EQ(&e == &f, cache_errors);
      }
    }
    EXPECT_EQ(calls.load(), cache_errors ? 1 : 2);
    if (cache_errors) {
      EXPECT_EQ(cache.Stats().negative_hits, 1u);
      clock.Advance(seconds(2));
      EXPECT_THROW(cache.Get(1), LoadError);
      EXPECT_EQ(calls.load(), 2);
    }
  }
}

// The defect of issue 12: GetIfPresent on a cached error returned nullopt
// but counted a hit and a negative hit. It is a miss.
TEST(LoadingCache, GetIfPresentOnACachedErrorIsAMiss) {
  FakeClock clock;
  Options o = Opts(&clock);
  o.error_ttl = seconds(10);
  Cache cache(o, [](int) -> std::string { throw LoadError(1); });
  EXPECT_THROW(cache.Get(1), LoadError);
  EXPECT_EQ(cache.GetIfPresent(1), std::nullopt);
  const CacheStats s = cache.Stats();
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.hits, 0u);
  EXPECT_EQ(s.negative_hits, 0u);
}

// CacheOptions::stale_if_error: a failed reload answers with the last good
// value, and for fail_safe_backoff no load starts.
TEST(LoadingCache, StaleIfErrorServesTheLastValueAndBacksOff) {
  FakeClock clock;
  Options o = Opts(&clock);
  o.stale_if_error = seconds(60);
  o.fail_safe_backoff = seconds(2);
  std::atomic<int> calls{0};
  std::atomic<bool> fail{false};
  Cache cache(o, [&](int) -> std::string {
    calls.fetch_add(1);
    if (fail.load()) throw LoadError(7);
    return "good";
  });
  EXPECT_EQ(cache.Get(1), "good");
  fail.store(true);
  clock.Advance(seconds(10));  // expired
  EXPECT_EQ(cache.Get(1), "good");  // the reload failed: stale
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(cache.GetIfPresent(1), std::nullopt);  // stale is not present
  clock.Advance(seconds(2) - nanoseconds(1));
  EXPECT_EQ(cache.Get(1), "good");  // backing off: no load
  EXPECT_EQ(calls.load(), 2);
  clock.Advance(nanoseconds(1));
  EXPECT_EQ(cache.Get(1), "good");  // next attempt, failed again
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(cache.Stats().stale_load_failed, 3u);
  EXPECT_EQ(cache.Stats().stale_served, 3u);
  fail.store(false);
  clock.Advance(seconds(2));
  EXPECT_EQ(cache.Get(1), "good");
  EXPECT_EQ(calls.load(), 4);
  EXPECT_EQ(cache.GetIfPresent(1), "good");  // fresh again
}

// CacheOptions::stale_if_error: past the allowance, the failure surfaces.
TEST(LoadingCache, StaleIfErrorEndsAfterItsAllowance) {
  FakeClock clock;
  Options o = Opts(&clock);
  o.stale_if_error = seconds(30);
  std::atomic<bool> fail{false};
  Cache cache(o, [&](int) -> std::string {
    if (fail.load()) throw LoadError(1);
    return "good";
  });
  cache.Get(1);
  fail.store(true);
  clock.Advance(seconds(10) + seconds(30) - nanoseconds(1));
  EXPECT_EQ(cache.Get(1), "good");
  clock.Advance(seconds(1));  // past the backoff and the allowance
  EXPECT_THROW(cache.Get(1), LoadError);
}

// CacheOptions::soft_timeout: a caller with a stale value waits at most
// soft_timeout after the load started, then gets the stale value; the load
// goes on and its value is stored when it arrives.
TEST(LoadingCache, SoftTimeoutAnswersWithTheStaleValue) {
  FakeClock clock;
  ManualExecutor executor;
  Options o = Opts(&clock);
  o.stale_if_error = seconds(60);
  o.soft_timeout = milliseconds(100);
  o.executor = executor;
  std::atomic<int> calls{0};
  Cache cache(o, [&](int) { return "v" + std::to_string(calls.fetch_add(1) + 1); });
  cache.Put(1, "v0");
  clock.Advance(seconds(10));
  std::string got;
  std::jthread t([&] { got = cache.Get(1); });
  clock.WaitForSleepers(1);  // waiting for the load, queued on the executor
  EXPECT_EQ(executor.Pending(), 1u);
  clock.Advance(milliseconds(100));
  t.join();
  EXPECT_EQ(got, "v0");
  EXPECT_EQ(cache.Stats().stale_soft_timeout, 1u);
  executor.RunAll();  // the load lands
  EXPECT_EQ(cache.GetIfPresent(1), "v1");
}

// CacheOptions::hard_timeout: no stale value: the waiter gets
// herd::WaitTimeout; the loader's token is stopped; the next caller starts
// a new load.
TEST(LoadingCache, HardTimeoutWithoutAStaleValueThrowsWaitTimeout) {
  FakeClock clock;
  ManualExecutor executor;
  Options o = Opts(&clock);
  o.hard_timeout = seconds(1);
  o.executor = executor;
  std::atomic<bool> stopped{false};
  std::atomic<int> calls{0};
  Cache cache(o, [&](int, std::stop_token st) {
    calls.fetch_add(1);
    stopped.store(st.stop_requested());
    return std::string("late");
  });
  std::exception_ptr error;
  std::jthread t([&] {
    try {
      cache.Get(1);
    } catch (...) {
      error = std::current_exception();
    }
  });
  clock.WaitForSleepers(1);
  clock.Advance(seconds(1));
  t.join();
  EXPECT_THROW(std::rethrow_exception(error), WaitTimeout);
  executor.RunAll();  // the abandoned load runs late: its token is stopped
  EXPECT_TRUE(stopped.load());
  EXPECT_EQ(cache.GetIfPresent(1), std::nullopt);  // and it is not stored
  std::jthread again([&] { EXPECT_EQ(cache.Get(1), "late"); });
  clock.WaitForSleepers(1);
  executor.RunAll();
  again.join();
  EXPECT_EQ(calls.load(), 2);
}

// CacheOptions::hard_timeout with a stale value: the stale value, counted.
TEST(LoadingCache, HardTimeoutWithAStaleValueServesIt) {
  FakeClock clock;
  ManualExecutor executor;
  Options o = Opts(&clock);
  o.hard_timeout = seconds(1);
  o.stale_if_error = seconds(60);
  o.executor = executor;
  Cache cache(o, [](int) { return std::string("new"); });
  cache.Put(1, "old");
  clock.Advance(seconds(10));
  std::string got;
  std::jthread t([&] { got = cache.Get(1); });
  clock.WaitForSleepers(1);
  clock.Advance(seconds(1));
  t.join();
  EXPECT_EQ(got, "old");
  EXPECT_EQ(cache.Stats().stale_hard_timeout, 1u);
  executor.DropAll();
}

// CacheOptions::hard_timeout bounds async callers too: the cache's timer
// answers them.
TEST(LoadingCache, HardTimeoutAnswersAsyncCallers) {
  FakeClock clock;
  ManualExecutor executor;
  Options o = Opts(&clock);
  o.hard_timeout = seconds(1);
  o.executor = executor;
  Cache cache(o, [](int) { return std::string("late"); });
  std::shared_future<std::string> f = cache.GetAsync(1);
  std::promise<std::exception_ptr> called;
  cache.GetThen(1, [&](const std::string*, std::exception_ptr e) {
    called.set_value(e);
  });
  clock.WaitForSleepers(1);  // the timer thread, waiting for the deadline
  clock.Advance(seconds(1));
  EXPECT_THROW(f.get(), WaitTimeout);
  EXPECT_THROW(std::rethrow_exception(called.get_future().get()), WaitTimeout);
  executor.RunAll();
  EXPECT_EQ(cache.GetIfPresent(1), std::nullopt);
}

// CacheOptions::extra_execution_rate: a joining blocking caller runs an
// extra execution; the first success answers everyone.
TEST(LoadingCache, ExtraExecutionAnswersEveryone) {
  FakeClock clock;
  Options o = Opts(&clock);
  o.extra_execution_rate = 1.0;
  std::latch first_started(1);
  std::latch release_first(1);
  std::atomic<int> calls{0};
  Cache cache(o, [&](int) {
    if (calls.fetch_add(1) == 0) {
      first_started.count_down();
      release_first.wait();
      return std::string("first");
    }
    return std::string("extra");
  });
  std::string a;
  std::jthread t([&] { a = cache.Get(1); });
  first_started.wait();
  EXPECT_EQ(cache.Get(1), "extra");  // ran the extra execution, won
  release_first.count_down();
  t.join();
  EXPECT_EQ(a, "extra");
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(cache.Get(1), "extra");
}

// CacheOptions::max_flight_age: a caller that finds an older load starts a
// new one; the old one answers its own callers and is not stored.
TEST(LoadingCache, MaxFlightAgeStartsANewLoad) {
  FakeClock clock;
  Options o = Opts(&clock);
  o.max_flight_age = seconds(5);
  std::latch started(1);
  std::latch release(1);
  std::atomic<int> calls{0};
  Cache cache(o, [&](int) {
    if (calls.fetch_add(1) == 0) {
      started.count_down();
      release.wait();
      return std::string("old");
    }
    return std::string("new");
  });
  std::string a;
  std::jthread t([&] { a = cache.Get(1); });
  started.wait();
  clock.Advance(seconds(5));
  EXPECT_EQ(cache.Get(1), "new");
  release.count_down();
  t.join();
  EXPECT_EQ(a, "old");
  EXPECT_EQ(cache.GetIfPresent(1), "new");
}

// loading_cache.h: a loader that calls Get() for its own key on its own
// thread gets herd::RecursiveCall.
TEST(LoadingCache, ALoaderAskingForItsOwnKeyGetsRecursiveCall) {
  FakeClock clock;
  Cache* self = nullptr;
  Cache cache(Opts(&clock), [&](int k) -> std::string {
    if (k == 1) {
      try {
        self->Get(1);
      } catch (const RecursiveCall&) {
        return "recursion detected";
      }
    }
    return self->Get(k - 1) + "+";  // other keys are fine
  });
  self = &cache;
  EXPECT_EQ(cache.Get(1), "recursion detected");
  EXPECT_EQ(cache.Get(2), "recursion detected+");
}

// ---------------------------------------------------------------------------
// GetAsync, GetThen, executors.

// loading_cache.h: GetAsync on a hit is ready; misses load once per key on
// the executor.
TEST(LoadingCache, GetAsyncLoadsOnTheExecutorOncePerKey) {
  FakeClock clock;
  ManualExecutor executor;
  Options o = Opts(&clock);
  o.executor = executor;
  CountingLoader loader;
  Cache cache(o, loader);
  auto a = cache.GetAsync(1);
  auto b = cache.GetAsync(1);
  auto c = cache.GetAsync(2);
  EXPECT_EQ(executor.Pending(), 2u);
  executor.RunAll();
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(c.get(), "2:2");
  auto hit = cache.GetAsync(1);
  EXPECT_EQ(hit.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_EQ(executor.Pending(), 0u);
}

// loading_cache.h: GetThen calls back inline on a hit, with a pointer valid
// during the call.
TEST(LoadingCache, GetThenRunsInlineOnAHit) {
  FakeClock clock;
  Cache cache(Opts(&clock), CountingLoader{});
  cache.Get(1);
  bool called = false;
  cache.GetThen(1, [&](const std::string* v, std::exception_ptr e) {
    called = true;
    EXPECT_EQ(*v, "1:1");
    EXPECT_EQ(e, nullptr);
  });
  EXPECT_TRUE(called);
}

// loading_cache.h: GetThen's callback is called exactly once, for any
// number of callbacks on one load, value or error.
TEST(LoadingCache, HundredCallbacksOnOneLoadRunOnceEach) {
  for (bool fail : {false, true}) {
    FakeClock clock;
    ManualExecutor executor;
    Options o = Opts(&clock);
    o.executor = executor;
    Cache cache(o, [&](int) -> std::string {
      if (fail) throw LoadError(9);
      return "v";
    });
    std::vector<int> calls(100, 0);
    for (int i = 0; i < 100; ++i) {
      cache.GetThen(1, [&, i](const std::string* v, std::exception_ptr e) {
        ++calls[i];
        EXPECT_EQ(v == nullptr, fail);
        EXPECT_EQ(e != nullptr, fail);
      });
    }
    EXPECT_EQ(executor.Pending(), 1u);
    executor.RunAll();
    for (int n : calls) EXPECT_EQ(n, 1);
  }
}

// herd/executor.h via loading_cache.h: an executor that drops a task fails
// its callers with herd::Closed; one that throws, with its exception. The
// key is free afterwards.
TEST(LoadingCache, RefusedOrDroppedLoadsFailTheirCallers) {
  FakeClock clock;
  ManualExecutor executor;
  Options o = Opts(&clock);
  o.executor = executor;
  CountingLoader loader;
  Cache cache(o, loader);
  auto dropped = cache.GetAsync(1);
  executor.DropAll();
  EXPECT_THROW(dropped.get(), Closed);
  executor.RefuseNext(std::make_exception_ptr(LoadError(3)));
  auto refused = cache.GetAsync(1);
  EXPECT_THROW(refused.get(), LoadError);
  auto ok = cache.GetAsync(1);
  executor.RunAll();
  EXPECT_EQ(ok.get(), "1:1");
}

// CacheOptions::executor: empty means the cache's own pool.
TEST(LoadingCache, DefaultExecutorRunsAsyncLoads) {
  FakeClock clock;
  Cache cache(Opts(&clock), CountingLoader{});
  EXPECT_EQ(cache.GetAsync(4).get(), "4:1");
  std::promise<std::string> p;
  cache.GetThen(5, [&](const std::string* v, std::exception_ptr) {
    p.set_value(*v);
  });
  EXPECT_EQ(p.get_future().get(), "5:2");
}

// ---------------------------------------------------------------------------
// GetAll.

// loading_cache.h: the keys that miss load in one batch-loader call; hits
// come from the cache; keys the batch leaves out are absent; duplicates
// count once.
TEST(LoadingCache, GetAllLoadsTheMissesInOneBatch) {
  FakeClock clock;
  std::vector<std::vector<int>> batches;
  Cache cache(
      Opts(&clock), [](int k) { return "single" + std::to_string(k); },
      [&](std::span<const int> keys) {
        batches.emplace_back(keys.begin(), keys.end());
        Cache::Map m;
        for (int k : keys) {
          if (k != 3) m.emplace(k, "batch" + std::to_string(k));
        }
        m.emplace(99, "extra");  // ignored
        return m;
      });
  cache.Put(1, "cached");
  const int keys[] = {1, 2, 3, 4, 2};
  Cache::Map got = cache.GetAll(keys);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].size(), 3u);  // 2, 3, 4
  EXPECT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1], "cached");
  EXPECT_EQ(got[2], "batch2");
  EXPECT_EQ(got[4], "batch4");
  EXPECT_FALSE(got.contains(3));
  EXPECT_EQ(cache.Stats().load_successes, 1u);
  EXPECT_EQ(cache.Stats().hits, 1u);
  EXPECT_EQ(cache.Stats().misses, 3u);
  EXPECT_EQ(cache.GetIfPresent(99), std::nullopt);
  EXPECT_EQ(cache.Size(), 3u);
}

// loading_cache.h: each missing key of GetAll is coalesced with concurrent
// single-key callers of that key.
TEST(LoadingCache, GetAllJoinsLoadsInProgress) {
  FakeClock clock;
  std::latch started(1);
  std::latch release(1);
  std::atomic<int> singles{0};
  Cache cache(
      Opts(&clock),
      [&](int k) {
        singles.fetch_add(1);
        started.count_down();
        release.wait();
        return "single" + std::to_string(k);
      },
      [&](std::span<const int> keys) {
        Cache::Map m;
        for (int k : keys) m.emplace(k, "batch" + std::to_string(k));
        return m;
      });
  std::jthread t([&] { EXPECT_EQ(cache.Get(1), "single1"); });
  started.wait();
  Cache::Map got;
  std::jthread all([&] {
    const int keys[] = {1, 2};
    got = cache.GetAll(keys);
  });
  clock.WaitForSleepers(1);  // GetAll waits on key 1's load
  release.count_down();
  t.join();
  all.join();
  EXPECT_EQ(got[1], "single1");
  EXPECT_EQ(got[2], "batch2");
  EXPECT_EQ(singles.load(), 1);
}

// loading_cache.h: without a batch loader, GetAll loads the misses one by
// one with the loader; a load error surfaces after every load has ended.
TEST(LoadingCache, GetAllWithoutABatchLoaderAndItsErrors) {
  FakeClock clock;
  Cache cache(Opts(&clock), [](int k) -> std::string {
    if (k == 2) throw LoadError(2);
    return std::to_string(k);
  });
  const int keys[] = {1, 2, 3};
  EXPECT_THROW(cache.GetAll(keys), LoadError);
  EXPECT_EQ(cache.GetIfPresent(1), "1");
  EXPECT_EQ(cache.GetIfPresent(3), "3");
}

// ---------------------------------------------------------------------------
// Removal listener.

// CacheOptions::removal_listener: exactly once per value that leaves, with
// its cause, with no lock held (it may call back into the cache).
TEST(LoadingCache, RemovalListenerIsToldEachCauseExactlyOnce) {
  FakeClock clock;
  std::vector<std::pair<std::string, RemovalCause>> removed;
  Cache* self = nullptr;
  Options o = Opts(&clock);
  o.max_entries = 2;
  o.shards = 1;
  o.removal_listener = [&](const int& k, const std::string& v,
                           RemovalCause c) {
    removed.emplace_back(v, c);
    // No lock held: the cache answers (another key, and this one).
    EXPECT_EQ(self->GetIfPresent(1000 + k), std::nullopt);
  };
  Cache cache(o);
  self = &cache;
  cache.Put(1, "a");
  cache.Put(1, "b");  // a: replaced
  EXPECT_TRUE(cache.Invalidate(1));  // b: explicit
  cache.Put(2, "c");
  clock.Advance(seconds(10));
  cache.CleanUp();  // c: expired
  cache.Put(3, "d");
  cache.Put(4, "e");
  cache.Put(5, "f");  // one of d, e: evicted
  cache.InvalidateAll();  // the other two: explicit
  std::map<RemovalCause, int> counts;
  for (auto& [v, c] : removed) ++counts[c];
  EXPECT_EQ(removed.size(), 6u);
  EXPECT_EQ(counts[RemovalCause::kReplaced], 1);
  EXPECT_EQ(counts[RemovalCause::kExplicit], 3);
  EXPECT_EQ(counts[RemovalCause::kExpired], 1);
  EXPECT_EQ(counts[RemovalCause::kEvicted], 1);
  EXPECT_EQ(removed[0], std::make_pair(std::string("a"), RemovalCause::kReplaced));
  EXPECT_EQ(removed[1], std::make_pair(std::string("b"), RemovalCause::kExplicit));
  EXPECT_EQ(removed[2], std::make_pair(std::string("c"), RemovalCause::kExpired));
  EXPECT_TRUE(WasEvicted(RemovalCause::kEvicted));
  EXPECT_TRUE(WasEvicted(RemovalCause::kExpired));
  EXPECT_FALSE(WasEvicted(RemovalCause::kExplicit));
  EXPECT_FALSE(WasEvicted(RemovalCause::kReplaced));
}

// ---------------------------------------------------------------------------
// Size bound.

// CacheOptions::max_entries: the cache holds at most that many values.
TEST(LoadingCache, MaxEntriesBoundsTheValuesHeld) {
  FakeClock clock;
  Options o = Opts(&clock);
  o.max_entries = 10;
  Cache cache(o, CountingLoader{});
  for (int k = 0; k < 100; ++k) cache.Get(k);
  EXPECT_EQ(cache.Size(), 10u);
  EXPECT_EQ(cache.Stats().evictions, 90u);
  EXPECT_EQ(cache.Stats().eviction_weight, 90u);
}

// CacheOptions::weigher + max_weight: weights count; Weight() sums them.
TEST(LoadingCache, WeigherAndMaxWeight) {
  FakeClock clock;
  Options o = Opts(&clock);
  o.max_weight = 10;
  o.weigher = [](const int&, const std::string& v) { return v.size(); };
  Cache cache(o);
  cache.Put(1, "aaaa");
  cache.Put(2, "bbbb");
  EXPECT_EQ(cache.Weight(), 8u);
  cache.Put(3, "cccc");
  EXPECT_LE(cache.Weight(), 10u);
  EXPECT_EQ(cache.Size(), 2u);
  EXPECT_EQ(cache.Stats().eviction_weight, 4u);
}

// The eviction order with one shard and an exact LRU policy (white box:
// the cache's core with internal::LruPolicy in place of W-TinyLFU): the
// least recently read or written value goes first.
TEST(LoadingCache, EvictionOrderIsExactWithOneShard) {
  FakeClock clock;
  Options o = Opts(&clock);
  o.max_entries = 3;
  o.shards = 1;
  std::vector<int> evicted;
  o.removal_listener = [&](const int& k, const std::string&, RemovalCause c) {
    if (c == RemovalCause::kEvicted) evicted.push_back(k);
  };
  internal::CacheCore<int, std::string, absl::Hash<int>, std::equal_to<int>,
                      internal::LruPolicy>
      cache(o, internal::BindLoader<int, std::string>(CountingLoader{}), {});
  cache.Get(1);
  cache.Get(2);
  cache.Get(3);
  cache.Get(1);  // order: 2 3 1
  cache.Get(4);  // evicts 2
  EXPECT_EQ(evicted, std::vector<int>{2});
  cache.GetIfPresent(3);  // order: 1 4 3
  cache.Put(5, "five");   // evicts 1
  cache.Get(4);           // order: 3 5 4
  cache.Get(6);           // evicts 3
  EXPECT_EQ(evicted, (std::vector<int>{2, 1, 3}));
  EXPECT_EQ(cache.Size(), 3u);
}

// CacheOptions size bound: eviction is W-TinyLFU: keys read often survive
// a scan of keys read once, which would flush an LRU of the same size. (The
// cache samples about one read in 4 for the policy: 40 reads a key leave
// each hot key about 10 in the sketch.)
TEST(LoadingCache, FrequentKeysSurviveAScan) {
  FakeClock clock;
  Options o = Opts(&clock);
  o.ttl = nanoseconds(0);
  o.max_entries = 100;
  o.seed = 1;
  Cache cache(o, CountingLoader{});
  for (int round = 0; round < 40; ++round) {
    for (int k = 0; k < 50; ++k) cache.Get(k);
  }
  for (int k = 1000; k < 3000; ++k) cache.Get(k);  // a scan, once each
  int survivors = 0;
  for (int k = 0; k < 50; ++k) survivors += cache.GetIfPresent(k).has_value();
  EXPECT_GE(survivors, 45);
  EXPECT_EQ(cache.Size(), 100u);
  // The same through an exact LRU keeps none of them.
  internal::CacheCore<int, std::string, absl::Hash<int>, std::equal_to<int>,
                      internal::LruPolicy>
      lru(o, internal::BindLoader<int, std::string>(CountingLoader{}), {});
  for (int round = 0; round < 40; ++round) {
    for (int k = 0; k < 50; ++k) lru.Get(k);
  }
  for (int k = 1000; k < 3000; ++k) lru.Get(k);
  int lru_survivors = 0;
  for (int k = 0; k < 50; ++k) lru_survivors += lru.GetIfPresent(k).has_value();
  EXPECT_EQ(lru_survivors, 0);
}

// CacheOptions size bound: "never touches an entry with a load or refresh
// in progress".
TEST(LoadingCache, NeverEvictsAnEntryBeingRefreshed) {
  FakeClock clock;
  ManualExecutor executor;
  Options o = Opts(&clock);
  o.max_entries = 1;
  o.shards = 1;
  o.refresh_after = seconds(5);
  o.executor = executor;
  CountingLoader loader;
  Cache cache(o, loader);
  cache.Get(1);
  clock.Advance(seconds(6));
  cache.Get(1);  // starts a refresh of 1
  EXPECT_EQ(executor.Pending(), 1u);
  cache.Put(2, "two");  // over the bound: 1 is pinned, 2 goes
  EXPECT_EQ(cache.GetIfPresent(1), "1:1");
  executor.RunAll();
  EXPECT_EQ(cache.GetIfPresent(1), "1:2");
  EXPECT_EQ(cache.Size(), 1u);
}

// ---------------------------------------------------------------------------
// No lock held while user code runs; exceptions.

// A Value whose copy constructor calls back into the cache.
struct Reentrant {
  static inline LoadingCache<int, Reentrant>* cache = nullptr;
  static inline std::atomic<int> copies{0};
  Reentrant() = default;
  explicit Reentrant(int v) : value(v) {}
  Reentrant(const Reentrant& o) : value(o.value) {
    copies.fetch_add(1);
    if (cache != nullptr) (void)cache->GetIfPresent(value + 1000);
  }
  int value = 0;
};

// The defect of issue 12: a Value copy that called GetIfPresent deadlocked
// (values were copied under a shard lock). loading_cache.h: "every Key and
// Value copy ... run with no cache lock held".
TEST(LoadingCache, AValueCopyMayCallBackIntoTheCache) {
  FakeClock clock;
  LoadingCache<int, Reentrant> cache(
      {.ttl = seconds(10), .shards = 1, .clock = &clock},
      [](int k) { return Reentrant(k); });
  Reentrant::cache = &cache;
  EXPECT_EQ(cache.Get(1).value, 1);   // miss
  EXPECT_EQ(cache.Get(1).value, 1);   // hit
  EXPECT_EQ(cache.GetIfPresent(1)->value, 1);
  cache.Put(2, Reentrant(2));
  EXPECT_EQ(cache.GetAsync(2).get().value, 2);
  Reentrant::cache = nullptr;
  EXPECT_GT(Reentrant::copies.load(), 0);
}

// A copy-only value whose copy throws on demand.
struct Fragile {
  static inline bool throw_on_copy = false;
  explicit Fragile(std::string v) : value(std::move(v)) {}
  Fragile(const Fragile& o) : value(o.value) {
    if (throw_on_copy) throw std::runtime_error("copy");
  }
  std::string value;
};

// The defect of issue 12: Put over an entry, with a Value copy that throws,
// left the entry with no value; Get then returned a default value nobody
// stored. loading_cache.h: Put "throws ... with nothing stored".
TEST(LoadingCache, PutWithAThrowingCopyLeavesTheOldValue) {
  FakeClock clock;
  LoadingCache<int, Fragile> cache({.ttl = seconds(10), .clock = &clock},
                                   [](int) { return Fragile("loaded"); });
  cache.Put(1, Fragile("old"));
  Fragile::throw_on_copy = true;
  // The argument is built in place: the copy that throws is Put's own.
  EXPECT_THROW(cache.Put(1, Fragile("new")), std::runtime_error);
  EXPECT_THROW(cache.Get(1), std::runtime_error);  // this caller's copy
  Fragile::throw_on_copy = false;
  EXPECT_EQ(cache.Get(1).value, "old");
  EXPECT_EQ(cache.Size(), 1u);
}

// A key whose copy throws on demand.
struct FragileKey {
  static inline bool throw_on_copy = false;
  explicit FragileKey(int v) : k(v) {}
  FragileKey(const FragileKey& o) : k(o.k) {
    if (throw_on_copy) throw std::runtime_error("key copy");
  }
  bool operator==(const FragileKey& o) const { return k == o.k; }
  template <class H>
  friend H AbslHashValue(H h, const FragileKey& f) {
    return H::combine(std::move(h), f.k);
  }
  int k;
};

// The defect of issue 12: key copies that throw corrupted the map.
// loading_cache.h: any exception leaves the cache consistent and usable.
TEST(LoadingCache, KeyCopiesThatThrowLeaveTheCacheUsable) {
  FakeClock clock;
  LoadingCache<FragileKey, int> cache({.ttl = seconds(10), .clock = &clock},
                                      [](const FragileKey& k) { return k.k; });
  EXPECT_EQ(cache.Get(FragileKey(1)), 1);
  FragileKey::throw_on_copy = true;
  EXPECT_THROW(cache.Get(FragileKey(2)), std::runtime_error);
  EXPECT_THROW(cache.Put(FragileKey(3), 3), std::runtime_error);
  EXPECT_EQ(cache.Get(FragileKey(1)), 1);  // a hit copies no key
  FragileKey::throw_on_copy = false;
  EXPECT_EQ(cache.Size(), 1u);
  EXPECT_EQ(cache.Get(FragileKey(2)), 2);
  EXPECT_EQ(cache.Get(FragileKey(3)), 3);
  EXPECT_EQ(cache.Size(), 3u);
}

// A hash that sends every key to one slot: keys are told apart by equality
// alone, with many of them on one hash.
TEST(LoadingCache, ADegenerateHashStillWorks) {
  struct Zero {
    size_t operator()(int) const { return 0; }
  };
  FakeClock clock;
  LoadingCache<int, int, Zero> cache({.ttl = seconds(10), .clock = &clock},
                                     [](int k) { return k * 10; });
  for (int k = 0; k < 50; ++k) EXPECT_EQ(cache.Get(k), k * 10);
  for (int k = 0; k < 50; ++k) EXPECT_EQ(cache.GetIfPresent(k), k * 10);
  EXPECT_EQ(cache.Size(), 50u);
  EXPECT_TRUE(cache.Invalidate(25));
  EXPECT_EQ(cache.Size(), 49u);
}

// A value type that is neither assignable nor default constructible.
TEST(LoadingCache, ValueNeedNotBeAssignable) {
  struct Fixed {
    explicit Fixed(int v) : value(v) {}
    Fixed(const Fixed&) = default;
    Fixed& operator=(const Fixed&) = delete;
    const int value;
  };
  FakeClock clock;
  LoadingCache<int, Fixed> cache({.ttl = seconds(10), .clock = &clock},
                                 [](int k) { return Fixed(k); });
  EXPECT_EQ(cache.Get(3).value, 3);
  cache.Put(3, Fixed(4));
  EXPECT_EQ(cache.Get(3).value, 4);
}

// ---------------------------------------------------------------------------
// Stats and the load time.

// CacheStats: exact over a known sequence, load time by the cache's clock.
TEST(LoadingCache, StatsAreExact) {
  FakeClock clock;
  Options o = Opts(&clock);
  o.error_ttl = seconds(1);
  Cache cache(o, [&](int k) -> std::string {
    clock.Advance(milliseconds(k > 0 ? 3 : 1));
    if (k < 0) throw LoadError(k);
    return std::to_string(k);
  });
  cache.Get(1);                             // miss, load 3 ms
  cache.Get(1);                             // hit
  EXPECT_THROW(cache.Get(-1), LoadError);   // miss, failure 1 ms
  EXPECT_THROW(cache.Get(-1), LoadError);   // negative hit
  cache.GetIfPresent(2);                    // miss
  cache.GetIfPresent(1);                    // hit
  const CacheStats s = cache.Stats();
  EXPECT_EQ(s.hits, 3u);
  EXPECT_EQ(s.misses, 3u);
  EXPECT_EQ(s.negative_hits, 1u);
  EXPECT_EQ(s.load_successes, 1u);
  EXPECT_EQ(s.load_failures, 1u);
  EXPECT_EQ(s.total_load_time_ns, 4'000'000u);
  EXPECT_DOUBLE_EQ(s.average_load_penalty_ns(), 2'000'000.0);
  EXPECT_EQ(CacheStats{}.hit_rate(), 1.0);
  EXPECT_EQ(CacheStats{}.average_load_penalty_ns(), 0.0);
}

// ---------------------------------------------------------------------------
// Destruction.

// ~LoadingCache: stops the tokens of loads in progress and waits for every
// task it handed out; pending callbacks run before it returns.
TEST(LoadingCache, DestructorStopsLoadsAndWaitsForThem) {
  std::atomic<bool> saw_stop{false};
  std::atomic<int> callbacks{0};
  std::latch started(1);
  ThreadPool pool(1);
  {
    FakeClock clock;
    Options o = Opts(&clock);
    o.executor = pool;
    Cache cache(o, [&](int, std::stop_token st) {
      std::promise<void> stop;
      std::stop_callback on_stop(st, [&] { stop.set_value(); });
      started.count_down();
      stop.get_future().wait();  // until the destructor stops the token
      saw_stop.store(true);
      return std::string("v");
    });
    cache.GetThen(1, [&](const std::string*, std::exception_ptr) {
      callbacks.fetch_add(1);
    });
    started.wait();
  }
  EXPECT_TRUE(saw_stop.load());
  EXPECT_EQ(callbacks.load(), 1);
}

}  // namespace
}  // namespace herd
