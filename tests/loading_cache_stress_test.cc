// Copyright 2026 The herd Authors.
//
// Randomized stress test of herd::LoadingCache on the real clock: several
// threads mix Get, GetAsync, GetThen, GetIfPresent, Put, Invalidate and
// InvalidateAll on a few keys with short TTLs, so that loads, refreshes,
// early refreshes, negative caching, evictions and invalidations all race.
// Checks that every call answers exactly once, with a value of its own key
// or that key's loader exception, and that the counters add up. Meant to
// run under ThreadSanitizer.
//
//   HERD_STRESS_SEED=<n>     replay a seed (printed by every run)
//   HERD_STRESS_SECONDS=<s>  run time per configuration (default 1)

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "herd/loading_cache.h"
#include "herd/thread_pool.h"

namespace herd {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

constexpr int kKeys = 24;
constexpr int kThreads = 4;

struct StressError : std::runtime_error {
  explicit StressError(int k) : std::runtime_error("stress"), key(k) {}
  int key;
};

uint64_t Seed() {
  if (const char* s = std::getenv("HERD_STRESS_SEED")) {
    return std::strtoull(s, nullptr, 10);
  }
  return static_cast<uint64_t>(
      std::chrono::steady_clock::now().time_since_epoch().count());
}

std::chrono::milliseconds RunTime() {
  if (const char* s = std::getenv("HERD_STRESS_SECONDS")) {
    return milliseconds(static_cast<int64_t>(std::atof(s) * 1000));
  }
  return milliseconds(1000);
}

// True iff `v` is a value the cache may hold for key `k`.
bool ValueOfKey(const std::string& v, int k) {
  const std::string prefix = "k" + std::to_string(k) + ":";
  return v.compare(0, prefix.size(), prefix) == 0;
}

// True iff `e` is the loader exception of key `k`.
bool ErrorOfKey(std::exception_ptr e, int k) {
  try {
    std::rethrow_exception(e);
  } catch (const StressError& err) {
    return err.key == k;
  } catch (...) {
    return false;
  }
}

struct Counters {
  std::atomic<uint64_t> lookups{0};  // calls that count a hit or a miss
  std::atomic<uint64_t> callbacks_issued{0};
  std::atomic<uint64_t> callbacks_run{0};
  std::atomic<uint64_t> bad{0};  // wrong key, wrong exception, twice
};

// One thread's view of its GetThen callbacks: a slot per callback, counting
// its calls. A deque never moves its elements, so a callback holds a
// pointer to its slot while the owner keeps appending.
struct Slots {
  std::deque<std::atomic<int>> calls;
};

void Worker(LoadingCache<int, std::string>& cache, uint64_t seed,
            std::chrono::steady_clock::time_point end, size_t max_entries,
            Counters& counters, Slots& slots) {
  std::mt19937_64 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  uint64_t version = 0;
  std::vector<std::pair<int, std::shared_future<std::string>>> futures;

  auto check_future = [&](int k, const std::shared_future<std::string>& f) {
    try {
      if (!ValueOfKey(f.get(), k)) counters.bad.fetch_add(1);
    } catch (...) {
      if (!ErrorOfKey(std::current_exception(), k)) counters.bad.fetch_add(1);
    }
  };

  uint64_t ops = 0;
  while ((++ops & 15) != 0 || std::chrono::steady_clock::now() < end) {
    const int k = pick(kKeys);
    // Each loader is its own copy: it may run later, on the executor.
    const bool fail = pick(8) == 0;
    const int work_us = pick(4) == 0 ? pick(300) : 0;
    const uint64_t v = ++version;
    auto body = [k, fail, work_us, v, seed]() -> std::string {
      if (work_us > 0) std::this_thread::sleep_for(microseconds(work_us));
      if (fail) throw StressError(k);
      return "k" + std::to_string(k) + ":" + std::to_string(seed) + "." +
             std::to_string(v);
    };
    switch (pick(20)) {
      case 0:
      case 1:
      case 2:
      case 3:
      case 4:
      case 5: {
        counters.lookups.fetch_add(1);
        try {
          std::string got =
              pick(2) == 0
                  ? cache.Get(k, body)
                  : cache.Get(k, [body](std::stop_token) { return body(); });
          if (!ValueOfKey(got, k)) counters.bad.fetch_add(1);
        } catch (...) {
          if (!ErrorOfKey(std::current_exception(), k)) {
            counters.bad.fetch_add(1);
          }
        }
        break;
      }
      case 6:
      case 7:
      case 8: {
        counters.lookups.fetch_add(1);
        futures.emplace_back(k, cache.GetAsync(k, body));
        if (futures.size() > 64) {
          for (auto& [fk, f] : futures) check_future(fk, f);
          futures.clear();
        }
        break;
      }
      case 9:
      case 10:
      case 11:
      case 12: {
        counters.lookups.fetch_add(1);
        counters.callbacks_issued.fetch_add(1);
        std::atomic<int>* slot = &slots.calls.emplace_back(0);
        cache.GetThen(k, body,
                      [k, slot, &counters](const std::string* value,
                                           std::exception_ptr error) {
                        if (slot->fetch_add(1) != 0) counters.bad.fetch_add(1);
                        if ((value == nullptr) == (error == nullptr)) {
                          counters.bad.fetch_add(1);
                        } else if (value != nullptr ? !ValueOfKey(*value, k)
                                                    : !ErrorOfKey(error, k)) {
                          counters.bad.fetch_add(1);
                        }
                        counters.callbacks_run.fetch_add(1);
                      });
        break;
      }
      case 13:
      case 14: {
        counters.lookups.fetch_add(1);
        std::optional<std::string> got = cache.GetIfPresent(k);
        if (got.has_value() && !ValueOfKey(*got, k)) counters.bad.fetch_add(1);
        break;
      }
      case 15:
      case 16:
        cache.Put(k, "k" + std::to_string(k) + ":put");
        break;
      case 17:
      case 18:
        cache.Invalidate(k);
        break;
      case 19:
        if (pick(16) == 0) {
          cache.InvalidateAll();
        } else if (max_entries > 0 && cache.Size() > max_entries) {
          counters.bad.fetch_add(1);
        }
        break;
    }
  }
  for (auto& [fk, f] : futures) check_future(fk, f);
}

void RunStress(const char* name, CacheOptions options, uint64_t seed) {
  std::printf("%s: seed %llu\n", name, static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  Counters counters;
  std::vector<Slots> slots(kThreads);
  CacheStats stats;
  {
    LoadingCache<int, std::string> cache(options);
    const auto end = std::chrono::steady_clock::now() + RunTime();
    {
      std::vector<std::jthread> threads;
      for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
          Worker(cache, seed * 1000003 + t, end, options.max_entries, counters,
                 slots[t]);
        });
      }
    }
    stats = cache.Stats();
    // The destructor waits for every task: every callback has run after it.
  }
  EXPECT_EQ(counters.bad.load(), 0u) << "seed " << seed;
  EXPECT_EQ(counters.callbacks_run.load(), counters.callbacks_issued.load())
      << "seed " << seed;
  for (Slots& s : slots) {
    for (std::atomic<int>& c : s.calls)
      ASSERT_EQ(c.load(), 1) << "seed " << seed;
  }
  EXPECT_EQ(stats.hits + stats.misses, counters.lookups.load())
      << "seed " << seed;
  std::printf(
      "  lookups %llu, callbacks %llu, hits %llu (stale %llu, negative %llu), "
      "misses %llu, loads %llu (failed %llu), refreshes %llu (early %llu, "
      "failed %llu), evictions %llu\n",
      static_cast<unsigned long long>(counters.lookups.load()),
      static_cast<unsigned long long>(counters.callbacks_run.load()),
      static_cast<unsigned long long>(stats.hits),
      static_cast<unsigned long long>(stats.stale_reads),
      static_cast<unsigned long long>(stats.negative_hits),
      static_cast<unsigned long long>(stats.misses),
      static_cast<unsigned long long>(stats.loads),
      static_cast<unsigned long long>(stats.load_failures),
      static_cast<unsigned long long>(stats.refreshes),
      static_cast<unsigned long long>(stats.early_refreshes),
      static_cast<unsigned long long>(stats.refresh_failures),
      static_cast<unsigned long long>(stats.evictions));
}

CacheOptions Base(uint64_t seed) {
  CacheOptions o;
  o.ttl = milliseconds(5);
  o.refresh_after = milliseconds(2);
  o.early_refresh_beta = 2.0;
  o.error_ttl = milliseconds(1);
  o.seed = seed;
  return o;
}

TEST(LoadingCacheStress, BoundedShardedDefaultExecutor) {
  const uint64_t seed = Seed();
  CacheOptions o = Base(seed);
  o.max_entries = 16;
  o.shards = 4;
  RunStress("bounded, 4 shards, default executor", o, seed);
}

TEST(LoadingCacheStress, UnboundedOwnPoolNoNegativeCaching) {
  const uint64_t seed = Seed() + 1;
  ThreadPool pool(3);  // outlives the cache
  CacheOptions o = Base(seed);
  o.error_ttl = milliseconds(0);
  o.executor = [&pool](CacheOptions::Task t) { pool.Schedule(std::move(t)); };
  RunStress("unbounded, 16 shards, own pool", o, seed);
}

}  // namespace
}  // namespace herd
