// Copyright 2026 The herd Authors.
//
// herd/internal/epoch.h: epoch-based reclamation (Fraser, "Practical
// lock-freedom", 2004), so that readers may follow pointers that writers
// unpublish concurrently, and the memory is freed only once no reader can
// still hold it.
//
//   herd::internal::Epoch        process-wide: Enter()/Exit() a read-side
//                                critical section, TryAdvance() the epoch
//   herd::internal::EpochGuard   RAII Enter/Exit
//   herd::internal::Retired      the intrusive header of a retired object
//   herd::internal::RetireList   objects unpublished at some epoch, freed
//                                once the epoch is two past it
//
// The protocol. A global epoch E counts up. A reader announces the epoch it
// read in its thread's record when it enters (an atomic exchange, with the
// record's "active" bit) and clears the bit when it leaves. A writer first
// unpublishes an object (a seq_cst store of the pointer that replaces it),
// then retires it, stamped with E as it reads it then. E moves from e to e+1
// only when every active reader announced e. So an object retired at r is
// unreachable to every reader that entered at r+1 or later, and once E has
// reached r+2 every reader that entered at r or earlier has left: it may be
// freed.
//
// Why the entry is an atomic read-modify-write: a reclaimer that sees a
// reader's record (acquire) must also see that reader's earlier critical
// sections end. The exit is a release store; an exchange on entry continues
// that store's release sequence, so a reclaimer that reads the newer
// announcement still synchronizes with the exit before it. ThreadSanitizer
// sees that happens-before edge, and nothing else is needed.
//
// Critical sections nest (a count per thread): only the outermost Enter and
// Exit touch the record, so code inside one (a Value's copy constructor) may
// call back into a component that enters again.
//
// Thread safety: Enter/Exit concern the calling thread; TryAdvance and
// Current may be called from any thread. A RetireList is not synchronized:
// its owner serializes calls (herd's caches keep one per shard, under the
// shard's lock).
//
// Cost: Enter/Exit of the outermost section are a thread-local load, a load
// of E, one exchange and one store, all on the thread's own cache line.
// A thread's first Enter registers its record (a mutex and, for a new
// thread, an allocation); records are reused after their thread exits and
// never freed.

#ifndef HERD_INTERNAL_EPOCH_H_
#define HERD_INTERNAL_EPOCH_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"

namespace herd::internal {

// One per thread that ever entered a critical section. Never freed.
struct alignas(64) EpochRecord {
  // (announced epoch << 1) | active. Written by the owner only.
  std::atomic<uint64_t> state{0};
  uint32_t nesting = 0;   // owner only
  uint32_t index = 0;     // distinct per record, from 0: a stripe hint
  std::atomic<bool> in_use{false};
  EpochRecord* next = nullptr;  // registry list; set before publication
};

namespace epoch_detail {
// Defined in lib/epoch.cc.
extern std::atomic<uint64_t> global_epoch;  // alignas(64) there
EpochRecord* RegisterThread();  // throws std::bad_alloc
inline constinit thread_local EpochRecord* this_thread_record = nullptr;
}  // namespace epoch_detail

class Epoch {
 public:
  // Enters a read-side critical section (nested: only the outermost counts).
  // Returns ThreadIndex().
  // Throws: std::bad_alloc on a thread's first call if its record cannot be
  // allocated (nothing is entered then).
  ABSL_ATTRIBUTE_ALWAYS_INLINE static size_t Enter() {
    EpochRecord* r = epoch_detail::this_thread_record;
    if (r == nullptr) r = epoch_detail::RegisterThread();
    if (r->nesting++ == 0) {
      const uint64_t e =
          epoch_detail::global_epoch.load(std::memory_order_seq_cst);
      r->state.exchange((e << 1) | 1, std::memory_order_seq_cst);
    }
    return r->index;
  }

  // Leaves the critical section entered last. REQUIRES: inside one.
  ABSL_ATTRIBUTE_ALWAYS_INLINE static void Exit() noexcept {
    EpochRecord* r = epoch_detail::this_thread_record;
    if (--r->nesting == 0) r->state.store(0, std::memory_order_release);
  }

  // True iff the calling thread is inside a critical section.
  static bool Inside() noexcept {
    const EpochRecord* r = epoch_detail::this_thread_record;
    return r != nullptr && r->nesting > 0;
  }

  // The global epoch.
  static uint64_t Current() noexcept {
    return epoch_detail::global_epoch.load(std::memory_order_seq_cst);
  }

  // Advances the global epoch by one iff every thread inside a critical
  // section announced the current one. Returns the global epoch afterwards.
  // Costs one load per registered thread.
  static uint64_t TryAdvance() noexcept;

  // A small integer that no two live threads share, for picking a stripe:
  // a thread registering takes the lowest one free, so n threads alive at
  // once hold (about) 0..n-1. Registers the thread if needed.
  // Throws: std::bad_alloc as Enter().
  static size_t ThreadIndex() {
    EpochRecord* r = epoch_detail::this_thread_record;
    if (r == nullptr) r = epoch_detail::RegisterThread();
    return r->index;
  }

  // Number of records ever registered (live threads and reusable ones).
  static size_t Records() noexcept;
};

class EpochGuard {
 public:
  ABSL_ATTRIBUTE_ALWAYS_INLINE EpochGuard() : thread_index_(Epoch::Enter()) {}
  ABSL_ATTRIBUTE_ALWAYS_INLINE ~EpochGuard() { Epoch::Exit(); }
  EpochGuard(const EpochGuard&) = delete;
  EpochGuard& operator=(const EpochGuard&) = delete;

  size_t thread_index() const noexcept { return thread_index_; }

 private:
  const size_t thread_index_;
};

// The header of an object that can be retired: one link.
struct Retired {
  Retired* retired_next = nullptr;
};

// Objects of one kind retired by one owner, in three lists by epoch modulo
// 3 (an object retired at r is free to go once the global epoch reaches
// r + 2, so at most three epochs are ever pending). Not synchronized; see
// above.
class RetireList {
 public:
  using FreeFn = void (*)(Retired*) noexcept;

  explicit RetireList(FreeFn free_fn) : free_fn_(free_fn) {}
  RetireList(const RetireList&) = delete;
  RetireList& operator=(const RetireList&) = delete;
  // Frees everything still held. REQUIRES: no reader can reach any of it.
  ~RetireList() { TakeAll(); }

  // Retires `object`, already unpublished, at the current epoch. Objects
  // of an epoch old enough are moved to the free list on the way.
  void Retire(Retired* object) noexcept {
    const uint64_t e = Epoch::Current();
    Bucket& b = buckets_[e % 3];
    if (b.head != nullptr && b.epoch != e) Release(b);  // b.epoch <= e - 3
    b.epoch = e;
    object->retired_next = b.head;
    b.head = object;
    ++pending_;
  }

  // Moves every object whose epoch is at least two behind `epoch` (the
  // value TryAdvance returned) to the free list.
  void Collect(uint64_t epoch) noexcept {
    for (Bucket& b : buckets_) {
      if (b.head != nullptr && b.epoch + 2 <= epoch) Release(b);
    }
  }

  // A chain of objects no reader can reach any more, detached from the
  // list, for the caller to free (Free()) once it holds no lock.
  class Chain {
   public:
    Chain() = default;
    Chain(Retired* head, FreeFn free_fn) : head_(head), free_fn_(free_fn) {}
    Chain(Chain&& other) noexcept
        : head_(other.head_), free_fn_(other.free_fn_) {
      other.head_ = nullptr;
    }
    Chain& operator=(Chain&& other) noexcept {
      Free();
      head_ = other.head_;
      free_fn_ = other.free_fn_;
      other.head_ = nullptr;
      return *this;
    }
    ~Chain() { Free(); }

    // Appends `other`'s objects to this chain (of the same kind).
    void Append(Chain&& other) noexcept {
      if (other.head_ == nullptr) return;
      if (head_ == nullptr) {
        head_ = other.head_;
        free_fn_ = other.free_fn_;
      } else {
        Retired* tail = head_;
        while (tail->retired_next != nullptr) tail = tail->retired_next;
        tail->retired_next = other.head_;
      }
      other.head_ = nullptr;
    }

    void Free() noexcept {
      while (head_ != nullptr) {
        Retired* next = head_->retired_next;
        free_fn_(head_);
        head_ = next;
      }
    }
    bool empty() const noexcept { return head_ == nullptr; }

   private:
    Retired* head_ = nullptr;
    FreeFn free_fn_ = nullptr;
  };

  // Detaches the free list.
  Chain TakeFree() noexcept {
    Retired* chain = free_;
    free_ = nullptr;
    return Chain(chain, free_fn_);
  }

  // Detaches everything, pending or not. Only for an owner that knows no
  // reader can hold any of it (its destructor).
  Chain TakeAll() noexcept {
    for (Bucket& b : buckets_) {
      if (b.head != nullptr) Release(b);
    }
    return TakeFree();
  }

  // Objects retired and not yet moved to the free list.
  size_t pending() const noexcept { return pending_; }
  // True iff the free list holds something.
  bool has_free() const noexcept { return free_ != nullptr; }

 private:
  struct Bucket {
    Retired* head = nullptr;
    uint64_t epoch = 0;
  };

  void Release(Bucket& b) noexcept {
    Retired* tail = b.head;
    size_t n = 1;
    while (tail->retired_next != nullptr) {
      tail = tail->retired_next;
      ++n;
    }
    tail->retired_next = free_;
    free_ = b.head;
    b.head = nullptr;
    pending_ -= n;
  }

  const FreeFn free_fn_;
  Bucket buckets_[3];
  Retired* free_ = nullptr;
  size_t pending_ = 0;  // in buckets_, not yet in free_
};

}  // namespace herd::internal

#endif  // HERD_INTERNAL_EPOCH_H_
