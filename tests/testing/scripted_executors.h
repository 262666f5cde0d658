// Copyright 2026 The herd Authors.
//
// tests/testing/scripted_executors.h: executors (herd/executor.h) that each
// do one thing with the task they are given, for tests of what a component
// does with each executor behaviour.
//
//   InlineExecutor         runs the task at once, on the calling thread
//   RefusingExecutor       throws from Schedule without touching the task
//   RunThenThrowExecutor   runs the task, then throws
//   KeepThenThrowExecutor  keeps the task, then throws
//   DroppingExecutor       destroys the task unrun and returns normally
//   QueueExecutor          keeps every task until the test runs or drops it
//
// Single-threaded: none of them synchronizes; the test drives them.

#ifndef HERD_TESTS_TESTING_SCRIPTED_EXECUTORS_H_
#define HERD_TESTS_TESTING_SCRIPTED_EXECUTORS_H_

#include <cstddef>
#include <deque>
#include <stdexcept>
#include <utility>
#include <vector>

#include "herd/errors.h"
#include "herd/executor.h"

namespace herd::test {

struct InlineExecutor {
  void Schedule(Task task) { std::move(task)(); }
};

struct RefusingExecutor {
  void Schedule(Task) { throw Closed("RefusingExecutor: shut down"); }
};

struct RunThenThrowExecutor {
  void Schedule(Task task) {
    std::move(task)();
    throw std::runtime_error("RunThenThrowExecutor: ran, then threw");
  }
};

struct KeepThenThrowExecutor {
  void Schedule(Task task) {
    kept.push_back(std::move(task));
    throw std::runtime_error("KeepThenThrowExecutor: kept, then threw");
  }
  std::vector<Task> kept;
};

struct DroppingExecutor {
  void Schedule(Task task) { Task dropped = std::move(task); }
};

class QueueExecutor {
 public:
  void Schedule(Task task) { tasks_.push_back(std::move(task)); }

  size_t size() const { return tasks_.size(); }

  // Runs the oldest task, or destroys it unrun.
  void RunNext() { std::move(Pop())(); }
  void DropNext() { Pop(); }

  // Runs the oldest task but keeps the (spent) Task object alive.
  void RunNextAndKeep() {
    kept_.push_back(Pop());
    std::move(kept_.back())();
  }
  void DestroyKept() { kept_.clear(); }

  void RunAll() {
    while (!tasks_.empty()) RunNext();
  }
  void DropAll() {
    while (!tasks_.empty()) DropNext();
  }

 private:
  Task Pop() {
    Task task = std::move(tasks_.front());
    tasks_.pop_front();
    return task;
  }

  std::deque<Task> tasks_;
  std::vector<Task> kept_;
};

}  // namespace herd::test

#endif  // HERD_TESTS_TESTING_SCRIPTED_EXECUTORS_H_
