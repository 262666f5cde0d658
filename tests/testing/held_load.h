// Copyright 2026 The herd Authors.
//
// tests/testing/held_load.h: a loader held inside its body until the test
// lets it go, for the commonest shape of a coalescing test: a leader blocked
// inside its loader while others join its flight.
//
//   HeldLoad held;
//   std::thread leader([&] { share.Do(1, held.Returning(5)); });
//   held.AwaitEntered();   // the leader's loader is running, and blocked
//   ...                    // others join (AwaitCalls), cancel, forget...
//   held.Release();        // every Enter(), past and future, returns
//   leader.join();
//
// Built on std::mutex, std::condition_variable and std::promise, which
// ThreadSanitizer sees (Debian's Abseil is not instrumented).

#ifndef HERD_TESTS_TESTING_HELD_LOAD_H_
#define HERD_TESTS_TESTING_HELD_LOAD_H_

#include <condition_variable>
#include <future>
#include <mutex>
#include <utility>

namespace herd::test {

class HeldLoad {
 public:
  HeldLoad() : released_(release_.get_future().share()) {}
  HeldLoad(const HeldLoad&) = delete;
  HeldLoad& operator=(const HeldLoad&) = delete;
  // Releases, so that a test that failed half-way does not leave a loader
  // blocked for ever (its thread must still be joined).
  ~HeldLoad() { Release(); }

  // Called from inside a loader: counts the entry, then blocks until
  // Release() (at once if it was already called).
  void Enter() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++entered_;
    }
    entered_cv_.notify_all();
    released_.wait();
  }

  // Blocks until Enter() has been called `n` times in all.
  void AwaitEntered(int n = 1) {
    std::unique_lock<std::mutex> lock(mu_);
    entered_cv_.wait(lock, [&] { return entered_ >= n; });
  }

  // Number of Enter() calls so far.
  int entered() const {
    std::lock_guard<std::mutex> lock(mu_);
    return entered_;
  }

  // Lets every Enter() return, those blocked now and those to come.
  // Idempotent.
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!released_flag_) {
      released_flag_ = true;
      release_.set_value();
    }
  }

  // A loader that enters, then returns `value`.
  template <class V>
  auto Returning(V value) {
    return [this, value] {
      Enter();
      return value;
    };
  }

  // A loader of Values that enters, then throws `error`.
  template <class Value, class E>
  auto Throwing(E error) {
    return [this, error]() -> Value {
      Enter();
      throw error;
    };
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable entered_cv_;
  int entered_ = 0;             // guarded by mu_
  bool released_flag_ = false;  // guarded by mu_
  std::promise<void> release_;
  std::shared_future<void> released_;
};

}  // namespace herd::test

#endif  // HERD_TESTS_TESTING_HELD_LOAD_H_
