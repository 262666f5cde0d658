// Copyright 2026 The herd Authors.
//
// Java's BlockingQueue TCK (jsr166 BlockingQueueTest, ArrayBlockingQueueTest)
// restated against herd/bounded_queue.h and herd/thread_pool.h, with Close()
// in the role of Thread.interrupt(); Go's timer tests (time/sleep_test.go:
// TestAfterFunc, TestAfterQueuing, TestAfterStop, TestOverflowSleep,
// TestZeroTimer) restated against herd/timer.h; and the duration ends of
// herd/clock.h. Public headers only.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "herd/bounded_queue.h"
#include "herd/clock.h"
#include "herd/errors.h"
#include "herd/executor.h"
#include "herd/thread_pool.h"
#include "herd/timer.h"
#include "tests/conformance/conformance.h"
#include "tests/testing/sync.h"

namespace herd {
namespace {

using conformance::Await;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;
using test::Gate;

constexpr size_t kSize = 20;  // the TCK's SIZE

// The TCK's populatedQueue(n): a full queue of 0 .. n-1.
std::unique_ptr<BoundedQueue<int>> Populated(size_t n) {
  auto q = std::make_unique<BoundedQueue<int>>(n);
  for (size_t i = 0; i < n; ++i) EXPECT_TRUE(q->TryPush(static_cast<int>(i)));
  return q;
}

// ===================== BlockingQueue TCK ====================================

// ArrayBlockingQueueTest.testConstructor1/2: "Throws: std::invalid_argument
// if capacity == 0"; capacity() is what was asked.
TEST(BlockingQueueConformance, Constructor) {
  EXPECT_THROW(BoundedQueue<int>(0), std::invalid_argument);
  BoundedQueue<int> q(kSize);
  EXPECT_EQ(q.capacity(), kSize);
  EXPECT_EQ(q.size(), 0u);
}

// testEmptyFull, testOffer, testRemainingCapacity: TryPush "Appends value if
// there is room now. Returns true iff it was appended".
TEST(BlockingQueueConformance, EmptyFullAndOffer) {
  BoundedQueue<int> q(2);
  EXPECT_EQ(q.size(), 0u);
  EXPECT_TRUE(q.TryPush(1));
  EXPECT_TRUE(q.TryPush(2));
  EXPECT_EQ(q.size(), 2u);
  EXPECT_FALSE(q.TryPush(3));
  EXPECT_EQ(q.size(), 2u);
}

// testPoll, testTake, FIFO: "Removes and returns the oldest element".
TEST(BlockingQueueConformance, PollAndTakeAreFifo) {
  auto q = Populated(kSize);
  for (size_t i = 0; i < kSize; ++i)
    EXPECT_EQ(q->TryPop(), static_cast<int>(i));
  EXPECT_EQ(q->TryPop(), std::nullopt);
  q = Populated(kSize);
  for (size_t i = 0; i < kSize; ++i) EXPECT_EQ(q->Pop(), static_cast<int>(i));
  EXPECT_EQ(q->size(), 0u);
}

// testTimedPoll0 and testTimedOffer with zero: "zero means only if it can be
// done now".
TEST(BlockingQueueConformance, ZeroTimeoutsDoOnlyWhatCanBeDoneNow) {
  auto q = Populated(kSize);
  for (size_t i = 0; i < kSize; ++i) {
    EXPECT_EQ(q->PopFor(nanoseconds(0)), static_cast<int>(i));
  }
  EXPECT_EQ(q->PopFor(nanoseconds(0)), std::nullopt);
  EXPECT_TRUE(q->PushFor(1, seconds(0)));
  q = Populated(2);
  EXPECT_FALSE(q->PushFor(9, nanoseconds(0)));
  EXPECT_EQ(q->size(), 2u);
}

// testTimedPollWithOffer (first half) and testTimedOffer: a timed wait on an
// empty (full) queue gives up after the timeout, not before, and reports
// which way it ended through closed().
TEST(BlockingQueueConformance, TimedPollAndOfferGiveUpAfterTheTimeout) {
  BoundedQueue<int> q(1);
  auto start = steady_clock::now();
  EXPECT_EQ(q.PopFor(milliseconds(20)), std::nullopt);
  EXPECT_GE(steady_clock::now() - start, milliseconds(20));
  EXPECT_FALSE(q.closed());
  ASSERT_TRUE(q.TryPush(1));
  start = steady_clock::now();
  EXPECT_FALSE(q.PushFor(2, milliseconds(20)));
  EXPECT_GE(steady_clock::now() - start, milliseconds(20));
  EXPECT_FALSE(q.closed());
}

// testTimedPollWithOffer (second half) and testPutWithTake: a blocked taker
// gets what is offered; a blocked putter goes through once there is room.
TEST(BlockingQueueConformance, BlockedTakerAndPutterAreReleased) {
  BoundedQueue<int> q(2);
  std::future<std::optional<int>> taker =
      std::async(std::launch::async, [&] { return q.PopFor(hours(1)); });
  EXPECT_TRUE(q.PushFor(0, hours(1)));
  EXPECT_EQ(taker.get(), 0);

  ASSERT_TRUE(q.TryPush(1));
  ASSERT_TRUE(q.TryPush(2));
  std::future<void> putter = std::async(std::launch::async, [&] { q.Push(3); });
  EXPECT_EQ(q.Pop(), 1);
  EXPECT_EQ(q.Pop(), 2);
  EXPECT_EQ(q.Pop(), 3);  // waits for the putter if it has not pushed yet
  putter.get();
}

// testTakeFromEmptyBlocksInterruptibly / testTimedPollFromEmptyBlocks
// Interruptibly, with Close() for interrupt. bounded_queue.h, Close():
// "wakes every blocked producer (who then throws) and every blocked consumer
// (who drains what is left)".
TEST(BlockingQueueConformance, CloseReleasesBlockedTakersAndPutters) {
  BoundedQueue<int> empty(1);
  std::future<std::optional<int>> take =
      std::async(std::launch::async, [&] { return empty.Pop(); });
  std::future<std::optional<int>> poll =
      std::async(std::launch::async, [&] { return empty.PopFor(hours(1)); });
  std::future<std::optional<int>> forever = std::async(
      std::launch::async, [&] { return empty.PopFor(nanoseconds::max()); });
  empty.Close();
  EXPECT_EQ(take.get(), std::nullopt);
  EXPECT_EQ(poll.get(), std::nullopt);
  EXPECT_EQ(forever.get(), std::nullopt);
  EXPECT_TRUE(empty.closed());

  BoundedQueue<int> full(1);
  ASSERT_TRUE(full.TryPush(1));
  std::future<void> put = std::async(std::launch::async, [&] { full.Push(2); });
  std::future<bool> offer =
      std::async(std::launch::async, [&] { return full.PushFor(3, hours(1)); });
  full.Close();
  EXPECT_THROW(put.get(), Closed);
  EXPECT_FALSE(offer.get());
  // "Nothing that was accepted is lost."
  EXPECT_EQ(full.Pop(), 1);
  EXPECT_EQ(full.Pop(), std::nullopt);
}

// testTakeFromEmptyAfterInterrupt: after Close(), producers "get herd::Closed
// (Push) or false (TryPush, PushFor)", with the value "left untouched";
// consumers receive "every element that was already queued, then
// std::nullopt", at once.
TEST(BlockingQueueConformance, AfterCloseProducersFailAndConsumersDrain) {
  BoundedQueue<std::unique_ptr<int>> q(4);
  ASSERT_TRUE(q.TryPush(std::make_unique<int>(1)));
  ASSERT_TRUE(q.TryPush(std::make_unique<int>(2)));
  q.Close();
  q.Close();  // "Idempotent."
  auto v = std::make_unique<int>(3);
  EXPECT_THROW(q.Push(std::move(v)), Closed);
  ASSERT_NE(v, nullptr);
  EXPECT_FALSE(q.TryPush(std::move(v)));
  ASSERT_NE(v, nullptr);
  EXPECT_FALSE(q.PushFor(std::move(v), hours(1)));
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(*v, 3);
  EXPECT_EQ(**q.Pop(), 1);
  EXPECT_EQ(**q.PopFor(hours::max()), 2);
  EXPECT_EQ(q.Pop(), std::nullopt);
  EXPECT_EQ(q.PopFor(hours(1)), std::nullopt);
  EXPECT_EQ(q.TryPop(), std::nullopt);
}

// A full queue's PushFor with a value it refuses leaves it untouched
// (TCK testOffer on a full queue, with a move-only element).
TEST(BlockingQueueConformance, RefusedPushLeavesTheValueUntouched) {
  BoundedQueue<std::unique_ptr<int>> q(1);
  ASSERT_TRUE(q.TryPush(std::make_unique<int>(1)));
  auto v = std::make_unique<int>(2);
  EXPECT_FALSE(q.TryPush(std::move(v)));
  EXPECT_NE(v, nullptr);
  EXPECT_FALSE(q.PushFor(std::move(v), nanoseconds(0)));
  EXPECT_NE(v, nullptr);
  EXPECT_FALSE(q.PushFor(std::move(v), milliseconds(1)));
  EXPECT_NE(v, nullptr);
}

// bounded_queue.h: "duration::max(), or any timeout past the clock's range,
// means no limit"; "negative or NaN timeouts are rejected with
// std::invalid_argument".
TEST(BlockingQueueConformance, TimeoutsAtTheEndsOfTheRange) {
  BoundedQueue<int> q(1);
  std::future<std::optional<int>> a = std::async(
      std::launch::async, [&] { return q.PopFor(nanoseconds::max()); });
  std::future<std::optional<int>> b =
      std::async(std::launch::async, [&] { return q.PopFor(hours::max()); });
  EXPECT_TRUE(q.PushFor(1, nanoseconds::max()));
  EXPECT_TRUE(q.PushFor(2, hours::max()));
  std::optional<int> x = a.get(), y = b.get();
  ASSERT_TRUE(x && y);
  EXPECT_EQ(*x + *y, 3);
  EXPECT_THROW(q.PopFor(nanoseconds(-1)), std::invalid_argument);
  EXPECT_THROW(q.PushFor(1, nanoseconds(-1)), std::invalid_argument);
  EXPECT_THROW(q.PopFor(std::chrono::duration<double>(
                   std::numeric_limits<double>::quiet_NaN())),
               std::invalid_argument);
  EXPECT_EQ(q.size(), 0u);
}

// An element whose move constructor throws while `armed` is set (the tests
// that use it run on one thread).
struct Fragile {
  explicit Fragile(int v) : v(v) {}
  Fragile(Fragile&& o) : v(o.v) {
    if (armed) throw std::runtime_error("move");
  }
  Fragile& operator=(Fragile&&) = default;
  int v;
  static inline bool armed = false;
};

// bounded_queue.h, Exceptions: "a pop whose move of the element out of the
// queue throws: the element stays first"; a push whose move throws "leaves
// the queue as it was".
TEST(BlockingQueueConformance, ThrowingMovesLeaveTheQueueAsItWas) {
  BoundedQueue<Fragile> q(3);
  ASSERT_TRUE(q.TryPush(Fragile(1)));
  ASSERT_TRUE(q.TryPush(Fragile(2)));
  Fragile::armed = true;
  EXPECT_THROW(q.TryPush(Fragile(3)), std::runtime_error);
  EXPECT_THROW(q.Push(Fragile(3)), std::runtime_error);
  EXPECT_EQ(q.size(), 2u);
  EXPECT_THROW(q.TryPop(), std::runtime_error);
  EXPECT_THROW(q.PopFor(nanoseconds(0)), std::runtime_error);
  EXPECT_EQ(q.size(), 2u);
  Fragile::armed = false;
  EXPECT_EQ(q.TryPop()->v, 1);  // "the element stays first"
  EXPECT_EQ(q.Pop()->v, 2);
}

// Producers and consumers through one queue: every element arrives once, in
// each producer's order (TCK testBlockingPutAndTake with several threads).
TEST(BlockingQueueConformance, ManyProducersAndConsumersLoseNothing) {
  constexpr int kProducers = 3, kPerProducer = 500;
  BoundedQueue<int> q(4);
  std::vector<std::vector<int>> seen(kProducers);
  std::mutex seen_mu;
  {
    std::vector<std::jthread> consumers;
    for (int c = 0; c < 2; ++c) {
      consumers.emplace_back([&] {
        while (std::optional<int> v = q.Pop()) {
          std::lock_guard<std::mutex> lock(seen_mu);
          seen[*v / kPerProducer].push_back(*v % kPerProducer);
        }
      });
    }
    {
      std::vector<std::jthread> producers;
      for (int p = 0; p < kProducers; ++p) {
        producers.emplace_back([&, p] {
          for (int i = 0; i < kPerProducer; ++i) q.Push(p * kPerProducer + i);
        });
      }
    }
    q.Close();
  }
  for (int p = 0; p < kProducers; ++p) {
    ASSERT_EQ(seen[p].size(), static_cast<size_t>(kPerProducer));
  }
}

// thread_pool.h: "the destructor finishes every queued task, then joins";
// TrySchedule "Returns true iff it was queued".
TEST(ThreadPoolConformance, DestructorRunsEveryQueuedTask) {
  std::atomic<int> ran{0};
  Gate started, hold;
  {
    ThreadPool pool(1, /*queue_capacity=*/2);
    pool.Schedule([&] {
      started.Open();
      hold.Wait();
    });
    started.Wait();  // the worker has taken it: the queue is empty
    EXPECT_TRUE(pool.TrySchedule([&] { ++ran; }));
    EXPECT_TRUE(pool.TrySchedule([&] { ++ran; }));
    EXPECT_FALSE(pool.TrySchedule([&] { ++ran; }));  // full
    hold.Open();
  }
  EXPECT_EQ(ran.load(), 2);
  EXPECT_THROW(ThreadPool(0), std::invalid_argument);
  EXPECT_THROW(ThreadPool(1, 0), std::invalid_argument);
  static_assert(Executor<ThreadPool>);
}

// ===================== Go timers ============================================

// TestAfterFunc and TestZeroTimer: a zero or negative delay runs at once;
// timer.h "a deadline that has passed (a zero or negative delay) runs at
// once".
TEST(TimerConformance, ZeroAndNegativeDelaysRunAtOnce) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  std::promise<void> zero, negative, past;
  timer.RunAfter(nanoseconds(0), [&] { zero.set_value(); });
  timer.RunAfter(-hours(1), [&] { negative.set_value(); });
  timer.RunAt(Clock::time_point::min(), [&] { past.set_value(); });
  zero.get_future().get();
  negative.get_future().get();
  past.get_future().get();
  EXPECT_EQ(timer.Pending(), 0u);
}

// TestAfterQueuing: callbacks run in deadline order, "ties in the order they
// were scheduled", never before their deadline.
TEST(TimerConformance, CallbacksRunInDeadlineOrderTiesInScheduleOrder) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  std::mutex mu;
  std::vector<int> order;
  std::promise<void> done;
  const int delays_ms[] = {30, 10, 20, 10, 0, 20};
  for (int i = 0; i < 6; ++i) {
    timer.RunAfter(milliseconds(delays_ms[i]), [&, i] {
      std::lock_guard<std::mutex> lock(mu);
      order.push_back(i);
      if (order.size() == 6) done.set_value();
    });
  }
  clock.Advance(milliseconds(30));
  done.get_future().get();
  EXPECT_EQ(order, (std::vector<int>{4, 1, 3, 2, 5, 0}));
}

// timer.h: callbacks run "never before Clock::Now() reaches their deadline".
// A marker one tick earlier runs first; when it has run, the later callback
// has not.
TEST(TimerConformance, NeverFiresATickEarly) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  std::atomic<bool> fired{false};
  std::promise<void> marker, target;
  timer.RunAfter(seconds(1), [&] {
    fired = true;
    target.set_value();
  });
  timer.RunAfter(seconds(1) - nanoseconds(1), [&] { marker.set_value(); });
  clock.Advance(seconds(1) - nanoseconds(1));
  marker.get_future().get();
  EXPECT_FALSE(fired.load());
  EXPECT_EQ(timer.Pending(), 1u);
  clock.Advance(nanoseconds(1));
  target.get_future().get();
  EXPECT_TRUE(fired.load());
}

// TestAfterStop (Stop reports whether it prevented the call). timer.h,
// Cancel: "Returns true iff this call prevented it from running; false if it
// already ran, is running now, was already cancelled, or never existed. After
// a true return the callback will never run."
TEST(TimerConformance, CancelReportsWhetherItPreventedTheCall) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  std::atomic<int> runs{0};
  std::promise<void> b_ran;
  const Timer::Id a = timer.RunAfter(seconds(1), [&] { ++runs; });
  const Timer::Id b = timer.RunAfter(seconds(2), [&] {
    ++runs;
    b_ran.set_value();
  });
  EXPECT_NE(a, 0u);
  EXPECT_NE(a, b);
  EXPECT_TRUE(timer.Cancel(a));
  EXPECT_FALSE(timer.Cancel(a));         // already cancelled
  EXPECT_FALSE(timer.Cancel(b + 1000));  // never existed
  EXPECT_FALSE(timer.Cancel(0));
  std::promise<void> ran;
  const Timer::Id c = timer.RunAfter(seconds(1), [&] { ran.set_value(); });
  clock.Advance(seconds(2));
  ran.get_future().get();
  // Pending() stops counting b once it starts, before it has run: wait for
  // b itself. (Callbacks run one at a time in deadline order, so a, due
  // before b, can no longer run once b has.)
  b_ran.get_future().get();
  EXPECT_EQ(timer.Pending(), 0u);
  EXPECT_FALSE(timer.Cancel(c));  // already ran
  EXPECT_FALSE(timer.Cancel(b));
  EXPECT_EQ(runs.load(), 1);  // b, not a
}

// timer.h, Cancel: false for a callback that "is running now"; and Cancel
// may be called from inside a callback ("including from inside a callback").
TEST(TimerConformance, CancelWhileRunningAndFromACallback) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  Gate running, finish;
  std::atomic<bool> later_ran{false};
  Timer::Id later = 0;
  std::promise<bool> cancelled_later;
  const Timer::Id first = timer.RunAfter(seconds(1), [&] {
    running.Open();
    finish.Wait();
    cancelled_later.set_value(timer.Cancel(later));
  });
  later = timer.RunAfter(seconds(2), [&] { later_ran = true; });
  clock.Advance(seconds(2));
  running.Wait();
  EXPECT_FALSE(timer.Cancel(first));  // running now
  finish.Open();
  EXPECT_TRUE(cancelled_later.get_future().get());
  ASSERT_TRUE(Await([&] { return timer.Pending() == 0; }));
  EXPECT_FALSE(later_ran.load());
}

// TestOverflowSleep: a maximal delay never fires. timer.h: "a delay whose
// deadline lies past the clock's range (duration::max()) saturates at
// time_point::max(), which the clock never reaches: that callback waits until
// Cancel() or the destructor destroys it unrun".
TEST(TimerConformance, DurationMaxNeverFiresAndIsDestroyedUnrun) {
  FakeClock clock;
  std::atomic<bool> ran{false};
  auto alive = std::make_shared<int>(0);
  std::weak_ptr<int> watch = alive;
  {
    Timer timer({.clock = &clock});
    timer.RunAfter(Clock::duration::max(), [&] { ran = true; });
    timer.RunAfter(hours::max(), [&] { ran = true; });
    timer.RunAt(Clock::time_point::max(),
                [&, keep = std::move(alive)] { ran = true; });
    std::promise<void> marker;
    timer.RunAfter(hours(24 * 365 * 100), [&] { marker.set_value(); });
    clock.Advance(Clock::duration::max());  // FakeClock::kEndOfTime
    marker.get_future().get();
    EXPECT_EQ(timer.Pending(), 3u);
    EXPECT_FALSE(ran.load());
  }
  EXPECT_FALSE(ran.load());
  EXPECT_TRUE(watch.expired());  // destroyed by ~Timer, unrun
}

// timer.h, RunAt: "Throws: std::invalid_argument if callback is empty"; "Ids
// are never reused by one Timer; 0 is never returned"; RunAfter with a NaN
// delay throws.
TEST(TimerConformance, InvalidArgumentsAndIds) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  EXPECT_THROW(timer.RunAt(clock.Now(), Timer::Callback()),
               std::invalid_argument);
  EXPECT_THROW(timer.RunAfter(std::chrono::duration<double>(
                                  std::numeric_limits<double>::quiet_NaN()),
                              [] {}),
               std::invalid_argument);
  EXPECT_EQ(timer.Pending(), 0u);
  std::vector<Timer::Id> ids;
  for (int i = 0; i < 100; ++i) {
    ids.push_back(timer.RunAfter(hours(1), [] {}));
    EXPECT_NE(ids.back(), 0u);
    if (i % 2 == 0) timer.Cancel(ids.back());
  }
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(std::unique(ids.begin(), ids.end()), ids.end());
}

// TestAfterStress / TestTimerStopStress, deterministically: of 1,000 timers
// with scattered deadlines, 900 cancelled in a scattered order, exactly the
// other 100 run, in deadline order, ties in schedule order (timer.h's heap
// compaction must keep both).
TEST(TimerConformance, ManyCancelledTimersLeaveExactlyTheOthers) {
  FakeClock clock;
  Timer timer({.clock = &clock});
  std::mutex mu;
  std::vector<int> order;
  std::promise<void> done;
  constexpr int kTimers = 1000, kKept = 100;
  std::vector<Timer::Id> ids(kTimers);
  std::vector<int> delay_ms(kTimers);
  for (int i = 0; i < kTimers; ++i) {
    delay_ms[i] = 1 + (i * 7919) % 500;
    ids[i] = timer.RunAfter(milliseconds(delay_ms[i]), [&, i] {
      std::lock_guard<std::mutex> lock(mu);
      order.push_back(i);
      if (order.size() == kKept) done.set_value();
    });
  }
  std::vector<int> kept;
  for (int k = 0; k < kTimers; ++k) {
    const int i = (k * 613) % kTimers;  // a permutation (613 is prime)
    if (i % (kTimers / kKept) == 0) {
      kept.push_back(i);
    } else {
      EXPECT_TRUE(timer.Cancel(ids[i]));
    }
  }
  EXPECT_EQ(timer.Pending(), static_cast<size_t>(kKept));
  clock.Advance(milliseconds(500));
  done.get_future().get();
  std::sort(kept.begin(), kept.end(), [&](int a, int b) {
    return delay_ms[a] != delay_ms[b] ? delay_ms[a] < delay_ms[b] : a < b;
  });
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(order, kept);
}

// timer.h, ~Timer: "Cancels every pending callback (destroying it without
// running it), waits for a running callback to return, and joins"; RunAt
// from inside a callback ("every member function may be called
// concurrently, including from inside a callback").
TEST(TimerConformance, DestructorWaitsForTheRunningCallbackAndDropsTheRest) {
  FakeClock clock;
  auto timer = std::make_unique<Timer>(TimerOptions{.clock = &clock});
  Gate running, finish;
  std::atomic<bool> returned{false}, nested_ran{false}, later_ran{false};
  std::promise<void> nested_done;
  timer->RunAfter(seconds(0), [&] {
    timer->RunAfter(seconds(0), [&] {
      nested_ran = true;
      nested_done.set_value();
    });
  });
  nested_done.get_future().get();
  EXPECT_TRUE(nested_ran.load());
  timer->RunAfter(seconds(1), [&] {
    running.Open();
    finish.Wait();
    returned = true;
  });
  auto alive = std::make_shared<int>(0);
  std::weak_ptr<int> watch = alive;
  timer->RunAfter(seconds(2),
                  [&, keep = std::move(alive)] { later_ran = true; });
  clock.Advance(seconds(1));
  running.Wait();
  std::future<void> destroyed =
      std::async(std::launch::async, [&] { timer.reset(); });
  finish.Open();
  destroyed.get();
  EXPECT_TRUE(returned.load());
  EXPECT_FALSE(later_ran.load());
  EXPECT_TRUE(watch.expired());
}

// ===================== Clock ================================================

// clock.h: SleepUntil "Returns true iff the deadline was reached (at once,
// even with stop stopped, if it already has been). time_point::max() is never
// reached: only stop ends that sleep, and then it returns false"; SleepFor:
// "A zero or negative d returns true at once"; NaN throws.
TEST(ClockConformance, FakeClockSleepsAtTheEndsOfTime) {
  FakeClock clock;
  std::stop_source stopped;
  stopped.request_stop();
  EXPECT_TRUE(clock.SleepUntil(clock.Now(), stopped.get_token()));
  EXPECT_TRUE(clock.SleepFor(nanoseconds(0)));
  EXPECT_TRUE(clock.SleepFor(-hours(1)));
  EXPECT_FALSE(clock.SleepFor(seconds(1), stopped.get_token()));
  EXPECT_THROW(clock.SleepFor(std::chrono::duration<double>(
                   std::numeric_limits<double>::quiet_NaN())),
               std::invalid_argument);
  std::stop_source stop;
  std::future<bool> forever = std::async(std::launch::async, [&] {
    return clock.SleepFor(Clock::duration::max(), stop.get_token());
  });
  clock.WaitForSleepers(1);
  clock.Advance(Clock::duration::max());
  EXPECT_EQ(clock.Now(), FakeClock::kEndOfTime);
  stop.request_stop();
  EXPECT_FALSE(forever.get());
  EXPECT_THROW(clock.Advance(-nanoseconds(1)), std::invalid_argument);
  clock.AdvanceTo(Clock::time_point::min());  // "no-op if not after Now()"
  EXPECT_EQ(clock.Now(), FakeClock::kEndOfTime);
}

// The same for the steady clock: a sleep to time_point::max() (duration::max
// from now) is ended only by the stop, and then returns false.
TEST(ClockConformance, SteadyClockSleepWithoutLimitEndsOnlyByStop) {
  const Clock& clock = Clock::Steady();
  std::stop_source stop;
  std::future<bool> forever = std::async(std::launch::async, [&] {
    return clock.SleepFor(Clock::duration::max(), stop.get_token());
  });
  std::future<bool> hours_max = std::async(std::launch::async, [&] {
    return clock.SleepFor(hours::max(), stop.get_token());
  });
  std::future<bool> until_max = std::async(std::launch::async, [&] {
    return clock.SleepUntil(Clock::time_point::max(), stop.get_token());
  });
  stop.request_stop();
  EXPECT_FALSE(forever.get());
  EXPECT_FALSE(hours_max.get());
  EXPECT_FALSE(until_max.get());
  std::stop_source stopped;
  stopped.request_stop();
  EXPECT_TRUE(clock.SleepUntil(clock.Now(), stopped.get_token()));
}

}  // namespace
}  // namespace herd
