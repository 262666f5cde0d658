// Copyright 2026 The herd Authors.
//
// herd/internal/striped.h: per-thread-ish state for lock-free readers.
//
//   herd::internal::StripedCounters<N>  N exact counters, one cache line of
//                                       them per stripe, summed on read
//   herd::internal::ReadBuffer          a lossy record of recent reads, one
//                                       small ring per stripe, drained under
//                                       the policy's lock
//
// A thread picks its stripe from Epoch::ThreadIndex() (a small integer
// distinct per live thread), so with at least as many stripes as threads,
// no two threads write the same line. Threads that do share a stripe still
// count exactly: increments are atomic read-modify-writes.
//
// ReadBuffer is lossy by design: a read overwrites the slot its stripe's
// sequence number picks, whether or not it was drained. Losing a record
// costs the policy a little recency information and nothing else (Caffeine
// does the same: "losing records is acceptable").
//
// Memory ordering: a slot is stored with release and drained with an
// acquire exchange, so the drainer sees the entry the reader saw.
//
// Thread safety: Add/Record from any thread; Sum/Drain from any thread
// (Drain's caller serializes drains, by holding the policy's lock).

#ifndef HERD_INTERNAL_STRIPED_H_
#define HERD_INTERNAL_STRIPED_H_

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>

#include "absl/base/attributes.h"

namespace herd::internal {

// A power of two, at least 4 and at least twice the hardware threads, at
// most 64.
inline size_t StripeCount() {
  size_t n = 2 * std::thread::hardware_concurrency();
  if (n < 4) n = 4;
  if (n > 64) n = 64;
  return std::bit_ceil(n);
}

template <size_t N>
class StripedCounters {
 public:
  explicit StripedCounters(size_t stripes)
      : mask_(stripes - 1), stripes_(new Stripe[stripes]) {}

  // Adds `n` to counter `c` of stripe `stripe` (any integer: masked).
  // Returns the stripe's count before.
  ABSL_ATTRIBUTE_ALWAYS_INLINE uint64_t Add(size_t stripe, size_t c,
                                            uint64_t n = 1) noexcept {
    return stripes_[stripe & mask_].c[c].fetch_add(n,
                                                   std::memory_order_relaxed);
  }

  uint64_t Sum(size_t c) const noexcept {
    uint64_t s = 0;
    for (size_t i = 0; i <= mask_; ++i) {
      s += stripes_[i].c[c].load(std::memory_order_relaxed);
    }
    return s;
  }

  size_t stripes() const noexcept { return mask_ + 1; }

 private:
  struct alignas(64) Stripe {
    std::atomic<uint64_t> c[N] = {};
  };
  const size_t mask_;
  const std::unique_ptr<Stripe[]> stripes_;
};

class ReadBuffer {
 public:
  static constexpr size_t kSlots = 16;  // per stripe

  explicit ReadBuffer(size_t stripes)
      : mask_(stripes - 1), stripes_(new Stripe[stripes]) {}

  // Records `value` (non-zero) in `stripe` at position `seq` (a per-stripe
  // sequence number). Returns true iff the ring is now full, i.e. a drain is
  // due.
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool Record(size_t stripe, uint64_t seq,
                                           uintptr_t value) noexcept {
    stripes_[stripe & mask_].slots[seq & (kSlots - 1)].store(
        value, std::memory_order_release);
    return (seq & (kSlots - 1)) == kSlots - 1;
  }

  // Empties every slot, calling f(value) for each recorded one.
  template <class F>
  void Drain(F&& f) noexcept(noexcept(f(uintptr_t{}))) {
    for (size_t i = 0; i <= mask_; ++i) DrainStripe(i, f);
  }

  // Empties the slots of `stripe` only: a reader whose ring filled drains
  // its own, and leaves the lines other threads write alone.
  template <class F>
  void DrainStripe(size_t stripe, F&& f) noexcept(noexcept(f(uintptr_t{}))) {
    for (std::atomic<uintptr_t>& slot : stripes_[stripe & mask_].slots) {
      if (slot.load(std::memory_order_relaxed) == 0) continue;
      const uintptr_t v = slot.exchange(0, std::memory_order_acquire);
      if (v != 0) f(v);
    }
  }

 private:
  struct alignas(64) Stripe {
    std::atomic<uintptr_t> slots[kSlots] = {};
  };
  const size_t mask_;
  const std::unique_ptr<Stripe[]> stripes_;
};

}  // namespace herd::internal

#endif  // HERD_INTERNAL_STRIPED_H_
