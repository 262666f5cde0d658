// Copyright 2026 The herd Authors.
//
// tests/conformance/conformance.h: the few helpers the conformance tests
// share. Built only on herd's public headers and the standard library, as
// a user who reads include/herd/*.h and nothing else would write them.
//
//   Await(done)          yields until done() holds; fails the test (and
//                        returns false) after a generous bound
//   Gate                 a door threads wait behind until the test opens it
//   RecordingClock       a FakeClock that records every sleep's deadline
//   ManualExecutor       keeps tasks until the test runs or drops them
//   InlineExecutor       runs a task inside Schedule()
//   Payload              an exception type whose payload a test can check

#ifndef HERD_TESTS_CONFORMANCE_CONFORMANCE_H_
#define HERD_TESTS_CONFORMANCE_CONFORMANCE_H_

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <future>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "herd/clock.h"
#include "herd/executor.h"

namespace herd::conformance {

// How long any handshake may take before the test calls it a hang. Far
// above any legitimate wait (they are all immediate once the other side
// acts), so it bounds a broken run without ever deciding a correct one.
inline constexpr std::chrono::seconds kHang{60};

// Blocks until `done()` holds, for conditions the code under test makes
// true by itself (a counter reaching N) and no handshake can announce.
// Returns false, with a test failure, if that takes longer than kHang.
template <class Pred>
[[nodiscard]] bool Await(Pred done) {
  const auto give_up = std::chrono::steady_clock::now() + kHang;
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) {
      ADD_FAILURE() << "condition not reached within " << kHang.count() << " s";
      return false;
    }
    std::this_thread::yield();
  }
  return true;
}

// Threads Wait() until the test calls Open(), once.
class Gate {
 public:
  Gate() : opened_(promise_.get_future().share()) {}
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;
  void Open() { promise_.set_value(); }
  void Wait() const { opened_.wait(); }

 private:
  std::promise<void> promise_;
  std::shared_future<void> opened_;
};

// Time and sleeps from a FakeClock, and the deadline of every SleepUntil()
// call, so that a test reads when a component's waiter will wake (Go's
// Reservation.Delay, made observable).
class RecordingClock final : public Clock {
 public:
  explicit RecordingClock(FakeClock& inner) : inner_(inner) {}

  time_point Now() const override { return inner_.Now(); }

  bool SleepUntil(time_point deadline, std::stop_token stop) const override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      deadlines_.push_back(deadline);
      cv_.notify_all();
    }
    return inner_.SleepUntil(deadline, std::move(stop));
  }

  // Blocks until at least `n` sleeps have begun; returns the deadline of
  // the n-th (1-based).
  time_point AwaitSleep(size_t n) const {
    std::unique_lock<std::mutex> lock(mu_);
    const bool ok =
        cv_.wait_for(lock, kHang, [&] { return deadlines_.size() >= n; });
    if (!ok) {
      ADD_FAILURE() << "sleep " << n << " never began";
      return time_point::max();
    }
    return deadlines_[n - 1];
  }

  size_t Sleeps() const {
    std::lock_guard<std::mutex> lock(mu_);
    return deadlines_.size();
  }

  FakeClock& fake() const { return inner_; }

 private:
  FakeClock& inner_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable std::vector<time_point> deadlines_;  // guarded by mu_
};

// An Executor that keeps every task until the test runs or drops it.
class ManualExecutor {
 public:
  void Schedule(Task task) {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
    ++scheduled_;
  }
  // Runs the oldest kept task on this thread. REQUIRES: one is kept.
  void RunOne() { std::move(Take())(); }
  // Destroys the oldest kept task unrun. REQUIRES: one is kept.
  void DropOne() { Task t = Take(); }
  size_t kept() const {
    std::lock_guard<std::mutex> lock(mu_);
    return tasks_.size();
  }
  size_t scheduled() const {
    std::lock_guard<std::mutex> lock(mu_);
    return scheduled_;
  }

 private:
  Task Take() {
    std::lock_guard<std::mutex> lock(mu_);
    Task t = std::move(tasks_.front());
    tasks_.erase(tasks_.begin());
    return t;
  }
  mutable std::mutex mu_;
  std::vector<Task> tasks_;  // guarded by mu_
  size_t scheduled_ = 0;     // guarded by mu_
};

// An Executor that runs each task at once, inside Schedule().
struct InlineExecutor {
  void Schedule(Task task) { std::move(task)(); }
};

// An exception whose payload says which call threw it.
struct Payload : std::runtime_error {
  explicit Payload(int v) : std::runtime_error("payload"), value(v) {}
  int value;
};

}  // namespace herd::conformance

#endif  // HERD_TESTS_CONFORMANCE_CONFORMANCE_H_
