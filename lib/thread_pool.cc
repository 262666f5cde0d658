// Copyright 2026 The herd Authors.

#include "herd/thread_pool.h"

#include <stdexcept>

namespace herd {

ThreadPool::ThreadPool(size_t threads, size_t queue_capacity)
    : queue_(queue_capacity) {
  if (threads == 0) {
    throw std::invalid_argument("herd::ThreadPool: threads must be > 0");
  }
  try {
    workers_.reserve(threads);
    for (size_t i = 0; i < threads; ++i) {
      workers_.emplace_back([this] { WorkerLoop(); });
    }
  } catch (...) {
    // Let the workers already started finish, or their join would hang.
    queue_.Close();
    workers_.clear();
    throw;
  }
}

ThreadPool::~ThreadPool() {
  queue_.Close();    // workers drain what is queued, then Pop returns nullopt
  workers_.clear();  // joins
}

void ThreadPool::WorkerLoop() {
  while (std::optional<Task> task = queue_.Pop()) {
    std::move (*task)();
  }
}

}  // namespace herd
