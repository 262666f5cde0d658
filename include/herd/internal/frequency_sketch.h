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
//     least of them (Cormode and Muthukrishnan's count-min). A counter holds
//     4 bits and saturates at 15: the sketch only has to tell warm from cold
//     keys against a cache's victims, not count exactly.
//   * A key's four counters live in one 64-byte block of the table (one
//     cache line): the block is picked by the key's mixed hash, and each
//     counter from its own pair of words in the block.
//   * The table holds 16 counters (8 bytes) per entry the cache is sized
//     for, rounded up to a power of two.
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
// Thread safety: none. The owner serializes every call.

#ifndef HERD_INTERNAL_FREQUENCY_SKETCH_H_
#define HERD_INTERNAL_FREQUENCY_SKETCH_H_

#include <cstddef>
#include <cstdint>
#include <vector>

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

  // The largest capacity the table is ever sized for (8 bytes each: 1 GiB).
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
  uint64_t sample_size() const noexcept { return sample_factor_ * capacity_; }
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
  // additions() reaches sample_size().
  void Increment(uint64_t hash) noexcept;

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
  struct Slots {
    size_t word[4];
    unsigned shift[4];
  };
  Slots Locate(uint64_t hash) const noexcept;
  int Count(const Slots& s) const noexcept;
  // Returns true iff the doorkeeper already held the key; sets it if not.
  bool DoorkeeperTestAndSet(uint64_t mixed) noexcept;
  bool DoorkeeperTest(uint64_t mixed) const noexcept;

  const uint64_t salt_;
  const FrequencySketchOptions options_;
  std::vector<uint64_t> table_;       // 16 counters per word
  std::vector<uint64_t> doorkeeper_;  // Bloom filter bits
  uint64_t block_mask_ = 0;           // blocks of 8 words, minus one
  uint64_t doorkeeper_mask_ = 0;      // bits, minus one
  uint64_t capacity_ = 0;
  uint64_t sample_factor_;
  uint64_t additions_ = 0;
  uint64_t agings_ = 0;
};

}  // namespace herd::internal

#endif  // HERD_INTERNAL_FREQUENCY_SKETCH_H_
