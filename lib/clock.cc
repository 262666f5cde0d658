// Copyright 2026 The herd Authors.

#include "herd/clock.h"

#include <algorithm>
#include <thread>

namespace herd {

const Clock& Clock::Steady() {
  static const SteadyClock* const clock = new SteadyClock();
  return *clock;
}

bool SteadyClock::SleepUntil(time_point deadline, std::stop_token stop) const {
  if (!stop.stop_possible()) {
    std::this_thread::sleep_until(deadline);
    return true;
  }
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock<std::mutex> lock(mu);
  // The predicate is never true: only the deadline or the stop ends the wait.
  cv.wait_until(lock, stop, deadline, [] { return false; });
  return !stop.stop_requested() || Now() >= deadline;
}

Clock::time_point FakeClock::Now() const {
  std::lock_guard<std::mutex> lock(mu_);
  return now_;
}

bool FakeClock::SleepUntil(time_point deadline, std::stop_token stop) const {
  std::unique_lock<std::mutex> lock(mu_);
  ++sleepers_;
  cv_.notify_all();  // WaitForSleepers() callers
  bool reached = cv_.wait(lock, stop, [&] { return now_ >= deadline; });
  --sleepers_;
  cv_.notify_all();
  return reached;
}

void FakeClock::AdvanceTo(time_point t) {
  t = std::min(t, kEndOfTime);
  std::lock_guard<std::mutex> lock(mu_);
  if (t > now_) {
    now_ = t;
    cv_.notify_all();
  }
}

size_t FakeClock::Sleepers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sleepers_;
}

void FakeClock::WaitForSleepers(size_t n) const {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return sleepers_ >= n; });
}

}  // namespace herd
