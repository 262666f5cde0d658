// Copyright 2026 The herd Authors.
//
// herd::LoadingCache against the cache people write first: a std::mutex
// around an absl::flat_hash_map of (value, expiry), no coalescing. Same
// keys, values, clock and loaders on both sides, in one binary.
//
//   BM_*_Hit               a read of a fresh entry, 1024 keys spread over
//                          the threads (1 and 2 threads)
//   BM_*_HotKeyHit         every thread reads the same fresh key
//   BM_*_Miss              a read of an absent key (load, store), then its
//                          removal, so that every read misses
//   BM_*_Stampede          8 threads read one key just after it expired;
//                          the loader is a backend call (100 us, one at a
//                          time). Reports loads per stampede.
//
//   bazel run -c opt //benchmarks:loading_cache_benchmark

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "benchmark/benchmark.h"
#include "herd/clock.h"
#include "herd/loading_cache.h"

namespace herd {
namespace {

using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::seconds;

constexpr int kKeys = 1024;

std::string ValueFor(int key) {
  // 32 characters: past the small-string buffer, so a copy allocates, as
  // most cached values would.
  std::string v = "value-" + std::to_string(key);
  v.resize(32, '.');
  return v;
}

// The baseline: what a service gets without herd.
class MutexMapCache {
 public:
  MutexMapCache(const Clock& clock, Clock::duration ttl)
      : clock_(clock), ttl_(ttl) {}

  template <class Loader>
  std::string Get(int key, Loader&& loader) {
    const Clock::time_point now = clock_.Now();
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = map_.find(key);
      if (it != map_.end() && now < it->second.expires) {
        return it->second.value;
      }
    }
    std::string value = loader();  // every caller that missed loads
    std::lock_guard<std::mutex> lock(mu_);
    map_.insert_or_assign(key, Entry{value, clock_.Now() + ttl_});
    return value;
  }

  void Erase(int key) {
    std::lock_guard<std::mutex> lock(mu_);
    map_.erase(key);
  }

 private:
  struct Entry {
    std::string value;
    Clock::time_point expires;
  };
  const Clock& clock_;
  const Clock::duration ttl_;
  std::mutex mu_;
  absl::flat_hash_map<int, Entry> map_;
};

using Cache = LoadingCache<int, std::string>;

CacheOptions HerdOptions(const Clock* clock) {
  CacheOptions o;
  o.ttl = hours(1);
  o.clock = clock;
  return o;
}

// Caches shared by the threads of one benchmark, filled once.
template <class C>
C& Filled(C& cache) {
  for (int k = 0; k < kKeys; ++k) {
    cache.Get(k, [k] { return ValueFor(k); });
  }
  return cache;
}

Cache& HerdHitCache() {
  static Cache* cache = &Filled(*new Cache(HerdOptions(&Clock::Steady())));
  return *cache;
}

MutexMapCache& BaselineHitCache() {
  static MutexMapCache* cache =
      &Filled(*new MutexMapCache(Clock::Steady(), hours(1)));
  return *cache;
}

template <class C>
void Hit(benchmark::State& state, C& cache) {
  int k = state.thread_index() * (kKeys / 2);
  for (auto _ : state) {
    benchmark::DoNotOptimize(cache.Get(k, [k] { return ValueFor(k); }));
    k = (k + 1) & (kKeys - 1);
  }
}

void BM_LoadingCache_Hit(benchmark::State& state) {
  Hit(state, HerdHitCache());
}
void BM_Baseline_Hit(benchmark::State& state) {
  Hit(state, BaselineHitCache());
}
BENCHMARK(BM_LoadingCache_Hit)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_Baseline_Hit)->Threads(1)->Threads(2)->UseRealTime();

template <class C>
void HotKeyHit(benchmark::State& state, C& cache) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(cache.Get(7, [] { return ValueFor(7); }));
  }
}

void BM_LoadingCache_HotKeyHit(benchmark::State& state) {
  HotKeyHit(state, HerdHitCache());
}
void BM_Baseline_HotKeyHit(benchmark::State& state) {
  HotKeyHit(state, BaselineHitCache());
}
BENCHMARK(BM_LoadingCache_HotKeyHit)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_Baseline_HotKeyHit)->Threads(1)->Threads(2)->UseRealTime();

void BM_LoadingCache_Miss(benchmark::State& state) {
  Cache cache(HerdOptions(&Clock::Steady()));
  int k = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(cache.Get(k, [k] { return ValueFor(k); }));
    cache.Invalidate(k);
    k = (k + 1) & (kKeys - 1);
  }
}
void BM_Baseline_Miss(benchmark::State& state) {
  MutexMapCache cache(Clock::Steady(), hours(1));
  int k = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(cache.Get(k, [k] { return ValueFor(k); }));
    cache.Erase(k);
    k = (k + 1) & (kKeys - 1);
  }
}
BENCHMARK(BM_LoadingCache_Miss);
BENCHMARK(BM_Baseline_Miss);

// A backend that serves one query at a time, each taking about 100 us: a
// database row lock, a rate-limited API. Counts the queries it served.
class Backend {
 public:
  std::string Query() {
    std::lock_guard<std::mutex> lock(mu_);
    queries_.fetch_add(1, std::memory_order_relaxed);
    std::this_thread::sleep_for(microseconds(100));
    return ValueFor(1);
  }
  uint64_t queries() const { return queries_.load(); }

 private:
  std::mutex mu_;
  std::atomic<uint64_t> queries_{0};
};

// `n` threads that each run `read` once per round, all released together.
class Crowd {
 public:
  Crowd(int n, std::function<void()> read)
      : read_(std::move(read)), start_(n + 1), done_(n + 1) {
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([this] {
        for (;;) {
          start_.arrive_and_wait();
          if (stop_.load()) return;
          read_();
          done_.arrive_and_wait();
        }
      });
    }
  }
  ~Crowd() {
    stop_.store(true);
    start_.arrive_and_wait();
  }
  void Round() {
    start_.arrive_and_wait();
    done_.arrive_and_wait();
  }

 private:
  std::function<void()> read_;
  std::barrier<> start_;
  std::barrier<> done_;
  std::atomic<bool> stop_{false};
  std::vector<std::jthread> threads_;
};

constexpr int kCrowd = 8;

template <class C>
void Stampede(benchmark::State& state, C& cache, FakeClock& clock,
              Backend& backend) {
  cache.Get(1, [&] { return backend.Query(); });
  Crowd crowd(kCrowd, [&] {
    benchmark::DoNotOptimize(cache.Get(1, [&] { return backend.Query(); }));
  });
  const uint64_t before = backend.queries();
  for (auto _ : state) {
    clock.Advance(seconds(61));  // the key has just expired
    crowd.Round();
  }
  state.counters["loads_per_stampede"] =
      benchmark::Counter(static_cast<double>(backend.queries() - before) /
                         static_cast<double>(state.iterations()));
}

void BM_LoadingCache_Stampede(benchmark::State& state) {
  FakeClock clock;
  Backend backend;
  CacheOptions o = HerdOptions(&clock);
  o.ttl = seconds(60);
  Cache cache(o);
  Stampede(state, cache, clock, backend);
}
void BM_Baseline_Stampede(benchmark::State& state) {
  FakeClock clock;
  Backend backend;
  MutexMapCache cache(clock, seconds(60));
  Stampede(state, cache, clock, backend);
}
BENCHMARK(BM_LoadingCache_Stampede)->UseRealTime();
BENCHMARK(BM_Baseline_Stampede)->UseRealTime();

}  // namespace
}  // namespace herd
