// Copyright 2026 The herd Authors.
//
// herd::herd, or `pkg-config --cflags --libs herd`: every public header in
// one program, and the components used together (a LoadingCache whose
// loader is limited and has a deadline, refreshed on a ThreadPool).

#include <chrono>
#include <stop_token>

#include "consumer.h"
#include "herd/bounded_queue.h"
#include "herd/circuit_breaker.h"
#include "herd/clock.h"
#include "herd/coalesce.h"
#include "herd/concurrency_limiter.h"
#include "herd/deadline.h"
#include "herd/errors.h"
#include "herd/executor.h"
#include "herd/loading_cache.h"
#include "herd/retry.h"
#include "herd/share.h"
#include "herd/thread_pool.h"
#include "herd/timer.h"
#include "herd/token_bucket.h"

#ifndef HERD_CONSUMER_NAME
#define HERD_CONSUMER_NAME "herd_consumer"
#endif

int main() {
  herd::ConcurrencyLimiter limiter(1);
  herd::LoadingCache<int, int> cache({.ttl = std::chrono::minutes(1)});
  int loads = 0;
  auto loader = herd::WithLimit(
      limiter, herd::WithDeadline(std::chrono::hours(1),
                                  [&loads](std::stop_token) { return ++loads; }));
  consumer::Check(cache.Get(7, loader) == 1, "a limited, deadlined load");
  consumer::Check(cache.Get(7, loader) == 1, "then a hit");

  herd::Share<int, int> share;
  consumer::Check(share.Do(1, [] { return 3; }) == 3, "Share::Do");
  return consumer::Finish(HERD_CONSUMER_NAME);
}
