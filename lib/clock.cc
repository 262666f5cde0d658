// Copyright 2026 The herd Authors.

#include "herd/clock.h"

#include <algorithm>
#include <thread>

namespace herd {

const Clock& Clock::Steady() {
  static const SteadyClock* const clock = new SteadyClock();
  return *clock;
}

const Clock& Clock::Coarse() {
  static const CoarseClock* const clock = new CoarseClock();
  return *clock;
}

Clock::duration CoarseClock::Resolution() noexcept {
  timespec ts;
  if (clock_getres(CLOCK_MONOTONIC_COARSE, &ts) != 0) {
    return std::chrono::milliseconds(10);
  }
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

bool CoarseClock::SleepUntil(time_point deadline, std::stop_token stop) const {
  // Steady time runs ahead of this clock by less than a tick: sleep on it,
  // then by ticks until this clock has caught up too.
  time_point wake = deadline;
  for (;;) {
    if (!Clock::Steady().SleepUntil(wake, stop)) return false;
    const time_point now = Read();
    if (now >= deadline) return true;
    wake = Clock::Steady().Now() + (deadline - now);
  }
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
