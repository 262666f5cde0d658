// Copyright 2026 The herd Authors.
//
// benchmarks/baselines/mutex_map_cache.h: the cache people write first, the
// baseline herd::LoadingCache is measured against: a std::mutex around an
// absl::flat_hash_map of {value, expiry}, checked against
// std::chrono::steady_clock::now(). No coalescing: every caller that misses
// loads.

#ifndef HERD_BENCHMARKS_BASELINES_MUTEX_MAP_CACHE_H_
#define HERD_BENCHMARKS_BASELINES_MUTEX_MAP_CACHE_H_

#include <chrono>
#include <mutex>
#include <utility>

#include "absl/container/flat_hash_map.h"

namespace herd_bench {

template <class Key, class Value>
class MutexMapCache {
 public:
  explicit MutexMapCache(std::chrono::steady_clock::duration ttl) : ttl_(ttl) {}

  template <class Loader>
  Value Get(const Key& key, Loader&& loader) {
    const auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = map_.find(key);
      if (it != map_.end() && now < it->second.expires) {
        return it->second.value;
      }
    }
    Value value = loader();
    std::lock_guard<std::mutex> lock(mu_);
    map_.insert_or_assign(
        key, Entry{value, std::chrono::steady_clock::now() + ttl_});
    return value;
  }

  void Erase(const Key& key) {
    std::lock_guard<std::mutex> lock(mu_);
    map_.erase(key);
  }

  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return map_.size();
  }

 private:
  struct Entry {
    Value value;
    std::chrono::steady_clock::time_point expires;
  };
  const std::chrono::steady_clock::duration ttl_;
  std::mutex mu_;
  absl::flat_hash_map<Key, Entry> map_;
};

}  // namespace herd_bench

#endif  // HERD_BENCHMARKS_BASELINES_MUTEX_MAP_CACHE_H_
