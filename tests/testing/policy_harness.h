// Copyright 2026 The herd Authors.
//
// tests/testing/policy_harness.h: drives an eviction policy (TinyLfu,
// LruPolicy) the way a cache does, by key, and checks it after every step.
//
//   PolicyHarness<P>      owns one PolicyHook per int key; Access/Add/Evict/
//                         Remove/UpdateWeight by key; lists a queue's keys
//   RunRandomOperations   a seeded random mix of every operation, checked
//                         against a model of which keys are in the policy

#ifndef HERD_TESTS_TESTING_POLICY_HARNESS_H_
#define HERD_TESTS_TESTING_POLICY_HARNESS_H_

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "herd/internal/frequency_sketch.h"
#include "herd/internal/policy_hook.h"

namespace herd::test {

// The hash a cache would give int key `key`.
inline uint64_t KeyHash(int key) {
  return internal::MixHash(static_cast<uint64_t>(key) * 0x9e3779b97f4a7c15ULL + 12345);
}

template <class Policy>
class PolicyHarness {
 public:
  template <class... Args>
  explicit PolicyHarness(Args&&... args) : policy_(std::forward<Args>(args)...) {}

  Policy& policy() { return policy_; }

  // The hook of `key`, made on first use.
  internal::PolicyHook* Hook(int key) {
    auto [it, inserted] = hooks_.try_emplace(key);
    if (inserted) {
      it->second.hash = KeyHash(key);
      keys_[&it->second] = key;
    }
    return &it->second;
  }
  int KeyOf(const internal::PolicyHook* h) const { return keys_.at(h); }
  bool Contains(int key) { return Hook(key)->queue != 0; }

  // A cache's access: a hit records it; a miss adds the key with `weight`
  // and evicts. Returns the keys evicted, in order.
  std::vector<int> Access(int key, uint32_t weight = 1) {
    internal::PolicyHook* h = Hook(key);
    if (h->queue != 0) {
      policy_.RecordAccess(h);
      Check();
      return {};
    }
    Add(key, weight);
    return Evict();
  }

  void Add(int key, uint32_t weight = 1) {
    internal::PolicyHook* h = Hook(key);
    h->weight = weight;
    policy_.Add(h);
    Check();
  }
  void Hit(int key) {
    policy_.RecordAccess(Hook(key));
    Check();
  }
  void Remove(int key) {
    policy_.Remove(Hook(key));
    Check();
  }
  void UpdateWeight(int key, uint32_t weight) {
    policy_.UpdateWeight(Hook(key), weight);
    Check();
  }

  // Evicts, never the keys in `pinned`. Checks what the contract promises
  // of each callback. Returns the evicted keys, in order.
  std::vector<int> Evict(const std::set<int>& pinned = {}) {
    std::vector<int> evicted;
    policy_.Evict(
        [&](internal::PolicyHook* h) {
          EXPECT_NE(h->queue, 0) << "can_evict of a hook outside the policy";
          return pinned.count(KeyOf(h)) == 0;
        },
        [&](internal::PolicyHook* h) {
          EXPECT_EQ(h->queue, 0) << "on_evict of a hook still linked";
          EXPECT_EQ(pinned.count(KeyOf(h)), 0u) << "evicted pinned key " << KeyOf(h);
          evicted.push_back(KeyOf(h));
        });
    Check();
    return evicted;
  }

  // The keys of `queue`, least recently used first.
  std::vector<int> Queue(uint8_t queue) const {
    std::vector<int> keys;
    policy_.ForEach(queue, [&](const internal::PolicyHook* h) { keys.push_back(KeyOf(h)); });
    return keys;
  }

  void Check() const { EXPECT_EQ(policy_.CheckInvariants(), ""); }

 private:
  Policy policy_;
  std::map<int, internal::PolicyHook> hooks_;  // stable addresses
  std::map<const internal::PolicyHook*, int> keys_;
};

// A seed for randomized tests: HERD_STRESS_SEED when set, else `fallback`
// (so that CI runs are reproducible). Printed, so a failure can be replayed.
inline uint64_t TestSeed(uint64_t fallback) {
  uint64_t seed = fallback;
  if (const char* s = std::getenv("HERD_STRESS_SEED")) seed = std::strtoull(s, nullptr, 10);
  std::printf("HERD_STRESS_SEED=%llu\n", static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  return seed;
}

// `operations` random steps on `harness` (whose policy has max_weight()
// `max_weight`) over keys 0..keys-1, checked after each against a model of
// the keys in the policy and their weights:
//   * CheckInvariants() holds (PolicyHarness checks it after every call);
//   * size() and weight() agree with the model;
//   * Evict() evicts only unpinned keys of nonzero weight that were in the
//     policy, and leaves weight() <= max_weight() unless every remaining
//     key of nonzero weight is pinned.
template <class Policy>
void RunRandomOperations(PolicyHarness<Policy>& harness, uint64_t max_weight, int keys,
                         int operations, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::map<int, uint32_t> model;  // key -> weight, for keys in the policy
  auto random_key_in = [&]() {
    auto it = model.begin();
    std::advance(it, static_cast<long>(rng() % model.size()));
    return it->first;
  };
  auto random_weight = [&]() -> uint32_t {
    switch (rng() % 16) {
      case 0:
        return 0;
      case 1:
        return static_cast<uint32_t>(max_weight + 1 + rng() % 3);  // overweight
      default:
        return static_cast<uint32_t>(1 + rng() % std::max<uint64_t>(max_weight / 4, 1));
    }
  };
  auto model_weight = [&]() {
    uint64_t w = 0;
    for (const auto& [key, weight] : model) w += weight;
    return w;
  };
  for (int op = 0; op < operations; ++op) {
    const int key = static_cast<int>(rng() % static_cast<uint64_t>(keys));
    switch (rng() % 8) {
      case 0:
      case 1:
      case 2: {  // an access: hit or add + evict, nothing pinned
        const bool hit = model.count(key) != 0;
        const uint32_t weight = random_weight();
        if (!hit) model[key] = weight;  // added (and maybe evicted at once)
        for (int evicted : harness.Access(key, weight)) {
          ASSERT_EQ(model.count(evicted), 1u) << "evicted a key not in the policy";
          ASSERT_NE(model[evicted], 0u) << "evicted a key of weight 0";
          model.erase(evicted);
        }
        if (!hit) {
          // Nothing was pinned: weight-0 entries aside, all could go.
          ASSERT_LE(harness.policy().weight(), max_weight) << "op " << op;
        }
        break;
      }
      case 3:
        harness.policy().RecordMiss(KeyHash(key));
        break;
      case 4:
        if (!model.empty()) {
          const int k = random_key_in();
          harness.Remove(k);
          model.erase(k);
        }
        break;
      case 5:
        if (!model.empty()) {
          const int k = random_key_in();
          const uint32_t weight = random_weight();
          harness.UpdateWeight(k, weight);
          model[k] = weight;
        }
        break;
      default: {  // an eviction with a random set of pinned keys
        std::set<int> pinned;
        for (const auto& [k, w] : model) {
          if (rng() % 4 == 0) pinned.insert(k);
        }
        for (int evicted : harness.Evict(pinned)) {
          ASSERT_EQ(model.count(evicted), 1u) << "evicted a key not in the policy";
          ASSERT_NE(model[evicted], 0u) << "evicted a key of weight 0";
          model.erase(evicted);
        }
        if (harness.policy().weight() > max_weight) {
          for (const auto& [k, w] : model) {
            ASSERT_TRUE(w == 0 || pinned.count(k) != 0)
                << "over weight after Evict(), yet key " << k << " (weight " << w
                << ") is neither pinned nor weightless; op " << op;
          }
        }
        break;
      }
    }
    ASSERT_EQ(harness.policy().size(), model.size()) << "op " << op;
    ASSERT_EQ(harness.policy().weight(), model_weight()) << "op " << op;
    for (const auto& [k, w] : model) ASSERT_TRUE(harness.Contains(k)) << k;
    if (::testing::Test::HasFailure()) return;
  }
}

}  // namespace herd::test

#endif  // HERD_TESTS_TESTING_POLICY_HARNESS_H_
