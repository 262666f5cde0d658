// Copyright 2026 The herd Authors.
//
// herd::guards alone: ConcurrencyLimiter (lib/concurrency_limiter.cc) and
// the Timer behind WithDeadline (lib/timer.cc).

#include <chrono>
#include <stop_token>

#include "consumer.h"
#include "herd/concurrency_limiter.h"
#include "herd/deadline.h"

int main() {
  herd::ConcurrencyLimiter limiter(1);
  {
    auto first = limiter.TryAcquire();
    consumer::Check(first.has_value(), "a free permit");
    consumer::Check(!limiter.TryAcquire().has_value(), "no second permit");
  }
  consumer::Check(limiter.TryAcquire().has_value(), "the permit came back");

  auto load = herd::WithDeadline(std::chrono::hours(1),
                                 [](std::stop_token) { return 5; });
  consumer::Check(load(std::stop_token()) == 5, "WithDeadline runs the loader");
  return consumer::Finish("herd_consumer_guards");
}
