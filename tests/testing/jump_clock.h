// Copyright 2026 The herd Authors.
//
// tests/testing/jump_clock.h: virtual time for single-threaded tests.

#ifndef HERD_TESTS_TESTING_JUMP_CLOCK_H_
#define HERD_TESTS_TESTING_JUMP_CLOCK_H_

#include <chrono>
#include <stop_token>
#include <vector>

#include "herd/clock.h"

namespace herd::test {

// A clock whose sleeps move time to their deadline at once and are recorded,
// so that a test sees every sleep exactly and waits for none. A stop
// requested before the sleep makes it return false, as a real clock would.
// Single-threaded: unlike herd::FakeClock, nothing here is synchronized.
class JumpClock final : public Clock {
 public:
  time_point Now() const override { return now_; }

  bool SleepUntil(time_point deadline, std::stop_token stop) const override {
    if (stop.stop_requested()) return false;
    sleeps_.push_back(deadline - now_);
    if (deadline > now_) now_ = deadline;
    return true;
  }

  void Advance(duration d) { now_ += d; }

  // The length of each sleep, in order (a deadline already past: zero or
  // negative).
  const std::vector<duration>& sleeps() const { return sleeps_; }

 private:
  mutable time_point now_{std::chrono::seconds(1000)};
  mutable std::vector<duration> sleeps_;
};

}  // namespace herd::test

#endif  // HERD_TESTS_TESTING_JUMP_CLOCK_H_
