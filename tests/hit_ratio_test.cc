// Copyright 2026 The herd Authors.
//
// Tests of the hit-ratio benchmark's library (benchmarks/hit_ratio/): that
// Belady's MIN is the optimum (against an exhaustive search on small
// traces) and an upper bound of the policies, and that the trace
// generators make the traces their comments describe.

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include "benchmarks/hit_ratio/simulate.h"
#include "benchmarks/hit_ratio/traces.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "herd/internal/lru_policy.h"
#include "herd/internal/tinylfu.h"

namespace herd::hit_ratio {
namespace {

using ::testing::ElementsAre;

// The most hits any cache of `capacity` entries can score on `keys` (each
// < 8), by trying every choice: on a miss, keep the key (evicting any
// cached key if full) or not.
uint64_t ExhaustiveBest(const std::vector<uint32_t>& keys, uint64_t capacity) {
  // best[mask]: most hits from position i on, with `mask` cached.
  std::vector<uint64_t> best(256, 0), next(256);
  for (size_t i = keys.size(); i-- > 0;) {
    const uint32_t bit = 1u << keys[i];
    for (uint32_t mask = 0; mask < 256; ++mask) {
      if (static_cast<uint64_t>(std::popcount(mask)) > capacity) continue;
      if (mask & bit) {
        next[mask] = 1 + best[mask];
        continue;
      }
      uint64_t b = best[mask];  // bypass
      if (static_cast<uint64_t>(std::popcount(mask)) < capacity) {
        b = std::max(b, best[mask | bit]);
      } else {
        for (uint32_t m = mask; m != 0; m &= m - 1) {
          b = std::max(b, best[(mask & ~(m & -m)) | bit]);
        }
      }
      next[mask] = b;
    }
    std::swap(best, next);
  }
  return best[0];
}

Trace FromKeys(const std::vector<uint64_t>& raw) {
  Trace t;
  Densify(raw, t);
  return t;
}

TEST(Belady, MatchesAnExhaustiveSearchOnSmallTraces) {
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 3000; ++trial) {
    const size_t length = 1 + rng() % 16;
    const uint64_t alphabet = 1 + rng() % 6;
    std::vector<uint64_t> raw(length);
    for (uint64_t& k : raw) k = rng() % alphabet;
    const Trace t = FromKeys(raw);
    const uint64_t capacity = 1 + rng() % 4;
    ASSERT_EQ(BeladyHits(t, capacity), ExhaustiveBest(t.keys, capacity))
        << "trial " << trial << " capacity " << capacity;
  }
}

TEST(Belady, BypassesAKeyNeededLaterThanEveryCachedOne) {
  // simulate.h: "a key whose next access is later than every cached key's,
  // or never, is not kept". Cache of 1: a, b, a: keeping a scores 1.
  EXPECT_EQ(BeladyHits(FromKeys({1, 2, 1}), 1), 1u);
  EXPECT_EQ(BeladyHits(FromKeys({1, 2, 1, 2}), 1), 1u);
  EXPECT_EQ(BeladyHits(FromKeys({1, 2, 1, 2}), 2), 2u);
  EXPECT_EQ(BeladyHits(FromKeys({1, 1, 1}), 0), 0u);
}

TEST(Belady, BoundsEveryPolicyFromAbove) {
  const Trace t = ZipfScanTrace(5000, 60'000, 0.9, 0.2, 11);
  for (uint64_t capacity : {5, 50, 500}) {
    const uint64_t belady = BeladyHits(t, capacity);
    const uint64_t lru = PolicyHits(t, capacity, [](uint64_t c) {
      return std::make_unique<internal::LruPolicy>(c);
    });
    const uint64_t tinylfu = PolicyHits(t, capacity, [](uint64_t c) {
      return std::make_unique<internal::TinyLfu>(c, 1);
    });
    EXPECT_GE(belady, lru) << capacity;
    EXPECT_GE(belady, tinylfu) << capacity;
  }
}

TEST(TopKeys, CachesTheMostFrequentKeysFromTheirFirstAccess) {
  // Key 1 four times, 2 three times, 3 twice, 4 once.
  const Trace t = FromKeys({1, 2, 3, 1, 2, 4, 1, 3, 2, 1});
  EXPECT_EQ(TopKeysHits(t, 1), 3u);
  EXPECT_EQ(TopKeysHits(t, 2), 5u);
  EXPECT_EQ(TopKeysHits(t, 10), 6u);
  EXPECT_EQ(TopKeysHits(t, 0), 0u);
}

TEST(Traces, DensifyNumbersKeysInOrderOfFirstAccess) {
  const Trace t = FromKeys({50, 9, 50, 7, 9, 1000});
  EXPECT_THAT(t.keys, ElementsAre(0, 1, 0, 2, 1, 3));
  EXPECT_EQ(t.distinct, 4u);
}

TEST(Traces, ZipfSamplerHasTheZipfProbabilities) {
  const ZipfSampler zipf(1000, 0.9);
  double sum = 0;
  for (uint32_t r = 0; r < 1000; ++r) sum += zipf.Probability(r);
  EXPECT_NEAR(sum, 1.0, 1e-9);
  EXPECT_NEAR(zipf.Probability(0) / zipf.Probability(1), std::pow(2.0, 0.9), 1e-9);
  // Sampled frequencies follow: rank 0 about 2^0.9 times rank 1.
  Rng rng(1);
  std::vector<int> count(1000);
  for (int i = 0; i < 200'000; ++i) ++count[zipf.Sample(rng)];
  EXPECT_NEAR(static_cast<double>(count[0]) / count[1], std::pow(2.0, 0.9), 0.1);
}

TEST(Traces, AreDeterministicForASeed) {
  EXPECT_EQ(ZipfTrace(1000, 5000, 0.9, 3).keys, ZipfTrace(1000, 5000, 0.9, 3).keys);
  EXPECT_NE(ZipfTrace(1000, 5000, 0.9, 3).keys, ZipfTrace(1000, 5000, 0.9, 4).keys);
  EXPECT_EQ(ShiftTrace(1000, 5000, 0.9, 3).keys, ShiftTrace(1000, 5000, 0.9, 3).keys);
  EXPECT_EQ(LoopTrace(1000, 110, 0.2, 3).keys, LoopTrace(1000, 110, 0.2, 3).keys);
}

// How many times each key occurs.
std::vector<int> Counts(const Trace& t) {
  std::vector<int> count(t.distinct);
  for (uint32_t k : t.keys) ++count[k];
  return count;
}

TEST(Traces, TheScanIsAShareOfOneTimeKeys) {
  const Trace t = ZipfScanTrace(10'000, 100'000, 0.9, 0.2, 8);
  const std::vector<int> count = Counts(t);
  const auto once = std::count(count.begin(), count.end(), 1);
  // 20,000 scanned keys, each seen once, plus Zipf keys that happen to be.
  EXPECT_GE(once, 19'000);
  EXPECT_LE(once, 25'000);
}

TEST(Traces, TheLoopCyclesThroughItsKeysAmongColdOnes) {
  const Trace t = LoopTrace(2000, 110, 0.2, 9);
  EXPECT_EQ(t.distinct, 2000u);
  const std::vector<int> count = Counts(t);
  std::vector<uint32_t> loop;  // the accesses of keys seen more than once
  for (uint32_t k : t.keys) {
    if (count[k] > 1) loop.push_back(k);
  }
  ASSERT_GT(loop.size(), 1000u);
  // 110 distinct keys, then the same 110 again and again.
  EXPECT_EQ(std::set<uint32_t>(loop.begin(), loop.begin() + 110).size(), 110u);
  for (size_t i = 110; i < loop.size(); ++i) ASSERT_EQ(loop[i], loop[i - 110]) << i;
  EXPECT_EQ(std::count(count.begin(), count.end(), 1), 2000 - 110);
}

TEST(Traces, TheShiftMovesTheHotSet) {
  const Trace t = ShiftTrace(10'000, 100'000, 0.9, 10);
  std::map<uint32_t, int> first, second;
  for (size_t i = 0; i < t.keys.size(); ++i) ++(i < t.keys.size() / 2 ? first : second)[t.keys[i]];
  auto hottest = [](const std::map<uint32_t, int>& m) {
    return std::max_element(m.begin(), m.end(), [](auto& a, auto& b) {
             return a.second < b.second;
           })->first;
  };
  EXPECT_NE(hottest(first), hottest(second));
  EXPECT_LT(first[hottest(second)], second[hottest(second)] / 10);
}

}  // namespace
}  // namespace herd::hit_ratio
