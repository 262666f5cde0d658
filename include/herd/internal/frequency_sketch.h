// Copyright 2026 The herd Authors.
//
// herd/internal/frequency_sketch.h: how often has a key been seen lately?
//
//   herd::internal::FrequencySketch         a count-min sketch of 4-bit
//                                           counters with periodic aging
//   herd::internal::FrequencySketchOptions  update rule, doorkeeper, period
//   herd::internal::MixHash(x)              a 64-bit finalizer (murmur3's)
//
// The popularity estimate behind TinyLFU's admission (internal/tinylfu.h),
// after Einziger, Friedman and Manes, "TinyLFU: A Highly Efficient Cache
// Admission Policy" (ACM TOS 2017), and the layout Caffeine describes:
//
//   * Four counters per key, one in each of four rows; the estimate is the
//     least of them (Cormode and Muthukrishnan's count-min). A counter
//     saturates at 15 (4 bits' worth): the sketch only has to tell warm
//     from cold keys against a cache's victims, not count exactly.
//   * A key's four counters live in one block of the table: the block is
//     picked by the key's mixed hash, and each counter by 5 more bits of it
//     among its row's 32 counters in the block (Caffeine's blocked layout,
//     one hash for all four).
//   * Each counter has a byte of its own (Caffeine packs sixteen in a
//     64-bit word), so that reading and raising one is a byte load and a
//     byte add. A packed counter needs a variable shift, which on x86-64
//     without BMI2 goes through %cl and spills registers: a replayed read
//     (TinyLfu::RecordAccess) costs 92 instructions against 136 packed.
//     That doubles the table: 16 counters (16 bytes) per entry the cache is
//     sized for, rounded up to a power of two. A block is 128 bytes,
//     aligned to 128: two adjacent cache lines.
//   * Aging (TinyLFU's "reset"): after sample_size() additions every
//     counter is halved, so that keys popular long ago fade away. The
//     rounding lost by halving odd counters is subtracted from the count of
//     additions, as TinyLFU prescribes.
//   * Conservative update (Estan and Varghese; on by default): an increment
//     raises only the key's counters that hold its current minimum, which
//     cuts the over-estimate that colliding keys add.
//   * An optional doorkeeper (TinyLFU section 3.4.2): a Bloom filter that
//     absorbs the first occurrence of a key in each aging period, so that
//     one-hit wonders never reach the counters. Off by default.
//
// Cost: Increment() is inline, and with the default options it has no
// branch but the saturation and aging tests. A bounded cache replays reads
// through it (internal/tinylfu.h: RecordAccess), so it is on the hit path's
// budget; benchmarks/callgrind_driver.cc's TinyLfu_RecordAccess_Zipf
// measures it.
//
// Thread safety: none. The owner serializes every call.

#ifndef HERD_INTERNAL_FREQUENCY_SKETCH_H_
#define HERD_INTERNAL_FREQUENCY_SKETCH_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/base/attributes.h"

namespace herd::internal {

// The finalizer of MurmurHash3 (public domain): a bijection on 64-bit values
// whose every output bit depends on every input bit.
constexpr uint64_t MixHash(uint64_t x) noexcept {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

struct FrequencySketchOptions {
  // Raise only the counters at the key's minimum (true) or all four.
  bool conservative = true;
  // Put a doorkeeper Bloom filter (about one bit per counter's worth of
  // entries) in front of the counters.
  bool doorkeeper = false;
  // Additions between agings, per entry of capacity: sample_size() is
  // sample_factor * capacity() (TinyLFU and Caffeine use 10; TinyLfu sets
  // its own, see set_sample_factor()). REQUIRES: >= 1.
  uint32_t sample_factor = 10;
};

class FrequencySketch {
 public:
  // The largest counter value. With a doorkeeper, Frequency() can return one
  // more (the doorkeeper's bit).
  static constexpr int kMaxCount = 15;

  // The largest capacity the table is ever sized for (16 bytes each: 2 GiB).
  static constexpr uint64_t kMaxCapacity = uint64_t{1} << 27;

  // An empty sketch: Frequency() is 0 for every key and Increment() does
  // nothing until EnsureCapacity(). `seed` salts the hashing, so that two
  // sketches with different seeds collide on different keys.
  explicit FrequencySketch(uint64_t seed = 0,
                           const FrequencySketchOptions& options = {});

  FrequencySketch(FrequencySketch&&) noexcept = default;
  FrequencySketch(const FrequencySketch&) = delete;
  FrequencySketch& operator=(const FrequencySketch&) = delete;

  // Sizes the table for `entries` keys (at most kMaxCapacity; 0 counts as
  // 1). Does nothing if capacity() >= entries already; otherwise allocates a
  // larger table and forgets every count.
  // Throws: std::bad_alloc, leaving the sketch as it was.
  void EnsureCapacity(uint64_t entries);

  // The number of entries the table was last sized for; 0 before the first
  // EnsureCapacity().
  uint64_t capacity() const noexcept { return capacity_; }

  // Additions between two agings: sample_factor() * capacity().
  uint64_t sample_size() const noexcept { return sample_size_; }
  uint32_t sample_factor() const noexcept { return sample_factor_; }

  // Sets the additions between agings to `factor` * capacity(); if
  // additions() already reached it, the next addition ages the sketch.
  // Counts are kept. REQUIRES: factor >= 1.
  void set_sample_factor(uint32_t factor) noexcept;

  // Additions since the last aging, less what aging took away. An addition
  // is an Increment() that raised a counter or (with a doorkeeper) set a bit.
  uint64_t additions() const noexcept { return additions_; }

  // The number of agings so far.
  uint64_t agings() const noexcept { return agings_; }

  // Records one occurrence of the key with hash `hash`. Ages the sketch when
  // additions() reaches sample_size(). Inline (see "Cost" above).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Increment(uint64_t hash) noexcept;

  // Returns the estimated occurrences of `hash` in the recent past, at most
  // kMaxCount (kMaxCount + 1 with a doorkeeper). Without a doorkeeper it is
  // never less than the key's true count since the last EnsureCapacity(),
  // capped at kMaxCount at each occurrence and halved (rounding down) by
  // each Age(): count-min never under-estimates.
  int Frequency(uint64_t hash) const noexcept;

  // Halves every counter and clears the doorkeeper. Increment() calls it by
  // itself; public for tests.
  void Age() noexcept;

 private:
  // 4 rows of 32 one-byte counters: two cache lines.
  struct alignas(128) Block {
    uint64_t words[16];  // accessed bytewise (unsigned char may alias)
  };
  static constexpr int kRowCounters = 32;

  // A key's four counters, one per row.
  struct Slots {
    uint8_t* counter[4];
  };
  // REQUIRES: the table is not empty. Const, for Frequency(); only
  // Increment() writes through the result.
  Slots Locate(uint64_t hash) const noexcept;
  static int Count(const Slots& s) noexcept;
  // Increment() for the other options (doorkeeper, all four counters), and
  // before the first EnsureCapacity().
  void IncrementOther(uint64_t hash) noexcept;
  // Returns true iff the doorkeeper already held the key; sets it if not.
  bool DoorkeeperTestAndSet(uint64_t mixed) noexcept;
  bool DoorkeeperTest(uint64_t mixed) const noexcept;

  const uint64_t salt_;
  const FrequencySketchOptions options_;
  std::vector<Block> table_;
  std::vector<uint64_t> doorkeeper_;  // Bloom filter bits
  uint64_t block_mask_ = 0;           // blocks, minus one
  uint64_t doorkeeper_mask_ = 0;      // bits, minus one
  uint64_t capacity_ = 0;
  uint64_t sample_factor_;
  uint64_t sample_size_ = 0;  // sample_factor_ * capacity_
  uint64_t additions_ = 0;
  uint64_t agings_ = 0;
  // The table is sized and the options are the defaults (conservative
  // update, no doorkeeper): Increment()'s inline path applies.
  bool conservative_only_ = false;
};

// --- Inline definitions. The four counters are spelled out, not looped
// over: -O2 does not unroll such a loop, and unrolled, every counter's
// address stays in a register.

inline FrequencySketch::Slots FrequencySketch::Locate(
    uint64_t hash) const noexcept {
  const uint64_t mixed = MixHash(hash ^ salt_);
  // The high half picks the block, byte i of the low half (5 bits of it)
  // the counter in row i.
  uint8_t* const block = reinterpret_cast<uint8_t*>(const_cast<Block*>(
      table_.data() + static_cast<size_t>((mixed >> 32) & block_mask_)));
  return Slots{{block + (mixed & 31),
                block + kRowCounters + ((mixed >> 8) & 31),
                block + 2 * kRowCounters + ((mixed >> 16) & 31),
                block + 3 * kRowCounters + ((mixed >> 24) & 31)}};
}

inline int FrequencySketch::Count(const Slots& s) noexcept {
  const int c0 = *s.counter[0];
  const int c1 = *s.counter[1];
  const int c2 = *s.counter[2];
  const int c3 = *s.counter[3];
  const int low01 = c0 < c1 ? c0 : c1;
  const int low23 = c2 < c3 ? c2 : c3;
  return low01 < low23 ? low01 : low23;
}

inline void FrequencySketch::Increment(uint64_t hash) noexcept {
  if (!conservative_only_) {
    IncrementOther(hash);
    return;
  }
  // Conservative update: raise the counters that hold the key's minimum,
  // unless it is saturated. The four counters are distinct bytes, so each
  // is read before any is written, and the writes need no branch.
  const Slots s = Locate(hash);
  const unsigned c0 = *s.counter[0];
  const unsigned c1 = *s.counter[1];
  const unsigned c2 = *s.counter[2];
  const unsigned c3 = *s.counter[3];
  const unsigned low01 = c0 < c1 ? c0 : c1;
  const unsigned low23 = c2 < c3 ? c2 : c3;
  const unsigned min = low01 < low23 ? low01 : low23;
  if (min == kMaxCount) return;
  *s.counter[0] = static_cast<uint8_t>(c0 + (c0 == min));
  *s.counter[1] = static_cast<uint8_t>(c1 + (c1 == min));
  *s.counter[2] = static_cast<uint8_t>(c2 + (c2 == min));
  *s.counter[3] = static_cast<uint8_t>(c3 + (c3 == min));
  if (++additions_ >= sample_size_) Age();
}

}  // namespace herd::internal

#endif  // HERD_INTERNAL_FREQUENCY_SKETCH_H_
