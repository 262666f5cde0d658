// Copyright 2026 The herd Authors.
//
// Tests of herd/internal/epoch.h: the epoch advances only past readers
// that have left, retired objects are freed only two epochs on, critical
// sections nest, and a reader that stays inside holds reclamation back.

#include "herd/internal/epoch.h"

#include <atomic>
#include <cstdint>
#include <future>
#include <latch>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace herd::internal {
namespace {

struct Counted : Retired {
  explicit Counted(std::atomic<int>* f) : freed(f) {}
  std::atomic<int>* freed;
};

void FreeCounted(Retired* r) noexcept {
  Counted* c = static_cast<Counted*>(r);
  c->freed->fetch_add(1);
  delete c;
}

// epoch.h: TryAdvance moves the epoch by one when no reader is inside.
TEST(Epoch, AdvancesWhenNoReaderIsInside) {
  const uint64_t e = Epoch::Current();
  EXPECT_GE(Epoch::TryAdvance(), e + 1);
}

// epoch.h: "E moves from e to e+1 only when every active reader announced
// e": a reader that entered at e lets E reach e+1, not e+2.
TEST(Epoch, ReaderInsideHoldsTheEpochWithinOne) {
  std::latch entered(1);
  std::promise<void> leave;
  std::jthread reader([&] {
    Epoch::Enter();
    entered.count_down();
    leave.get_future().wait();
    Epoch::Exit();
  });
  entered.wait();
  const uint64_t start = Epoch::Current();
  for (int i = 0; i < 10; ++i) Epoch::TryAdvance();
  EXPECT_LE(Epoch::Current(), start + 1);
  leave.set_value();
  reader.join();
  const uint64_t after = Epoch::Current();
  Epoch::TryAdvance();
  Epoch::TryAdvance();
  EXPECT_EQ(Epoch::Current(), after + 2);
}

// epoch.h: critical sections nest; only the outermost Exit leaves.
TEST(Epoch, NestedSectionsLeaveAtTheOutermostExit) {
  std::latch inner_left(1);
  std::promise<void> leave;
  std::jthread reader([&] {
    Epoch::Enter();
    Epoch::Enter();
    EXPECT_TRUE(Epoch::Inside());
    Epoch::Exit();
    EXPECT_TRUE(Epoch::Inside());
    inner_left.count_down();
    leave.get_future().wait();
    Epoch::Exit();
    EXPECT_FALSE(Epoch::Inside());
  });
  inner_left.wait();
  const uint64_t start = Epoch::Current();
  for (int i = 0; i < 5; ++i) Epoch::TryAdvance();
  EXPECT_LE(Epoch::Current(), start + 1);  // still held by the outer one
  leave.set_value();
}

// epoch.h: RetireList frees an object once the epoch is two past the one
// it was retired at, and not before.
TEST(RetireList, FreesTwoEpochsLater) {
  std::atomic<int> freed{0};
  RetireList list(&FreeCounted);
  list.Retire(new Counted(&freed));
  const uint64_t r = Epoch::Current();
  list.Collect(r);
  list.Collect(r + 1);
  list.TakeFree().Free();
  EXPECT_EQ(freed.load(), 0);
  EXPECT_EQ(list.pending(), 1u);
  list.Collect(r + 2);
  EXPECT_EQ(list.pending(), 0u);
  EXPECT_EQ(freed.load(), 0);  // on the free list, not yet freed
  RetireList::Chain chain = list.TakeFree();
  EXPECT_FALSE(chain.empty());
  chain.Free();
  EXPECT_EQ(freed.load(), 1);
}

// epoch.h: a reader inside a critical section keeps what it may hold: an
// object retired while it is inside is not collectable however often the
// reclaimer tries.
TEST(RetireList, AReaderInsideKeepsTheObject) {
  std::atomic<int> freed{0};
  RetireList list(&FreeCounted);
  std::latch entered(1);
  std::promise<void> leave;
  std::jthread reader([&] {
    Epoch::Enter();
    entered.count_down();
    leave.get_future().wait();
    Epoch::Exit();
  });
  entered.wait();
  list.Retire(new Counted(&freed));
  for (int i = 0; i < 10; ++i) list.Collect(Epoch::TryAdvance());
  list.TakeFree().Free();
  EXPECT_EQ(freed.load(), 0);
  leave.set_value();
  reader.join();
  for (int i = 0; i < 3; ++i) list.Collect(Epoch::TryAdvance());
  list.TakeFree().Free();
  EXPECT_EQ(freed.load(), 1);
}

// epoch.h: the destructor frees what is left.
TEST(RetireList, DestructorFreesEverything) {
  std::atomic<int> freed{0};
  {
    RetireList list(&FreeCounted);
    for (int i = 0; i < 5; ++i) list.Retire(new Counted(&freed));
  }
  EXPECT_EQ(freed.load(), 5);
}

// epoch.h: Chain::Append joins two chains of one kind.
TEST(RetireList, ChainsAppend) {
  std::atomic<int> freed{0};
  RetireList a(&FreeCounted);
  RetireList b(&FreeCounted);
  a.Retire(new Counted(&freed));
  b.Retire(new Counted(&freed));
  b.Retire(new Counted(&freed));
  RetireList::Chain c = a.TakeAll();
  c.Append(b.TakeAll());
  EXPECT_EQ(freed.load(), 0);
  c.Free();
  EXPECT_EQ(freed.load(), 3);
}

// epoch.h: ThreadIndex is distinct for threads alive at once.
TEST(Epoch, ThreadIndexIsDistinctForLiveThreads) {
  constexpr int kThreads = 4;
  std::vector<size_t> index(kThreads);
  std::latch all(kThreads);
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        index[i] = Epoch::ThreadIndex();
        all.arrive_and_wait();  // all alive at once
      });
    }
  }
  for (int i = 0; i < kThreads; ++i) {
    for (int j = i + 1; j < kThreads; ++j) EXPECT_NE(index[i], index[j]);
  }
}

// A reclaimer and readers that dereference what they load: under
// ThreadSanitizer and AddressSanitizer, a premature free is reported.
TEST(Epoch, ReadersNeverSeeAFreedObject) {
  struct Node : Retired {
    explicit Node(int v) : value(v) {}
    int value;
  };
  std::atomic<Node*> current{new Node(0)};
  std::atomic<bool> stop{false};
  std::atomic<int64_t> sum{0};
  RetireList list([](Retired* r) noexcept { delete static_cast<Node*>(r); });
  constexpr int kWrites = 20000;
  {
    std::vector<std::jthread> readers;
    for (int t = 0; t < 2; ++t) {
      readers.emplace_back([&] {
        int64_t local = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          Epoch::Enter();
          const Node* n = current.load(std::memory_order_seq_cst);
          local += n->value;
          Epoch::Exit();
        }
        sum.fetch_add(local);
      });
    }
    for (int i = 1; i <= kWrites; ++i) {
      Node* old = current.exchange(new Node(i), std::memory_order_seq_cst);
      list.Retire(old);
      if (i % 64 == 0) {
        list.Collect(Epoch::TryAdvance());
        list.TakeFree().Free();
      }
    }
    stop.store(true);
  }
  list.Retire(current.load());
  EXPECT_GE(sum.load(), 0);
}

}  // namespace
}  // namespace herd::internal
