// Copyright 2026 The herd Authors.
//
// herd/internal/shards.h: the sharding every herd container shares.
//
//   herd::internal::ShardCount(requested, fallback)  a power of two
//   herd::internal::ShardIndex(hash, mask)           which shard a hash picks
//   herd::internal::SumOver(shards, n, add)          a stats snapshot, summed
//
// Thread safety: stateless.

#ifndef HERD_INTERNAL_SHARDS_H_
#define HERD_INTERNAL_SHARDS_H_

#include <cstddef>

namespace herd::internal {

// The largest shard count any herd container uses.
inline constexpr size_t kMaxShards = size_t{1} << 16;

// `requested` rounded up to a power of two, at most kMaxShards; zero asks
// for `fallback` (rounded the same way).
constexpr size_t ShardCount(size_t requested, size_t fallback = 16) {
  size_t n = requested == 0 ? fallback : requested;
  size_t p = 1;
  while (p < n && p < kMaxShards) p <<= 1;
  return p;
}

// The shard of a key with hash `hash`, among mask + 1 shards. High bits pick
// the shard: absl's hash tables probe with the low ones.
constexpr size_t ShardIndex(size_t hash, size_t mask) {
  return mask == 0 ? 0 : (hash >> 32) & mask;
}

// Returns a Stats value that `add(shard, stats)` has accumulated over every
// shard in [shards, shards + n). `add` locks what it reads.
template <class Stats, class Shard, class Add>
Stats SumOver(Shard* shards, size_t n, Add add) {
  Stats stats{};
  for (size_t i = 0; i < n; ++i) add(shards[i], stats);
  return stats;
}

}  // namespace herd::internal

#endif  // HERD_INTERNAL_SHARDS_H_
