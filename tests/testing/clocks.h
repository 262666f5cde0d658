// Copyright 2026 The herd Authors.
//
// tests/testing/clocks.h: clocks that let a test act at an exact point of a
// component's use of time.
//
//   PausingClock   a FakeClock whose sleepers pause, after their sleep
//                  ends and before SleepUntil() returns, until the test
//                  resumes them: the test can stop a token "at the instant
//                  the sleep ended"
//   ThrowingClock  a FakeClock whose Now() or SleepUntil() throws
//                  ClockFailure on chosen threads
//   RecordingClock a FakeClock that records the deadline of every sleep, so
//                  a test sees exactly when a component's waiter will wake

#ifndef HERD_TESTS_TESTING_CLOCKS_H_
#define HERD_TESTS_TESTING_CLOCKS_H_

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <thread>
#include <vector>

#include "herd/clock.h"

namespace herd::test {

// Time, and every sleep, from `inner`; but each SleepUntil() then waits,
// paused, until the test calls Resume() for it. Sleepers are resumed in the
// order they paused.
class PausingClock final : public Clock {
 public:
  explicit PausingClock(FakeClock& inner) : inner_(inner) {}

  time_point Now() const override { return inner_.Now(); }

  bool SleepUntil(time_point deadline, std::stop_token stop) const override {
    const bool reached = inner_.SleepUntil(deadline, stop);
    std::unique_lock<std::mutex> lock(mu_);
    const uint64_t ticket = ++paused_;
    last_result_ = reached;
    cv_.notify_all();
    cv_.wait(lock, [&] { return resumed_ >= ticket; });
    return reached;
  }

  // Blocks until one more sleeper has paused than this has returned for;
  // returns what that sleeper's inner SleepUntil() returned.
  bool AwaitPaused() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return paused_ > awaited_; });
    ++awaited_;
    return last_result_;
  }

  // Lets the oldest paused sleeper return.
  void Resume() {
    std::lock_guard<std::mutex> lock(mu_);
    ++resumed_;
    cv_.notify_all();
  }

 private:
  FakeClock& inner_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable uint64_t paused_ = 0;       // guarded by mu_
  mutable bool last_result_ = false;  // guarded by mu_
  uint64_t awaited_ = 0;              // guarded by mu_
  uint64_t resumed_ = 0;              // guarded by mu_
};

// What a ThrowingClock throws.
struct ClockFailure : std::runtime_error {
  ClockFailure() : std::runtime_error("clock failure") {}
};

// Time, and every sleep, from `inner`, except that Now() (or SleepUntil())
// throws ClockFailure when called on the thread armed for it. Arming by
// thread keeps a component's own threads (a Timer's) out of it.
class ThrowingClock final : public Clock {
 public:
  explicit ThrowingClock(FakeClock& inner) : inner_(inner) {}

  time_point Now() const override {
    if (Armed(now_thread_)) throw ClockFailure();
    return inner_.Now();
  }

  bool SleepUntil(time_point deadline, std::stop_token stop) const override {
    if (Armed(sleep_thread_)) throw ClockFailure();
    return inner_.SleepUntil(deadline, stop);
  }

  void ArmNow(std::thread::id on = std::this_thread::get_id()) {
    std::lock_guard<std::mutex> lock(mu_);
    now_thread_ = on;
  }
  void ArmSleep(std::thread::id on = std::this_thread::get_id()) {
    std::lock_guard<std::mutex> lock(mu_);
    sleep_thread_ = on;
  }
  void Disarm() {
    std::lock_guard<std::mutex> lock(mu_);
    now_thread_ = sleep_thread_ = std::thread::id();
  }

 private:
  bool Armed(const std::thread::id& which) const {
    std::lock_guard<std::mutex> lock(mu_);
    return which != std::thread::id() && which == std::this_thread::get_id();
  }

  FakeClock& inner_;
  mutable std::mutex mu_;
  std::thread::id now_thread_;    // guarded by mu_
  std::thread::id sleep_thread_;  // guarded by mu_
};

// Time, and every sleep, from `inner`; each SleepUntil() first records its
// deadline (Go's Reservation.Delay, made observable).
class RecordingClock final : public Clock {
 public:
  explicit RecordingClock(FakeClock& inner) : inner_(inner) {}

  time_point Now() const override { return inner_.Now(); }

  bool SleepUntil(time_point deadline, std::stop_token stop) const override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      deadlines_.push_back(deadline);
    }
    cv_.notify_all();
    return inner_.SleepUntil(deadline, stop);
  }

  // The deadline of every SleepUntil() so far, in the order they began.
  std::vector<time_point> deadlines() const {
    std::lock_guard<std::mutex> lock(mu_);
    return deadlines_;
  }

  // Blocks until at least `n` sleeps have begun, for at most `bound`;
  // returns the deadline of the n-th (1-based), or time_point::max() if it
  // did not begin in time.
  time_point AwaitSleep(size_t n, std::chrono::seconds bound =
                                      std::chrono::seconds(60)) const {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, bound, [&] { return deadlines_.size() >= n; })) {
      return time_point::max();
    }
    return deadlines_[n - 1];
  }

 private:
  FakeClock& inner_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;         // a sleep began
  mutable std::vector<time_point> deadlines_;  // guarded by mu_
};

}  // namespace herd::test

#endif  // HERD_TESTS_TESTING_CLOCKS_H_
