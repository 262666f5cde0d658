// Copyright 2026 The herd Authors.
//
// benchmarks/callgrind_driver.cc: runs one single-threaded benchmark case a
// fixed number of times inside herd_callgrind_measured(), so that
//
//   valgrind --tool=callgrind --toggle-collect=herd_callgrind_measured
//       callgrind_driver Share_LeaderPath_Int64 100000
//
// counts exactly the instructions of those calls (warm-up, key generation
// and process start-up excluded). Instruction counts are exact and
// repeatable on a noisy machine, so benchmarks/callgrind_check.py compares
// them, not times, against benchmarks/callgrind_baseline.json.
//
// Built with -DHERD_CALLGRIND_COUNT_ALLOCATIONS it replaces operator new
// with a counting version (tests/testing/counting_new.h) and prints
// `allocations_per_call=<x>` instead; that build runs without valgrind (its
// replacement would skew the instruction counts of the cases that
// allocate).
//
// The cases mirror the single-threaded cases of share_benchmark.cc and
// loading_cache_benchmark.cc. Usage:
//   callgrind_driver --list
//   callgrind_driver <case> <calls>
//
// LoadingCache's hit cases read 1024 int64 keys, fresh, round robin:
//   LoadingCache_Hit_Int64         unbounded, the default clock (coarse)
//   LoadingCache_BoundedHit_Int64  max_entries 4096 (records each read for
//                                  the eviction policy)
//   LoadingCache_HitSteadyClock_Int64  unbounded, Clock::Steady()
//   Baseline_Hit_Int64             the cache people write first: a
//                                  std::mutex around an absl::flat_hash_map
//                                  of {value, expiry}, checked against
//                                  std::chrono::steady_clock::now()
//   Floor_SteadyClockNow, Floor_CoarseClockNow  one clock read
//
// The eviction policy's share of a bounded hit, on Zipf 0.9 over 100,000
// keys (benchmarks/hit_ratio/traces.h) with room for 1,000 entries, warmed
// by 300,000 accesses so that the window, probation and protected hold
// what they hold in the hit-ratio benchmark:
//   TinyLfu_RecordAccess_Zipf      one TinyLfu::RecordAccess (a replayed
//                                  read: sketch update and list move) of a
//                                  resident key, keys drawn from the trace
//   LoadingCache_BoundedHitZipf_Int64  a hit of such a key through a
//                                  bounded LoadingCache (max_entries 1000),
//                                  read buffer and its replay included

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include <chrono>

#include "absl/container/flat_hash_map.h"
#include "benchmarks/baselines/mutex_map_cache.h"
#include "benchmarks/baselines/textbook_singleflight.h"
#include "benchmarks/hit_ratio/traces.h"
#include "herd/clock.h"
#include "herd/internal/policy_hook.h"
#include "herd/internal/tinylfu.h"
#include "herd/loading_cache.h"
#include "herd/share.h"

#if defined(HERD_CALLGRIND_COUNT_ALLOCATIONS)
#include "tests/testing/counting_new.h"
#endif

namespace {

// A case runs `calls` operations numbered from `first` (for unique keys).
struct Case {
  std::function<void()> setup;  // builds state outside the measured region
  std::function<void(int64_t first, int64_t calls)> run;
};

volatile int64_t sink;

constexpr int64_t kHitKeys = 1024;

using Int64Cache = herd::LoadingCache<int64_t, int64_t>;

Int64Cache& HitCache(uint64_t max_entries, const herd::Clock* clock) {
  // Never destroyed: the measured loop must not see a destructor.
  auto* cache = new Int64Cache({.ttl = std::chrono::hours(1),
                                .max_entries = max_entries,
                                .clock = clock},
                               [](int64_t k) { return k; });
  for (int64_t k = 0; k < kHitKeys; ++k) cache->Get(k);
  return *cache;
}

// The Zipf workload of the policy cases: keys in [0, kZipfKeys), room for
// kZipfEntries, kZipfWarmUp accesses before the measured ones.
constexpr uint32_t kZipfKeys = 100'000;
constexpr uint64_t kZipfEntries = 1000;
constexpr int kZipfWarmUp = 300'000;
constexpr size_t kZipfHits = size_t{1} << 16;  // a power of two

// Draws Zipf keys after the warm-up until `n` of them satisfy `resident`.
template <class Resident>
std::vector<uint32_t> ResidentZipfKeys(herd::hit_ratio::Rng& rng,
                                       const herd::hit_ratio::ZipfSampler& zipf,
                                       size_t n, Resident resident) {
  std::vector<uint32_t> keys;
  keys.reserve(n);
  while (keys.size() < n) {
    const uint32_t k = zipf.Sample(rng);
    if (resident(k)) keys.push_back(k);
  }
  return keys;
}

std::vector<std::string> StringKeys(int64_t n) {
  std::vector<std::string> keys;
  keys.reserve(static_cast<size_t>(n));
  char buf[32];
  for (int64_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "user:%08lld", static_cast<long long>(i));
    keys.emplace_back(buf);  // 13 characters: inside std::string's SSO
  }
  return keys;
}

}  // namespace

// The only function callgrind collects in. Not inlined, C linkage: a stable
// name for --toggle-collect.
extern "C" __attribute__((noinline)) void herd_callgrind_measured(
    const Case* c, int64_t first, int64_t calls) {
  c->run(first, calls);
}

int main(int argc, char** argv) {
  // Make the process multi-threaded, as every server is: libstdc++ then uses
  // atomic reference counts and real locks.
  std::thread([] {}).join();

  static herd::Share<int64_t, int64_t> share_int;
  static herd::Share<std::string, int64_t> share_str;
  static herd_bench::TextbookSingleflight<int64_t, int64_t> textbook_int;
  static herd_bench::TextbookSingleflight<std::string, int64_t> textbook_str;
  static std::mutex mu;
  static absl::flat_hash_map<int64_t, int64_t> map;
  static std::vector<std::string> keys;
  static Int64Cache* hit_cache = nullptr;
  static herd_bench::MutexMapCache<int64_t, int64_t>* baseline = nullptr;
  // TinyLfu_RecordAccess_Zipf: the policy, a hook per key, the hooks hit.
  static herd::internal::TinyLfu* policy = nullptr;
  static std::vector<herd::internal::PolicyHook> hooks;
  static std::vector<herd::internal::PolicyHook*> policy_hits;
  // LoadingCache_BoundedHitZipf_Int64: resident keys, in the trace's order.
  static std::vector<int64_t> cache_hits;
  const int64_t n = argc > 2 ? std::atoll(argv[2]) : 100000;
  auto hits = [](int64_t first, int64_t calls) {
    for (int64_t i = first; i < first + calls; ++i) {
      sink = hit_cache->Get(i & (kHitKeys - 1));
    }
  };

  const auto string_keys = [n] { keys = StringKeys(2 * n + 2); };
  std::map<std::string, Case> cases = {
      {"Share_LeaderPath_Int64",
       {[] {},
        [](int64_t first, int64_t calls) {
          for (int64_t k = first; k < first + calls; ++k) {
            sink = share_int.Do(k, [k] { return k; });
          }
        }}},
      {"Share_LeaderPath_String",
       {string_keys,
        [](int64_t first, int64_t calls) {
          for (int64_t i = first; i < first + calls; ++i) {
            sink = share_str.Do(keys[i], [i] { return i; });
          }
        }}},
      {"Share_HotKey",
       {[] {},
        [](int64_t, int64_t calls) {
          for (int64_t i = 0; i < calls; ++i) {
            sink = share_int.Do(7, [i] { return i; });
          }
        }}},
      {"Textbook_LeaderPath_Int64",
       {[] {},
        [](int64_t first, int64_t calls) {
          for (int64_t k = first; k < first + calls; ++k) {
            sink = textbook_int.Do(k, [k] { return k; });
          }
        }}},
      {"Textbook_LeaderPath_String",
       {string_keys,
        [](int64_t first, int64_t calls) {
          for (int64_t i = first; i < first + calls; ++i) {
            sink = textbook_str.Do(keys[i], [i] { return i; });
          }
        }}},
      {"Textbook_HotKey",
       {[] {},
        [](int64_t, int64_t calls) {
          for (int64_t i = 0; i < calls; ++i) {
            sink = textbook_int.Do(7, [i] { return i; });
          }
        }}},
      {"NoCoalescing_LeaderPath_Int64",
       {[] {},
        [](int64_t first, int64_t calls) {
          auto loader = [](int64_t k) { return k; };
          for (int64_t k = first; k < first + calls; ++k) sink = loader(k);
        }}},
      {"Floor_MutexLockUnlock",
       {[] {},
        [](int64_t, int64_t calls) {
          for (int64_t i = 0; i < calls; ++i) {
            mu.lock();
            mu.unlock();
          }
        }}},
      {"LoadingCache_Hit_Int64",
       {[] { hit_cache = &HitCache(0, nullptr); }, hits}},
      {"LoadingCache_BoundedHit_Int64",
       {[] { hit_cache = &HitCache(4 * kHitKeys, nullptr); }, hits}},
      {"TinyLfu_RecordAccess_Zipf",
       {[] {
          namespace hr = herd::hit_ratio;
          const hr::ZipfSampler zipf(kZipfKeys, 0.9);
          hr::Rng rng(20260101);
          policy = new herd::internal::TinyLfu(kZipfEntries, 1);
          hooks.resize(kZipfKeys);
          for (uint32_t k = 0; k < kZipfKeys; ++k) {
            hooks[k].hash = herd::internal::MixHash(k);
          }
          for (int i = 0; i < kZipfWarmUp; ++i) {
            herd::internal::PolicyHook* h = &hooks[zipf.Sample(rng)];
            if (h->queue != 0) {
              policy->RecordAccess(h);
            } else {
              policy->Add(h);
              policy->Evict([](herd::internal::PolicyHook*) { return true; },
                            [](herd::internal::PolicyHook*) {});
            }
          }
          for (uint32_t k : ResidentZipfKeys(rng, zipf, kZipfHits, [](uint32_t k) {
                 return hooks[k].queue != 0;
               })) {
            policy_hits.push_back(&hooks[k]);
          }
        },
        [](int64_t first, int64_t calls) {
          for (int64_t i = first; i < first + calls; ++i) {
            policy->RecordAccess(policy_hits[static_cast<size_t>(i) & (kZipfHits - 1)]);
          }
        }}},
      {"LoadingCache_BoundedHitZipf_Int64",
       {[] {
          namespace hr = herd::hit_ratio;
          const hr::ZipfSampler zipf(kZipfKeys, 0.9);
          hr::Rng rng(20260101);
          hit_cache = new Int64Cache({.ttl = std::chrono::hours(1),
                                      .max_entries = kZipfEntries,
                                      .seed = 1},
                                     [](int64_t k) { return k; });
          for (int i = 0; i < kZipfWarmUp; ++i) hit_cache->Get(zipf.Sample(rng));
          for (uint32_t k : ResidentZipfKeys(rng, zipf, kZipfHits, [](uint32_t k) {
                 return hit_cache->GetIfPresent(k).has_value();
               })) {
            cache_hits.push_back(k);
          }
        },
        [](int64_t first, int64_t calls) {
          for (int64_t i = first; i < first + calls; ++i) {
            sink = hit_cache->Get(cache_hits[static_cast<size_t>(i) & (kZipfHits - 1)]);
          }
        }}},
      {"LoadingCache_HitSteadyClock_Int64",
       {[] { hit_cache = &HitCache(0, &herd::Clock::Steady()); }, hits}},
      {"Baseline_Hit_Int64",
       {[] {
          baseline = new herd_bench::MutexMapCache<int64_t, int64_t>(
              std::chrono::hours(1));
          for (int64_t k = 0; k < kHitKeys; ++k) {
            baseline->Get(k, [k] { return k; });
          }
        },
        [](int64_t first, int64_t calls) {
          for (int64_t i = first; i < first + calls; ++i) {
            const int64_t k = i & (kHitKeys - 1);
            sink = baseline->Get(k, [k] { return k; });
          }
        }}},
      {"Floor_SteadyClockNow",
       {[] {},
        [](int64_t, int64_t calls) {
          for (int64_t i = 0; i < calls; ++i) {
            sink = std::chrono::steady_clock::now().time_since_epoch().count();
          }
        }}},
      {"Floor_CoarseClockNow",
       {[] {},
        [](int64_t, int64_t calls) {
          for (int64_t i = 0; i < calls; ++i) {
            sink = herd::CoarseClock::Read().time_since_epoch().count();
          }
        }}},
      {"Floor_FlatHashMapInsertErase_Int64",
       {[] {},
        [](int64_t first, int64_t calls) {
          for (int64_t k = first; k < first + calls; ++k) {
            map.emplace(k, k);
            map.erase(k);
          }
        }}},
  };

  if (argc < 2 || std::strcmp(argv[1], "--list") == 0) {
    for (const auto& [name, c] : cases) std::printf("%s\n", name.c_str());
    return argc < 2 ? 1 : 0;
  }
  auto it = cases.find(argv[1]);
  if (it == cases.end()) {
    std::fprintf(stderr, "unknown case %s (try --list)\n", argv[1]);
    return 1;
  }
  const Case& c = it->second;
  c.setup();
  c.run(n + 1, n / 10 + 1);  // warm-up: tables sized, caches filled
#if defined(HERD_CALLGRIND_COUNT_ALLOCATIONS)
  const int64_t before = herd::test::Allocations();
#endif
  herd_callgrind_measured(&c, 0, n);
#if defined(HERD_CALLGRIND_COUNT_ALLOCATIONS)
  std::printf("allocations_per_call=%.4f\n",
              static_cast<double>(herd::test::Allocations() - before) /
                  static_cast<double>(n));
#endif
  return 0;
}
