// Copyright 2026 The herd Authors.
//
// herd/internal/policy_hook.h: what an eviction policy keeps inside each
// cache entry, and the intrusive list the policies build from it.
//
//   herd::internal::PolicyHook  embedded in a cache entry: list links, the
//                               key's hash, the entry's weight, its queue
//   herd::internal::HookList    an intrusive doubly linked list of hooks,
//                               least recently used first, with the count
//                               and total weight of its members
//
// The policies (internal/tinylfu.h, internal/lru_policy.h) allocate nothing
// per entry: they only link and unlink the hooks the cache owns.
//
// Thread safety: none. The owner serializes every call.

#ifndef HERD_INTERNAL_POLICY_HOOK_H_
#define HERD_INTERNAL_POLICY_HOOK_H_

#include <cassert>
#include <cstddef>
#include <cstdint>

namespace herd::internal {

// Embedded in each cache entry. The cache sets `hash` and `weight` before it
// hands the hook to a policy's Add(), and changes `weight` afterwards only
// through the policy's UpdateWeight(). Everything else is the policy's.
struct PolicyHook {
  PolicyHook* prev = nullptr;
  PolicyHook* next = nullptr;
  uint64_t hash = 0;    // the key's hash
  uint32_t weight = 1;  // the entry's weight; 0 is allowed
  uint8_t queue = 0;    // which of the policy's lists; 0: not in the policy
};
static_assert(sizeof(PolicyHook) <= 32, "a PolicyHook costs at most 32 bytes");

// An intrusive circular list of hooks around a sentinel, oldest (least
// recently used) first. Counts its members and sums their weights. A hook is
// in at most one list at a time; the list never owns it.
class HookList {
 public:
  HookList() noexcept { head_.prev = head_.next = &head_; }
  HookList(const HookList&) = delete;  // hooks point at head_
  HookList& operator=(const HookList&) = delete;

  bool empty() const noexcept { return head_.next == &head_; }
  size_t size() const noexcept { return size_; }
  uint64_t weight() const noexcept { return weight_; }

  // The least recently used member, or nullptr.
  PolicyHook* front() const noexcept {
    return empty() ? nullptr : head_.next;
  }
  // The most recently used member, or nullptr.
  PolicyHook* back() const noexcept { return empty() ? nullptr : head_.prev; }
  // The member after `h` (more recently used), or nullptr after the last.
  // REQUIRES: h is in this list.
  PolicyHook* next(const PolicyHook* h) const noexcept {
    return h->next == &head_ ? nullptr : h->next;
  }

  // Appends `h` as the most recently used member.
  // REQUIRES: h is in no list.
  void PushBack(PolicyHook* h) noexcept { InsertBefore(&head_, h); }

  // Inserts `h` just before `pos`; a null `pos` means at the back.
  // REQUIRES: h is in no list; pos, if not null, is in this list.
  void InsertBefore(PolicyHook* pos, PolicyHook* h) noexcept {
    if (pos == nullptr) pos = &head_;
    h->prev = pos->prev;
    h->next = pos;
    pos->prev->next = h;
    pos->prev = h;
    ++size_;
    weight_ += h->weight;
  }

  // Unlinks `h`. REQUIRES: h is in this list.
  void Erase(PolicyHook* h) noexcept {
    assert(size_ > 0 && weight_ >= h->weight);
    h->prev->next = h->next;
    h->next->prev = h->prev;
    h->prev = h->next = nullptr;
    --size_;
    weight_ -= h->weight;
  }

  // Makes `h` the most recently used member. REQUIRES: h is in this list.
  void MoveToBack(PolicyHook* h) noexcept {
    if (head_.prev == h) return;
    h->prev->next = h->next;
    h->next->prev = h->prev;
    h->prev = head_.prev;
    h->next = &head_;
    head_.prev->next = h;
    head_.prev = h;
  }

  // Puts `h` in `old`'s place, with old's weight; `old` leaves the list
  // (its links are cleared). The count and total weight do not change.
  // REQUIRES: old is in this list; h is in no list.
  void Replace(PolicyHook* old, PolicyHook* h) noexcept {
    h->prev = old->prev;
    h->next = old->next;
    h->prev->next = h;
    h->next->prev = h;
    h->weight = old->weight;
    old->prev = old->next = nullptr;
  }

  // Sets h->weight, keeping the list's total. REQUIRES: h is in this list.
  void Reweigh(PolicyHook* h, uint32_t weight) noexcept {
    assert(weight_ >= h->weight);
    weight_ = weight_ - h->weight + weight;
    h->weight = weight;
  }

 private:
  PolicyHook head_;
  size_t size_ = 0;
  uint64_t weight_ = 0;
};

}  // namespace herd::internal

#endif  // HERD_INTERNAL_POLICY_HOOK_H_
