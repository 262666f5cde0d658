// Copyright 2026 The herd Authors.
//
// herd::loading_cache alone: LoadingCache, with Share and ThreadPool under it.

#include <chrono>

#include "consumer.h"
#include "herd/loading_cache.h"

int main() {
  herd::LoadingCache<int, int> cache({.ttl = std::chrono::minutes(1)});
  int loads = 0;
  auto loader = [&loads] {
    ++loads;
    return 42;
  };
  consumer::Check(cache.Get(1, loader) == 42, "a miss loads");
  consumer::Check(cache.Get(1, loader) == 42, "a hit");
  consumer::Check(loads == 1, "the hit did not load");
  return consumer::Finish("herd_consumer_loading_cache");
}
