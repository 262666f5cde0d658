// Copyright 2026 The herd Authors.
//
// Uses an installed herd through find_package(herd): its headers (public
// and internal, which include Abseil's), its compiled library (clock.cc)
// and its threads. Exits 0 and prints "ok" iff all of them work.

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <thread>

#include "herd/clock.h"
#include "herd/errors.h"
#include "herd/internal/mutex.h"

int main() {
  herd::FakeClock clock;
  const auto deadline = clock.Now() + std::chrono::seconds(5);
  bool reached = false;
  {
    std::jthread sleeper([&](std::stop_token stop) {
      reached = clock.SleepUntil(deadline, stop);
    });
    clock.WaitForSleepers(1);
    clock.Advance(std::chrono::seconds(5));
  }

  herd::internal::Mutex mu;
  int guarded = 0;
  {
    herd::internal::MutexLock lock(&mu);
    ++guarded;
  }

  bool threw = false;
  try {
    throw herd::Closed();
  } catch (const herd::Error&) {
    threw = true;
  }

  const auto before = herd::Clock::Steady().Now();
  const bool steady_ok = herd::Clock::Steady().Now() >= before;
  if (!reached || guarded != 1 || !threw || !steady_ok) {
    std::printf("herd_consumer: FAILED\n");
    return 1;
  }
  std::printf("herd_consumer: ok\n");
  return 0;
}
