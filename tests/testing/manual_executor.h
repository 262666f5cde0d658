// Copyright 2026 The herd Authors.
//
// tests/testing/manual_executor.h: executors a test drives.
//
//   ManualExecutor     queues tasks, from any thread; the test runs them
//                      (RunOne/RunAll), drops them, or makes the next
//                      Schedule throw. (tests/testing/scripted_executors.h's
//                      QueueExecutor is its single-threaded cousin.)

#ifndef HERD_TESTS_TESTING_MANUAL_EXECUTOR_H_
#define HERD_TESTS_TESTING_MANUAL_EXECUTOR_H_

#include <cstddef>
#include <deque>
#include <exception>
#include <mutex>
#include <utility>

#include "herd/executor.h"

namespace herd::test {

class ManualExecutor {
 public:
  ManualExecutor() = default;
  ManualExecutor(const ManualExecutor&) = delete;
  ManualExecutor& operator=(const ManualExecutor&) = delete;
  // Destroys the tasks still queued, unrun.
  ~ManualExecutor() { DropAll(); }

  void Schedule(Task task) {
    std::lock_guard<std::mutex> lock(mu_);
    if (refuse_ != nullptr) {
      std::exception_ptr e = std::exchange(refuse_, nullptr);
      std::rethrow_exception(e);  // `task` is destroyed unrun
    }
    tasks_.push_back(std::move(task));
    ++scheduled_;
  }

  // The next Schedule throws `e` (once).
  void RefuseNext(std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(mu_);
    refuse_ = std::move(e);
  }

  size_t Pending() const {
    std::lock_guard<std::mutex> lock(mu_);
    return tasks_.size();
  }
  // Tasks ever accepted.
  size_t Scheduled() const {
    std::lock_guard<std::mutex> lock(mu_);
    return scheduled_;
  }

  // Runs the oldest task on this thread. Returns false iff none was queued.
  bool RunOne() {
    Task t;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (tasks_.empty()) return false;
      t = std::move(tasks_.front());
      tasks_.pop_front();
    }
    std::move(t)();
    return true;
  }

  // Runs tasks until none is queued (tasks may queue more), at most
  // `limit` of them. Returns how many ran.
  size_t RunAll(size_t limit = 10000) {
    size_t n = 0;
    while (n < limit && RunOne()) ++n;
    return n;
  }

  // Destroys every queued task without running it.
  void DropAll() {
    std::deque<Task> dropped;
    {
      std::lock_guard<std::mutex> lock(mu_);
      dropped.swap(tasks_);
    }
  }

 private:
  mutable std::mutex mu_;
  std::deque<Task> tasks_;
  size_t scheduled_ = 0;
  std::exception_ptr refuse_;
};

static_assert(Executor<ManualExecutor>);

}  // namespace herd::test

#endif  // HERD_TESTS_TESTING_MANUAL_EXECUTOR_H_
