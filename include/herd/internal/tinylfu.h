// Copyright 2026 The herd Authors.
//
// herd/internal/tinylfu.h: which entry a bounded cache evicts.
//
//   herd::internal::TinyLfu         W-TinyLFU over the whole cache: a
//                                   window LRU, a segmented main space, and
//                                   admission by estimated frequency
//   herd::internal::TinyLfuOptions  its tuning (tests and the benchmark)
//   herd::internal::PolicyHook      (internal/policy_hook.h) what it links
//
// Example (the cache holds its policy lock around each call):
//
//   TinyLfu policy(/*max_weight=*/10'000);
//   entry->hook.hash = hash; entry->hook.weight = weigher(key, value);
//   policy.Add(&entry->hook);                       // a load completed
//   policy.Evict([](PolicyHook* h) { return !EntryOf(h)->refreshing; },
//                [&](PolicyHook* h) { doomed.push_back(EntryOf(h)); });
//   ...
//   policy.RecordAccess(&entry->hook);              // a hit
//
// The design is W-TinyLFU (Einziger, Friedman, Manes, "TinyLFU: A Highly
// Efficient Cache Admission Policy", ACM TOS 2017) as Caffeine builds it:
//
//   * A new entry enters the window, an LRU of about 1% of max_weight()
//     at first. Entries pushed out of the window become candidates for the
//     main space.
//   * The main space is a segmented LRU: probation (entries admitted but
//     not used since) and protected (about 80% of main: entries used again
//     while in probation). A hit in probation promotes the entry to
//     protected; protected's least recently used entries are demoted back
//     to probation's most recent end when protected outgrows its share.
//   * When the cache is over its weight, each candidate duels the least
//     recently used entry of probation (the victim): the one with the lower
//     estimated frequency (internal/frequency_sketch.h) is evicted. A tie
//     evicts the candidate, so a scan of one-time keys cannot flush the
//     main space. A candidate with a frequency of at least 6 that loses is
//     still admitted one time in 128 (at random, from `seed`), so that an
//     attacker cannot keep a hot victim forever by colliding with it.
//   * Hill climbing (Caffeine's, made robust to noise): every sample of
//     climb_sample() accesses, the hit ratio of the sample is compared with
//     the previous one. If it is better by at least 2 standard errors, the
//     window moves again in the direction it last moved; if worse by as
//     much, in the other direction. The step starts at 6.25% of
//     max_weight(), restarts there on a jump of 5 points and 3 standard
//     errors, decays by 2% a move, and is at least a quarter of that. A
//     change within 2 standard errors is no evidence: the window holds and
//     the step halves. So a recency-biased workload grows the window
//     toward LRU, a frequency-biased one keeps it small, and the noise of a
//     small cache's samples does not walk the window about (Caffeine's
//     climber moves on every sample). Climbing starts the first time the
//     cache is over its weight, so that filling it does not count.
//   * The sketch's memory follows the window (herd's addition): with the
//     window at its initial size, the sketch ages every 64 additions per
//     entry (TinyLFU's and Caffeine's 10 forget the boundary keys of a
//     skewed workload too soon); as the window grows, proportionally
//     sooner, down to 10. See docs/hit_ratio.md for the measurements.
//
// Weights: an entry counts its weight against max_weight(). An entry whose
// weight exceeds max_weight() is kept apart and is the first to be evicted
// by the next Evict(), before anything else is considered. Entries of
// weight 0 are never evicted by Evict() (evicting them frees nothing), only
// by Remove().
//
// Memory: 32 bytes of PolicyHook inside each entry (allocated by the cache),
// plus the sketch: 16 bytes per entry of capacity, sized at construction for
// min(max_weight, 16384) entries and grown (as entries arrive) up to
// max_weight entries. Nothing is allocated per operation.
//
// Thread safety: none. The caller serializes every call (the cache's policy
// lock). The policy never calls user code except the two callbacks given to
// Evict(), under whatever lock the caller holds.

#ifndef HERD_INTERNAL_TINYLFU_H_
#define HERD_INTERNAL_TINYLFU_H_

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/base/attributes.h"
#include "herd/internal/frequency_sketch.h"
#include "herd/internal/policy_hook.h"

namespace herd::internal {

struct TinyLfuOptions {
  // The window's share of max_weight() at first.
  double initial_window = 0.01;
  // Protected's share of the main space.
  double protected_share = 0.80;
  // Hill climbing of the window's size (false: the window stays as set).
  bool adapt_window = true;
  // Hill climbing samples max(climb_sample_factor * the sketch's capacity,
  // min_climb_sample) accesses: long enough for a move of the window to
  // show in the hit ratio, and for noise in a small cache's hit ratio not
  // to steer it.
  uint64_t climb_sample_factor = 10;
  uint64_t min_climb_sample = 8192;
  // The sketch's memory follows the window: it ages every
  //   max_sample_factor * initial window / window
  // additions per entry of capacity, at least min_sample_factor. While the
  // window is at its initial size the sketch remembers long; as climbing
  // grows the window (a recency-biased workload), it forgets faster.
  // REQUIRES: 1 <= min_sample_factor <= max_sample_factor.
  uint32_t max_sample_factor = 64;
  uint32_t min_sample_factor = 10;
  // The first sketch is sized for min(max_weight, initial_sketch_capacity)
  // entries; it grows (forgetting its counts) when the policy holds more
  // entries than that, up to max_weight entries.
  uint64_t initial_sketch_capacity = uint64_t{1} << 14;
  // The sketch's update rule and doorkeeper (its sample_factor is ignored:
  // see max_sample_factor).
  FrequencySketchOptions sketch;
};

class TinyLfu {
 public:
  // Values of PolicyHook::queue.
  static constexpr uint8_t kNone = 0;
  static constexpr uint8_t kWindow = 1;
  static constexpr uint8_t kProbation = 2;
  static constexpr uint8_t kProtected = 3;
  static constexpr uint8_t kOverweight = 4;  // weight > max_weight()

  // A candidate at least this warm that loses its duel is admitted anyway
  // one time in 128.
  static constexpr int kWarmCandidate = 6;

  // REQUIRES: max_weight >= 1. `seed` fixes the sketch's hashing and the
  // admission jitter, for reproducible runs.
  // Throws: std::bad_alloc.
  explicit TinyLfu(uint64_t max_weight, uint64_t seed = 0)
      : TinyLfu(max_weight, seed, TinyLfuOptions{}) {}
  TinyLfu(uint64_t max_weight, uint64_t seed, const TinyLfuOptions& options);

  TinyLfu(const TinyLfu&) = delete;  // the hooks point into the lists
  TinyLfu& operator=(const TinyLfu&) = delete;

  // A hit on an entry in the policy: counts one access of its hash and
  // moves it up (window: most recent; probation: promoted to protected,
  // unless heavier than protected's share; protected: most recent).
  // REQUIRES: h is in this policy.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void RecordAccess(PolicyHook* h) noexcept;

  // An access to a key that is not in the policy and will not be added by
  // it (a lookup that misses and loads nothing, or a load that failed):
  // counts one access of `hash` and one miss for hill climbing.
  void RecordMiss(uint64_t hash) noexcept;

  // A new entry, with h->hash and h->weight set: counts one access of its
  // hash and one miss (so a miss that loads an entry calls Add() only, not
  // also RecordMiss()). The entry joins the window's most recent end, or,
  // if h->weight > max_weight(), the overweight list that Evict() empties
  // first. Does not evict: call Evict() after.
  // REQUIRES: h is in no policy (h->queue == kNone).
  void Add(PolicyHook* h) noexcept;

  // Takes h out of the policy (explicit removal, expiry). h->queue becomes
  // kNone. Counts no access.
  // REQUIRES: h is in this policy.
  void Remove(PolicyHook* h) noexcept;

  // Puts `h` in `old`'s place (queue, position and weight: a cache that
  // replaces a key's entry by a new one); `old` leaves the policy (its
  // queue becomes kNone). Counts no access.
  // REQUIRES: old is in this policy, h in none; h->hash == old->hash.
  void Replace(PolicyHook* old, PolicyHook* h) noexcept;

  // Sets h->weight. The entry keeps its place, except that it moves to the
  // overweight list if weight > max_weight(), back to the window's most
  // recent end if it was overweight and no longer is, and that protected is
  // trimmed to its share. Counts no access. Does not evict: call Evict().
  // REQUIRES: h is in this policy.
  void UpdateWeight(PolicyHook* h, uint32_t weight) noexcept;

  // Evicts until weight() <= max_weight(). For each entry it considers
  // evicting, calls `can_evict(PolicyHook*) -> bool`: false means the entry
  // is pinned (a refresh in progress): it is skipped and never evicted by
  // this call. can_evict may be asked more than once about an entry, and
  // must give the same answer throughout one call. Each chosen victim is unlinked from the policy (h->queue ==
  // kNone) before `on_evict(PolicyHook*)` is called with it, so on_evict may
  // destroy the entry. Neither callback may call into this policy.
  //
  // In order: adapts the window (hill climbing); evicts overweight entries;
  // moves the window's excess to probation's most recent end as candidates;
  // while over weight, duels each candidate (oldest first) against
  // probation's least recently used entry, then protected's, then the
  // window's, evicting the loser; when the candidates run out, the window's
  // least recently used entries become candidates.
  //
  // Returns with weight() > max_weight() only if every remaining entry of
  // nonzero weight is pinned. If a callback throws, the exception
  // propagates and the policy stays consistent (the entry on_evict was
  // given has left it; nothing else is half-done).
  template <class CanEvict, class OnEvict>
  void Evict(CanEvict&& can_evict, OnEvict&& on_evict);

  // The total weight of the entries in the policy.
  uint64_t weight() const noexcept { return weight_; }
  uint64_t max_weight() const noexcept { return max_weight_; }
  // The number of entries in the policy.
  size_t size() const noexcept {
    return window_.size() + probation_.size() + protected_.size() +
           overweight_.size();
  }

  // --- Introspection, for tests and the benchmark.

  // Returns the sketch's estimate for `hash` (internal/frequency_sketch.h).
  int Frequency(uint64_t hash) const noexcept {
    return sketch_.Frequency(hash);
  }
  const FrequencySketch& sketch() const noexcept { return sketch_; }

  uint64_t window_weight() const noexcept { return window_.weight(); }
  uint64_t probation_weight() const noexcept { return probation_.weight(); }
  uint64_t protected_weight() const noexcept { return protected_.weight(); }
  uint64_t overweight_weight() const noexcept { return overweight_.weight(); }
  // The window's and protected's current shares (hill climbing moves them).
  uint64_t window_max() const noexcept { return window_max_; }
  uint64_t protected_max() const noexcept { return protected_max_; }
  // Accesses per hill-climbing sample.
  uint64_t climb_sample() const noexcept;

  // Calls f(const PolicyHook*) for each entry of `queue` (kWindow,
  // kProbation, kProtected, kOverweight), least recently used first.
  template <class F>
  void ForEach(uint8_t queue, F&& f) const {
    const HookList& list = ListOf(queue);
    for (const PolicyHook* h = list.front(); h != nullptr; h = list.next(h)) {
      f(h);
    }
  }

  // Returns an empty string iff every invariant holds: each list's links,
  // count and weight agree with its members, each member's queue names its
  // list, weight() is their sum, protected is within its share, the
  // overweight list holds exactly the entries heavier than max_weight(), and
  // window_max() + main's share == max_weight(). Otherwise describes the
  // first violation. O(size()).
  std::string CheckInvariants() const;

 private:
  HookList& ListOf(uint8_t queue) noexcept;
  const HookList& ListOf(uint8_t queue) const noexcept;

  // RecordAccess() of an entry in probation: promotes it to protected
  // (trimming protected), or, if heavier than protected's share, moves it
  // to probation's most recent end.
  void PromoteFromProbation(PolicyHook* h) noexcept;
  // Moves protected's least recently used entries to probation's most
  // recent end until protected is within its share.
  void DemoteProtectedExcess() noexcept;
  // Unlinks h from the policy (its queue becomes kNone).
  void Unlink(PolicyHook* h) noexcept;
  // Returns true iff `candidate` should replace `victim`.
  bool Admit(const PolicyHook* candidate, const PolicyHook* victim) noexcept;
  // Hill climbing: at the end of each sample, moves window_max_.
  void Climb() noexcept;
  // Sets the sketch's aging period from the window's size.
  void SetSketchMemory() noexcept;
  // Sets window_max_ to `target` (in [1, max_weight_ - 1]) and protected's
  // share from it; moves main's least recently used entries into the window
  // when it grew, and trims protected.
  void ResizeWindow(uint64_t target) noexcept;
  void SetShares(uint64_t window_max) noexcept;
  void GrowSketchIfNeeded() noexcept;
  uint64_t NextRandom() noexcept;

  const uint64_t max_weight_;
  const TinyLfuOptions options_;

  HookList window_;
  HookList probation_;
  HookList protected_;
  HookList overweight_;
  uint64_t weight_ = 0;
  uint64_t window_max_ = 0;
  uint64_t protected_max_ = 0;
  uint64_t initial_window_max_ = 0;

  FrequencySketch sketch_;
  uint64_t random_;

  // Hill climbing.
  bool climbing_ = false;
  bool have_previous_ = false;
  uint64_t hits_in_sample_ = 0;
  uint64_t misses_in_sample_ = 0;
  double previous_hit_rate_ = 0;
  double step_ = 0;  // signed: < 0 shrinks the window
};

// --- Inline and template definitions.

// Inline, with the sketch's Increment(): the cache replays every read it
// records through here, so the common cases (a hit in the window or in
// protected) are a sketch update and a list move with no call.
inline void TinyLfu::RecordAccess(PolicyHook* h) noexcept {
  assert(h->queue != kNone);
  const uint8_t queue = h->queue;  // before the sketch's byte stores
  sketch_.Increment(h->hash);
  ++hits_in_sample_;
  if (queue == kWindow) {
    window_.MoveToBack(h);
  } else if (queue == kProtected) {
    protected_.MoveToBack(h);
  } else if (queue == kProbation) {
    PromoteFromProbation(h);
  }
  // Overweight: leaves at the next Evict().
}

template <class CanEvict, class OnEvict>
void TinyLfu::Evict(CanEvict&& can_evict, OnEvict&& on_evict) {
  Climb();

  // An entry that alone exceeds the maximum goes first.
  for (PolicyHook* h = overweight_.front(); h != nullptr;) {
    PolicyHook* next = overweight_.next(h);
    if (can_evict(h)) {
      Unlink(h);
      on_evict(h);
    }
    h = next;
  }

  // The window's excess becomes the candidates, at probation's recent end.
  PolicyHook* candidate = nullptr;
  while (window_.weight() > window_max_) {
    PolicyHook* h = window_.front();
    window_.Erase(h);
    probation_.PushBack(h);
    h->queue = kProbation;
    if (candidate == nullptr) candidate = h;
  }

  // Victims come from probation, then protected, then the window; the
  // candidates from probation (those just moved), then the window. A victim
  // never passes the candidate when both walk probation: they meet, and an
  // entry that meets itself is evicted.
  bool candidates_from_window = false;
  uint8_t victim_queue = kProbation;
  PolicyHook* victim = probation_.front();
  auto evictable = [&can_evict](PolicyHook* h) {
    return h->weight != 0 && can_evict(h);
  };
  while (weight_ > max_weight_) {
    if (candidate == nullptr && !candidates_from_window) {
      candidates_from_window = true;
      candidate = window_.front();
    }
    if (victim == nullptr) {
      if (victim_queue == kProbation) {
        victim_queue = kProtected;
        victim = protected_.front();
        continue;
      }
      if (victim_queue == kProtected) {
        victim_queue = kWindow;
        victim = window_.front();
        continue;
      }
      if (candidate == nullptr) break;  // everything left is pinned
    }
    if (victim != nullptr && victim != candidate && !evictable(victim)) {
      victim = ListOf(victim->queue).next(victim);
      continue;
    }
    if (candidate != nullptr && !evictable(candidate)) {
      if (victim == candidate) victim = ListOf(victim->queue).next(victim);
      candidate = ListOf(candidate->queue).next(candidate);
      continue;
    }
    PolicyHook* loser;
    if (candidate == nullptr) {
      loser = victim;
      victim = ListOf(victim->queue).next(victim);
    } else if (victim == nullptr || victim == candidate) {
      loser = candidate;
      if (victim != nullptr) victim = ListOf(victim->queue).next(victim);
      candidate = ListOf(candidate->queue).next(candidate);
    } else if (Admit(candidate, victim)) {
      loser = victim;
      victim = ListOf(victim->queue).next(victim);
      candidate = ListOf(candidate->queue).next(candidate);
    } else {
      loser = candidate;
      candidate = ListOf(candidate->queue).next(candidate);
    }
    Unlink(loser);
    on_evict(loser);
  }
}

}  // namespace herd::internal

#endif  // HERD_INTERNAL_TINYLFU_H_
