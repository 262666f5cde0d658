// Copyright 2026 The herd Authors.
//
// Tests herd/bounded_queue.h: FIFO order, blocking at the capacity, Close()
// without losing accepted elements, PushFor / PopFor at zero and max().
// Each test's name states the contract it checks; a comment quotes the
// header where the name cannot say it all.

#include "herd/bounded_queue.h"

#include <chrono>
#include <cmath>
#include <future>
#include <latch>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "herd/errors.h"
#include "tests/testing/thread_state.h"

namespace herd {
namespace {

TEST(BoundedQueue, PopsInFifoOrder) {
  BoundedQueue<int> q(3);
  q.Push(1);
  q.Push(2);
  q.Push(3);
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.Pop(), 1);
  EXPECT_EQ(q.Pop(), 2);
  EXPECT_EQ(q.TryPop(), 3);
  EXPECT_EQ(q.TryPop(), std::nullopt);
}

TEST(BoundedQueue, RejectsZeroCapacity) {
  EXPECT_THROW(BoundedQueue<int>(0), std::invalid_argument);
}

TEST(BoundedQueue, TryPushFailsWhenFullAndKeepsTheValue) {
  BoundedQueue<std::unique_ptr<int>> q(1);
  EXPECT_TRUE(q.TryPush(std::make_unique<int>(1)));
  auto v = std::make_unique<int>(2);
  EXPECT_FALSE(q.TryPush(std::move(v)));
  ASSERT_NE(v, nullptr);  // not moved from: nothing lost
  EXPECT_EQ(*v, 2);
}

TEST(BoundedQueue, PushBlocksWhileFullUntilAPop) {
  BoundedQueue<int> q(1);
  q.Push(1);
  std::latch about_to_push(1);
  std::thread producer([&] {
    about_to_push.count_down();
    q.Push(2);  // blocks until the Pop below makes room
  });
  about_to_push.wait();
  EXPECT_EQ(q.Pop(), 1);
  producer.join();
  EXPECT_EQ(q.Pop(), 2);
}

TEST(BoundedQueue, PopBlocksWhileEmptyUntilAPush) {
  BoundedQueue<int> q(1);
  std::optional<int> got;
  std::thread consumer([&] { got = q.Pop(); });
  q.Push(7);
  consumer.join();
  EXPECT_EQ(got, 7);
}

TEST(BoundedQueue, CloseLetsConsumersDrainThenEnds) {
  BoundedQueue<int> q(4);
  q.Push(1);
  q.Push(2);
  q.Close();
  EXPECT_TRUE(q.closed());
  EXPECT_THROW(q.Push(3), Closed);
  EXPECT_FALSE(q.TryPush(3));
  EXPECT_EQ(q.Pop(), 1);
  EXPECT_EQ(q.Pop(), 2);
  EXPECT_EQ(q.Pop(), std::nullopt);
  EXPECT_EQ(q.PopFor(std::chrono::hours(1)), std::nullopt);  // no wait
}

TEST(BoundedQueue, CloseWakesBlockedConsumersAndProducers) {
  BoundedQueue<int> empty(1);
  BoundedQueue<int> full(1);
  full.Push(0);
  std::latch started(2);
  std::optional<int> popped = 99;
  bool producer_closed = false;
  std::thread consumer([&] {
    started.count_down();
    popped = empty.Pop();
  });
  std::thread producer([&] {
    started.count_down();
    try {
      full.Push(1);
    } catch (const Closed&) {
      producer_closed = true;
    }
  });
  started.wait();
  // Whether each thread is already blocked or about to block, Close ends
  // its wait: the closed flag is checked under the queue's lock.
  empty.Close();
  full.Close();
  consumer.join();
  producer.join();
  EXPECT_EQ(popped, std::nullopt);
  EXPECT_TRUE(producer_closed);
  EXPECT_EQ(full.Pop(), 0);  // accepted before Close: still delivered
}

TEST(BoundedQueue, PopForTimesOutOnEmptyQueue) {
  BoundedQueue<int> q(1);
  EXPECT_EQ(q.PopFor(std::chrono::milliseconds(1)), std::nullopt);
  EXPECT_FALSE(q.closed());
  q.Push(5);
  EXPECT_EQ(q.PopFor(std::chrono::milliseconds(0)), 5);
}

// Runs `call` on its own thread; returns once that thread is blocked in the
// kernel (inside the queue's wait) or has finished, with its result.
template <class R>
struct Blocked {
  std::future<R> result;
  std::jthread thread;
};
template <class R, class F>
Blocked<R> StartAndAwaitBlocked(F call) {
  std::promise<pid_t> tid;
  std::promise<R> promise;
  Blocked<R> b{promise.get_future(), {}};
  std::future<pid_t> thread_id = tid.get_future();
  b.thread = std::jthread([call, &tid, promise = std::move(promise)]() mutable {
    tid.set_value(test::ThisThreadId());
    promise.set_value(call());
  });
  test::AwaitAsleep(thread_id.get(), [&] {
    return b.result.wait_for(std::chrono::seconds(0)) ==
           std::future_status::ready;
  });
  return b;
}

// bounded_queue.h: "duration::max(), or any timeout past the clock's range,
// means no limit": PopFor waits for the element however long it takes.
TEST(BoundedQueue, PopForDurationMaxWaitsForAnElement) {
  BoundedQueue<int> q(1);
  auto nanos = StartAndAwaitBlocked<std::optional<int>>(
      [&] { return q.PopFor(std::chrono::nanoseconds::max()); });
  q.Push(5);
  EXPECT_EQ(nanos.result.get(), 5);
  auto hours = StartAndAwaitBlocked<std::optional<int>>(
      [&] { return q.PopFor(std::chrono::hours::max()); });
  q.Push(6);
  EXPECT_EQ(hours.result.get(), 6);
  auto closed = StartAndAwaitBlocked<std::optional<int>>(
      [&] { return q.PopFor(std::chrono::nanoseconds::max()); });
  q.Close();
  EXPECT_EQ(closed.result.get(), std::nullopt);
}

// bounded_queue.h: PushFor: waits up to the timeout while full; max: no
// limit; false (value untouched) when closed.
TEST(BoundedQueue, PushForDurationMaxWaitsForRoom) {
  BoundedQueue<std::unique_ptr<int>> q(1);
  q.Push(std::make_unique<int>(1));
  auto pushed = StartAndAwaitBlocked<bool>([&] {
    return q.PushFor(std::make_unique<int>(2), std::chrono::hours::max());
  });
  EXPECT_EQ(*q.Pop().value(), 1);
  EXPECT_TRUE(pushed.result.get());
  EXPECT_EQ(*q.Pop().value(), 2);
  q.Push(std::make_unique<int>(3));
  auto refused = StartAndAwaitBlocked<bool>([&] {
    auto value = std::make_unique<int>(4);
    const bool ok =
        q.PushFor(std::move(value), std::chrono::nanoseconds::max());
    return !ok && value != nullptr && *value == 4;  // untouched
  });
  q.Close();
  EXPECT_TRUE(refused.result.get());
}

// bounded_queue.h: "zero means only if it can be done now"; negative and
// NaN are rejected.
TEST(BoundedQueue, ZeroTimeoutsDoOnlyWhatCanBeDoneNow) {
  BoundedQueue<int> q(1);
  EXPECT_EQ(q.PopFor(std::chrono::nanoseconds::zero()), std::nullopt);
  EXPECT_TRUE(q.PushFor(1, std::chrono::nanoseconds::zero()));
  int value = 2;
  EXPECT_FALSE(q.PushFor(std::move(value), std::chrono::hours::zero()));
  EXPECT_EQ(q.PopFor(std::chrono::hours::zero()), 1);
  EXPECT_THROW(q.PopFor(-std::chrono::milliseconds(1)), std::invalid_argument);
  EXPECT_THROW(q.PushFor(3, -std::chrono::milliseconds(1)),
               std::invalid_argument);
  EXPECT_THROW(q.PopFor(std::chrono::duration<double>(std::nan(""))),
               std::invalid_argument);
  EXPECT_EQ(q.size(), 0u);
  q.Close();
  EXPECT_FALSE(q.PushFor(4, std::chrono::hours(1)));  // closed: at once
}

TEST(BoundedQueue, ManyProducersAndConsumersLoseNothing) {
  BoundedQueue<int> q(8);
  constexpr int kProducers = 4, kConsumers = 4, kPerProducer = 2000;
  std::vector<std::thread> threads;
  std::vector<long long> sums(kConsumers, 0);
  std::vector<int> counts(kConsumers, 0);
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&, c] {
      while (auto v = q.Pop()) {
        sums[c] += *v;
        ++counts[c];
      }
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&] {
      for (int i = 1; i <= kPerProducer; ++i) q.Push(i);
    });
  }
  for (auto& t : producers) t.join();
  q.Close();
  for (auto& t : threads) t.join();
  long long sum = 0;
  int count = 0;
  for (int c = 0; c < kConsumers; ++c) {
    sum += sums[c];
    count += counts[c];
  }
  EXPECT_EQ(count, kProducers * kPerProducer);
  EXPECT_EQ(sum, 1LL * kProducers * kPerProducer * (kPerProducer + 1) / 2);
}

}  // namespace
}  // namespace herd
