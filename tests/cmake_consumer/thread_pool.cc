// Copyright 2026 The herd Authors.
//
// herd::thread_pool alone: ThreadPool (lib/thread_pool.cc) and BoundedQueue.

#include <future>
#include <optional>

#include "consumer.h"
#include "herd/bounded_queue.h"
#include "herd/thread_pool.h"

int main() {
  herd::BoundedQueue<int> queue(/*capacity=*/2);
  queue.Push(1);
  consumer::Check(queue.TryPush(2), "TryPush with room");
  consumer::Check(!queue.TryPush(3), "TryPush on a full queue");
  queue.Close();
  consumer::Check(queue.Pop() == std::optional<int>(1), "Pop in order");
  consumer::Check(queue.Pop() == std::optional<int>(2), "Pop drains");
  consumer::Check(!queue.Pop().has_value(), "Pop on a closed, drained queue");

  std::promise<int> result;
  {
    herd::ThreadPool pool(2);
    pool.Schedule([&result] { result.set_value(7); });
  }
  consumer::Check(result.get_future().get() == 7, "ThreadPool ran the task");
  return consumer::Finish("herd_consumer_thread_pool");
}
