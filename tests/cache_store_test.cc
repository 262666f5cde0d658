// Copyright 2026 The herd Authors.
//
// Single-threaded tests of LoadingCache's entry store, the pieces under
// herd/internal/: the index (epoch_index.h), the expiry wheel
// (timer_wheel.h), and the striped counters and read buffer (striped.h).
// One concurrent test checks the index's lock-free reads against a writer.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <new>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "herd/internal/epoch.h"
#include "herd/internal/epoch_index.h"
#include "herd/internal/striped.h"
#include "herd/internal/timer_wheel.h"

namespace herd::internal {
namespace {

// --- EpochIndex -------------------------------------------------------------

struct Item : Retired {
  Item(uint64_t h, int k) : hash(h), key(k) {}
  uint64_t hash;
  int key;
};

uint64_t Mix(int k) {
  uint64_t h = static_cast<uint64_t>(k) * 0x9e3779b97f4a7c15ULL;
  return h ^ (h >> 29);
}

Item* Find(const EpochIndex<Item>& index, int key, uint64_t hash) {
  EpochGuard g;
  return index.Find(hash, [&](const Item& i) { return i.key == key; });
}

// epoch_index.h: Find returns what InsertLocked inserted, and nothing once
// EraseLocked erased it; the table grows as needed.
TEST(EpochIndex, InsertFindEraseAcrossGrowth) {
  EpochIndex<Item> index;
  std::vector<std::unique_ptr<Item>> items;
  for (int k = 0; k < 1000; ++k) {
    items.push_back(std::make_unique<Item>(Mix(k), k));
    index.ReserveLocked(1);
    index.InsertLocked(items.back().get());
  }
  EXPECT_EQ(index.SizeLocked(), 1000u);
  EXPECT_GE(index.CapacityLocked() * 3, 1000u * 4);  // load <= 3/4
  for (int k = 0; k < 1000; ++k) {
    EXPECT_EQ(Find(index, k, Mix(k)), items[k].get()) << k;
  }
  EXPECT_EQ(Find(index, 1000, Mix(1000)), nullptr);
  for (int k = 0; k < 1000; k += 2) index.EraseLocked(items[k].get());
  for (int k = 0; k < 1000; ++k) {
    EXPECT_EQ(Find(index, k, Mix(k)), k % 2 ? items[k].get() : nullptr) << k;
  }
  EXPECT_EQ(index.SizeLocked(), 500u);
}

// epoch_index.h: entries whose 64-bit hashes collide are told apart by the
// equality callback alone; AbsenceHoldsLocked sees through the rejected
// ones but not through one inserted after the probe.
TEST(EpochIndex, FullHashCollisionsAndAbsence) {
  EpochIndex<Item> index;
  Item a(42, 1), b(42, 2), c(42, 3);
  index.ReserveLocked(2);
  index.InsertLocked(&a);
  index.InsertLocked(&b);
  EXPECT_EQ(Find(index, 1, 42), &a);
  EXPECT_EQ(Find(index, 2, 42), &b);
  EpochGuard g;
  auto probe = index.FindForWrite(42, [](const Item& i) { return i.key == 3; });
  EXPECT_EQ(probe.found, nullptr);
  EXPECT_EQ(probe.rejected_count, 2);
  EXPECT_TRUE(index.AbsenceHoldsLocked(42, probe));
  index.ReserveLocked(1);
  index.InsertLocked(&c);
  EXPECT_FALSE(index.AbsenceHoldsLocked(42, probe));
}

// epoch_index.h: an Entry may keep only the low bits of its hash (a
// narrower `hash`): InsertLocked takes the whole hash for the slot's tag,
// and hashes that differ only above the kept bits are told apart by the
// tag or, failing that, by the equality callback. ReplaceLocked keeps the
// slot's tag.
TEST(EpochIndex, EntriesKeepingPartOfTheirHash) {
  struct Narrow : Retired {
    Narrow(uint64_t h, int k) : hash(static_cast<uint32_t>(h)), key(k) {}
    uint32_t hash;
    int key;
  };
  EpochIndex<Narrow> index;
  auto find = [&](int key, uint64_t hash) {
    EpochGuard g;
    return index.Find(hash, [&](const Narrow& n) { return n.key == key; });
  };
  const uint64_t low = 0x12345678;
  const uint64_t a_hash = low | (uint64_t{0xaaaa} << 48);               // own tag
  const uint64_t b_hash = low | (uint64_t{0xbbbb} << 48);               // own tag
  const uint64_t c_hash = low | (uint64_t{0xbbbb} << 48) | (1ull << 40);  // b's tag
  Narrow a(a_hash, 1), b(b_hash, 2), c(c_hash, 3), b2(b_hash, 2);
  std::vector<std::unique_ptr<Narrow>> filler;
  for (int k = 0; k < 100; ++k) {
    filler.push_back(std::make_unique<Narrow>(Mix(k), 100 + k));
    index.ReserveLocked(1);
    index.InsertLocked(filler.back().get(), Mix(k));
  }
  index.ReserveLocked(3);
  index.InsertLocked(&a, a_hash);
  index.InsertLocked(&b, b_hash);
  index.InsertLocked(&c, c_hash);
  EXPECT_EQ(find(1, a_hash), &a);
  EXPECT_EQ(find(2, b_hash), &b);
  EXPECT_EQ(find(3, c_hash), &c);
  EXPECT_EQ(find(1, b_hash), nullptr);  // a's tag differs from b's
  for (int k = 0; k < 100; ++k) EXPECT_EQ(find(100 + k, Mix(k)), filler[k].get());
  EpochGuard g;
  auto probe = index.FindForWrite(b_hash, [](const Narrow& n) { return n.key == 4; });
  EXPECT_EQ(probe.found, nullptr);
  EXPECT_EQ(probe.rejected_count, 2);  // b and c: same tag and low bits
  EXPECT_TRUE(index.AbsenceHoldsLocked(b_hash, probe));
  index.ReplaceLocked(&b, &b2);
  EXPECT_EQ(find(2, b_hash), &b2);
  EXPECT_FALSE(index.AbsenceHoldsLocked(b_hash, probe));  // b2 is new to it
  index.ReserveLocked(1000);  // grows: entries are placed by their low bits
  EXPECT_EQ(find(2, b_hash), &b2);
  EXPECT_EQ(find(3, c_hash), &c);
  for (int k = 0; k < 100; ++k) EXPECT_EQ(find(100 + k, Mix(k)), filler[k].get());
}

// epoch_index.h: ReserveLocked: "Throws: std::bad_alloc, with nothing
// changed ... when the table would need more slots than an Entry's stored
// hash bits can address". With 8 bits kept, 256 slots hold 192 entries (a
// load of 3/4); the 193rd is refused and the rest stay found.
TEST(EpochIndex, NarrowHashBoundsTheTable) {
  struct Tiny : Retired {
    Tiny(uint64_t h, int k) : hash(static_cast<uint8_t>(h)), key(k) {}
    uint8_t hash;
    int key;
  };
  EpochIndex<Tiny> index;
  std::vector<std::unique_ptr<Tiny>> items;
  for (int k = 0; k < 192; ++k) {
    items.push_back(std::make_unique<Tiny>(Mix(k), k));
    index.ReserveLocked(1);
    index.InsertLocked(items.back().get(), Mix(k));
  }
  EXPECT_EQ(index.CapacityLocked(), 256u);
  EXPECT_THROW(index.ReserveLocked(1), std::bad_alloc);
  EXPECT_EQ(index.SizeLocked(), 192u);
  EXPECT_EQ(index.CapacityLocked(), 256u);
  EpochGuard g;
  for (int k = 0; k < 192; ++k) {
    EXPECT_EQ(index.Find(Mix(k), [&](const Tiny& t) { return t.key == k; }),
              items[k].get())
        << k;
  }
}

// epoch_index.h: tombstones are reused and cleared by a rebuild, and
// ClearLocked empties the index at once.
TEST(EpochIndex, ChurnKeepsTheTableSmallAndClearEmptiesIt) {
  EpochIndex<Item> index;
  std::vector<std::unique_ptr<Item>> items;
  for (int round = 0; round < 100; ++round) {
    for (int k = 0; k < 10; ++k) {
      items.push_back(std::make_unique<Item>(Mix(round * 10 + k), k));
      index.ReserveLocked(1);
      index.InsertLocked(items.back().get());
    }
    for (int k = 0; k < 10; ++k) {
      index.EraseLocked(items[items.size() - 10 + k].get());
    }
  }
  EXPECT_EQ(index.SizeLocked(), 0u);
  EXPECT_LE(index.CapacityLocked(), 64u);
  for (int k = 0; k < 5; ++k) {
    index.ReserveLocked(1);
    index.InsertLocked(items[k].get());
  }
  int seen = 0;
  index.ClearLocked([&](Item*) { ++seen; });
  EXPECT_EQ(seen, 5);
  EXPECT_EQ(Find(index, 0, items[0]->hash), nullptr);
}

// epoch_index.h: readers probing while a writer inserts, erases and grows
// the table always find the keys that stay, never a freed table.
TEST(EpochIndex, LockFreeReadersDuringGrowthAndChurn) {
  EpochIndex<Item> index;
  constexpr int kStable = 64;
  std::vector<std::unique_ptr<Item>> stable;
  for (int k = 0; k < kStable; ++k) {
    stable.push_back(std::make_unique<Item>(Mix(k), k));
    index.ReserveLocked(1);
    index.InsertLocked(stable.back().get());
  }
  std::atomic<bool> stop{false};
  std::atomic<int> misses{0};
  std::jthread reader([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      for (int k = 0; k < kStable; ++k) {
        if (Find(index, k, Mix(k)) == nullptr) misses.fetch_add(1);
      }
    }
  });
  std::vector<std::unique_ptr<Item>> churn;
  std::vector<std::unique_ptr<Item>> erased;  // kept alive: not retired here
  for (int i = 0; i < 20000; ++i) {
    churn.push_back(std::make_unique<Item>(Mix(1000 + i), 1000 + i));
    index.ReserveLocked(1);
    index.InsertLocked(churn.back().get());
    if (churn.size() > 500) {
      index.EraseLocked(churn.front().get());
      erased.push_back(std::move(churn.front()));
      churn.erase(churn.begin());
    }
    if (i % 256 == 0) {
      index.retired_tables().Collect(Epoch::TryAdvance());
      index.retired_tables().TakeFree().Free();
    }
  }
  stop.store(true);
  reader.join();
  EXPECT_EQ(misses.load(), 0);
}

// --- TimerWheel --------------------------------------------------------------

struct Timed : WheelNode {
  int id = 0;
};

std::vector<int> Advance(TimerWheel& w, int64_t now) {
  std::vector<int> due;
  w.Advance(now, [&](WheelNode* n) { due.push_back(static_cast<Timed*>(n)->id); });
  std::sort(due.begin(), due.end());
  return due;
}

// timer_wheel.h: Advance(now) hands over exactly the nodes due by `now`, at
// every level, whatever the step.
TEST(TimerWheel, AdvanceIsExactAtEveryScale) {
  const int64_t t0 = int64_t{1} << 40;
  std::mt19937_64 rng(7);
  // Deadlines from a nanosecond to a year out.
  std::vector<Timed> nodes(2000);
  std::multimap<int64_t, int> expected;
  TimerWheel w(t0);
  for (int i = 0; i < static_cast<int>(nodes.size()); ++i) {
    const int shift = static_cast<int>(rng() % 55);
    const int64_t d = t0 + 1 + static_cast<int64_t>(rng() % (uint64_t{1} << shift));
    nodes[i].id = i;
    w.Schedule(&nodes[i], d);
    expected.emplace(d, i);
  }
  EXPECT_EQ(w.size(), nodes.size());
  int64_t now = t0;
  while (!expected.empty()) {
    // Steps of every size, some landing exactly on a deadline.
    const int shift = static_cast<int>(rng() % 56);
    now += static_cast<int64_t>(rng() % (uint64_t{1} << shift)) + 1;
    if (rng() % 4 == 0) now = expected.begin()->first;
    std::vector<int> want;
    while (!expected.empty() && expected.begin()->first <= now) {
      want.push_back(expected.begin()->second);
      expected.erase(expected.begin());
    }
    std::sort(want.begin(), want.end());
    ASSERT_EQ(Advance(w, now), want) << "now " << now;
    ASSERT_EQ(w.size(), expected.size());
  }
}

// timer_wheel.h: a deadline at or before time() is due at the next
// Advance(), even one that does not move time.
TEST(TimerWheel, PastDeadlinesAreDueAtTheNextAdvance) {
  TimerWheel w(1000);
  Timed a, b;
  a.id = 1;
  b.id = 2;
  w.Schedule(&a, 1000);
  w.Schedule(&b, 10);
  EXPECT_EQ(Advance(w, 1000), (std::vector<int>{1, 2}));
  EXPECT_EQ(w.size(), 0u);
}

// timer_wheel.h: Unschedule and rescheduling (also from inside `due`).
TEST(TimerWheel, UnscheduleAndRescheduleFromDue) {
  TimerWheel w(0);
  Timed a, b, c;
  a.id = 1;
  b.id = 2;
  c.id = 3;
  w.Schedule(&a, 100);
  w.Schedule(&b, 100);
  w.Schedule(&c, int64_t{1} << 35);
  w.Unschedule(&b);
  EXPECT_FALSE(TimerWheel::Scheduled(&b));
  w.Schedule(&a, 200);  // moved later
  EXPECT_EQ(Advance(w, 150), std::vector<int>{});
  std::vector<int> seen;
  w.Advance(300, [&](WheelNode* n) {
    seen.push_back(static_cast<Timed*>(n)->id);
    w.Unschedule(&c);             // another node, elsewhere
    w.Schedule(n, int64_t{1} << 30);  // this one, later
  });
  EXPECT_EQ(seen, std::vector<int>{1});
  EXPECT_EQ(w.size(), 1u);
  EXPECT_EQ(Advance(w, int64_t{1} << 40), std::vector<int>{1});
}

// timer_wheel.h: deadlines past the last level wait in the overflow list.
TEST(TimerWheel, FarDeadlines) {
  TimerWheel w(0);
  Timed a;
  a.id = 9;
  const int64_t far = std::numeric_limits<int64_t>::max() - 1;
  w.Schedule(&a, far);
  EXPECT_EQ(Advance(w, int64_t{1} << 62), std::vector<int>{});
  EXPECT_EQ(Advance(w, far), std::vector<int>{9});
}

// timer_wheel.h: nodes whose owner keeps their deadlines (WheelLink) are
// asked for it when their bucket comes due; a deadline moved later without
// rescheduling is honoured exactly, at every level.
TEST(TimerWheel, DeadlinesKeptByTheOwner) {
  struct Owned : WheelLink {
    int64_t deadline = 0;  // the owner's, not the wheel's
    int id = 0;
  };
  const int64_t t0 = int64_t{1} << 40;
  std::mt19937_64 rng(11);
  std::vector<Owned> nodes(1000);
  TimerWheel w(t0);
  for (int i = 0; i < static_cast<int>(nodes.size()); ++i) {
    const int shift = static_cast<int>(rng() % 45);
    nodes[i].id = i;
    nodes[i].deadline = t0 + 1 + static_cast<int64_t>(rng() % (uint64_t{1} << shift));
    w.Schedule(&nodes[i], nodes[i].deadline);
    // Half of them move later, unknown to the wheel.
    if (i % 2 == 0) nodes[i].deadline += static_cast<int64_t>(rng() % (uint64_t{1} << shift)) + 1;
  }
  std::multimap<int64_t, int> expected;
  for (const Owned& n : nodes) expected.emplace(n.deadline, n.id);
  int64_t now = t0;
  while (!expected.empty()) {
    const int shift = static_cast<int>(rng() % 48);
    now += static_cast<int64_t>(rng() % (uint64_t{1} << shift)) + 1;
    if (rng() % 4 == 0) now = expected.begin()->first;
    std::vector<int> want;
    while (!expected.empty() && expected.begin()->first <= now) {
      want.push_back(expected.begin()->second);
      expected.erase(expected.begin());
    }
    std::vector<int> got;
    w.Advance(
        now, [](const WheelLink* n) { return static_cast<const Owned*>(n)->deadline; },
        [&](WheelLink* n) { got.push_back(static_cast<Owned*>(n)->id); });
    std::sort(want.begin(), want.end());
    std::sort(got.begin(), got.end());
    ASSERT_EQ(got, want) << "now " << now;
    ASSERT_EQ(w.size(), expected.size());
  }
}

// --- Striped counters and the read buffer ------------------------------------

// striped.h: counts are exact whatever stripes the adds land on.
TEST(StripedCounters, SumsEveryStripe) {
  StripedCounters<3> c(4);
  EXPECT_EQ(c.Add(0, 1), 0u);
  EXPECT_EQ(c.Add(0, 1), 1u);
  c.Add(5, 1, 10);  // masked onto stripe 1
  c.Add(2, 2);
  EXPECT_EQ(c.Sum(0), 0u);
  EXPECT_EQ(c.Sum(1), 12u);
  EXPECT_EQ(c.Sum(2), 1u);
}

// striped.h: the buffer keeps the last kSlots records per stripe, reports
// a full ring, and a drain empties it.
TEST(ReadBuffer, LossyRingPerStripe) {
  ReadBuffer b(2);
  std::vector<uintptr_t> got;
  for (uint64_t seq = 0; seq < ReadBuffer::kSlots + 3; ++seq) {
    const bool full = b.Record(0, seq, 8 * (seq + 1));
    EXPECT_EQ(full, seq % ReadBuffer::kSlots == ReadBuffer::kSlots - 1);
  }
  b.Record(1, 0, 4);
  b.Drain([&](uintptr_t v) { got.push_back(v); });
  EXPECT_EQ(got.size(), ReadBuffer::kSlots + 1);  // 3 overwritten, +1
  EXPECT_NE(std::find(got.begin(), got.end(), uintptr_t{4}), got.end());
  EXPECT_EQ(std::find(got.begin(), got.end(), uintptr_t{8}), got.end());
  got.clear();
  b.Drain([&](uintptr_t v) { got.push_back(v); });
  EXPECT_TRUE(got.empty());
}

}  // namespace
}  // namespace herd::internal
