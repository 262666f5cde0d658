// Copyright 2026 The herd Authors.
//
// Fault injection for herd::LoadingCache: loading_cache.h says "Any other
// exception, std::bad_alloc ... included, leaves the cache consistent and
// usable, with no caller or key left waiting". For each scenario below (one
// call on a cache in a given state), the sweep fails the 1st allocation of
// the call, then the 2nd, and so on until the call allocates no more, and
// after each run checks that:
//   * the call either completed or threw std::bad_alloc;
//   * every future it returned becomes ready once the executor has run its
//     tasks, and every callback it registered ran exactly once (or, if the
//     call threw, never);
//   * every key of the scenario still loads, reads and counts correctly;
//   * destroying the cache frees everything the scenario allocated.
// Allocation failures are injected by tests/testing/counting_new.h, which
// the sanitizers replace: under them those sweeps are skipped. The last
// test makes Key and Value copies throw instead, in every build.

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "herd/clock.h"
#include "herd/loading_cache.h"
#include "tests/testing/counting_new.h"
#include "tests/testing/manual_executor.h"

namespace herd {
namespace {

using std::chrono::seconds;
using test::ManualExecutor;

using Cache = LoadingCache<int, std::string>;

// What a scenario's call left to check.
struct Outcome {
  std::vector<std::shared_future<std::string>> futures;
  std::shared_ptr<int> callback_calls = std::make_shared<int>(0);
  bool registered_callback = false;
};

// The executor is destroyed first: it drops (and so abandons) what it
// still holds while the cache is alive.
struct World {
  FakeClock clock;
  std::shared_ptr<int> reported = std::make_shared<int>(0);
  // What the batch loader returns, made before the fault window: the
  // loader is the user's code, and building an absl map is not safe
  // against a failing allocation.
  std::shared_ptr<Cache::Map> batch = std::make_shared<Cache::Map>();
  std::unique_ptr<Cache> cache;
  ManualExecutor executor;
};

struct Scenario {
  const char* name;
  CacheOptions<int, std::string> options;
  std::function<void(World&)> setup;  // not under fault injection
  std::function<void(World&, Outcome&)> call;
  std::vector<int> keys;  // checked afterwards
};

std::string ValueOf(int k) { return "v" + std::to_string(k); }

void Build(World& w, const Scenario& s) {
  CacheOptions<int, std::string> o = s.options;
  o.clock = &w.clock;
  o.executor = w.executor;
  std::shared_ptr<int> reported = w.reported;
  o.removal_listener = [reported](const int&, const std::string&,
                                  RemovalCause) { ++*reported; };
  for (int k = 0; k < 8; ++k) w.batch->emplace(k, ValueOf(k));
  std::shared_ptr<Cache::Map> batch = w.batch;
  w.cache = std::make_unique<Cache>(
      o, [](int k) { return ValueOf(k); },
      [batch](std::span<const int>) { return std::move(*batch); });
  s.setup(w);
  w.executor.RunAll();
}

// Checks the cache and what the call left, after a run that may have
// failed.
void Check(World& w, const Scenario& s, Outcome& out, bool threw, int64_t n) {
  w.executor.RunAll();
  for (auto& f : out.futures) {
    ASSERT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready)
        << s.name << ": a future left waiting, failing allocation " << n;
    try {
      EXPECT_EQ(f.get().substr(0, 1), "v") << s.name << " " << n;
    } catch (const std::bad_alloc&) {
      // The load itself hit the failure: delivered, not stranded.
    }
  }
  if (out.registered_callback) {
    EXPECT_EQ(*out.callback_calls, threw ? 0 : 1)
        << s.name << ": callback calls, failing allocation " << n;
  }
  for (int k : s.keys) {
    std::shared_future<std::string> f = w.cache->GetAsync(k);
    w.executor.RunAll();
    ASSERT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready)
        << s.name << ": key " << k << " stranded, failing allocation " << n;
    EXPECT_EQ(f.get(), ValueOf(k)) << s.name << " " << n;
    EXPECT_EQ(w.cache->Get(k), ValueOf(k)) << s.name << " " << n;
    EXPECT_EQ(w.cache->GetIfPresent(k), ValueOf(k)) << s.name << " " << n;
  }
  for (int k : s.keys) EXPECT_TRUE(w.cache->Invalidate(k)) << s.name << " " << n;
  w.cache->InvalidateAll();
  EXPECT_EQ(w.cache->Size(), 0u) << s.name << " " << n;
}

void Sweep(const Scenario& s) {
  if (!HERD_TEST_COUNTING_NEW) {
    GTEST_SKIP() << "operator new is the sanitizer's here";
  }
  // A run with no failure and one failing at once, for the statics that
  // the success and failure paths make on first use.
  for (int64_t warm : {0, 1}) {
    World w;
    Build(w, s);
    Outcome out;
    test::FailNthAllocation(warm);
    bool threw = false;
    try {
      s.call(w, out);
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    test::AllocationFailurePending();  // disarms
    Check(w, s, out, threw, 0);
  }
  for (int64_t n = 1; n < 10000; ++n) {
    const int64_t before = test::Allocations() - test::Deallocations();
    bool threw = false;
    bool reached = false;
    {
      World w;
      Build(w, s);
      Outcome out;
      test::FailNthAllocation(n);
      try {
        s.call(w, out);
      } catch (const std::bad_alloc&) {
        threw = true;
      }
      reached = !test::AllocationFailurePending();  // and disarms
      Check(w, s, out, threw, n);
      if (::testing::Test::HasFatalFailure()) return;
      w.executor.DropAll();
      w.cache.reset();
    }
    // The failed operator new call is counted, and freed nothing.
    EXPECT_EQ(test::Allocations() - test::Deallocations(),
              before + (reached ? 1 : 0))
        << s.name << ": a leak when allocation " << n << " failed";
    if (!reached) {
      std::printf("%s: %lld allocations, each failed once\n", s.name,
                  static_cast<long long>(n - 1));
      return;
    }
  }
  FAIL() << s.name << ": never ran out of allocations";
}

CacheOptions<int, std::string> Ttl() {
  CacheOptions<int, std::string> o;
  o.ttl = seconds(10);
  return o;
}

TEST(LoadingCacheAlloc, GetMiss) {
  Sweep({"Get miss", Ttl(), [](World&) {},
         [](World& w, Outcome&) { w.cache->Get(1); }, {1}});
}

TEST(LoadingCacheAlloc, GetMissGrowingTheTable) {
  // 6 of 8 slots used: the next insert grows the table.
  Sweep({"Get miss, growing", Ttl(),
         [](World& w) {
           for (int k = 10; k < 16; ++k) w.cache->Put(k, ValueOf(k));
         },
         [](World& w, Outcome&) { w.cache->Get(1); }, {1, 10, 15}});
}

TEST(LoadingCacheAlloc, GetAsyncMiss) {
  Sweep({"GetAsync miss", Ttl(), [](World&) {},
         [](World& w, Outcome& out) {
           out.futures.push_back(w.cache->GetAsync(1));
         },
         {1}});
}

TEST(LoadingCacheAlloc, GetAsyncJoin) {
  Sweep({"GetAsync join", Ttl(),
         [](World&) {},
         [](World& w, Outcome& out) {
           out.futures.push_back(w.cache->GetAsync(1));
           out.futures.push_back(w.cache->GetAsync(1));
         },
         {1}});
}

TEST(LoadingCacheAlloc, GetThenMiss) {
  Sweep({"GetThen miss", Ttl(), [](World&) {},
         [](World& w, Outcome& out) {
           out.registered_callback = true;
           std::shared_ptr<int> calls = out.callback_calls;
           w.cache->GetThen(1, [calls](const std::string*, std::exception_ptr) {
             ++*calls;
           });
         },
         {1}});
}

TEST(LoadingCacheAlloc, PutOverAValue) {
  Sweep({"Put over a value", Ttl(),
         [](World& w) { w.cache->Put(1, ValueOf(1)); },
         [](World& w, Outcome&) { w.cache->Put(1, ValueOf(1)); }, {1}});
}

TEST(LoadingCacheAlloc, PutDuringALoad) {
  Sweep({"Put during a load", Ttl(), [](World&) {},
         [](World& w, Outcome& out) {
           out.futures.push_back(w.cache->GetAsync(1));
           w.cache->Put(1, ValueOf(1));
         },
         {1}});
}

TEST(LoadingCacheAlloc, InvalidateDuringALoad) {
  Sweep({"Invalidate during a load", Ttl(), [](World&) {},
         [](World& w, Outcome& out) {
           out.futures.push_back(w.cache->GetAsync(1));
           w.cache->Invalidate(1);
           w.cache->InvalidateAll();
         },
         {1}});
}

TEST(LoadingCacheAlloc, Refresh) {
  Sweep({"Refresh", Ttl(), [](World& w) { w.cache->Get(1); },
         [](World& w, Outcome& out) {
           out.futures.push_back(w.cache->Refresh(1));
         },
         {1}});
}

TEST(LoadingCacheAlloc, RefreshAheadRead) {
  CacheOptions<int, std::string> o = Ttl();
  o.refresh_after = seconds(5);
  Sweep({"refresh-ahead read", o,
         [](World& w) {
           w.cache->Get(1);
           w.clock.Advance(seconds(6));
         },
         [](World& w, Outcome&) { w.cache->Get(1); }, {1}});
}

TEST(LoadingCacheAlloc, GetAllBatch) {
  Sweep({"GetAll", Ttl(), [](World& w) { w.cache->Put(2, ValueOf(2)); },
         [](World& w, Outcome&) {
           const int keys[] = {1, 2, 3};
           w.cache->GetAll(keys);
         },
         {1, 2, 3}});
}

TEST(LoadingCacheAlloc, BoundedPutEvicts) {
  CacheOptions<int, std::string> o = Ttl();
  o.max_entries = 2;
  o.shards = 1;
  Sweep({"bounded Put", o,
         [](World& w) {
           w.cache->Put(1, ValueOf(1));
           w.cache->Put(2, ValueOf(2));
         },
         [](World& w, Outcome&) { w.cache->Put(3, ValueOf(3)); }, {3}});
}

TEST(LoadingCacheAlloc, FailSafeAfterExpiry) {
  CacheOptions<int, std::string> o = Ttl();
  o.stale_if_error = seconds(60);
  o.error_ttl = seconds(1);
  Sweep({"stale_if_error", o,
         [](World& w) {
           w.cache->Put(1, ValueOf(1));
           w.clock.Advance(seconds(11));
         },
         [](World& w, Outcome&) { w.cache->Get(1); }, {1}});
}


// --- Copies that throw -------------------------------------------------------

// Throws from the n-th copy (of any instance, on this thread) from now.
struct CopyBomb {
  static inline thread_local int countdown = 0;
  static void Tick() {
    if (countdown > 0 && --countdown == 0) {
      throw std::runtime_error("copy");
    }
  }
};

struct BombKey : CopyBomb {
  explicit BombKey(int v) : k(v) {}
  BombKey(const BombKey& o) : CopyBomb(), k(o.k) { Tick(); }
  BombKey(BombKey&& o) noexcept : k(o.k) {}
  bool operator==(const BombKey& o) const { return k == o.k; }
  template <class H>
  friend H AbslHashValue(H h, const BombKey& b) {
    return H::combine(std::move(h), b.k);
  }
  int k;
};

// Its move does not throw, as a std::promise needs under ThreadSanitizer
// (see Ready() in loading_cache_impl.h).
struct BombValue : CopyBomb {
  explicit BombValue(int v) : v(v) {}
  BombValue(const BombValue& o) : CopyBomb(), v(o.v) { Tick(); }
  BombValue(BombValue&& o) noexcept : v(o.v) {}
  int v;
};

using BombCache = LoadingCache<BombKey, BombValue>;

// loading_cache.h: "Any other exception, ... throwing Key or Value copies
// included, leaves the cache consistent and usable": each call below is
// run with its 1st, 2nd, ... copy (of a key or a value) throwing, then the
// cache must answer every key, with no future left waiting.
TEST(LoadingCacheAlloc, EveryThrowingCopy) {
  struct Call {
    const char* name;
    std::function<void(BombCache&, std::vector<std::shared_future<BombValue>>&)>
        run;
  };
  const std::vector<Call> calls = {
      {"Get miss", [](BombCache& c, auto&) { c.Get(BombKey(1)); }},
      {"Get hit", [](BombCache& c, auto&) { c.Get(BombKey(2)); }},
      {"GetAsync miss",
       [](BombCache& c, auto& f) { f.push_back(c.GetAsync(BombKey(1))); }},
      {"GetThen miss",
       [](BombCache& c, auto&) {
         c.GetThen(BombKey(1), [](const BombValue*, std::exception_ptr) {});
       }},
      {"Put", [](BombCache& c, auto&) { c.Put(BombKey(2), BombValue(20)); }},
      {"Refresh",
       [](BombCache& c, auto& f) { f.push_back(c.Refresh(BombKey(2))); }},
      {"GetAll",
       [](BombCache& c, auto&) {
         const BombKey keys[] = {BombKey(1), BombKey(2), BombKey(3)};
         c.GetAll(keys);
       }},
      {"GetIfPresent", [](BombCache& c, auto&) { c.GetIfPresent(BombKey(2)); }},
  };
  for (const Call& call : calls) {
    int n = 1;
    for (; n < 1000; ++n) {
      FakeClock clock;
      ManualExecutor executor;
      std::vector<std::shared_future<BombValue>> futures;
      bool reached;
      {
        BombCache cache({.ttl = seconds(10), .clock = &clock,
                         .executor = executor},
                        [](const BombKey& k) { return BombValue(k.k); });
        cache.Put(BombKey(2), BombValue(2));
        CopyBomb::countdown = n;
        try {
          call.run(cache, futures);
        } catch (const std::runtime_error&) {
        }
        reached = CopyBomb::countdown == 0;
        CopyBomb::countdown = 0;
        executor.RunAll();
        for (auto& f : futures) {
          ASSERT_EQ(f.wait_for(seconds(0)), std::future_status::ready)
              << call.name << ", copy " << n;
        }
        for (int k = 1; k <= 3; ++k) {
          std::shared_future<BombValue> f = cache.GetAsync(BombKey(k));
          executor.RunAll();
          ASSERT_EQ(f.wait_for(seconds(0)), std::future_status::ready)
              << call.name << ", copy " << n << ", key " << k;
          const int v = cache.Get(BombKey(k)).v;
          EXPECT_TRUE(v == k || v == 20) << call.name << ", copy " << n;
        }
        EXPECT_EQ(cache.Size(), 3u) << call.name << ", copy " << n;
        executor.DropAll();
      }
      if (!reached) break;
    }
    std::printf("%s: %d copies, each threw once\n", call.name, n - 1);
  }
}
}  // namespace
}  // namespace herd
