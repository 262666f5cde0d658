// Copyright 2026 The herd Authors.
//
// herd/thread_pool.h: a fixed set of worker threads fed by a BoundedQueue.
//
//   herd::ThreadPool  Schedule(callable) runs it on one of the workers; the
//                     destructor finishes every queued task, then joins.
//
// ThreadPool is the executor herd ships for Share::DoAsync and
// LoadingCache's refreshes; any type with a Schedule(callable) member works
// there too.
//
// Example:
//
//   herd::ThreadPool pool(4);
//   pool.Schedule([] { Work(); });
//   // ~ThreadPool runs what is queued, then joins the workers.
//
// Thread safety: ThreadPool has internal synchronization; Schedule may be
// called concurrently from any thread, including from a task of the pool.
//
// Memory ordering: everything a thread did before Schedule(f) is visible to
// f when it runs.
//
// Tasks must not throw: an exception escaping a task calls std::terminate,
// as it would on a std::thread.

#ifndef HERD_THREAD_POOL_H_
#define HERD_THREAD_POOL_H_

#include <cstddef>
#include <limits>
#include <thread>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "herd/bounded_queue.h"
#include "herd/executor.h"

namespace herd {

class ThreadPool {
 public:
  using Task = herd::Task;

  // Starts `threads` workers. With the default capacity the queue is, in
  // effect, unbounded and Schedule never blocks; with a smaller one,
  // Schedule blocks while `queue_capacity` tasks are waiting.
  // REQUIRES: threads > 0, queue_capacity > 0.
  // Throws: std::invalid_argument otherwise.
  explicit ThreadPool(
      size_t threads,
      size_t queue_capacity = std::numeric_limits<size_t>::max());
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Runs every task already scheduled, then joins the workers. Once
  // destruction starts, Schedule throws herd::Closed, from tasks that are
  // still draining too.
  ~ThreadPool();

  // Queues `task` to run on a worker, blocking while the queue is full.
  // Throws: herd::Closed once the pool is being destroyed.
  template <class F>
  void Schedule(F&& task) {
    queue_.Push(Task(std::forward<F>(task)));
  }

  // Queues `task` if there is room. Returns true iff it was queued.
  template <class F>
  bool TrySchedule(F&& task) {
    Task t(std::forward<F>(task));
    return queue_.TryPush(std::move(t));
  }

  size_t size() const { return workers_.size(); }

 private:
  void WorkerLoop();

  BoundedQueue<Task> queue_;
  std::vector<std::jthread> workers_;
};

static_assert(Executor<ThreadPool>);

}  // namespace herd

#endif  // HERD_THREAD_POOL_H_
