// Copyright 2026 The herd Authors.
//
// herd/internal/epoch_index.h: a hash index that readers probe with no lock
// while one writer at a time (the owner's lock) changes it.
//
//   herd::internal::EpochIndex<Entry>  open addressing, linear probing, of
//                                      atomic pointers to entries
//
// Slots hold 0 (empty), 1 (a tombstone: an entry was erased here) or an
// Entry*, tagged in its top 16 bits with 16 bits of the entry's hash, so a
// probe skips most other keys' slots without touching their entries. An
// Entry has a `uint64_t hash` member, set before it is inserted and never
// changed. The table grows (or is rebuilt without tombstones) into a new
// array, published with one pointer store; the old array is retired to an
// epoch RetireList, so readers still probing it finish safely.
//
// Readers call Find() inside an Epoch critical section (herd/internal/
// epoch.h); the entry it returns stays allocated until they leave it (the
// owner retires erased entries the same way). The equality callback runs in
// the reader, with no lock held. Writers never call it: under the lock they
// compare hashes and pointers only, so no user code (a Key's equality) runs
// under the owner's lock. See FindForWrite().
//
// Memory ordering: every slot and table-pointer store is seq_cst, and so is
// every load (a plain load on x86-64): epoch reclamation needs a writer's
// unpublishing store and a reader's announcement to be ordered (epoch.h).
// A reader that finds an entry sees everything the writer did before it
// inserted it.
//
// Thread safety: Find, FindForWrite and size may run concurrently with one
// writer. Every *Locked member requires the owner's lock.

#ifndef HERD_INTERNAL_EPOCH_INDEX_H_
#define HERD_INTERNAL_EPOCH_INDEX_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <vector>

#include "herd/internal/epoch.h"

namespace herd::internal {

template <class Entry>
class EpochIndex {
 public:
  // What FindForWrite saw: the entry of the key, or its absence together
  // with the entries of the same full hash whose keys differ (a 64-bit
  // collision: all but never more than one).
  struct Probe {
    Entry* found = nullptr;
    static constexpr int kInline = 4;
    const Entry* rejected[kInline] = {};
    int rejected_count = 0;
    std::vector<const Entry*> more;  // past kInline (a degenerate Hash)

    bool Rejected(const Entry* e) const {
      for (int j = 0; j < rejected_count; ++j) {
        if (rejected[j] == e) return true;
      }
      for (const Entry* r : more) {
        if (r == e) return true;
      }
      return false;
    }
  };

  EpochIndex() : tables_(&FreeTable) {}
  EpochIndex(const EpochIndex&) = delete;
  EpochIndex& operator=(const EpochIndex&) = delete;
  ~EpochIndex() {
    Table* t = table_.load(std::memory_order_relaxed);
    if (t != nullptr) FreeTable(t);
  }

  // The entry whose hash is `hash` and for which `eq(entry)` holds, or
  // nullptr. REQUIRES: inside an Epoch critical section.
  template <class Eq>
  Entry* Find(uint64_t hash, Eq&& eq) const {
    const Table* t = table_.load(std::memory_order_seq_cst);
    if (t == nullptr) return nullptr;
    const uintptr_t tag = Tag(hash);
    for (size_t i = hash & t->mask;; i = (i + 1) & t->mask) {
      const uintptr_t s = t->slots()[i].load(std::memory_order_seq_cst);
      if (s == kEmpty) return nullptr;
      if ((s & kTagMask) != tag || s == kTombstone) continue;
      Entry* e = reinterpret_cast<Entry*>(s & ~kTagMask);
      if (e->hash == hash && eq(*e)) return e;
    }
  }

  // Find(), recording for a writer what a later ConfirmLocked() needs.
  template <class Eq>
  Probe FindForWrite(uint64_t hash, Eq&& eq) const {
    Probe p;
    const Table* t = table_.load(std::memory_order_seq_cst);
    if (t == nullptr) return p;
    const uintptr_t tag = Tag(hash);
    for (size_t i = hash & t->mask;; i = (i + 1) & t->mask) {
      const uintptr_t s = t->slots()[i].load(std::memory_order_seq_cst);
      if (s == kEmpty) return p;
      if ((s & kTagMask) != tag || s == kTombstone) continue;
      Entry* e = reinterpret_cast<Entry*>(s & ~kTagMask);
      if (e->hash != hash) continue;
      if (eq(*e)) {
        p.found = e;
        return p;
      }
      if (p.rejected_count < Probe::kInline) {
        p.rejected[p.rejected_count++] = e;
      } else {
        p.more.push_back(e);  // may throw: nothing is locked yet
      }
    }
  }

  // Under the lock: true iff a FindForWrite() that found nothing still
  // holds, i.e. no entry of hash `hash` is in the index other than the ones
  // it rejected. (A found entry is confirmed by the caller's own record of
  // whether it was erased.) Compares hashes and pointers only.
  bool AbsenceHoldsLocked(uint64_t hash, const Probe& p) const {
    const Table* t = table_.load(std::memory_order_relaxed);
    if (t == nullptr) return true;
    for (size_t i = hash & t->mask;; i = (i + 1) & t->mask) {
      const uintptr_t s = t->slots()[i].load(std::memory_order_relaxed);
      if (s == kEmpty) return true;
      if (s == kTombstone) continue;
      const Entry* e = reinterpret_cast<const Entry*>(s & ~kTagMask);
      if (e->hash != hash) continue;
      if (!p.Rejected(e)) return false;
    }
  }

  // Makes room for `extra` more entries, growing (or rebuilding without
  // tombstones) into a new table and retiring the old one. Nothing a reader
  // can tell changes. Throws: std::bad_alloc, with nothing changed.
  void ReserveLocked(size_t extra) {
    Table* t = table_.load(std::memory_order_relaxed);
    const size_t cap = t == nullptr ? 0 : t->mask + 1;
    const size_t used = size_ + tombstones_ + extra;
    if (t != nullptr && used * 4 <= cap * 3) return;  // load <= 3/4
    size_t new_cap = kMinCapacity;
    while ((size_ + extra) * 2 > new_cap) new_cap *= 2;  // load <= 1/2
    Table* fresh = NewTable(new_cap);                         // may throw
    if (t != nullptr) {
      for (size_t i = 0; i <= t->mask; ++i) {
        const uintptr_t s = t->slots()[i].load(std::memory_order_relaxed);
        if (s != kEmpty && s != kTombstone) Place(fresh, s);
      }
    }
    table_.store(fresh, std::memory_order_seq_cst);
    tombstones_ = 0;
    if (t != nullptr) tables_.Retire(t);
  }

  // Inserts `e`. REQUIRES: the lock; ReserveLocked(n) was called with n at
  // least the number of inserts since; no entry of e's key is in the index.
  void InsertLocked(Entry* e) noexcept {
    Table* t = table_.load(std::memory_order_relaxed);
    const uintptr_t p = reinterpret_cast<uintptr_t>(e);
    if ((p & kTagMask) != 0) std::terminate();  // a pointer above 2^48
    const uint64_t hash = e->hash;
    for (size_t i = hash & t->mask;; i = (i + 1) & t->mask) {
      const uintptr_t s = t->slots()[i].load(std::memory_order_relaxed);
      if (s == kEmpty || s == kTombstone) {
        if (s == kTombstone) --tombstones_;
        t->slots()[i].store(p | Tag(hash), std::memory_order_seq_cst);
        ++size_;
        return;
      }
    }
  }

  // Replaces the entry `old` with `e`, of the same key and hash, in place.
  void ReplaceLocked(Entry* old, Entry* e) noexcept {
    std::atomic<uintptr_t>* slot = SlotOf(old);
    slot->store(reinterpret_cast<uintptr_t>(e) | Tag(e->hash),
                std::memory_order_seq_cst);
  }

  // Erases `e`. REQUIRES: the lock; `e` is in the index.
  void EraseLocked(Entry* e) noexcept {
    SlotOf(e)->store(kTombstone, std::memory_order_seq_cst);
    --size_;
    ++tombstones_;
  }

  // Calls f(entry) for every entry. f must not change the index.
  template <class F>
  void ForEachLocked(F&& f) const {
    const Table* t = table_.load(std::memory_order_relaxed);
    if (t == nullptr) return;
    for (size_t i = 0; i <= t->mask; ++i) {
      const uintptr_t s = t->slots()[i].load(std::memory_order_relaxed);
      if (s != kEmpty && s != kTombstone) {
        f(reinterpret_cast<Entry*>(s & ~kTagMask));
      }
    }
  }

  // Calls f(entry) for every entry, then empties the index at once (the
  // table is retired). f must not change the index.
  template <class F>
  void ClearLocked(F&& f) {
    Table* t = table_.load(std::memory_order_relaxed);
    if (t == nullptr) return;
    ForEachLocked(f);
    table_.store(nullptr, std::memory_order_seq_cst);
    tables_.Retire(t);
    size_ = 0;
    tombstones_ = 0;
  }

  // Entries in the index. Exact under the lock.
  size_t SizeLocked() const noexcept { return size_; }

  // Slots of the current table (0 before the first insert).
  size_t CapacityLocked() const noexcept {
    const Table* t = table_.load(std::memory_order_relaxed);
    return t == nullptr ? 0 : t->mask + 1;
  }

  // Retired tables, for the owner's reclamation pass (under the lock).
  RetireList& retired_tables() noexcept { return tables_; }

  static constexpr size_t kMinCapacity = 8;

  // Bytes a table of `capacity` slots takes.
  static constexpr size_t TableBytes(size_t capacity) {
    return sizeof(Table) + capacity * sizeof(std::atomic<uintptr_t>);
  }

 private:
  static constexpr uintptr_t kEmpty = 0;
  static constexpr uintptr_t kTombstone = 1;
  static constexpr int kTagShift = 48;
  static constexpr uintptr_t kTagMask = ~uintptr_t{0} << kTagShift;

  static uintptr_t Tag(uint64_t hash) noexcept {
    // Never zero, so that a tombstone (1) never matches a tag.
    return (static_cast<uintptr_t>(hash >> kTagShift) | 1) << kTagShift;
  }

  struct Table : Retired {
    size_t mask;
    std::atomic<uintptr_t>* slots() noexcept {
      return reinterpret_cast<std::atomic<uintptr_t>*>(this + 1);
    }
    const std::atomic<uintptr_t>* slots() const noexcept {
      return reinterpret_cast<const std::atomic<uintptr_t>*>(this + 1);
    }
  };
  static_assert(sizeof(Table) % alignof(std::atomic<uintptr_t>) == 0);

  static Table* NewTable(size_t capacity) {
    void* raw = ::operator new(TableBytes(capacity));
    Table* t = new (raw) Table();
    t->mask = capacity - 1;
    std::atomic<uintptr_t>* s = t->slots();
    for (size_t i = 0; i < capacity; ++i) new (&s[i]) std::atomic<uintptr_t>(0);
    return t;
  }

  static void FreeTable(Retired* r) noexcept {
    Table* t = static_cast<Table*>(r);
    t->~Table();
    ::operator delete(static_cast<void*>(t));
  }

  static void Place(Table* t, uintptr_t s) noexcept {
    const Entry* e = reinterpret_cast<const Entry*>(s & ~kTagMask);
    for (size_t i = e->hash & t->mask;; i = (i + 1) & t->mask) {
      if (t->slots()[i].load(std::memory_order_relaxed) == kEmpty) {
        t->slots()[i].store(s, std::memory_order_relaxed);
        return;
      }
    }
  }

  std::atomic<uintptr_t>* SlotOf(const Entry* e) noexcept {
    Table* t = table_.load(std::memory_order_relaxed);
    for (size_t i = e->hash & t->mask;; i = (i + 1) & t->mask) {
      const uintptr_t s = t->slots()[i].load(std::memory_order_relaxed);
      if (s != kTombstone && (s & ~kTagMask) == reinterpret_cast<uintptr_t>(e)) {
        return &t->slots()[i];
      }
    }
  }

  std::atomic<Table*> table_{nullptr};
  size_t size_ = 0;        // under the lock
  size_t tombstones_ = 0;  // under the lock
  RetireList tables_;      // under the lock
};

}  // namespace herd::internal

#endif  // HERD_INTERNAL_EPOCH_INDEX_H_
