// Copyright 2026 The herd Authors.
//
// Tests of herd::internal::LruPolicy (herd/internal/lru_policy.h): the exact
// least-recently-used order, weights, overweight, weight-0 and pinned
// entries, Remove and UpdateWeight, and a seeded random mix of every
// operation checked against a model. PolicyHarness checks
// CheckInvariants() after every call.

#include "herd/internal/lru_policy.h"

#include <algorithm>
#include <cstdint>
#include <list>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/policy_harness.h"

namespace herd::internal {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using Harness = test::PolicyHarness<LruPolicy>;

TEST(LruPolicy, EvictsTheLeastRecentlyUsedFirst) {
  Harness h(3);
  EXPECT_THAT(h.Access(1), IsEmpty());
  EXPECT_THAT(h.Access(2), IsEmpty());
  EXPECT_THAT(h.Access(3), IsEmpty());
  EXPECT_THAT(h.Access(1), IsEmpty());  // a hit: most recent
  EXPECT_THAT(h.Queue(LruPolicy::kLru), ElementsAre(2, 3, 1));
  EXPECT_THAT(h.Access(4), ElementsAre(2));
  EXPECT_THAT(h.Access(5), ElementsAre(3));
  EXPECT_THAT(h.Queue(LruPolicy::kLru), ElementsAre(1, 4, 5));
}

TEST(LruPolicy, MatchesANaiveLruOnARandomStream) {
  constexpr uint64_t kMax = 50;
  Harness h(kMax);
  std::list<int> naive;  // most recent first
  std::mt19937_64 rng(test::TestSeed(3));
  for (int i = 0; i < 20'000; ++i) {
    const int key = static_cast<int>(rng() % 120);
    std::vector<int> expected;
    auto it = std::find(naive.begin(), naive.end(), key);
    if (it != naive.end()) {
      naive.erase(it);
    } else if (naive.size() == kMax) {
      expected.push_back(naive.back());
      naive.pop_back();
    }
    naive.push_front(key);
    ASSERT_EQ(h.Access(key), expected) << "access " << i;
  }
}

TEST(LruPolicy, WeightsCountAgainstTheMaximum) {
  Harness h(10);
  EXPECT_THAT(h.Access(1, 4), IsEmpty());
  EXPECT_THAT(h.Access(2, 4), IsEmpty());
  EXPECT_THAT(h.Access(3, 4), ElementsAre(1));
  EXPECT_THAT(h.Access(4, 6), ElementsAre(2));
  EXPECT_EQ(h.policy().weight(), 10u);
  EXPECT_THAT(h.Access(5, 1), ElementsAre(3));
}

TEST(LruPolicy, AnOverweightEntryIsEvictedFirstAndAlone) {
  // lru_policy.h: "an entry heavier than max_weight() is evicted first".
  Harness h(3);
  for (int k = 1; k <= 3; ++k) EXPECT_THAT(h.Access(k), IsEmpty());
  EXPECT_THAT(h.Access(100, 4), ElementsAre(100));
  EXPECT_THAT(h.Queue(LruPolicy::kLru), ElementsAre(1, 2, 3));
  h.UpdateWeight(2, 9);
  EXPECT_EQ(h.Hook(2)->queue, LruPolicy::kOverweight);
  EXPECT_THAT(h.Evict(), ElementsAre(2));
  h.Add(101, 9);
  h.UpdateWeight(101, 1);  // back as the most recent
  EXPECT_THAT(h.Queue(LruPolicy::kLru), ElementsAre(1, 3, 101));
}

TEST(LruPolicy, PinnedAndWeightZeroEntriesAreSkipped) {
  Harness h(3);
  EXPECT_THAT(h.Access(1), IsEmpty());
  EXPECT_THAT(h.Access(2, 0), IsEmpty());
  EXPECT_THAT(h.Access(3), IsEmpty());
  EXPECT_THAT(h.Access(4), IsEmpty());  // weight 3: 2 weighs nothing
  h.Add(5);
  EXPECT_THAT(h.Evict({1}), ElementsAre(3));  // 1 pinned, 2 weightless
  h.Add(6);
  EXPECT_THAT(h.Evict({1, 4, 5, 6}), IsEmpty());  // all pinned: stays over
  EXPECT_EQ(h.policy().weight(), 4u);
  EXPECT_THAT(h.Evict(), ElementsAre(1));
}

// lru_policy.h: Replace puts the new hook in the old one's place and
// weight; the old one leaves.
TEST(LruPolicy, ReplaceKeepsThePlace) {
  LruPolicy p(10);
  PolicyHook hooks[4];
  for (int k = 0; k < 3; ++k) {
    hooks[k].weight = 2;
    p.Add(&hooks[k]);
  }
  hooks[3].weight = 5;
  p.Replace(&hooks[1], &hooks[3]);
  EXPECT_EQ(hooks[1].queue, LruPolicy::kNone);
  EXPECT_EQ(hooks[3].queue, LruPolicy::kLru);
  EXPECT_EQ(hooks[3].weight, 2u);
  std::vector<const PolicyHook*> order;
  p.ForEach(LruPolicy::kLru, [&](const PolicyHook* h) { order.push_back(h); });
  EXPECT_THAT(order, ElementsAre(&hooks[0], &hooks[3], &hooks[2]));
  EXPECT_EQ(p.weight(), 6u);
  EXPECT_EQ(p.CheckInvariants(), "");
}

TEST(LruPolicy, RemoveAndUpdateWeightKeepTheOrder) {
  Harness h(10);
  for (int k = 1; k <= 4; ++k) EXPECT_THAT(h.Access(k), IsEmpty());
  h.Remove(2);
  EXPECT_EQ(h.Hook(2)->queue, LruPolicy::kNone);
  h.UpdateWeight(3, 5);
  EXPECT_THAT(h.Queue(LruPolicy::kLru), ElementsAre(1, 3, 4));
  EXPECT_EQ(h.policy().weight(), 7u);
  EXPECT_EQ(h.policy().size(), 3u);
  h.policy().RecordMiss(test::KeyHash(9));  // does nothing
  EXPECT_EQ(h.policy().size(), 3u);
}

TEST(LruPolicy, RandomOperationsKeepEveryInvariant) {
  const uint64_t seed = test::TestSeed(20260101);
  for (uint64_t max_weight : {1, 2, 10, 64}) {
    SCOPED_TRACE("max_weight " + std::to_string(max_weight));
    Harness h(max_weight);
    test::RunRandomOperations(h, max_weight, static_cast<int>(3 * max_weight + 8), 30'000,
                              seed + max_weight);
    if (HasFailure()) return;
  }
}

}  // namespace
}  // namespace herd::internal
