// Copyright 2026 The herd Authors.
//
// Benchmarks of herd::Share, each case beside its baselines in one binary:
//
//   BM_Share_*         herd::Share<K, int64_t>
//   BM_Textbook_*      one std::mutex, an unordered_map of shared_future, a
//                      std::promise per call
//                      (baselines/textbook_singleflight.h)
//   BM_NoCoalescing_*  the loader called directly: what coalescing must not
//                      cost much more than
//   BM_Floor_*         the primitives a leader path or a wake-up cannot avoid
//
// Cases:
//   LeaderPath_{Int64,String}  one thread, each call the only caller of its
//                              key, trivial loader: the cost of coalescing
//                              itself (benchmarks/callgrind_check.py counts
//                              its instructions)
//   HotKey                     one key from 1 and 2 threads: calls per second
//                              and `exec_fraction`, the fraction of calls that
//                              ran the loader
//   Stampede/N                 N threads released together on one key whose
//                              loader takes 1 ms; the time reported (manual
//                              time) is from the value being set to the last
//                              waiter returning; `executions` per flight
//   DistinctKeys               unique keys from 1 and 2 threads (scaling)
//   ExtraExecutionRate/p       Stampede/8 with extra_execution_rate p/1000:
//                              `executions` per flight against `expected`
//
// The process starts a thread before main, as a server does: libstdc++ then
// pays for atomic reference counts and real locks, as it does in production.
//
//   bazel run -c opt //benchmarks:share_benchmark
//   benchmarks/run.py   # everything, with Go's singleflight beside it

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "benchmark/benchmark.h"
#include "benchmarks/baselines/textbook_singleflight.h"
#include "herd/share.h"

namespace {

const bool kMultiThreaded = [] {
  std::thread([] {}).join();
  return true;
}();

using Clock = std::chrono::steady_clock;

// --- The implementations under test, behind one interface. -----------------

template <class K>
class HerdShare {
 public:
  explicit HerdShare(herd::ShareOptions options = {}) : share_(options) {}
  template <class L>
  int64_t Do(const K& key, L&& loader) {
    return share_.Do(key, loader);
  }
  // Calls that have started or joined a flight.
  int64_t Joined() const { return static_cast<int64_t>(share_.Stats().calls); }

 private:
  herd::Share<K, int64_t> share_;
};

template <class K>
class Textbook {
 public:
  template <class L>
  int64_t Do(const K& key, L&& loader) {
    return impl_.Do(key, std::forward<L>(loader));
  }
  int64_t Joined() const { return impl_.calls(); }

 private:
  herd_bench::TextbookSingleflight<K, int64_t> impl_;
};

template <class K>
class NoCoalescing {
 public:
  template <class L>
  int64_t Do(const K&, L&& loader) {
    return loader();
  }
};

// 4096 keys of 13 characters ("user:00000042"): inside std::string's
// small-string buffer, as most cache keys of ids are.
const std::vector<std::string>& StringKeys() {
  static const auto* keys = [] {
    auto* v = new std::vector<std::string>;
    char buf[32];
    for (int i = 0; i < 4096; ++i) {
      std::snprintf(buf, sizeof buf, "user:%08d", i);
      v->emplace_back(buf);
    }
    return v;
  }();
  return *keys;
}

// --- (a) Leader path. ------------------------------------------------------

template <class Impl>
void LeaderPathInt64(benchmark::State& state) {
  Impl impl;
  int64_t key = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(impl.Do(key, [key] { return key; }));
    ++key;
  }
  state.SetItemsProcessed(state.iterations());
}

template <class Impl>
void LeaderPathString(benchmark::State& state) {
  Impl impl;
  const std::vector<std::string>& keys = StringKeys();
  size_t i = 0;
  for (auto _ : state) {
    const int64_t v = static_cast<int64_t>(i);
    benchmark::DoNotOptimize(impl.Do(keys[i], [v] { return v; }));
    i = (i + 1) & (keys.size() - 1);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Share_LeaderPath_Int64(benchmark::State& s) {
  LeaderPathInt64<HerdShare<int64_t>>(s);
}
void BM_Textbook_LeaderPath_Int64(benchmark::State& s) {
  LeaderPathInt64<Textbook<int64_t>>(s);
}
void BM_NoCoalescing_LeaderPath_Int64(benchmark::State& s) {
  LeaderPathInt64<NoCoalescing<int64_t>>(s);
}
void BM_Share_LeaderPath_String(benchmark::State& s) {
  LeaderPathString<HerdShare<std::string>>(s);
}
void BM_Textbook_LeaderPath_String(benchmark::State& s) {
  LeaderPathString<Textbook<std::string>>(s);
}
void BM_NoCoalescing_LeaderPath_String(benchmark::State& s) {
  LeaderPathString<NoCoalescing<std::string>>(s);
}
BENCHMARK(BM_Share_LeaderPath_Int64);
BENCHMARK(BM_Textbook_LeaderPath_Int64);
BENCHMARK(BM_NoCoalescing_LeaderPath_Int64);
BENCHMARK(BM_Share_LeaderPath_String);
BENCHMARK(BM_Textbook_LeaderPath_String);
BENCHMARK(BM_NoCoalescing_LeaderPath_String);

// Floors of a leader path: a lock round trip, a map insert and erase, and
// the promise/shared_future pair the textbook version pays on every call.
void BM_Floor_MutexLockUnlock(benchmark::State& state) {
  std::mutex mu;
  for (auto _ : state) {
    mu.lock();
    mu.unlock();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Floor_MutexLockUnlock);

void BM_Floor_FlatHashMapInsertErase_Int64(benchmark::State& state) {
  absl::flat_hash_map<int64_t, int64_t> map;
  int64_t key = 0;
  for (auto _ : state) {
    map.emplace(key, key);
    map.erase(key);
    ++key;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Floor_FlatHashMapInsertErase_Int64);

void BM_Floor_PromiseSharedFuture(benchmark::State& state) {
  int64_t v = 0;
  for (auto _ : state) {
    std::promise<int64_t> promise;
    std::shared_future<int64_t> future = promise.get_future().share();
    promise.set_value(++v);
    benchmark::DoNotOptimize(future.get());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Floor_PromiseSharedFuture);

// --- (b) One hot key, (d) distinct keys, from 1 and 2 threads. -------------

// Loader executions on this thread, for exec_fraction.
thread_local int64_t tl_executions = 0;

template <class Impl>
Impl& SharedImpl() {
  static auto* impl = new Impl;
  return *impl;
}

template <class Impl>
void HotKey(benchmark::State& state) {
  Impl& impl = SharedImpl<Impl>();
  tl_executions = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(impl.Do(42, [] {
      ++tl_executions;
      return int64_t{1};
    }));
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["exec_fraction"] =
      benchmark::Counter(static_cast<double>(tl_executions) /
                             static_cast<double>(state.iterations()),
                         benchmark::Counter::kAvgThreads);
}

template <class Impl>
void DistinctKeys(benchmark::State& state) {
  Impl& impl = SharedImpl<Impl>();
  // Disjoint key ranges per thread and per run: every call leads a flight.
  static std::atomic<int64_t> next_range{1};
  int64_t key = next_range.fetch_add(1) << 40;
  for (auto _ : state) {
    benchmark::DoNotOptimize(impl.Do(key, [key] { return key; }));
    ++key;
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Share_HotKey(benchmark::State& s) { HotKey<HerdShare<int64_t>>(s); }
void BM_Textbook_HotKey(benchmark::State& s) { HotKey<Textbook<int64_t>>(s); }
void BM_NoCoalescing_HotKey(benchmark::State& s) {
  HotKey<NoCoalescing<int64_t>>(s);
}
void BM_Share_DistinctKeys(benchmark::State& s) {
  DistinctKeys<HerdShare<int64_t>>(s);
}
void BM_Textbook_DistinctKeys(benchmark::State& s) {
  DistinctKeys<Textbook<int64_t>>(s);
}
void BM_NoCoalescing_DistinctKeys(benchmark::State& s) {
  DistinctKeys<NoCoalescing<int64_t>>(s);
}
// The floor of distinct-key scaling. Whatever the design, a leader must
// publish its flight where any thread can find it, so every call writes
// state shared with the other threads: here, the least of it, a lock on one
// of 16 cache lines picked at random (as a key's hash picks a shard), taken
// and released. Two threads then keep taking lines from each other's cache.
// The Disjoint variant gives each thread its own 16 lines: the scaling the
// machine offers when nothing is shared.
struct alignas(64) PaddedWord {
  std::atomic<uint32_t> word{0};
};

template <bool kDisjoint>
void LineLock(benchmark::State& state) {
  static PaddedWord lines[2][16];
  PaddedWord* mine = lines[kDisjoint ? state.thread_index() % 2 : 0];
  uint64_t x = 0x9E3779B97F4A7C15ull * (state.thread_index() + 1);
  for (auto _ : state) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::atomic<uint32_t>& w = mine[x & 15].word;
    uint32_t expected = 0;
    while (!w.compare_exchange_weak(expected, 1, std::memory_order_acquire)) {
      expected = 0;
    }
    w.exchange(0, std::memory_order_release);
  }
  state.SetItemsProcessed(state.iterations());
}
void BM_Floor_SharedLineLock(benchmark::State& s) { LineLock<false>(s); }
void BM_Floor_DisjointLineLock(benchmark::State& s) { LineLock<true>(s); }
BENCHMARK(BM_Floor_SharedLineLock)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_Floor_DisjointLineLock)->Threads(1)->Threads(2)->UseRealTime();

BENCHMARK(BM_Share_HotKey)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_Textbook_HotKey)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_NoCoalescing_HotKey)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_Share_DistinctKeys)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_Textbook_DistinctKeys)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_NoCoalescing_DistinctKeys)->Threads(1)->Threads(2)->UseRealTime();

// --- (c) Stampede and (e) extra executions. --------------------------------

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             Clock::now().time_since_epoch())
      .count();
}

// What one round of a stampede recorded.
struct Round {
  explicit Round(int n) : returned_at(n), executed(n) {}
  std::atomic<int> arrived{0};       // callers that have started their call
  std::atomic<int> executions{0};    // loader executions
  std::atomic<int64_t> set_at{0};    // when the first execution finished
  std::vector<int64_t> returned_at;  // per caller
  std::vector<char> executed;        // per caller: ran the loader

  // The loader of a stampede: waits until all n callers have joined the
  // flight (`joined()` counts them), then takes 1 ms, so that every waiter
  // is asleep when the value is set, however slowly 256 threads get
  // scheduled on two cores. Exactly one execution per flight is then what
  // correct coalescing must show.
  template <class Joined>
  int64_t Load(int n, const Joined& joined) {
    executions.fetch_add(1);
    while (joined() < n) {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    int64_t expected = 0;
    set_at.compare_exchange_strong(expected, NowNanos());
    return 7;
  }

  // From the value being set to the last caller that did not execute
  // returning.
  double WakeSeconds() const {
    int64_t last = set_at.load();
    for (size_t i = 0; i < returned_at.size(); ++i) {
      if (!executed[i]) last = std::max(last, returned_at[i]);
    }
    return static_cast<double>(last - set_at.load()) * 1e-9;
  }
};

// N threads that run `body(round, i)` together, once per Run(). Threads
// wait and report with atomics only (futex waits), so that the crowd's own
// bookkeeping takes no lock while a stampede's waiters wake.
class Crowd {
 public:
  using Body = std::function<void(Round&, int)>;

  Crowd(int n, Body body) : n_(n), body_(std::move(body)) {
    for (int i = 0; i < n; ++i) threads_.emplace_back([this, i] { Loop(i); });
  }
  ~Crowd() {
    stop_.store(true);
    generation_.fetch_add(1);
    generation_.notify_all();
    for (auto& t : threads_) t.join();
  }

  // Releases every thread on `round` and returns once all have finished.
  void Run(Round& round) {
    round_ = &round;
    finished_.store(0);
    generation_.fetch_add(1);  // publishes round_
    generation_.notify_all();
    for (int f = finished_.load(); f != n_; f = finished_.load()) {
      finished_.wait(f);
    }
  }

 private:
  void Loop(int i) {
    uint32_t seen = 0;
    for (;;) {
      generation_.wait(seen);
      seen = generation_.load();
      if (stop_.load()) return;
      body_(*round_, i);
      if (finished_.fetch_add(1) + 1 == n_) finished_.notify_one();
    }
  }

  const int n_;
  const Body body_;
  Round* round_ = nullptr;
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> finished_{0};
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

void ReportRounds(benchmark::State& state, std::vector<double>& wakes,
                  int64_t executions, double expected_executions) {
  std::sort(wakes.begin(), wakes.end());
  const double rounds = static_cast<double>(wakes.size());
  state.counters["executions"] =
      benchmark::Counter(static_cast<double>(executions) / rounds);
  state.counters["expected"] = benchmark::Counter(expected_executions);
  state.counters["wake_p50_us"] =
      benchmark::Counter(wakes[wakes.size() / 2] * 1e6);
  state.counters["wake_max_us"] = benchmark::Counter(wakes.back() * 1e6);
}

template <class Impl>
void Stampede(benchmark::State& state, Impl& impl, int n, double expected) {
  int64_t joined_before = 0;  // impl.Joined() when the round started
  Crowd crowd(n, [&](Round& round, int i) {
    round.arrived.fetch_add(1);
    bool executed = false;
    benchmark::DoNotOptimize(impl.Do(int64_t{1}, [&] {
      executed = true;
      return round.Load(n, [&] { return impl.Joined() - joined_before; });
    }));
    round.returned_at[i] = NowNanos();
    round.executed[i] = executed;
  });
  std::vector<double> wakes;
  int64_t executions = 0;
  for (auto _ : state) {
    Round round(n);
    joined_before = impl.Joined();
    crowd.Run(round);
    wakes.push_back(round.WakeSeconds());
    executions += round.executions.load();
    state.SetIterationTime(wakes.back());
  }
  ReportRounds(state, wakes, executions, expected);
}

void BM_Share_Stampede(benchmark::State& state) {
  HerdShare<int64_t> impl;
  Stampede(state, impl, static_cast<int>(state.range(0)), 1.0);
}
void BM_Textbook_Stampede(benchmark::State& state) {
  Textbook<int64_t> impl;
  Stampede(state, impl, static_cast<int>(state.range(0)), 1.0);
}

// The floor: N threads blocked in condition_variable::wait, woken by one
// notify_all; from the notify to the last of them returning.
void BM_Floor_NotifyAll(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::mutex mu;
  std::condition_variable cv, all_waiting;
  int waiting = 0;
  bool set = false;
  Crowd crowd(n, [&](Round& round, int i) {
    {
      std::unique_lock<std::mutex> lock(mu);
      if (++waiting == n) all_waiting.notify_one();
      cv.wait(lock, [&] { return set; });
    }
    round.returned_at[i] = NowNanos();
  });
  std::vector<double> wakes;
  for (auto _ : state) {
    Round round(n);
    std::thread setter([&] {
      {
        std::unique_lock<std::mutex> lock(mu);
        all_waiting.wait(lock, [&] { return waiting == n; });
      }
      // As a stampede's loader does once every caller waits.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      round.set_at = NowNanos();
      {
        std::lock_guard<std::mutex> lock(mu);
        set = true;
      }
      cv.notify_all();
    });
    crowd.Run(round);
    setter.join();
    waiting = 0;
    set = false;
    wakes.push_back(round.WakeSeconds());
    state.SetIterationTime(wakes.back());
  }
  ReportRounds(state, wakes, 0, 0);
}

// Another floor: N threads in std::atomic::wait (a futex), woken by one
// notify_all.
void BM_Floor_AtomicNotifyAll(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::atomic<int> flag{0};
  Crowd crowd(n, [&](Round& round, int i) {
    round.arrived.fetch_add(1);
    flag.wait(0);
    round.returned_at[i] = NowNanos();
  });
  std::vector<double> wakes;
  for (auto _ : state) {
    Round round(n);
    std::thread setter([&] {
      while (round.arrived.load() < n) {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      round.set_at = NowNanos();
      flag.store(1);
      flag.notify_all();
    });
    crowd.Run(round);
    setter.join();
    flag.store(0);
    wakes.push_back(round.WakeSeconds());
    state.SetIterationTime(wakes.back());
  }
  ReportRounds(state, wakes, 0, 0);
}

void StampedeArgs(benchmark::internal::Benchmark* b) {
  b->UseManualTime()->Unit(benchmark::kMicrosecond);
  b->Arg(8)->Arg(64)->Arg(256)->Iterations(60);
}
BENCHMARK(BM_Share_Stampede)->Apply(StampedeArgs);
BENCHMARK(BM_Textbook_Stampede)->Apply(StampedeArgs);
BENCHMARK(BM_Floor_NotifyAll)->Apply(StampedeArgs);
BENCHMARK(BM_Floor_AtomicNotifyAll)->Apply(StampedeArgs);

// Executions per flight of Stampede/8 against extra_execution_rate; a
// caller that joins a flight runs an extra execution with probability p, so
// 1 + 7p is expected.
void BM_Share_ExtraExecutionRate(benchmark::State& state) {
  constexpr int kCallers = 8;
  const double p = static_cast<double>(state.range(0)) / 1000.0;
  HerdShare<int64_t> impl(herd::ShareOptions{.extra_execution_rate = p});
  Stampede(state, impl, kCallers, 1.0 + p * (kCallers - 1));
}
BENCHMARK(BM_Share_ExtraExecutionRate)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond)
    ->Iterations(100)
    ->Arg(0)
    ->Arg(10)
    ->Arg(50)
    ->Arg(100)
    ->Arg(250)
    ->Arg(500)
    ->Arg(1000);

}  // namespace
