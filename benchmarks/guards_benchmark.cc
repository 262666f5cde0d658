// Copyright 2026 The herd Authors.
//
// Costs of the guards in herd/{timer,retry,circuit_breaker,token_bucket,
// concurrency_limiter,deadline}.h on the uncontended path, each against a
// direct call of the same loader (BM_Guards_DirectCall), and the timer's
// cost with 10k callbacks pending and when idle.
//
//   bazel run -c opt //benchmarks:guards_benchmark

#include <time.h>

#include <chrono>
#include <cstdint>
#include <stop_token>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "herd/circuit_breaker.h"
#include "herd/concurrency_limiter.h"
#include "herd/deadline.h"
#include "herd/retry.h"
#include "herd/timer.h"
#include "herd/token_bucket.h"

namespace herd {
namespace {

int Load() {
  static int x = 0;
  benchmark::DoNotOptimize(++x);
  return x;
}

void BM_Guards_DirectCall(benchmark::State& state) {
  auto loader = [] { return Load(); };
  for (auto _ : state) benchmark::DoNotOptimize(loader());
}
BENCHMARK(BM_Guards_DirectCall);

void BM_CircuitBreaker_Closed(benchmark::State& state) {
  CircuitBreaker breaker;
  auto loader = WithBreaker(breaker, [] { return Load(); });
  for (auto _ : state) benchmark::DoNotOptimize(loader(std::stop_token()));
}
BENCHMARK(BM_CircuitBreaker_Closed);

void BM_CircuitBreaker_OpenRejects(benchmark::State& state) {
  CircuitBreaker breaker(
      {.failure_threshold = 1, .open_duration = std::chrono::hours(1)});
  breaker.Record(*breaker.TryAdmit(), /*failed=*/true);
  for (auto _ : state) benchmark::DoNotOptimize(breaker.TryAdmit());
}
BENCHMARK(BM_CircuitBreaker_OpenRejects);

void BM_Retry_FirstAttemptSucceeds(benchmark::State& state) {
  auto loader = WithRetry(Retry(), [] { return Load(); });
  for (auto _ : state) benchmark::DoNotOptimize(loader(std::stop_token()));
}
BENCHMARK(BM_Retry_FirstAttemptSucceeds);

void BM_TokenBucket_TryAcquire_Uncontended(benchmark::State& state) {
  // Never runs dry in a benchmark.
  TokenBucket bucket({.rate = 1e9, .capacity = 1000000000});
  for (auto _ : state) benchmark::DoNotOptimize(bucket.TryAcquire());
}
BENCHMARK(BM_TokenBucket_TryAcquire_Uncontended);

void BM_ConcurrencyLimiter_TryAcquire_Uncontended(benchmark::State& state) {
  ConcurrencyLimiter limiter(8);
  for (auto _ : state) {
    auto permit = limiter.TryAcquire();
    benchmark::DoNotOptimize(permit);
  }
}
BENCHMARK(BM_ConcurrencyLimiter_TryAcquire_Uncontended);

void BM_Deadline_FastLoader(benchmark::State& state) {
  auto loader = WithDeadline(std::chrono::seconds(10), [] { return Load(); });
  for (auto _ : state) benchmark::DoNotOptimize(loader(std::stop_token()));
}
BENCHMARK(BM_Deadline_FastLoader);

// RunAfter + Cancel with `range(0)` other callbacks pending.
void BM_Timer_ScheduleCancel(benchmark::State& state) {
  Timer timer;
  for (int64_t i = 0; i < state.range(0); ++i) {
    timer.RunAfter(std::chrono::hours(1) + std::chrono::nanoseconds(i), [] {});
  }
  int64_t i = 0;
  for (auto _ : state) {
    Timer::Id id = timer.RunAfter(
        std::chrono::minutes(30) + std::chrono::nanoseconds(++i), [] {});
    benchmark::DoNotOptimize(timer.Cancel(id));
  }
}
BENCHMARK(BM_Timer_ScheduleCancel)->Arg(0)->Arg(10000);

double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Process CPU time over one idle second with a timer holding 10k callbacks
// due in an hour: the timer thread sleeps, so this should be ~0.
void BM_Timer_IdleSecondCpu(benchmark::State& state) {
  Timer timer;
  for (int i = 0; i < 10000; ++i) timer.RunAfter(std::chrono::hours(1), [] {});
  double cpu = 0;
  for (auto _ : state) {
    const double before = ProcessCpuSeconds();
    std::this_thread::sleep_for(std::chrono::seconds(1));
    cpu += ProcessCpuSeconds() - before;
  }
  state.counters["cpu_ms_per_idle_s"] =
      benchmark::Counter(cpu * 1e3 / static_cast<double>(state.iterations()));
}
BENCHMARK(BM_Timer_IdleSecondCpu)->Iterations(1)->UseRealTime();

}  // namespace
}  // namespace herd
