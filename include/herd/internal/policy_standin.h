// Copyright 2026 The herd Authors.
//
// herd/internal/policy_standin.h: TEMPORARY. A least-recently-used policy
// with the interface of the W-TinyLFU policy being written on branch
// `policy` (herd/internal/tinylfu.h), so that LoadingCache can be built and
// tested against that interface until it lands; then this file goes.
//
//   herd::internal::PolicyHook  intrusive part of a cache entry
//   herd::internal::StandInLru  exact LRU over the hooks, by weight
//
// Thread safety: none; the caller serializes.

#ifndef HERD_INTERNAL_POLICY_STANDIN_H_
#define HERD_INTERNAL_POLICY_STANDIN_H_

#include <cstdint>

namespace herd::internal {

struct PolicyHook {
  PolicyHook* prev = nullptr;
  PolicyHook* next = nullptr;
  uint64_t hash = 0;
  uint32_t weight = 0;
  uint8_t queue = 0;
};

class StandInLru {
 public:
  StandInLru(uint64_t max_weight, uint64_t /*seed*/) : max_weight_(max_weight) {
    head_.prev = head_.next = &head_;
  }
  StandInLru(const StandInLru&) = delete;
  StandInLru& operator=(const StandInLru&) = delete;

  void RecordAccess(PolicyHook* h) {
    Unlink(h);
    LinkMru(h);
  }
  void RecordMiss(uint64_t /*hash*/) {}
  void Add(PolicyHook* h) {
    LinkMru(h);
    weight_ += h->weight;
    ++size_;
  }
  void Remove(PolicyHook* h) {
    Unlink(h);
    weight_ -= h->weight;
    --size_;
  }
  void UpdateWeight(PolicyHook* h, uint32_t weight) {
    weight_ = weight_ - h->weight + weight;
    h->weight = weight;
  }
  // Evicts least recently used hooks until weight() <= max_weight(),
  // skipping those can_evict refuses.
  template <class CanEvict, class OnEvict>
  void Evict(CanEvict&& can_evict, OnEvict&& on_evict) {
    PolicyHook* h = head_.next;
    while (weight_ > max_weight_ && h != &head_) {
      PolicyHook* next = h->next;
      if (can_evict(h)) {
        Remove(h);
        on_evict(h);
      }
      h = next;
    }
  }
  uint64_t weight() const { return weight_; }
  uint64_t max_weight() const { return max_weight_; }
  uint64_t size() const { return size_; }

 private:
  void LinkMru(PolicyHook* h) {
    h->prev = head_.prev;
    h->next = &head_;
    head_.prev->next = h;
    head_.prev = h;
  }
  static void Unlink(PolicyHook* h) {
    h->prev->next = h->next;
    h->next->prev = h->prev;
    h->prev = h->next = nullptr;
  }

  const uint64_t max_weight_;
  PolicyHook head_;
  uint64_t weight_ = 0;
  uint64_t size_ = 0;
};

}  // namespace herd::internal

#endif  // HERD_INTERNAL_POLICY_STANDIN_H_
