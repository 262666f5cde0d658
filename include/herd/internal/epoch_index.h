// Copyright 2026 The herd Authors.
//
// herd/internal/epoch_index.h: a hash index that readers probe with no lock
// while one writer at a time (the owner's lock) changes it.
//
//   herd::internal::EpochIndex<Entry>  open addressing, linear probing, of
//                                      atomic pointers to entries
//
// Slots hold 0 (empty), 1 (a tombstone: an entry was erased here) or an
// Entry*, tagged in its top 16 bits with the top 16 bits of the entry's
// 64-bit hash, so a probe skips most other keys' slots without touching
// their entries. An Entry has an unsigned `hash` member, set before it is
// inserted and never changed: the whole hash (uint64_t), or only its low
// bits (a narrower type, to save the entry's bytes). The low bits pick the
// home slot; the tag and the kept bits together tell entries apart before
// the equality callback runs. The table grows (or is rebuilt without
// tombstones) into a new array, published with one pointer store; the old
// array is retired to an epoch RetireList, so readers still probing it
// finish safely.
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
#include <type_traits>
#include <utility>
#include <vector>

#include "herd/internal/epoch.h"

namespace herd::internal {

template <class Entry>
class EpochIndex {
 public:
  // What FindForWrite saw: the entry of the key, or its absence together
  // with the entries of the same tag and stored hash bits whose keys differ
  // (a collision of those 47 or more bits: all but never more than one).
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
    const StoredHash stored = Stored(hash);
    for (size_t i = Home(hash) & t->mask;; i = (i + 1) & t->mask) {
      const uintptr_t s = t->slots()[i].load(std::memory_order_seq_cst);
      if (s == kEmpty) return nullptr;
      if (!TagMatches(s, tag)) continue;  // a tombstone never does
      Entry* e = reinterpret_cast<Entry*>(s & ~kTagMask);
      if (e->hash == stored && eq(*e)) return e;
    }
  }

  // Find(), recording for a writer what a later ConfirmLocked() needs.
  template <class Eq>
  Probe FindForWrite(uint64_t hash, Eq&& eq) const {
    Probe p;
    const Table* t = table_.load(std::memory_order_seq_cst);
    if (t == nullptr) return p;
    const uintptr_t tag = Tag(hash);
    const StoredHash stored = Stored(hash);
    for (size_t i = Home(hash) & t->mask;; i = (i + 1) & t->mask) {
      const uintptr_t s = t->slots()[i].load(std::memory_order_seq_cst);
      if (s == kEmpty) return p;
      if (!TagMatches(s, tag)) continue;  // a tombstone never does
      Entry* e = reinterpret_cast<Entry*>(s & ~kTagMask);
      if (e->hash != stored) continue;
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
  // holds, i.e. no entry of hash `hash` (its stored bits) is in the index
  // other than the ones it rejected. (A found entry is confirmed by the
  // caller's own record of whether it was erased.) Compares hashes and
  // pointers only.
  bool AbsenceHoldsLocked(uint64_t hash, const Probe& p) const {
    const Table* t = table_.load(std::memory_order_relaxed);
    if (t == nullptr) return true;
    const uintptr_t tag = Tag(hash);
    const StoredHash stored = Stored(hash);
    for (size_t i = Home(hash) & t->mask;; i = (i + 1) & t->mask) {
      const uintptr_t s = t->slots()[i].load(std::memory_order_relaxed);
      if (s == kEmpty) return true;
      if (!TagMatches(s, tag)) continue;  // a tombstone never does
      const Entry* e = reinterpret_cast<const Entry*>(s & ~kTagMask);
      if (e->hash != stored) continue;
      if (!p.Rejected(e)) return false;
    }
  }

  // Makes room for `extra` more entries, growing (or rebuilding without
  // tombstones) into a new table and retiring the old one. Nothing a reader
  // can tell changes. Throws: std::bad_alloc, with nothing changed (also
  // when the table would need more slots than an Entry's stored hash bits
  // can address: 2^32 for a uint32_t).
  void ReserveLocked(size_t extra) {
    Table* t = table_.load(std::memory_order_relaxed);
    const size_t cap = t == nullptr ? 0 : t->mask + 1;
    const size_t used = size_ + tombstones_ + extra;
    if (t != nullptr && used * 4 <= cap * 3) return;  // load <= 3/4
    size_t new_cap = kMinCapacity;
    while ((size_ + extra) * 2 > new_cap) {  // load <= 1/2
      if (new_cap >= kMaxCapacity) throw std::bad_alloc();
      new_cap *= 2;
    }
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

  // Inserts `e`, whose 64-bit hash is `hash`. REQUIRES: the lock;
  // ReserveLocked(n) was called with n at least the number of inserts
  // since; no entry of e's key is in the index; e->hash is Stored(hash).
  void InsertLocked(Entry* e, uint64_t hash) noexcept {
    Table* t = table_.load(std::memory_order_relaxed);
    const uintptr_t p = reinterpret_cast<uintptr_t>(e);
    if ((p & kTagMask) != 0) std::terminate();  // a pointer above 2^48
    for (size_t i = Home(e->hash) & t->mask;; i = (i + 1) & t->mask) {
      const uintptr_t s = t->slots()[i].load(std::memory_order_relaxed);
      if (s == kEmpty || s == kTombstone) {
        if (s == kTombstone) --tombstones_;
        t->slots()[i].store(p | Tag(hash), std::memory_order_seq_cst);
        ++size_;
        return;
      }
    }
  }
  // As above, for an Entry that keeps its whole 64-bit hash.
  void InsertLocked(Entry* e) noexcept {
    static_assert(sizeof(StoredHash) == sizeof(uint64_t),
                  "an Entry that keeps part of its hash: pass the hash");
    InsertLocked(e, e->hash);
  }

  // Replaces the entry `old` with `e`, of the same key and hash, in place
  // (one store: a reader finds one or the other).
  void ReplaceLocked(Entry* old, Entry* e) noexcept {
    std::atomic<uintptr_t>* slot = SlotOf(old);
    const uintptr_t tag = slot->load(std::memory_order_relaxed) & kTagMask;
    slot->store(reinterpret_cast<uintptr_t>(e) | tag,
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

  using StoredHash =
      std::remove_cv_t<decltype(std::declval<const Entry&>().hash)>;
  static_assert(std::is_unsigned_v<StoredHash> &&
                sizeof(StoredHash) <= sizeof(uint64_t));
  static StoredHash Stored(uint64_t hash) noexcept {
    return static_cast<StoredHash>(hash);
  }
  // Where probes for an entry start, masked by the table: its hash's low
  // bits, the same whether taken from the whole hash (readers, who need
  // not narrow it) or from the stored bits (the writer's table moves), as
  // a mask never exceeds the stored bits (kMaxCapacity).
  static size_t Home(uint64_t hash) noexcept {
    return static_cast<size_t>(hash);
  }
  static constexpr size_t kMaxCapacity =
      sizeof(StoredHash) >= sizeof(size_t)
          ? (size_t{1} << (8 * sizeof(size_t) - 1))
          : (size_t{1} << (8 * sizeof(StoredHash)));

  static uintptr_t Tag(uint64_t hash) noexcept {
    // Never zero, so that a tombstone (1) never matches a tag.
    return (static_cast<uintptr_t>(hash >> kTagShift) | 1) << kTagShift;
  }

  // True iff slot value `s` holds an entry tagged `tag` (a Tag(), never
  // zero, so never an empty slot or a tombstone). One xor and one shift:
  // no mask constant to load on the hit path.
  static bool TagMatches(uintptr_t s, uintptr_t tag) noexcept {
    return ((s ^ tag) >> kTagShift) == 0;
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
    for (size_t i = Home(e->hash) & t->mask;; i = (i + 1) & t->mask) {
      if (t->slots()[i].load(std::memory_order_relaxed) == kEmpty) {
        t->slots()[i].store(s, std::memory_order_relaxed);
        return;
      }
    }
  }

  std::atomic<uintptr_t>* SlotOf(const Entry* e) noexcept {
    Table* t = table_.load(std::memory_order_relaxed);
    for (size_t i = Home(e->hash) & t->mask;; i = (i + 1) & t->mask) {
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
