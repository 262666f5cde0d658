// Copyright 2026 The herd Authors.
//
// herd/internal/timer_wheel.h: a hierarchical timing wheel (Varghese and
// Lauck, "Hashed and hierarchical timing wheels", SOSP 1987) of intrusive
// nodes, for LoadingCache's expiry bookkeeping.
//
//   herd::internal::WheelLink   the intrusive part of a scheduled object:
//                               two links, its deadline kept by its owner
//   herd::internal::WheelNode   a WheelLink that keeps its own deadline
//   herd::internal::TimerWheel  Schedule / Unschedule in O(1), Advance(now)
//                               hands every node due by `now` to a callback
//
// Times are nanoseconds on one clock's time line (time_since_epoch()).
// Level k has 32 buckets of 2^(22 + 5k) ns each: about 4 ms, 134 ms, 4.3 s,
// 2.3 min, 73 min, 39 h, 52 days and 4.6 years; deadlines beyond the last
// level wait in an overflow list. A node sits at the lowest level whose 32
// buckets reach its deadline, and moves down a level when time enters its
// bucket. Advance(now) is exact: afterwards no node scheduled before the
// call has a deadline at or before `now`. It costs O(1 + nodes due + nodes
// moved down + nodes in the current 4 ms bucket).
//
// Where a node's deadline lives: a WheelNode keeps the one it was scheduled
// with. A bare WheelLink (two words, for an owner that can tell a node's
// deadline from its own state: a cache entry's expiry) is asked for it
// through Advance's `deadline_of` whenever its bucket comes due; a deadline
// later than the one it was scheduled with just moves it on.
//
// Thread safety: none; the owner serializes (a cache shard's lock).

#ifndef HERD_INTERNAL_TIMER_WHEEL_H_
#define HERD_INTERNAL_TIMER_WHEEL_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "herd/internal/epoch.h"

namespace herd::internal {

// Retired's link is the wheel's "next" while the node is scheduled, and
// free again for retirement once it is not.
struct WheelLink : Retired {
  Retired** pprev = nullptr;  // the link that points here; null iff idle
};

// A node with its deadline, for Advance(now, due).
struct WheelNode : WheelLink {
  int64_t deadline = 0;
};

class TimerWheel {
 public:
  static constexpr int kLevels = 8;
  static constexpr int kBits = 5;
  static constexpr int kBuckets = 1 << kBits;
  static constexpr int kShift0 = 22;

  // Starts at time `now`. Throws: std::bad_alloc.
  explicit TimerWheel(int64_t now)
      : time_(now), buckets_(new Retired* [kLevels * kBuckets] {}) {}
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  static bool Scheduled(const WheelLink* n) noexcept {
    return n->pprev != nullptr;
  }

  // Schedules `n` at `deadline`, first unscheduling it if it was scheduled.
  // A deadline at or before time() is due at the next Advance().
  void Schedule(WheelNode* n, int64_t deadline) noexcept {
    n->deadline = deadline;
    Schedule(static_cast<WheelLink*>(n), deadline);
  }
  // As above, for a node whose owner keeps its deadline (see the Advance
  // that takes `deadline_of`).
  void Schedule(WheelLink* n, int64_t deadline) noexcept {
    if (Scheduled(n)) {
      Unlink(n);
    } else {
      ++size_;
    }
    Place(n, deadline);
  }

  // Unschedules `n` if it is scheduled.
  void Unschedule(WheelLink* n) noexcept {
    if (!Scheduled(n)) return;
    Unlink(n);
    --size_;
  }

  // Moves time to max(time(), now) and calls `due(node)` for every node
  // whose deadline is at or before `now`, after unscheduling it; `due` may
  // Schedule() that node again (or any other) and Unschedule() any node.
  // REQUIRES: every node scheduled is a WheelNode.
  template <class Due>
  void Advance(int64_t now, Due&& due) {
    Advance(
        now,
        [](const WheelLink* n) {
          return static_cast<const WheelNode*>(n)->deadline;
        },
        [&due](WheelLink* n) { due(static_cast<WheelNode*>(n)); });
  }

  // As above, with each node's deadline from `deadline_of(const
  // WheelLink*) -> int64_t`, asked whenever the node's bucket comes due (so
  // perhaps more than once; it must not change the wheel).
  // REQUIRES: a node's deadline is never earlier than the one it was last
  // scheduled with; a later one is fine (the node moves on to it).
  template <class DeadlineOf, class Due>
  void Advance(int64_t now, DeadlineOf&& deadline_of, Due&& due) {
    const int64_t old = time_;
    if (now > time_) time_ = now;
    // Level 0: every bucket from the old time's to the new one's, the old
    // and current ones included (they may hold nodes due within them).
    {
      const int64_t from = old >> kShift0;
      const int64_t to = time_ >> kShift0;
      const int64_t n = to - from + 1 < kBuckets ? to - from + 1 : kBuckets;
      for (int64_t i = 0; i < n; ++i) {
        Process(Bucket(0, static_cast<int>((from + i) & (kBuckets - 1))), now,
                deadline_of, due);
      }
    }
    // Higher levels: the buckets time has entered move down.
    for (int k = 1; k < kLevels; ++k) {
      const int shift = kShift0 + kBits * k;
      const int64_t from = old >> shift;
      const int64_t to = time_ >> shift;
      if (to == from) break;
      const int64_t n = to - from < kBuckets ? to - from : kBuckets;
      for (int64_t i = 1; i <= n; ++i) {
        Process(Bucket(k, static_cast<int>((from + i) & (kBuckets - 1))), now,
                deadline_of, due);
      }
      if (k == kLevels - 1) Process(&overflow_, now, deadline_of, due);
    }
  }

  int64_t time() const noexcept { return time_; }
  size_t size() const noexcept { return size_; }

 private:
  static WheelLink* Next(const WheelLink* n) noexcept {
    return static_cast<WheelLink*>(n->retired_next);
  }

  Retired** Bucket(int level, int index) noexcept {
    return &buckets_[level * kBuckets + index];
  }

  static void Unlink(WheelLink* n) noexcept {
    *n->pprev = n->retired_next;
    if (WheelLink* next = Next(n)) next->pprev = n->pprev;
    n->retired_next = nullptr;
    n->pprev = nullptr;
  }

  static void Push(Retired** head, WheelLink* n) noexcept {
    n->retired_next = *head;
    if (*head != nullptr) static_cast<WheelLink*>(*head)->pprev = &n->retired_next;
    *head = n;
    n->pprev = head;
  }

  void Place(WheelLink* n, int64_t deadline) noexcept {
    const int64_t d = deadline > time_ ? deadline : time_;
    for (int k = 0; k < kLevels; ++k) {
      const int shift = kShift0 + kBits * k;
      if ((d >> shift) - (time_ >> shift) < kBuckets) {
        Push(Bucket(k, static_cast<int>((d >> shift) & (kBuckets - 1))), n);
        return;
      }
    }
    Push(&overflow_, n);
  }

  // Detaches the bucket, then re-places or hands over each of its nodes.
  template <class DeadlineOf, class Due>
  void Process(Retired** head, int64_t now, DeadlineOf& deadline_of,
               Due& due) {
    if (*head == nullptr) return;
    // The bucket becomes a private chain headed by processing_: `due` may
    // unschedule any of its nodes meanwhile. (Advance does not nest.)
    Retired*& chain = processing_;
    chain = *head;
    *head = nullptr;
    static_cast<WheelLink*>(chain)->pprev = &chain;
    while (chain != nullptr) {
      WheelLink* node = static_cast<WheelLink*>(chain);
      chain = node->retired_next;
      if (chain != nullptr) static_cast<WheelLink*>(chain)->pprev = &chain;
      node->retired_next = nullptr;
      node->pprev = nullptr;
      const int64_t deadline =
          deadline_of(static_cast<const WheelLink*>(node));
      if (deadline <= now) {
        --size_;
        due(node);  // may Schedule or Unschedule anything but the chain
      } else {
        Place(node, deadline);
      }
    }
  }

  int64_t time_;
  std::unique_ptr<Retired*[]> buckets_;
  Retired* overflow_ = nullptr;
  Retired* processing_ = nullptr;  // the chain Process() walks
  size_t size_ = 0;
};

}  // namespace herd::internal

#endif  // HERD_INTERNAL_TIMER_WHEEL_H_
