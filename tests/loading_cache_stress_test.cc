// Copyright 2026 The herd Authors.
//
// Randomized stress test of herd::LoadingCache on the real clock: threads
// mix every operation (Get, Get(key, loader), GetAsync, GetThen, GetAll,
// Refresh, GetIfPresent, Put, Invalidate, InvalidateAll, Size, Weight,
// CleanUp, Stats) on a few keys with short lifetimes, so that loads,
// refreshes, early refreshes, extra executions, negative caching,
// fail-safe answers, soft and hard timeouts, evictions and invalidations
// all race. Checks that every call answers exactly once, with a value of
// its own key or an error it may get, that no value is reported to the
// removal listener twice, and that the counters add up. Meant to run under
// ThreadSanitizer.
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
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
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

milliseconds RunTime() {
  if (const char* s = std::getenv("HERD_STRESS_SECONDS")) {
    return milliseconds(static_cast<int64_t>(std::atof(s) * 1000));
  }
  return milliseconds(1000);
}

bool ValueOfKey(const std::string& v, int k) {
  const std::string prefix = "k" + std::to_string(k) + ":";
  return v.compare(0, prefix.size(), prefix) == 0;
}

// True iff `e` is an error a caller of key `k` may get: its loader's
// exception, a hard timeout, a key the batch loader left out.
bool ErrorOfKey(std::exception_ptr e, int k) {
  try {
    std::rethrow_exception(e);
  } catch (const StressError& err) {
    return err.key == k;
  } catch (const WaitTimeout&) {
    return true;
  } catch (const std::out_of_range&) {
    return true;
  } catch (...) {
    return false;
  }
}

struct Counters {
  std::atomic<uint64_t> lookups{0};  // calls that count one hit or one miss
  std::atomic<uint64_t> callbacks_issued{0};
  std::atomic<uint64_t> callbacks_run{0};
  std::atomic<uint64_t> bad{0};
  std::atomic<uint64_t> version{0};
};

// The loaders: "k<key>:<version>", failing one time in eight, sometimes
// slow (real time), stopping early when their token is stopped.
std::string Load(Counters& c, uint64_t seed, int k, std::stop_token stop) {
  const uint64_t v = c.version.fetch_add(1) + 1;
  std::mt19937_64 rng(seed ^ (v * 0x9e3779b97f4a7c15ULL));
  if (rng() % 4 == 0) {
    const auto until =
        std::chrono::steady_clock::now() + microseconds(rng() % 3000);
    while (std::chrono::steady_clock::now() < until && !stop.stop_requested()) {
      std::this_thread::sleep_for(microseconds(100));
    }
  }
  if (rng() % 8 == 0) throw StressError(k);
  return "k" + std::to_string(k) + ":" + std::to_string(v);
}

using Cache = LoadingCache<int, std::string>;

// One thread's GetThen callbacks: a slot each, counting its calls. A deque
// never moves its elements.
struct Slots {
  std::deque<std::atomic<int>> calls;
};

void Worker(Cache& cache, uint64_t seed, std::chrono::steady_clock::time_point end,
            Counters& counters, Slots& slots) {
  std::mt19937_64 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  std::vector<std::pair<int, std::shared_future<std::string>>> futures;
  auto check_value = [&](const std::string& v, int k) {
    if (!ValueOfKey(v, k)) {
      if (counters.bad.fetch_add(1) < 5) {
        std::printf("  bad: key %d got value %s\n", k, v.c_str());
      }
    }
  };
  auto check_error = [&](std::exception_ptr e, int k) {
    if (!ErrorOfKey(e, k)) {
      if (counters.bad.fetch_add(1) < 5) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          std::printf("  bad: key %d got %s\n", k, x.what());
        } catch (...) {
          std::printf("  bad: key %d got a non-std exception\n", k);
        }
      }
    }
  };
  auto check_future = [&](int k, const std::shared_future<std::string>& f) {
    try {
      check_value(f.get(), k);
    } catch (...) {
      check_error(std::current_exception(), k);
    }
  };
  uint64_t ops = 0;
  while ((++ops & 15) != 0 || std::chrono::steady_clock::now() < end) {
    const int k = pick(kKeys);
    switch (pick(24)) {
      case 0:
      case 1:
      case 2:
      case 3:
      case 4: {
        counters.lookups.fetch_add(1);
        try {
          check_value(cache.Get(k), k);
        } catch (...) {
          check_error(std::current_exception(), k);
        }
        break;
      }
      case 5: {
        counters.lookups.fetch_add(1);
        try {
          check_value(cache.Get(k, [&](std::stop_token st) {
            return Load(counters, seed, k, st);
          }),
                      k);
        } catch (...) {
          check_error(std::current_exception(), k);
        }
        break;
      }
      case 6:
      case 7: {
        counters.lookups.fetch_add(1);
        futures.emplace_back(k, cache.GetAsync(k));
        if (futures.size() > 32) {
          for (auto& [fk, f] : futures) check_future(fk, f);
          futures.clear();
        }
        break;
      }
      case 8:
      case 9:
      case 10: {
        counters.lookups.fetch_add(1);
        counters.callbacks_issued.fetch_add(1);
        std::atomic<int>* slot = &slots.calls.emplace_back(0);
        cache.GetThen(k, [k, slot, &counters](const std::string* value,
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
      case 11: {
        std::vector<int> keys;
        for (int i = pick(4) + 1; i > 0; --i) keys.push_back(pick(kKeys));
        absl::flat_hash_set<int> distinct(keys.begin(), keys.end());
        counters.lookups.fetch_add(distinct.size());
        try {
          Cache::Map got = cache.GetAll(keys);
          for (auto& [gk, gv] : got) {
            if (!distinct.contains(gk)) counters.bad.fetch_add(1);
            check_value(gv, gk);
          }
        } catch (const StressError& e) {
          if (!distinct.contains(e.key)) counters.bad.fetch_add(1);
        } catch (const WaitTimeout&) {
        } catch (const std::out_of_range&) {
        } catch (...) {
          if (counters.bad.fetch_add(1) < 5) std::printf("  bad: GetAll\n");
        }
        break;
      }
      case 12:
        futures.emplace_back(k, cache.Refresh(k));
        break;
      case 13:
      case 14:
      case 15: {
        counters.lookups.fetch_add(1);
        std::optional<std::string> got = cache.GetIfPresent(k);
        if (got.has_value()) check_value(*got, k);
        break;
      }
      case 16:
      case 17:
        cache.Put(k, "k" + std::to_string(k) + ":put" +
                         std::to_string(counters.version.fetch_add(1) + 1));
        break;
      case 18:
      case 19:
        cache.Invalidate(k);
        break;
      case 20: {
        const int keys[] = {k, (k + 1) % kKeys};
        cache.InvalidateAll(keys);
        break;
      }
      case 21:
        if (pick(16) == 0) cache.InvalidateAll();
        break;
      case 22:
        (void)cache.Size();
        (void)cache.Weight();
        (void)cache.Stats();
        break;
      case 23:
        cache.CleanUp();
        break;
    }
  }
  for (auto& [fk, f] : futures) check_future(fk, f);
}

void RunStress(const char* name, CacheOptions<int, std::string> options,
               uint64_t seed) {
  std::printf("%s: seed %llu\n", name, static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  Counters counters;
  std::vector<Slots> slots(kThreads);
  std::mutex reported_mu;
  absl::flat_hash_set<std::string> reported;
  std::atomic<uint64_t> twice{0};
  options.removal_listener = [&](const int& k, const std::string& v,
                                 RemovalCause) {
    if (!ValueOfKey(v, k)) twice.fetch_add(1);
    std::lock_guard<std::mutex> lock(reported_mu);
    if (!reported.insert(v).second) twice.fetch_add(1);
  };
  CacheStats stats;
  {
    Cache cache(
        options,
        [&](int k, std::stop_token st) { return Load(counters, seed, k, st); },
        [&](std::span<const int> keys, std::stop_token st) {
          Cache::Map m;
          for (int k : keys) {
            if (k % 5 == 0) continue;  // left out: std::out_of_range
            try {
              m.emplace(k, Load(counters, seed, k, st));
            } catch (const StressError&) {
            }
          }
          return m;
        });
    const auto end = std::chrono::steady_clock::now() + RunTime();
    {
      std::vector<std::jthread> threads;
      for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
          Worker(cache, seed * 1000003 + t, end, counters, slots[t]);
        });
      }
    }
    stats = cache.Stats();
    // The destructor waits for every task: every callback has run after it.
  }
  EXPECT_EQ(counters.bad.load(), 0u) << "seed " << seed;
  EXPECT_EQ(twice.load(), 0u) << "seed " << seed;
  EXPECT_EQ(counters.callbacks_run.load(), counters.callbacks_issued.load())
      << "seed " << seed;
  for (Slots& s : slots) {
    for (std::atomic<int>& c : s.calls) {
      ASSERT_EQ(c.load(), 1) << "seed " << seed;
    }
  }
  EXPECT_EQ(stats.hits + stats.misses, counters.lookups.load())
      << "seed " << seed;
  EXPECT_EQ(stats.stale_served,
            stats.stale_refresh_ahead + stats.stale_load_failed +
                stats.stale_soft_timeout + stats.stale_hard_timeout);
  std::printf(
      "  lookups %llu, callbacks %llu, hits %llu (negative %llu), misses "
      "%llu, loads %llu (failed %llu), refreshes %llu (early %llu), stale "
      "%llu (ahead %llu, failed %llu, soft %llu, hard %llu), evictions "
      "%llu, expirations %llu, reported %zu\n",
      static_cast<unsigned long long>(counters.lookups.load()),
      static_cast<unsigned long long>(counters.callbacks_run.load()),
      static_cast<unsigned long long>(stats.hits),
      static_cast<unsigned long long>(stats.negative_hits),
      static_cast<unsigned long long>(stats.misses),
      static_cast<unsigned long long>(stats.loads),
      static_cast<unsigned long long>(stats.load_failures),
      static_cast<unsigned long long>(stats.refreshes),
      static_cast<unsigned long long>(stats.early_refreshes),
      static_cast<unsigned long long>(stats.stale_served),
      static_cast<unsigned long long>(stats.stale_refresh_ahead),
      static_cast<unsigned long long>(stats.stale_load_failed),
      static_cast<unsigned long long>(stats.stale_soft_timeout),
      static_cast<unsigned long long>(stats.stale_hard_timeout),
      static_cast<unsigned long long>(stats.evictions),
      static_cast<unsigned long long>(stats.expirations), reported.size());
}

CacheOptions<int, std::string> Base(uint64_t seed) {
  CacheOptions<int, std::string> o;
  o.ttl = milliseconds(5);
  o.refresh_after = milliseconds(2);
  o.early_refresh_beta = 2.0;
  o.error_ttl = milliseconds(1);
  o.clock = &Clock::Steady();
  o.seed = seed;
  return o;
}

TEST(LoadingCacheStress, BoundedWeighedDefaultExecutor) {
  const uint64_t seed = Seed();
  CacheOptions<int, std::string> o = Base(seed);
  o.max_weight = 64;
  o.weigher = [](const int&, const std::string& v) { return v.size(); };
  o.shards = 4;
  o.expire_after_access = milliseconds(4);
  RunStress("bounded by weight, 4 shards, default executor", o, seed);
}

TEST(LoadingCacheStress, FailSafeOwnPool) {
  const uint64_t seed = Seed() + 1;
  ThreadPool pool(3);  // outlives the cache
  CacheOptions<int, std::string> o = Base(seed);
  o.error_ttl = milliseconds(0);
  o.stale_if_error = milliseconds(20);
  o.fail_safe_backoff = milliseconds(1);
  o.soft_timeout = microseconds(500);
  o.hard_timeout = milliseconds(2);
  o.max_flight_age = milliseconds(3);
  o.executor = pool;
  RunStress("fail-safe, timeouts, own pool", o, seed);
}

TEST(LoadingCacheStress, BoundedEntriesExtraExecutionsCoarseClock) {
  const uint64_t seed = Seed() + 2;
  CacheOptions<int, std::string> o = Base(seed);
  o.clock = nullptr;  // the default coarse clock
  o.ttl = milliseconds(20);
  o.refresh_after = milliseconds(8);
  o.max_entries = 8;
  o.shards = 2;
  o.extra_execution_rate = 0.2;
  o.stale_if_error = milliseconds(40);
  RunStress("bounded by entries, extra executions, coarse clock", o, seed);
}

}  // namespace
}  // namespace herd
