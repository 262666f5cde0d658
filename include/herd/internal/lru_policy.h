// Copyright 2026 The herd Authors.
//
// herd/internal/lru_policy.h: exact least-recently-used eviction, with the
// interface of internal/tinylfu.h.
//
//   herd::internal::LruPolicy  one LRU list over the whole cache
//
// The baseline of the hit-ratio benchmark, and a policy whose eviction order
// a cache's tests can predict exactly. Same contracts as TinyLfu (Add counts
// nothing here, RecordMiss does nothing, an entry heavier than max_weight()
// is evicted first, weight-0 and pinned entries are never evicted by
// Evict()), with one list instead of three and no frequency sketch.
//
// Thread safety: none. The caller serializes every call.

#ifndef HERD_INTERNAL_LRU_POLICY_H_
#define HERD_INTERNAL_LRU_POLICY_H_

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <string>

#include "herd/internal/policy_hook.h"

namespace herd::internal {

class LruPolicy {
 public:
  // Values of PolicyHook::queue.
  static constexpr uint8_t kNone = 0;
  static constexpr uint8_t kLru = 1;
  static constexpr uint8_t kOverweight = 4;  // weight > max_weight()

  // REQUIRES: max_weight >= 1. `seed` is unused (the interface of TinyLfu).
  explicit LruPolicy(uint64_t max_weight, uint64_t seed = 0) noexcept
      : max_weight_(max_weight) {
    assert(max_weight >= 1);
    static_cast<void>(seed);
  }
  LruPolicy(const LruPolicy&) = delete;
  LruPolicy& operator=(const LruPolicy&) = delete;

  // Makes h the most recently used entry. REQUIRES: h is in this policy.
  void RecordAccess(PolicyHook* h) noexcept {
    assert(h->queue != kNone);
    if (h->queue == kLru) lru_.MoveToBack(h);
  }

  // Does nothing: LRU keeps no history of absent keys.
  void RecordMiss(uint64_t /*hash*/) noexcept {}

  // Adds h as the most recently used entry (or to the overweight list).
  // REQUIRES: h is in no policy (h->queue == kNone).
  void Add(PolicyHook* h) noexcept {
    assert(h->queue == kNone);
    weight_ += h->weight;
    Place(h);
  }

  // Takes h out of the policy. REQUIRES: h is in this policy.
  void Remove(PolicyHook* h) noexcept {
    assert(h->queue != kNone);
    Unlink(h);
  }

  // Puts `h` in `old`'s place (list, position and weight: a cache that
  // replaces a key's entry by a new one); `old` leaves the policy. Counts
  // no access. REQUIRES: old is in this policy, h in none; same hash.
  void Replace(PolicyHook* old, PolicyHook* h) noexcept {
    assert(old->queue != kNone && h->queue == kNone);
    (old->queue == kLru ? lru_ : overweight_).Replace(old, h);
    h->queue = old->queue;
    old->queue = kNone;
  }

  // Sets h->weight; h keeps its place unless it crosses max_weight().
  // REQUIRES: h is in this policy.
  void UpdateWeight(PolicyHook* h, uint32_t weight) noexcept {
    assert(h->queue != kNone);
    weight_ = weight_ - h->weight + weight;
    HookList& list = h->queue == kLru ? lru_ : overweight_;
    if ((weight > max_weight_) == (h->queue == kOverweight)) {
      list.Reweigh(h, weight);
      return;
    }
    list.Erase(h);
    h->weight = weight;
    Place(h);
  }

  // Evicts until weight() <= max_weight(): overweight entries first, then
  // the least recently used, skipping entries of weight 0 and those for
  // which can_evict(h) is false. Each victim is unlinked before on_evict(h).
  // Neither callback may call into this policy. Returns with weight() >
  // max_weight() only if every remaining entry of nonzero weight is pinned.
  template <class CanEvict, class OnEvict>
  void Evict(CanEvict&& can_evict, OnEvict&& on_evict) {
    for (PolicyHook* h = overweight_.front(); h != nullptr;) {
      PolicyHook* next = overweight_.next(h);
      if (can_evict(h)) {
        Unlink(h);
        on_evict(h);
      }
      h = next;
    }
    for (PolicyHook* h = lru_.front(); h != nullptr && weight_ > max_weight_;) {
      PolicyHook* next = lru_.next(h);
      if (h->weight != 0 && can_evict(h)) {
        Unlink(h);
        on_evict(h);
      }
      h = next;
    }
  }

  uint64_t weight() const noexcept { return weight_; }
  uint64_t max_weight() const noexcept { return max_weight_; }
  size_t size() const noexcept { return lru_.size() + overweight_.size(); }

  // Calls f(const PolicyHook*) for each entry of `queue` (kLru,
  // kOverweight), least recently used first.
  template <class F>
  void ForEach(uint8_t queue, F&& f) const {
    const HookList& list = queue == kLru ? lru_ : overweight_;
    for (const PolicyHook* h = list.front(); h != nullptr; h = list.next(h)) {
      f(h);
    }
  }

  // Returns an empty string iff the lists, their counts and weights, the
  // members' queues and weight() agree; else describes the first violation.
  std::string CheckInvariants() const {
    uint64_t total = 0;
    for (const HookList* list : {&lru_, &overweight_}) {
      const uint8_t queue = list == &lru_ ? kLru : kOverweight;
      size_t count = 0;
      uint64_t weight = 0;
      for (const PolicyHook* h = list->front(); h != nullptr; h = list->next(h)) {
        if (h->queue != queue) return "a member is tagged with the wrong queue";
        if ((queue == kOverweight) != (h->weight > max_weight_)) {
          return "a member is in the wrong list for its weight";
        }
        if (h->next->prev != h) return "broken links";
        if (++count > list->size()) return "more members than the count";
        weight += h->weight;
      }
      if (count != list->size() || weight != list->weight()) {
        return "a list's count or weight disagrees with its members";
      }
      total += weight;
    }
    if (total != weight_) return "weight() disagrees with the members";
    return "";
  }

 private:
  void Place(PolicyHook* h) noexcept {
    if (h->weight > max_weight_) {
      overweight_.PushBack(h);
      h->queue = kOverweight;
    } else {
      lru_.PushBack(h);
      h->queue = kLru;
    }
  }
  void Unlink(PolicyHook* h) noexcept {
    (h->queue == kLru ? lru_ : overweight_).Erase(h);
    weight_ -= h->weight;
    h->queue = kNone;
  }

  const uint64_t max_weight_;
  HookList lru_;
  HookList overweight_;
  uint64_t weight_ = 0;
};

}  // namespace herd::internal

#endif  // HERD_INTERNAL_LRU_POLICY_H_
