// Copyright 2026 The herd Authors.
//
// herd::LoadingCache against the cache people write first: a std::mutex
// around an absl::flat_hash_map of (value, expiry), no coalescing
// (benchmarks/baselines/mutex_map_cache.h for the int64 cases). Same keys,
// values and loaders on both sides, in one binary.
//
// String values (32 characters: a copy allocates), the clock injected:
//   BM_*_Hit               a read of a fresh entry, 1024 keys spread over
//                          the threads (1 and 2 threads)
//   BM_*_HotKeyHit         every thread reads the same fresh key
//   BM_*_Miss              a read of an absent key (load, store), then its
//                          removal, so that every read misses
//   BM_*_Stampede          8 threads read one key just after it expired;
//                          the loader is a backend call (100 us, one at a
//                          time). Reports loads per stampede.
//
// int64 -> int64, each side with its default clock (herd: Clock::Coarse();
// the baseline: steady_clock::now()), the read scaling of issue 14:
//   BM_LoadingCache_HitInt64         unbounded
//   BM_LoadingCache_BoundedHitInt64  max_entries 4x the keys read
//   BM_Baseline_HitInt64
//     each on 1 and 2 threads, on distinct keys (each thread its own 512)
//     and on one hot key (/hot).
//   BM_Floor_SpinInt64      each thread spins on its own line for about a
//                           hit's time: how far 2 threads can scale here
//   BM_Floor_HitStepsInt64  each thread does a hit's own atomic steps and
//                           clock read on lines only it writes: the same
//                           bound, for work shaped like a hit
//   BM_*_BytesPerEntry      heap bytes per entry of 100k int64 entries
//                           (malloc_usable_size of every allocation live),
//                           and that minus the 16 bytes of key and value.
//
//   bazel run -c opt //benchmarks:loading_cache_benchmark
//   build/cmake/benchmarks/loading_cache_benchmark --benchmark_filter=Int64

#include <malloc.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "benchmark/benchmark.h"
#include "benchmarks/baselines/mutex_map_cache.h"
#include "herd/clock.h"
#include "herd/loading_cache.h"

// Heap bytes live, for BM_*_BytesPerEntry: operator new and delete count
// malloc_usable_size() of each block. Not under a sanitizer, which replaces
// them itself.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HERD_BENCH_COUNT_BYTES 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HERD_BENCH_COUNT_BYTES 0
#endif
#endif
#ifndef HERD_BENCH_COUNT_BYTES
#define HERD_BENCH_COUNT_BYTES 1
#endif

namespace {
std::atomic<int64_t> g_live_bytes{0};
}  // namespace

#if HERD_BENCH_COUNT_BYTES
void* operator new(std::size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  g_live_bytes.fetch_add(static_cast<int64_t>(malloc_usable_size(p)),
                         std::memory_order_relaxed);
  return p;
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
  const std::size_t align = static_cast<std::size_t>(a);
  void* p = std::aligned_alloc(align, (n + align - 1) / align * align);
  if (p == nullptr) throw std::bad_alloc();
  g_live_bytes.fetch_add(static_cast<int64_t>(malloc_usable_size(p)),
                         std::memory_order_relaxed);
  return p;
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return operator new(n, a);
}
// Not inlined: g++ 12 inlines a replacement defined in the same file into
// each delete-expression and then reports its free() of a block that
// operator new returned (-Wmismatched-new-delete), which is exactly the
// pairing this replacement makes.
[[gnu::noinline]] void operator delete(void* p) noexcept {
  if (p == nullptr) return;
  g_live_bytes.fetch_sub(static_cast<int64_t>(malloc_usable_size(p)),
                         std::memory_order_relaxed);
  std::free(p);
}
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { operator delete(p); }
void operator delete(void* p, std::align_val_t) noexcept { operator delete(p); }
void operator delete[](void* p, std::align_val_t) noexcept {
  operator delete(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  operator delete(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  operator delete(p);
}
#endif  // HERD_BENCH_COUNT_BYTES

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

// The baseline with string values and an injected clock (the string cases
// predate the int64 ones; they keep their form).
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

CacheOptions<int, std::string> HerdOptions(const Clock* clock) {
  CacheOptions<int, std::string> o;
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
  CacheOptions<int, std::string> o = HerdOptions(&clock);
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

// --- int64 -> int64: read scaling and memory --------------------------------

using Int64Cache = LoadingCache<int64_t, int64_t>;
using Int64Baseline = herd_bench::MutexMapCache<int64_t, int64_t>;

Int64Cache& Int64HerdCache(bool bounded) {
  static Int64Cache* caches[2] = {};
  Int64Cache*& cache = caches[bounded ? 1 : 0];
  if (cache == nullptr) {
    cache = new Int64Cache(
        {.ttl = hours(1), .max_entries = bounded ? 4u * kKeys : 0u},
        [](int64_t k) { return k; });
    for (int64_t k = 0; k < kKeys; ++k) cache->Get(k);
  }
  return *cache;
}

Int64Baseline& Int64BaselineCache() {
  static Int64Baseline* cache = [] {
    auto* c = new Int64Baseline(hours(1));
    for (int64_t k = 0; k < kKeys; ++k) c->Get(k, [k] { return k; });
    return c;
  }();
  return *cache;
}

// Reads fresh keys: each thread its own half of the keys (range(0) == 0),
// or all the same key (range(0) == 1). Reports hits_per_s: each thread's
// hits over its own wall time, summed over the threads (Google Benchmark
// sums counters across threads), i.e. the throughput of all of them.
template <class Read>
void Int64Hits(benchmark::State& state, Read read) {
  const bool hot = state.range(0) == 1;
  int64_t k = hot ? 7 : state.thread_index() * (kKeys / 2);
  const int64_t base = k;
  int64_t i = 0;
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    benchmark::DoNotOptimize(read(k));
    if (!hot) k = base + (++i & (kKeys / 2 - 1));
  }
  const std::chrono::duration<double> took =
      std::chrono::steady_clock::now() - start;
  state.counters["hits_per_s"] =
      static_cast<double>(state.iterations()) / took.count();
}

void BM_LoadingCache_HitInt64(benchmark::State& state) {
  Int64Cache& cache = Int64HerdCache(false);
  Int64Hits(state, [&](int64_t k) { return cache.Get(k); });
}
void BM_LoadingCache_BoundedHitInt64(benchmark::State& state) {
  Int64Cache& cache = Int64HerdCache(true);
  Int64Hits(state, [&](int64_t k) { return cache.Get(k); });
}
void BM_Baseline_HitInt64(benchmark::State& state) {
  Int64Baseline& cache = Int64BaselineCache();
  Int64Hits(state, [&](int64_t k) { return cache.Get(k, [k] { return k; }); });
}
// Arg 0: distinct keys; Arg 1: one hot key.
BENCHMARK(BM_LoadingCache_HitInt64)
    ->ArgName("hot")->Arg(0)->Arg(1)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_LoadingCache_BoundedHitInt64)
    ->ArgName("hot")->Arg(0)->Arg(1)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_Baseline_HitInt64)
    ->ArgName("hot")->Arg(0)->Arg(1)->Threads(1)->Threads(2)->UseRealTime();

// The floor of read scaling on this machine: each thread spins on its own
// cache line for about as long as a hit takes, sharing nothing. Hits can
// scale from 1 to 2 threads at most as well as this does.
void BM_Floor_SpinInt64(benchmark::State& state) {
  uint64_t x = static_cast<uint64_t>(state.thread_index()) + 1;
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    for (int i = 0; i < 8; ++i) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      benchmark::DoNotOptimize(x);
    }
  }
  const std::chrono::duration<double> took =
      std::chrono::steady_clock::now() - start;
  state.counters["hits_per_s"] =
      static_cast<double>(state.iterations()) / took.count();
}
BENCHMARK(BM_Floor_SpinInt64)->Threads(1)->Threads(2)->UseRealTime();

// The floor for a hit's own steps: each thread does what an unbounded hit
// does besides reading the index and the node, all on lines it alone
// writes: a seq_cst exchange on its own record (the epoch's Enter), a
// relaxed fetch_add on its own stripe (the hit count), a read of
// Clock::Coarse() and a release store (Exit). Nothing is shared, so what
// this loses from 1 to 2 threads, the machine loses: hits cannot scale
// better than this does in the same run.
void BM_Floor_HitStepsInt64(benchmark::State& state) {
  struct alignas(64) Line {
    std::atomic<uint64_t> v{0};
  };
  Line record;
  Line stripe;
  const Clock& clock = Clock::Coarse();
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    record.v.exchange(1, std::memory_order_seq_cst);
    stripe.v.fetch_add(1, std::memory_order_relaxed);
    benchmark::DoNotOptimize(clock.Now());
    record.v.store(0, std::memory_order_release);
  }
  const std::chrono::duration<double> took =
      std::chrono::steady_clock::now() - start;
  state.counters["hits_per_s"] =
      static_cast<double>(state.iterations()) / took.count();
}
BENCHMARK(BM_Floor_HitStepsInt64)->Threads(1)->Threads(2)->UseRealTime();

constexpr int64_t kMemoryEntries = 100000;

template <class Fill>
void BytesPerEntry(benchmark::State& state, Fill fill) {
  if (!HERD_BENCH_COUNT_BYTES) {
    state.SkipWithError("operator new is the sanitizer's here");
    return;
  }
  double bytes = 0;
  for (auto _ : state) {
    const int64_t before = g_live_bytes.load();
    bytes = static_cast<double>(fill() - before) / kMemoryEntries;
  }
  state.counters["bytes_per_entry"] = bytes;
  state.counters["overhead_per_entry"] = bytes - 16;  // key and value
}

void BM_LoadingCache_BytesPerEntry(benchmark::State& state) {
  BytesPerEntry(state, [] {
    auto cache = std::make_unique<Int64Cache>(
        CacheOptions<int64_t, int64_t>{.ttl = hours(1)},
        [](int64_t k) { return k; });
    for (int64_t k = 0; k < kMemoryEntries; ++k) cache->Get(k);
    cache->CleanUp();  // frees what epoch reclamation still held
    return g_live_bytes.load();
  });
}
void BM_LoadingCache_BoundedBytesPerEntry(benchmark::State& state) {
  BytesPerEntry(state, [] {
    auto cache = std::make_unique<Int64Cache>(
        CacheOptions<int64_t, int64_t>{.ttl = hours(1),
                                       .max_entries = 2 * kMemoryEntries},
        [](int64_t k) { return k; });
    for (int64_t k = 0; k < kMemoryEntries; ++k) cache->Get(k);
    cache->CleanUp();
    return g_live_bytes.load();
  });
}
void BM_Baseline_BytesPerEntry(benchmark::State& state) {
  BytesPerEntry(state, [] {
    auto cache = std::make_unique<Int64Baseline>(hours(1));
    for (int64_t k = 0; k < kMemoryEntries; ++k) {
      cache->Get(k, [k] { return k; });
    }
    return g_live_bytes.load();
  });
}
BENCHMARK(BM_LoadingCache_BytesPerEntry)->Iterations(1);
BENCHMARK(BM_LoadingCache_BoundedBytesPerEntry)->Iterations(1);
BENCHMARK(BM_Baseline_BytesPerEntry)->Iterations(1);

}  // namespace
}  // namespace herd
