// Copyright 2026 The herd Authors.
//
// Tests of herd::internal::TinyLfu (herd/internal/tinylfu.h): exact moves
// between the window, probation and protected on small hand-made
// sequences; admission by frequency; weights, overweight, weight-0 and
// pinned entries; Remove and UpdateWeight; the callbacks' contract; the
// sketch's aging and growth; hill climbing; and a seeded random mix of
// every operation checked against a model. PolicyHarness checks
// CheckInvariants() after every call.
//
// Frequencies come from a hashed sketch, so a test that relies on one
// asserts it first (ASSERT_EQ(Frequency(...), n)): a collision would fail
// loudly there, not as a puzzling eviction later.

#include "herd/internal/tinylfu.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/policy_harness.h"

namespace herd::internal {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using test::KeyHash;
using Harness = test::PolicyHarness<TinyLfu>;

constexpr uint64_t kSeed = 42;

// The exact-move tests turn hill climbing off, so the window stays put.
TinyLfuOptions Fixed() {
  TinyLfuOptions options;
  options.adapt_window = false;
  return options;
}

// Accesses keys first..last once each, in order.
void AccessAll(Harness& h, int first, int last) {
  for (int k = first; k <= last; ++k) EXPECT_THAT(h.Access(k), IsEmpty()) << k;
}

TEST(TinyLfu, SharesOfASmallCache) {
  // tinylfu.h: a window of "about 1% of max_weight()" (at least one entry),
  // protected "about 80% of main".
  TinyLfu p(10, kSeed, Fixed());
  EXPECT_EQ(p.window_max(), 1u);
  EXPECT_EQ(p.protected_max(), 7u);  // floor(0.8 * 9)
  TinyLfu big(10'000, kSeed, Fixed());
  EXPECT_EQ(big.window_max(), 100u);
  EXPECT_EQ(big.protected_max(), 7920u);
  TinyLfu one(1, kSeed, Fixed());
  EXPECT_EQ(one.window_max(), 1u);
  EXPECT_EQ(one.protected_max(), 0u);
}

TEST(TinyLfu, NewEntriesEnterTheWindowAndOverflowIntoProbation) {
  // tinylfu.h: "A new entry enters the window"; Evict() "moves the window's
  // excess to probation's most recent end"; nothing is evicted under max.
  Harness h(10, kSeed, Fixed());
  h.Add(1);
  EXPECT_EQ(h.Hook(1)->queue, TinyLfu::kWindow);
  EXPECT_THAT(h.Evict(), IsEmpty());
  AccessAll(h, 2, 5);
  EXPECT_THAT(h.Queue(TinyLfu::kWindow), ElementsAre(5));
  EXPECT_THAT(h.Queue(TinyLfu::kProbation), ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(h.Queue(TinyLfu::kProtected), IsEmpty());
  EXPECT_EQ(h.policy().size(), 5u);
  EXPECT_EQ(h.policy().weight(), 5u);
}

TEST(TinyLfu, TheWindowIsAnLru) {
  TinyLfuOptions options = Fixed();
  options.initial_window = 0.25;
  Harness h(8, kSeed, options);
  ASSERT_EQ(h.policy().window_max(), 2u);
  AccessAll(h, 1, 2);
  EXPECT_THAT(h.Queue(TinyLfu::kWindow), ElementsAre(1, 2));
  EXPECT_THAT(h.Access(1), IsEmpty());  // a hit: most recent
  EXPECT_THAT(h.Queue(TinyLfu::kWindow), ElementsAre(2, 1));
  EXPECT_THAT(h.Access(3), IsEmpty());  // 2, the least recent, leaves
  EXPECT_THAT(h.Queue(TinyLfu::kWindow), ElementsAre(1, 3));
  EXPECT_THAT(h.Queue(TinyLfu::kProbation), ElementsAre(2));
}

TEST(TinyLfu, AHitInProbationPromotesToProtected) {
  // tinylfu.h: RecordAccess: "probation: promoted to protected".
  Harness h(10, kSeed, Fixed());
  AccessAll(h, 1, 5);
  h.Hit(2);
  EXPECT_THAT(h.Queue(TinyLfu::kProtected), ElementsAre(2));
  EXPECT_THAT(h.Queue(TinyLfu::kProbation), ElementsAre(1, 3, 4));
  h.Hit(4);
  h.Hit(2);  // protected: most recent
  EXPECT_THAT(h.Queue(TinyLfu::kProtected), ElementsAre(4, 2));
  EXPECT_EQ(h.policy().protected_weight(), 2u);
  EXPECT_EQ(h.policy().probation_weight(), 2u);
  EXPECT_EQ(h.policy().window_weight(), 1u);
}

TEST(TinyLfu, ProtectedOverflowDemotesItsLeastRecentToProbation) {
  // tinylfu.h: "protected's least recently used entries are demoted back to
  // probation's most recent end when protected outgrows its share".
  Harness h(10, kSeed, Fixed());
  AccessAll(h, 1, 10);
  EXPECT_THAT(h.Queue(TinyLfu::kProbation), ElementsAre(1, 2, 3, 4, 5, 6, 7, 8, 9));
  for (int k = 1; k <= 7; ++k) h.Hit(k);
  EXPECT_THAT(h.Queue(TinyLfu::kProtected), ElementsAre(1, 2, 3, 4, 5, 6, 7));
  h.Hit(8);  // protected would weigh 8 > 7: 1 goes back
  EXPECT_THAT(h.Queue(TinyLfu::kProtected), ElementsAre(2, 3, 4, 5, 6, 7, 8));
  EXPECT_THAT(h.Queue(TinyLfu::kProbation), ElementsAre(9, 1));
}

TEST(TinyLfu, ACandidateReplacesTheVictimOnlyIfMoreFrequent) {
  // tinylfu.h: "each candidate duels the least recently used entry of
  // probation (the victim): the one with the lower estimated frequency is
  // evicted. A tie evicts the candidate".
  Harness h(10, kSeed, Fixed());
  AccessAll(h, 1, 10);
  for (int k = 1; k <= 12; ++k) ASSERT_EQ(h.policy().Frequency(KeyHash(k)), k <= 10) << k;
  // 11 pushes 10 out of the window; 10 and victim 1 were seen once: a tie.
  EXPECT_THAT(h.Access(11), ElementsAre(10));
  EXPECT_THAT(h.Queue(TinyLfu::kWindow), ElementsAre(11));
  // Seen twice, 11 beats 1 (seen once) when 12 pushes it out.
  EXPECT_THAT(h.Access(11), IsEmpty());
  ASSERT_EQ(h.policy().Frequency(KeyHash(11)), 2);
  EXPECT_THAT(h.Access(12), ElementsAre(1));
  EXPECT_THAT(h.Queue(TinyLfu::kProbation), ElementsAre(2, 3, 4, 5, 6, 7, 8, 9, 11));
  EXPECT_THAT(h.Queue(TinyLfu::kWindow), ElementsAre(12));
}

TEST(TinyLfu, AScanOfOneTimeKeysDoesNotFlushTheMainSpace) {
  Harness h(100, kSeed, Fixed());
  ASSERT_EQ(h.policy().window_max(), 1u);
  for (int k = 1; k <= 100; ++k) {
    EXPECT_THAT(h.Access(k), IsEmpty());
    EXPECT_THAT(h.Access(k), IsEmpty());
  }
  for (int k = 1; k <= 100; ++k) ASSERT_EQ(h.policy().Frequency(KeyHash(k)), 2) << k;
  // 300 keys never seen before. Those the sketch's collisions already rate
  // above 1 would not be one-time keys to it: skip them (a handful).
  std::vector<int> scan;
  for (int k = 1000; scan.size() < 300; ++k) {
    if (h.policy().Frequency(KeyHash(k)) <= 1) scan.push_back(k);
  }
  std::vector<int> evicted;
  for (int k : scan) {
    ASSERT_LE(h.policy().Frequency(KeyHash(k)), 1) << k;
    for (int e : h.Access(k)) evicted.push_back(e);
  }
  // 100 ties with the victim and goes; then each scanned key loses in turn.
  std::vector<int> expected = {100};
  expected.insert(expected.end(), scan.begin(), scan.end() - 1);
  EXPECT_EQ(evicted, expected);
  for (int k = 1; k <= 99; ++k) EXPECT_TRUE(h.Contains(k)) << k;
  EXPECT_THAT(h.Queue(TinyLfu::kWindow), ElementsAre(scan.back()));
}

TEST(TinyLfu, CandidatesRunOutThenTheWindowsOldestDuel) {
  // tinylfu.h: "when the candidates run out, the window's least recently
  // used entries become candidates". Shrinking max via weights: entries
  // grow heavier while in main, so Evict() must evict with no candidates.
  Harness h(10, kSeed, Fixed());
  AccessAll(h, 1, 10);  // window {10}, probation {1..9}
  h.UpdateWeight(5, 3);  // weight 12: no window excess, so no candidates
  ASSERT_EQ(h.policy().weight(), 12u);
  // Candidate 10, the window's oldest, ties victim 1 and goes; with no
  // candidate left, victim 1 goes.
  EXPECT_THAT(h.Evict(), ElementsAre(10, 1));
  EXPECT_EQ(h.policy().weight(), 10u);
}

TEST(TinyLfu, AWarmCandidateThatLosesIsAdmittedAboutOnceIn128) {
  // tinylfu.h: "A candidate with a frequency of at least 6 that loses is
  // still admitted one time in 128 (at random, from `seed`)". Weights make
  // one victim fill main in a cache large enough for an uncrowded sketch.
  Harness h(4096, kSeed, Fixed());
  ASSERT_EQ(h.policy().window_max(), 41u);
  const uint32_t main = 4096 - 41;
  constexpr int kVictim = 1, kCandidate = 2, kFiller = 3;
  auto reset = [&] {
    for (int k : {kVictim, kCandidate, kFiller}) {
      if (h.Contains(k)) h.Remove(k);
    }
    h.Add(kVictim, main);  // too heavy for the window: a candidate at once
    EXPECT_THAT(h.Evict(), IsEmpty());
    ASSERT_EQ(h.Hook(kVictim)->queue, TinyLfu::kProbation);
  };
  reset();
  for (int i = 0; i < 20; ++i) h.Hit(kVictim);
  ASSERT_EQ(h.policy().Frequency(KeyHash(kVictim)), 15);
  int admitted = 0;
  constexpr int kDuels = 12'800;
  for (int i = 0; i < kDuels; ++i) {
    h.Add(kCandidate, 41);  // fills the window
    h.Add(kFiller, 1);      // pushes the candidate out: 4097 > 4096
    ASSERT_GE(h.policy().Frequency(KeyHash(kCandidate)), 1);
    const std::vector<int> evicted = h.Evict();
    ASSERT_EQ(evicted.size(), 1u);
    if (evicted[0] == kVictim) {
      ++admitted;
      ASSERT_GE(h.policy().Frequency(KeyHash(kCandidate)), TinyLfu::kWarmCandidate);
      reset();
    } else {
      ASSERT_EQ(evicted[0], kCandidate);
      h.Remove(kFiller);
    }
  }
  // 100 expected; deterministic for the seed, and far from 0 and from all.
  EXPECT_GE(admitted, 50);
  EXPECT_LE(admitted, 200);
}

TEST(TinyLfu, AColdCandidateNeverWinsAgainstAWarmerVictim) {
  Harness h(4096, kSeed, Fixed());
  h.Add(1, 4096 - 41);
  EXPECT_THAT(h.Evict(), IsEmpty());
  for (int i = 0; i < 20; ++i) h.Hit(1);
  for (int k = 100; k < 2100; ++k) {
    h.Add(k, 41);
    h.Add(k + 100'000, 1);
    ASSERT_LT(h.policy().Frequency(KeyHash(k)), TinyLfu::kWarmCandidate) << k;
    ASSERT_THAT(h.Evict(), ElementsAre(k));
    h.Remove(k + 100'000);
  }
  EXPECT_TRUE(h.Contains(1));
}

TEST(TinyLfu, AnOverweightEntryIsEvictedAtOnceAndAlone) {
  // tinylfu.h: "An entry whose weight exceeds max_weight() is kept apart and
  // is the first to be evicted by the next Evict()".
  Harness h(10, kSeed, Fixed());
  AccessAll(h, 1, 5);
  h.Add(100, 11);
  EXPECT_EQ(h.Hook(100)->queue, TinyLfu::kOverweight);
  EXPECT_EQ(h.policy().overweight_weight(), 11u);
  EXPECT_THAT(h.Evict(), ElementsAre(100));
  EXPECT_EQ(h.policy().size(), 5u);
  // An entry that grows too heavy is treated the same.
  h.UpdateWeight(3, 11);
  EXPECT_EQ(h.Hook(3)->queue, TinyLfu::kOverweight);
  EXPECT_THAT(h.Evict(), ElementsAre(3));
  // One that shrinks back rejoins the window's most recent end.
  h.Add(101, 20);
  h.UpdateWeight(101, 1);
  EXPECT_EQ(h.Hook(101)->queue, TinyLfu::kWindow);
  EXPECT_EQ(h.Queue(TinyLfu::kWindow).back(), 101);
  EXPECT_EQ(h.policy().weight(), 5u);
}

TEST(TinyLfu, AnOverweightEntryGoesEvenWhenOthersCouldMakeRoom) {
  Harness h(10, kSeed, Fixed());
  AccessAll(h, 1, 10);
  EXPECT_THAT(h.Access(100, 10'000), ElementsAre(100));
  EXPECT_EQ(h.policy().size(), 10u);
}

TEST(TinyLfu, PinnedEntriesAreNeverEvicted) {
  // tinylfu.h: can_evict false: "it is skipped and never evicted by this
  // call" (PolicyHarness fails the test if on_evict sees a pinned key).
  Harness h(10, kSeed, Fixed());
  AccessAll(h, 1, 10);
  const std::set<int> pinned = {1, 2, 3, 10};
  for (int k = 11; k <= 40; ++k) {
    h.Add(k);
    h.Evict(pinned);
    EXPECT_LE(h.policy().weight(), 10u);
  }
  for (int k : pinned) EXPECT_TRUE(h.Contains(k)) << k;
}

TEST(TinyLfu, EvictStopsOverWeightWhenEverythingLeftIsPinned) {
  // tinylfu.h: "Returns with weight() > max_weight() only if every
  // remaining entry of nonzero weight is pinned."
  Harness h(10, kSeed, Fixed());
  for (int k = 1; k <= 12; ++k) h.Add(k);
  std::set<int> all;
  for (int k = 1; k <= 12; ++k) all.insert(k);
  EXPECT_THAT(h.Evict(all), IsEmpty());
  EXPECT_EQ(h.policy().weight(), 12u);
  std::set<int> but_two(all);
  but_two.erase(4);
  but_two.erase(12);
  std::vector<int> evicted = h.Evict(but_two);
  std::sort(evicted.begin(), evicted.end());
  EXPECT_THAT(evicted, ElementsAre(4, 12));
  EXPECT_EQ(h.policy().weight(), 10u);
}

TEST(TinyLfu, PinnedOverweightEntryStaysAndTheRestGoes) {
  Harness h(10, kSeed, Fixed());
  AccessAll(h, 1, 3);
  h.Add(100, 11);
  std::vector<int> evicted = h.Evict({100});
  std::sort(evicted.begin(), evicted.end());
  EXPECT_THAT(evicted, ElementsAre(1, 2, 3));
  EXPECT_TRUE(h.Contains(100));
  EXPECT_THAT(h.Evict(), ElementsAre(100));  // unpinned: goes first
  EXPECT_EQ(h.policy().size(), 0u);
}

TEST(TinyLfu, WeightZeroEntriesAreNeverEvicted) {
  // tinylfu.h: "Entries of weight 0 are never evicted by Evict() [...] only
  // by Remove()".
  Harness h(10, kSeed, Fixed());
  for (int k = 100; k < 105; ++k) EXPECT_THAT(h.Access(k, 0), IsEmpty());
  for (int k = 1; k <= 50; ++k) {
    for (int e : h.Access(k)) EXPECT_LT(e, 100);
  }
  for (int k = 100; k < 105; ++k) EXPECT_TRUE(h.Contains(k)) << k;
  EXPECT_EQ(h.policy().weight(), 10u);
  EXPECT_EQ(h.policy().size(), 15u);
  h.Remove(102);
  EXPECT_FALSE(h.Contains(102));
}

TEST(TinyLfu, WeightsCountAgainstTheMaximum) {
  Harness h(10, kSeed, Fixed());
  EXPECT_THAT(h.Access(1, 4), IsEmpty());
  EXPECT_THAT(h.Access(2, 4), IsEmpty());
  EXPECT_EQ(h.policy().weight(), 8u);
  // 3 is a candidate at once (heavier than the window) and ties victim 1.
  EXPECT_THAT(h.Access(3, 4), ElementsAre(3));
  EXPECT_EQ(h.policy().weight(), 8u);
  EXPECT_THAT(h.Access(4, 2), IsEmpty());
  EXPECT_EQ(h.policy().weight(), 10u);
}

TEST(TinyLfu, RemoveTakesAnEntryOutOfAnyQueue) {
  Harness h(10, kSeed, Fixed());
  AccessAll(h, 1, 5);  // window {5}, probation {1..4}
  h.Hit(2);            // protected {2}
  h.Add(100, 50);      // overweight
  h.Remove(5);
  h.Remove(1);
  h.Remove(2);
  h.Remove(100);
  for (int k : {1, 2, 5, 100}) EXPECT_EQ(h.Hook(k)->queue, TinyLfu::kNone) << k;
  EXPECT_THAT(h.Queue(TinyLfu::kProbation), ElementsAre(3, 4));
  EXPECT_EQ(h.policy().size(), 2u);
  EXPECT_EQ(h.policy().weight(), 2u);
  // A removed entry can come back as new.
  EXPECT_THAT(h.Access(1), IsEmpty());
  EXPECT_EQ(h.Hook(1)->queue, TinyLfu::kWindow);
}

// tinylfu.h: Replace puts the new hook in the old one's queue, position and
// weight, takes the old one out, and counts no access.
TEST(TinyLfu, ReplaceTakesOverTheQueueAndPlace) {
  TinyLfu p(10, kSeed, Fixed());
  PolicyHook hooks[5];
  for (int k = 0; k < 4; ++k) {
    hooks[k].hash = KeyHash(k);
    hooks[k].weight = 1;
    p.Add(&hooks[k]);
  }
  p.Evict([](PolicyHook*) { return true; }, [](PolicyHook*) {});
  p.RecordAccess(&hooks[1]);  // window {3}, probation {0, 2}, protected {1}
  const int before = p.Frequency(KeyHash(2));
  PolicyHook& fresh = hooks[4];
  fresh.hash = KeyHash(2);
  fresh.weight = 7;  // the old weight wins
  p.Replace(&hooks[2], &fresh);
  EXPECT_EQ(hooks[2].queue, TinyLfu::kNone);
  EXPECT_EQ(fresh.queue, TinyLfu::kProbation);
  EXPECT_EQ(fresh.weight, 1u);
  std::vector<const PolicyHook*> probation;
  p.ForEach(TinyLfu::kProbation,
            [&](const PolicyHook* h) { probation.push_back(h); });
  EXPECT_THAT(probation, ElementsAre(&hooks[0], &fresh));
  EXPECT_EQ(p.Frequency(KeyHash(2)), before);
  EXPECT_EQ(p.size(), 4u);
  EXPECT_EQ(p.weight(), 4u);
  EXPECT_EQ(p.CheckInvariants(), "");
  p.Replace(&hooks[1], &hooks[2]);  // a hook that left may come back
  EXPECT_EQ(hooks[2].queue, TinyLfu::kProtected);
  EXPECT_EQ(p.CheckInvariants(), "");
}

TEST(TinyLfu, UpdateWeightKeepsThePlaceAndTrimsProtected) {
  // tinylfu.h: UpdateWeight: "The entry keeps its place, except [...] that
  // protected is trimmed to its share".
  Harness h(10, kSeed, Fixed());
  AccessAll(h, 1, 5);
  h.Hit(1);
  h.Hit(2);  // protected {1, 2}
  h.UpdateWeight(3, 2);
  EXPECT_THAT(h.Queue(TinyLfu::kProbation), ElementsAre(3, 4));
  EXPECT_EQ(h.policy().probation_weight(), 3u);
  h.UpdateWeight(2, 7);  // protected weighs 8 > 7: 1 is demoted
  EXPECT_THAT(h.Queue(TinyLfu::kProtected), ElementsAre(2));
  EXPECT_THAT(h.Queue(TinyLfu::kProbation), ElementsAre(3, 4, 1));
  EXPECT_EQ(h.policy().weight(), 2u + 7 + 1 + 1 + 1);
  // The window's 5 ties victim 3 and goes; then victim 3 goes (weight 2).
  EXPECT_THAT(h.Evict(), ElementsAre(5, 3));
  EXPECT_EQ(h.policy().weight(), 9u);
}

TEST(TinyLfu, ATooHeavyProbationEntryIsNotPromoted) {
  // tinylfu.h: RecordAccess: "promoted to protected, unless heavier than
  // protected's share".
  Harness h(10, kSeed, Fixed());
  EXPECT_THAT(h.Access(1, 8), IsEmpty());
  EXPECT_THAT(h.Access(2), IsEmpty());
  ASSERT_EQ(h.Hook(1)->queue, TinyLfu::kProbation);
  h.Hit(1);
  EXPECT_EQ(h.Hook(1)->queue, TinyLfu::kProbation);
  EXPECT_THAT(h.Queue(TinyLfu::kProtected), IsEmpty());
}

TEST(TinyLfu, MaxWeightOneKeepsTheNewestEntry) {
  Harness h(1, kSeed);
  EXPECT_THAT(h.Access(1), IsEmpty());
  EXPECT_THAT(h.Access(2), ElementsAre(1));
  EXPECT_THAT(h.Access(3), ElementsAre(2));
  EXPECT_EQ(h.policy().size(), 1u);
  EXPECT_TRUE(h.Contains(3));
}

TEST(TinyLfu, EvictWithinTheMaximumCallsNoCallback) {
  TinyLfu p(10, kSeed, Fixed());
  PolicyHook hooks[3];
  for (PolicyHook& hook : hooks) p.Add(&hook);
  int calls = 0;
  p.Evict([&](PolicyHook*) { return ++calls, true; }, [&](PolicyHook*) { ++calls; });
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(p.size(), 3u);
  for (PolicyHook& hook : hooks) p.Remove(&hook);
}

TEST(TinyLfu, OnEvictGetsAnUnlinkedHookItMayDestroy) {
  // tinylfu.h: "Each chosen victim is unlinked from the policy [...] before
  // `on_evict(PolicyHook*)` is called with it, so on_evict may destroy the
  // entry." Under AddressSanitizer, a later touch would be reported.
  TinyLfu p(2, kSeed, Fixed());
  std::vector<PolicyHook*> live;
  for (int i = 0; i < 50; ++i) {
    auto* hook = new PolicyHook;
    hook->hash = KeyHash(i);
    p.Add(hook);
    live.push_back(hook);
    p.Evict([](PolicyHook*) { return true; },
            [&](PolicyHook* victim) {
              EXPECT_EQ(victim->queue, TinyLfu::kNone);
              EXPECT_EQ(victim->prev, nullptr);
              EXPECT_EQ(victim->next, nullptr);
              live.erase(std::find(live.begin(), live.end(), victim));
              delete victim;
            });
    EXPECT_EQ(p.CheckInvariants(), "");
    EXPECT_EQ(p.size(), live.size());
  }
  EXPECT_EQ(live.size(), 2u);
  for (PolicyHook* hook : live) {
    p.Remove(hook);
    delete hook;
  }
}

TEST(TinyLfu, ACallbackThatThrowsLeavesThePolicyConsistent) {
  // tinylfu.h: "If a callback throws, the exception propagates and the
  // policy stays consistent (the entry on_evict was given has left it)".
  Harness h(2, kSeed, Fixed());
  for (int k = 1; k <= 5; ++k) h.Add(k);
  int thrown_for = 0;
  EXPECT_THROW(h.policy().Evict([](PolicyHook*) { return true; },
                                [&](PolicyHook* victim) {
                                  thrown_for = h.KeyOf(victim);
                                  throw std::runtime_error("listener");
                                }),
               std::runtime_error);
  h.Check();
  ASSERT_NE(thrown_for, 0);
  EXPECT_FALSE(h.Contains(thrown_for));
  EXPECT_EQ(h.policy().size(), 4u);
  EXPECT_THROW(h.policy().Evict([](PolicyHook*) -> bool { throw std::logic_error("pin"); },
                                [](PolicyHook*) {}),
               std::logic_error);
  h.Check();
  EXPECT_EQ(h.policy().size(), 4u);
  EXPECT_EQ(h.Evict().size(), 2u);
  EXPECT_EQ(h.policy().weight(), 2u);
}

TEST(TinyLfu, AccessesMissesAndAddsCountInTheSketch) {
  // tinylfu.h: RecordMiss "counts one access of `hash`"; Add "counts one
  // access of its hash"; RecordAccess "counts one access".
  Harness h(100, kSeed, Fixed());
  for (int i = 0; i < 3; ++i) h.policy().RecordMiss(KeyHash(7));
  EXPECT_EQ(h.policy().Frequency(KeyHash(7)), 3);
  EXPECT_EQ(h.policy().size(), 0u);
  h.Add(7);
  EXPECT_EQ(h.policy().Frequency(KeyHash(7)), 4);
  h.Hit(7);
  EXPECT_EQ(h.policy().Frequency(KeyHash(7)), 5);
  h.UpdateWeight(7, 3);  // "Counts no access."
  h.Remove(7);           // "Counts no access."
  EXPECT_EQ(h.policy().Frequency(KeyHash(7)), 5);
}

TEST(TinyLfu, TheSketchAgesAfterSixtyFourAdditionsPerEntry) {
  // tinylfu.h: "with the window at its initial size, the sketch ages every
  // 64 additions per entry".
  TinyLfu p(10, kSeed);
  EXPECT_EQ(p.sketch().capacity(), 10u);
  EXPECT_EQ(p.sketch().sample_size(), 640u);
  int key = 1000;
  while (p.sketch().agings() == 0 && key < 10'000) {
    const uint64_t before = p.sketch().additions();
    p.RecordMiss(KeyHash(++key));
    if (p.sketch().agings() == 1) {
      EXPECT_EQ(before, 639u);
    }
  }
  EXPECT_EQ(p.sketch().agings(), 1u);
}

TEST(TinyLfu, TheSketchGrowsWithTheEntriesUpToMaxWeight) {
  // TinyLfuOptions: "it grows (forgetting its counts) when the policy holds
  // more entries than that, up to max_weight entries".
  TinyLfuOptions options;
  options.initial_sketch_capacity = 16;
  Harness h(40, kSeed, options);
  EXPECT_EQ(h.policy().sketch().capacity(), 16u);
  for (int k = 0; k < 16; ++k) h.Add(k);
  EXPECT_EQ(h.policy().sketch().capacity(), 16u);
  h.Add(16);
  EXPECT_EQ(h.policy().sketch().capacity(), 32u);
  for (int k = 17; k <= 32; ++k) h.Add(k);
  EXPECT_EQ(h.policy().sketch().capacity(), 40u);
  for (int k = 33; k <= 100; ++k) h.Add(k);
  EXPECT_EQ(h.policy().sketch().capacity(), 40u);
}

// Inverse-CDF Zipf over n ranks, for the climbing tests.
class Zipf {
 public:
  Zipf(int n, double s) : cdf_(n) {
    double sum = 0;
    for (int r = 0; r < n; ++r) cdf_[r] = sum += std::pow(r + 1.0, -s);
  }
  int operator()(std::mt19937_64& rng) {
    const double u = std::uniform_real_distribution<double>(0, cdf_.back())(rng);
    return static_cast<int>(std::upper_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  }

 private:
  std::vector<double> cdf_;
};

// Runs `accesses` of key(i, rng) through a 1,000-entry policy (PolicyHooks
// made on demand), as a cache would.
template <class Key>
void Drive(TinyLfu& p, int accesses, Key key) {
  std::mt19937_64 rng(7);
  std::vector<std::unique_ptr<PolicyHook>> hooks;
  for (int i = 0; i < accesses; ++i) {
    const size_t k = static_cast<size_t>(key(i, rng));
    if (k >= hooks.size()) hooks.resize(k + 1);
    if (!hooks[k]) {
      hooks[k] = std::make_unique<PolicyHook>();
      hooks[k]->hash = KeyHash(static_cast<int>(k));
    }
    if (hooks[k]->queue != TinyLfu::kNone) {
      p.RecordAccess(hooks[k].get());
    } else {
      p.Add(hooks[k].get());
      p.Evict([](PolicyHook*) { return true; }, [](PolicyHook*) {});
    }
  }
  ASSERT_EQ(p.CheckInvariants(), "");
  for (auto& hook : hooks) {
    if (hook && hook->queue != TinyLfu::kNone) p.Remove(hook.get());
  }
}

TEST(TinyLfu, HillClimbingKeepsTheWindowSmallOnAFrequencyBiasedWorkload) {
  TinyLfu p(1000, kSeed);
  ASSERT_EQ(p.window_max(), 10u);
  Zipf zipf(100'000, 0.9);
  Drive(p, 400'000, [&](int, std::mt19937_64& rng) { return zipf(rng); });
  // Noise moves it now and then (a 2-standard-error change is no proof),
  // but it stays within 5% of the cache, the sketch's memory long.
  EXPECT_LE(p.window_max(), 50u);
  EXPECT_GE(p.sketch().sample_factor(), 12u);
}

TEST(TinyLfu, HillClimbingGrowsTheWindowOnARecencyBiasedWorkload) {
  // tinylfu.h: "a recency-biased workload grows the window toward LRU", and
  // the sketch "forgets faster" as it grows. Here the hot set slides: the
  // popular keys of now are new keys.
  TinyLfu p(1000, kSeed);
  Zipf zipf(100'000, 0.9);
  Drive(p, 400'000, [&](int i, std::mt19937_64& rng) { return zipf(rng) + i / 4; });
  EXPECT_GE(p.window_max(), 100u);
  EXPECT_LE(p.sketch().sample_factor(), 10u);
}

TEST(TinyLfu, WithoutHillClimbingTheWindowStays) {
  TinyLfu p(1000, kSeed, Fixed());
  Zipf zipf(100'000, 0.9);
  Drive(p, 100'000, [&](int i, std::mt19937_64& rng) { return zipf(rng) + i / 4; });
  EXPECT_EQ(p.window_max(), 10u);
  EXPECT_EQ(p.sketch().sample_factor(), 64u);
}

TEST(TinyLfu, RandomOperationsKeepEveryInvariant) {
  const uint64_t seed = test::TestSeed(20260101);
  for (uint64_t max_weight : {1, 2, 3, 10, 64}) {
    for (bool climb : {false, true}) {
      SCOPED_TRACE("max_weight " + std::to_string(max_weight) + (climb ? " climbing" : ""));
      TinyLfuOptions options;
      options.adapt_window = climb;
      options.min_climb_sample = 0;  // climb as often as the sketch allows
      Harness h(max_weight, seed, options);
      test::RunRandomOperations(h, max_weight, static_cast<int>(3 * max_weight + 8), 30'000,
                                seed + max_weight + climb);
      if (HasFailure()) return;
    }
  }
}

}  // namespace
}  // namespace herd::internal
