// Copyright 2026 The herd Authors.

#include "herd/internal/frequency_sketch.h"

#include <algorithm>
#include <bit>
#include <cassert>

namespace herd::internal {
namespace {

constexpr uint64_t kOneMask = 0x0101010101010101ULL;   // bit 0 of each byte
constexpr uint64_t kHalfMask = 0x7f7f7f7f7f7f7f7fULL;  // bits 0-6 of each

// Entries of capacity per block: 16 counters (bytes) each.
constexpr uint64_t kBlockEntries = 8;

uint64_t CeilPowerOfTwo(uint64_t n) {
  return n <= 1 ? 1 : std::bit_ceil(n);
}

}  // namespace

FrequencySketch::FrequencySketch(uint64_t seed,
                                 const FrequencySketchOptions& options)
    : salt_(MixHash(seed + 0x9e3779b97f4a7c15ULL)),
      options_(options),
      sample_factor_(std::max<uint32_t>(options.sample_factor, 1)) {}

void FrequencySketch::set_sample_factor(uint32_t factor) noexcept {
  assert(factor >= 1);
  sample_factor_ = std::max<uint32_t>(factor, 1);
  sample_size_ = sample_factor_ * capacity_;
}

void FrequencySketch::EnsureCapacity(uint64_t entries) {
  entries = std::clamp<uint64_t>(entries, 1, kMaxCapacity);
  if (capacity_ >= entries) return;
  const uint64_t rounded = std::max(CeilPowerOfTwo(entries), kBlockEntries);
  std::vector<Block> table(rounded / kBlockEntries, Block{});
  std::vector<uint64_t> doorkeeper;
  if (options_.doorkeeper) {
    // About 16 bits per entry of capacity: the doorkeeper sees the distinct
    // keys of one aging period, up to sample_factor per entry.
    doorkeeper.assign(std::max<uint64_t>(rounded / 4, 1), 0);
  }
  // No throw below.
  table_.swap(table);
  doorkeeper_.swap(doorkeeper);
  block_mask_ = table_.size() - 1;
  doorkeeper_mask_ = doorkeeper_.empty() ? 0 : doorkeeper_.size() * 64 - 1;
  capacity_ = entries;
  sample_size_ = sample_factor_ * capacity_;
  additions_ = 0;
  conservative_only_ = options_.conservative && !options_.doorkeeper;
}

bool FrequencySketch::DoorkeeperTest(uint64_t mixed) const noexcept {
  const uint64_t a = mixed & doorkeeper_mask_;
  const uint64_t b = (mixed >> 32) & doorkeeper_mask_;
  return ((doorkeeper_[a / 64] >> (a % 64)) & 1) != 0 &&
         ((doorkeeper_[b / 64] >> (b % 64)) & 1) != 0;
}

bool FrequencySketch::DoorkeeperTestAndSet(uint64_t mixed) noexcept {
  if (DoorkeeperTest(mixed)) return true;
  const uint64_t a = mixed & doorkeeper_mask_;
  const uint64_t b = (mixed >> 32) & doorkeeper_mask_;
  doorkeeper_[a / 64] |= uint64_t{1} << (a % 64);
  doorkeeper_[b / 64] |= uint64_t{1} << (b % 64);
  return false;
}

void FrequencySketch::IncrementOther(uint64_t hash) noexcept {
  if (table_.empty()) return;
  bool added = false;
  if (options_.doorkeeper &&
      !DoorkeeperTestAndSet(MixHash(hash ^ ~salt_))) {
    added = true;
  } else {
    const Slots s = Locate(hash);
    if (options_.conservative) {
      const int min = Count(s);
      if (min < kMaxCount) {
        for (uint8_t* c : s.counter) {
          if (*c == min) ++*c;
        }
        added = true;
      }
    } else {
      for (uint8_t* c : s.counter) {
        if (*c != kMaxCount) {
          ++*c;
          added = true;
        }
      }
    }
  }
  if (added && ++additions_ >= sample_size_) Age();
}

int FrequencySketch::Frequency(uint64_t hash) const noexcept {
  if (table_.empty()) return 0;
  int count = Count(Locate(hash));
  if (options_.doorkeeper && DoorkeeperTest(MixHash(hash ^ ~salt_))) ++count;
  return count;
}

void FrequencySketch::Age() noexcept {
  uint64_t odd = 0;
  for (Block& block : table_) {
    for (uint64_t& word : block.words) {
      odd += static_cast<uint64_t>(std::popcount(word & kOneMask));
      word = (word >> 1) & kHalfMask;
    }
  }
  std::fill(doorkeeper_.begin(), doorkeeper_.end(), 0);
  // Each key owns four counters: a quarter of the odd ones is the rounding
  // lost per key.
  additions_ = (additions_ - std::min(additions_, odd / 4)) / 2;
  ++agings_;
}

}  // namespace herd::internal
