// Copyright 2026 The herd Authors.
//
// Tests of herd::internal::FrequencySketch (herd/internal/frequency_sketch.h):
// counting, saturation, aging, the aging period, conservative update, the
// doorkeeper, sizing and seeding. Every test is deterministic: hashes are
// fixed, and randomized streams come from a seeded generator.

#include "herd/internal/frequency_sketch.h"

#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace herd::internal {
namespace {

// A key's hash, as a cache would pass it.
uint64_t H(uint64_t key) { return MixHash(key * 0x9e3779b97f4a7c15ULL + 1); }

// A sketch with room for `capacity` keys, options as given.
FrequencySketch Sized(uint64_t capacity, FrequencySketchOptions options = {},
                      uint64_t seed = 7) {
  FrequencySketch sketch(seed, options);
  sketch.EnsureCapacity(capacity);
  return sketch;
}

TEST(FrequencySketch, CountsNothingBeforeEnsureCapacity) {
  // frequency_sketch.h: "An empty sketch: Frequency() is 0 for every key and
  // Increment() does nothing until EnsureCapacity()."
  FrequencySketch sketch;
  EXPECT_EQ(sketch.capacity(), 0u);
  sketch.Increment(H(1));
  EXPECT_EQ(sketch.Frequency(H(1)), 0);
  EXPECT_EQ(sketch.additions(), 0u);
}

TEST(FrequencySketch, CountsEachKeyExactlyWhenKeysDoNotCollide) {
  FrequencySketch sketch = Sized(1 << 16);
  // Keys 1..5 incremented 1..5 times: a handful of keys in 2^20 counters.
  for (uint64_t key = 1; key <= 5; ++key) {
    for (uint64_t i = 0; i < key; ++i) sketch.Increment(H(key));
  }
  for (uint64_t key = 1; key <= 5; ++key) {
    EXPECT_EQ(sketch.Frequency(H(key)), static_cast<int>(key)) << key;
  }
  EXPECT_EQ(sketch.Frequency(H(6)), 0);
  EXPECT_EQ(sketch.additions(), 15u);
}

TEST(FrequencySketch, SaturatesAtFifteenAndStopsCountingAdditions) {
  // frequency_sketch.h: kMaxCount is 15; "An addition is an Increment()
  // that raised a counter".
  FrequencySketch sketch = Sized(1 << 16);
  for (int i = 0; i < 40; ++i) sketch.Increment(H(1));
  EXPECT_EQ(sketch.Frequency(H(1)), FrequencySketch::kMaxCount);
  EXPECT_EQ(sketch.additions(), 15u);
}

TEST(FrequencySketch, SaturatesAtFifteenWithoutConservativeUpdateToo) {
  FrequencySketch sketch = Sized(1 << 16, {.conservative = false});
  for (int i = 0; i < 40; ++i) sketch.Increment(H(1));
  EXPECT_EQ(sketch.Frequency(H(1)), 15);
  EXPECT_EQ(sketch.additions(), 15u);
}

TEST(FrequencySketch, AgeHalvesEveryCounterRoundingDown) {
  // frequency_sketch.h: Age() "Halves every counter".
  FrequencySketch sketch = Sized(1 << 16);
  const int counts[] = {1, 2, 3, 7, 10, 15};
  for (int k = 0; k < 6; ++k) {
    for (int i = 0; i < counts[k]; ++i) sketch.Increment(H(k));
  }
  sketch.Age();
  EXPECT_EQ(sketch.agings(), 1u);
  for (int k = 0; k < 6; ++k) EXPECT_EQ(sketch.Frequency(H(k)), counts[k] / 2) << k;
  sketch.Age();
  for (int k = 0; k < 6; ++k) EXPECT_EQ(sketch.Frequency(H(k)), counts[k] / 4) << k;
}

TEST(FrequencySketch, AgingSubtractsTheRoundingOfOddCountersFromAdditions) {
  // frequency_sketch.h: "The rounding lost by halving odd counters is
  // subtracted from the count of additions". Four keys counted 3 times
  // each: 12 additions, 16 odd counters (4 per key) lose 4 in all.
  FrequencySketch sketch = Sized(1 << 16);
  for (int k = 0; k < 4; ++k) {
    for (int i = 0; i < 3; ++i) sketch.Increment(H(k));
  }
  ASSERT_EQ(sketch.additions(), 12u);
  sketch.Age();
  EXPECT_EQ(sketch.additions(), (12u - 16u / 4) / 2);
}

TEST(FrequencySketch, AgesItselfAfterSampleSizeAdditions) {
  // frequency_sketch.h: Increment() "Ages the sketch when additions()
  // reaches sample_size()", and sample_size() is sample_factor * capacity.
  FrequencySketch sketch = Sized(64, {.sample_factor = 2});
  ASSERT_EQ(sketch.sample_size(), 128u);
  uint64_t key = 0;
  while (sketch.additions() < 127) sketch.Increment(H(++key));
  EXPECT_EQ(sketch.agings(), 0u);
  sketch.Increment(H(++key));
  EXPECT_EQ(sketch.agings(), 1u);
  EXPECT_LE(sketch.additions(), 64u);
}

TEST(FrequencySketch, SetSampleFactorMovesTheNextAgingAndKeepsCounts) {
  FrequencySketch sketch = Sized(64);
  EXPECT_EQ(sketch.sample_factor(), 10u);
  EXPECT_EQ(sketch.sample_size(), 640u);
  for (int i = 0; i < 5; ++i) sketch.Increment(H(1));
  sketch.set_sample_factor(1);  // 64 additions: already 5 of them
  EXPECT_EQ(sketch.sample_size(), 64u);
  EXPECT_EQ(sketch.Frequency(H(1)), 5);
  EXPECT_EQ(sketch.agings(), 0u);
  uint64_t key = 100;
  while (sketch.agings() == 0) sketch.Increment(H(++key));
  EXPECT_EQ(key, 100u + 64 - 5);
}

TEST(FrequencySketch, EnsureCapacityForgetsOnlyWhenItGrows) {
  // frequency_sketch.h: "Does nothing if capacity() >= entries already;
  // otherwise allocates a larger table and forgets every count."
  FrequencySketch sketch = Sized(1000);
  for (int i = 0; i < 3; ++i) sketch.Increment(H(1));
  sketch.EnsureCapacity(1000);
  sketch.EnsureCapacity(10);
  EXPECT_EQ(sketch.capacity(), 1000u);
  EXPECT_EQ(sketch.Frequency(H(1)), 3);
  sketch.EnsureCapacity(1001);
  EXPECT_EQ(sketch.capacity(), 1001u);
  EXPECT_EQ(sketch.Frequency(H(1)), 0);
  EXPECT_EQ(sketch.additions(), 0u);
}

TEST(FrequencySketch, EnsureCapacityOfZeroCountsAsOne) {
  // frequency_sketch.h: EnsureCapacity(entries): "0 counts as 1".
  FrequencySketch sketch;
  sketch.EnsureCapacity(0);
  EXPECT_EQ(sketch.capacity(), 1u);
  EXPECT_EQ(sketch.sample_size(), 10u);
  sketch.Increment(H(1));
  EXPECT_EQ(sketch.Frequency(H(1)), 1);
}

// The true count of each key with every Age() halving it, capped at 15.
class ExactAgedCounts {
 public:
  void Increment(uint64_t key) {
    int& c = count_[key];
    if (c < FrequencySketch::kMaxCount) ++c;
  }
  void Age() {
    for (auto& [key, c] : count_) c /= 2;
  }
  int operator[](uint64_t key) const {
    auto it = count_.find(key);
    return it == count_.end() ? 0 : it->second;
  }
  const std::unordered_map<uint64_t, int>& all() const { return count_; }

 private:
  std::unordered_map<uint64_t, int> count_;
};

// Feeds a skewed random stream to `sketch` (which ages itself), mirrors it
// in exact counts, and returns the sum of over-estimates at the end.
uint64_t CheckNeverUnderestimates(FrequencySketch& sketch, uint32_t seed) {
  std::mt19937_64 rng(seed);
  ExactAgedCounts exact;
  uint64_t agings = sketch.agings();
  for (int i = 0; i < 200'000; ++i) {
    // Half the stream from 64 hot keys, half from 50,000 cold ones.
    const uint64_t key = (rng() & 1) ? rng() % 64 : 64 + rng() % 50'000;
    sketch.Increment(H(key));
    exact.Increment(key);
    if (sketch.agings() != agings) {
      agings = sketch.agings();
      exact.Age();
    }
    if (i % 997 == 0) {
      EXPECT_GE(sketch.Frequency(H(key)), exact[key]) << "key " << key << " at " << i;
    }
  }
  EXPECT_GT(sketch.agings(), 2u);
  uint64_t over = 0;
  for (const auto& [key, c] : exact.all()) {
    const int estimate = sketch.Frequency(H(key));
    EXPECT_GE(estimate, c) << "key " << key;
    over += static_cast<uint64_t>(estimate - c);
  }
  return over;
}

TEST(FrequencySketch, NeverUnderestimatesAnAgedCount) {
  // frequency_sketch.h: Frequency(), without a doorkeeper, is "never less
  // than the key's true count [...] capped at kMaxCount at each occurrence
  // and halved (rounding down) by each Age()".
  FrequencySketch conservative = Sized(1024);
  FrequencySketch plain = Sized(1024, {.conservative = false});
  const uint64_t over_conservative = CheckNeverUnderestimates(conservative, 1);
  const uint64_t over_plain = CheckNeverUnderestimates(plain, 1);
  // Conservative update exists to over-estimate less.
  EXPECT_LT(over_conservative, over_plain);
}

TEST(FrequencySketch, DoorkeeperHoldsTheFirstOccurrenceOfEachPeriod) {
  // frequency_sketch.h: the doorkeeper "absorbs the first occurrence of a
  // key in each aging period"; Frequency() adds its bit.
  FrequencySketch sketch = Sized(1 << 16, {.doorkeeper = true});
  sketch.Increment(H(1));
  EXPECT_EQ(sketch.Frequency(H(1)), 1);
  sketch.Increment(H(1));
  sketch.Increment(H(1));
  EXPECT_EQ(sketch.Frequency(H(1)), 3);
  EXPECT_EQ(sketch.additions(), 3u);
  sketch.Age();  // counters 2 -> 1, doorkeeper cleared
  EXPECT_EQ(sketch.Frequency(H(1)), 1);
  sketch.Increment(H(1));  // the doorkeeper takes it again
  EXPECT_EQ(sketch.Frequency(H(1)), 2);
  // Saturated counters plus the bit: at most kMaxCount + 1.
  for (int i = 0; i < 40; ++i) sketch.Increment(H(2));
  EXPECT_EQ(sketch.Frequency(H(2)), FrequencySketch::kMaxCount + 1);
}

TEST(FrequencySketch, SameSeedSameEstimatesOtherSeedOtherCollisions) {
  // frequency_sketch.h: "`seed` salts the hashing, so that two sketches with
  // different seeds collide on different keys."
  FrequencySketch a = Sized(16, {}, 1);
  FrequencySketch b = Sized(16, {}, 1);
  FrequencySketch c = Sized(16, {}, 2);
  for (uint64_t key = 0; key < 100; ++key) {
    for (uint64_t i = 0; i <= key % 3; ++i) {
      a.Increment(H(key));
      b.Increment(H(key));
      c.Increment(H(key));
    }
  }
  int differ = 0;
  for (uint64_t key = 0; key < 200; ++key) {
    EXPECT_EQ(a.Frequency(H(key)), b.Frequency(H(key)));
    if (a.Frequency(H(key)) != c.Frequency(H(key))) ++differ;
  }
  EXPECT_GT(differ, 0);
}

TEST(FrequencySketch, KeysCollideOnlyWhenTheTableIsCrowded) {
  // 16 counters per entry of capacity: 1,000 keys in a sketch sized for
  // 1,000 estimate their own counts well; the same keys in one sized for 8
  // (one block of 4 x 32 counters) collide.
  FrequencySketch roomy = Sized(1000);
  FrequencySketch crowded = Sized(8, {.sample_factor = 1000});
  for (uint64_t key = 0; key < 1000; ++key) {
    roomy.Increment(H(key));
    crowded.Increment(H(key));
  }
  int roomy_exact = 0;
  int crowded_exact = 0;
  for (uint64_t key = 0; key < 1000; ++key) {
    roomy_exact += roomy.Frequency(H(key)) == 1;
    crowded_exact += crowded.Frequency(H(key)) == 1;
  }
  EXPECT_GT(roomy_exact, 900);
  EXPECT_LT(crowded_exact, 100);
}

TEST(MixHash, IsABijectionOnASample) {
  // Distinct inputs, distinct outputs; and not the identity.
  std::unordered_map<uint64_t, uint64_t> seen;
  for (uint64_t x = 0; x < 100'000; ++x) {
    const uint64_t y = MixHash(x);
    EXPECT_TRUE(seen.emplace(y, x).second) << x;
  }
  EXPECT_NE(MixHash(1), 1u);
}

}  // namespace
}  // namespace herd::internal
