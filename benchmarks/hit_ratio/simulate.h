// Copyright 2026 The herd Authors.
//
// benchmarks/hit_ratio/simulate.h: replays a trace against an eviction
// policy, or against Belady's clairvoyant optimum, and counts hits.
//
//   PolicyHits(trace, capacity, make_policy)  a policy with the interface
//                                             of herd::internal::TinyLfu
//   BeladyHits(trace, capacity)               the offline optimum
//   TopKeysHits(trace, capacity)              the most popular keys, known
//                                             in hindsight, always cached
//
// Every entry weighs 1, so `capacity` is a number of entries.

#ifndef HERD_BENCHMARKS_HIT_RATIO_SIMULATE_H_
#define HERD_BENCHMARKS_HIT_RATIO_SIMULATE_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <queue>
#include <utility>
#include <vector>

#include "benchmarks/hit_ratio/traces.h"
#include "herd/internal/frequency_sketch.h"
#include "herd/internal/policy_hook.h"

namespace herd::hit_ratio {

// The hash a cache would give key `key`: any good mix will do; a fixed one
// keeps runs reproducible (absl::Hash is salted per process).
inline uint64_t KeyHash(uint32_t key) {
  return internal::MixHash(key + 0x6a09e667f3bcc909ULL);
}

// Replays `trace` as a cache of `capacity` entries driven by the policy that
// make_policy(capacity) returns (by pointer or value-like handle): a hit
// calls RecordAccess, a miss Add and Evict, as the cache does. Returns the
// number of hits. Checks after every step that the policy holds at most
// `capacity` entries (aborts otherwise: a benchmark of a broken policy would
// be worthless).
template <class MakePolicy>
uint64_t PolicyHits(const Trace& trace, uint64_t capacity, MakePolicy make_policy) {
  std::vector<internal::PolicyHook> hooks(trace.distinct);
  for (uint32_t k = 0; k < trace.distinct; ++k) hooks[k].hash = KeyHash(k);
  auto policy = make_policy(capacity);
  uint64_t hits = 0;
  for (uint32_t key : trace.keys) {
    internal::PolicyHook& h = hooks[key];
    if (h.queue != 0) {
      ++hits;
      policy->RecordAccess(&h);
    } else {
      policy->Add(&h);
      policy->Evict([](internal::PolicyHook*) { return true; },
                    [](internal::PolicyHook*) {});
      if (policy->size() > capacity) std::abort();
    }
  }
  return hits;
}

// Belady's MIN with bypass: on a miss, the cache keeps the `capacity` keys
// whose next accesses come soonest, the missed key included (a key whose
// next access is later than every cached key's, or never, is not kept).
// No policy that sees only the past can hit more often (Belady 1966;
// Mattson et al. 1970). O(n log n).
inline uint64_t BeladyHits(const Trace& trace, uint64_t capacity) {
  const auto& keys = trace.keys;
  const uint32_t n = static_cast<uint32_t>(keys.size());
  const uint32_t never = n;  // "no next access"
  std::vector<uint32_t> next(n);
  {
    std::vector<uint32_t> upcoming(trace.distinct, never);
    for (uint32_t i = n; i-- > 0;) {
      next[i] = upcoming[keys[i]];
      upcoming[keys[i]] = i;
    }
  }
  // The cached keys by next access, latest on top. When a cached key is hit
  // at time i its entry (i, key) goes stale and a new one is pushed; stale
  // entries are older than i, so they sink below every live entry (whose
  // next access is after i) and never reach the top while any is cached.
  std::priority_queue<std::pair<uint32_t, uint32_t>> cached_by_next;
  std::vector<bool> cached(trace.distinct, false);
  uint64_t size = 0;
  uint64_t hits = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t key = keys[i];
    if (cached[key]) {
      ++hits;
      if (next[i] == never) {
        cached[key] = false;  // never needed again: free its slot
        --size;
      } else {
        cached_by_next.emplace(next[i], key);
      }
      continue;
    }
    if (next[i] == never || capacity == 0) continue;
    if (size < capacity) {
      cached[key] = true;
      ++size;
      cached_by_next.emplace(next[i], key);
      continue;
    }
    // Drop entries of keys freed above.
    while (!cached[cached_by_next.top().second] ||
           cached_by_next.top().first <= i) {
      cached_by_next.pop();
    }
    const auto [latest, victim] = cached_by_next.top();
    if (latest > next[i]) {
      cached_by_next.pop();
      cached[victim] = false;
      cached[key] = true;
      cached_by_next.emplace(next[i], key);
    }
  }
  return hits;
}

// The hits of a cache that holds, from their first access on, the
// `capacity` keys accessed most often in the whole trace (ties: the lower
// key), and nothing else: the best a frequency-only policy with perfect
// knowledge of the counts could do. Not an upper bound (Belady's is).
inline uint64_t TopKeysHits(const Trace& trace, uint64_t capacity) {
  std::vector<uint64_t> count(trace.distinct, 0);
  for (uint32_t key : trace.keys) ++count[key];
  std::vector<uint32_t> order(trace.distinct);
  for (uint32_t k = 0; k < trace.distinct; ++k) order[k] = k;
  const size_t kept = static_cast<size_t>(std::min<uint64_t>(capacity, trace.distinct));
  std::partial_sort(order.begin(), order.begin() + kept, order.end(),
                    [&](uint32_t a, uint32_t b) {
                      return count[a] != count[b] ? count[a] > count[b] : a < b;
                    });
  uint64_t hits = 0;
  for (size_t i = 0; i < kept; ++i) hits += count[order[i]] - 1;  // first: a miss
  return hits;
}

}  // namespace herd::hit_ratio

#endif  // HERD_BENCHMARKS_HIT_RATIO_SIMULATE_H_
