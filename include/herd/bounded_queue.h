// Copyright 2026 The herd Authors.
//
// herd/bounded_queue.h: a blocking multi-producer, multi-consumer FIFO queue
// with a fixed capacity and an explicit end.
//
//   herd::BoundedQueue<T>  Push blocks while full, Pop blocks while empty
//                          (Try* never block, *For wait up to a timeout);
//                          Close() ends the stream without sentinel values.
//
// Example:
//
//   herd::BoundedQueue<Request> queue(/*capacity=*/1024);
//   // producer                         // consumer
//   queue.Push(std::move(request));     while (auto r = queue.Pop()) Serve(*r);
//   queue.Close();                      // Pop() returns nullopt once drained
//
// Thread safety: BoundedQueue has internal synchronization and may be safely
// accessed concurrently from multiple threads.
//
// Memory ordering: everything a producer did before Push(x) is visible to the
// consumer after the Pop() that returns x.
//
// After Close(), producers get herd::Closed (Push) or false (TryPush,
// PushFor), and consumers receive every element that was already queued,
// then std::nullopt. Nothing that was accepted is lost.
//
// Timeouts (PopFor, PushFor) are real time, std::chrono::steady_clock, any
// std::chrono::duration: zero means "only if it can be done now";
// duration::max(), or any timeout past the clock's range, means no limit
// (the call behaves as Pop() / Push() that returns false once closed);
// negative or NaN timeouts are rejected with std::invalid_argument.
//
// Exceptions: a push whose allocation or T move throws leaves the queue as
// it was (std::deque's push_back guarantee), and so does a pop whose move
// of the element out of the queue throws: the element stays first.
//
// No call takes a stop token or a herd::Clock: Close() is what ends every
// wait early, and timeouts are real time.

#ifndef HERD_BOUNDED_QUEUE_H_
#define HERD_BOUNDED_QUEUE_H_

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <optional>
#include <stdexcept>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "herd/errors.h"
#include "herd/internal/mutex.h"
#include "herd/internal/time.h"

namespace herd {

template <class T>
class BoundedQueue {
 public:
  // REQUIRES: capacity > 0.
  // Throws: std::invalid_argument if capacity == 0.
  explicit BoundedQueue(size_t capacity) : capacity_(capacity) {
    if (capacity == 0) {
      throw std::invalid_argument("herd::BoundedQueue: capacity must be > 0");
    }
  }
  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;

  // Appends `value`, blocking while the queue is full.
  // Throws: herd::Closed if the queue is closed (before or while waiting);
  // `value` is then left untouched.
  void Push(T&& value) ABSL_LOCKS_EXCLUDED(mu_) {
    internal::MutexLock lock(&mu_);
    while (!closed_ && items_.size() >= capacity_) {
      internal::Wait(not_full_, mu_);
    }
    if (closed_) throw Closed("herd::BoundedQueue: Push on a closed queue");
    items_.push_back(std::move(value));
    not_empty_.notify_one();
  }
  void Push(const T& value) ABSL_LOCKS_EXCLUDED(mu_) { Push(T(value)); }

  // Appends `value` if there is room now. Returns true iff it was appended;
  // on false (full or closed) `value` is left untouched.
  bool TryPush(T&& value) ABSL_LOCKS_EXCLUDED(mu_) {
    internal::MutexLock lock(&mu_);
    if (closed_ || items_.size() >= capacity_) return false;
    items_.push_back(std::move(value));
    not_empty_.notify_one();
    return true;
  }

  // Removes and returns the oldest element, blocking while the queue is
  // empty. Returns std::nullopt once the queue is closed and drained.
  std::optional<T> Pop() ABSL_LOCKS_EXCLUDED(mu_) {
    internal::MutexLock lock(&mu_);
    while (!closed_ && items_.empty()) internal::Wait(not_empty_, mu_);
    return TakeLocked();
  }

  // Appends `value`, waiting up to `timeout` (real time) while the queue is
  // full. Returns true iff it was appended; on false (still full when the
  // timeout passed, or closed before or while waiting; closed() tells
  // which) `value` is left untouched.
  // Throws: std::invalid_argument if `timeout` is negative or NaN.
  template <class Rep, class Period>
  bool PushFor(T&& value, std::chrono::duration<Rep, Period> timeout)
      ABSL_LOCKS_EXCLUDED(mu_) {
    const auto deadline = Deadline(timeout, "herd::BoundedQueue::PushFor");
    internal::MutexLock lock(&mu_);
    while (!closed_ && items_.size() >= capacity_) {
      if (!WaitLocked(not_full_, deadline)) break;
    }
    if (closed_ || items_.size() >= capacity_) return false;
    items_.push_back(std::move(value));
    not_empty_.notify_one();
    return true;
  }

  // Like Pop() but gives up after `timeout` (real time). Returns std::nullopt
  // on timeout or when the queue is closed and drained; closed() tells which.
  // Throws: std::invalid_argument if `timeout` is negative or NaN.
  template <class Rep, class Period>
  std::optional<T> PopFor(std::chrono::duration<Rep, Period> timeout)
      ABSL_LOCKS_EXCLUDED(mu_) {
    const auto deadline = Deadline(timeout, "herd::BoundedQueue::PopFor");
    internal::MutexLock lock(&mu_);
    while (!closed_ && items_.empty()) {
      if (!WaitLocked(not_empty_, deadline)) break;
    }
    return TakeLocked();
  }

  // Removes and returns the oldest element if there is one.
  std::optional<T> TryPop() ABSL_LOCKS_EXCLUDED(mu_) {
    internal::MutexLock lock(&mu_);
    return TakeLocked();
  }

  // Ends the stream: wakes every blocked producer (who then throws) and every
  // blocked consumer (who drains what is left). Idempotent.
  void Close() ABSL_LOCKS_EXCLUDED(mu_) {
    internal::MutexLock lock(&mu_);
    closed_ = true;
    not_full_.notify_all();
    not_empty_.notify_all();
  }

  bool closed() const ABSL_LOCKS_EXCLUDED(mu_) {
    internal::MutexLock lock(&mu_);
    return closed_;
  }
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_) {
    internal::MutexLock lock(&mu_);
    return items_.size();
  }
  size_t capacity() const { return capacity_; }

 private:
  using Steady = std::chrono::steady_clock;

  // now + timeout, or nullopt (no limit) past the clock's range.
  template <class Rep, class Period>
  static std::optional<Steady::time_point> Deadline(
      std::chrono::duration<Rep, Period> timeout, const char* who) {
    internal::CheckTimeout(timeout, who);
    return internal::DeadlineAfter(Steady::now(), timeout);
  }

  // Waits on `cv` until notified or `deadline` (nullopt: none). Returns
  // false iff the deadline passed.
  bool WaitLocked(std::condition_variable& cv,
                  const std::optional<Steady::time_point>& deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!deadline) {
      internal::Wait(cv, mu_);
      return true;
    }
    return internal::WaitUntil(cv, mu_, *deadline) != std::cv_status::timeout;
  }

  std::optional<T> TakeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (items_.empty()) return std::nullopt;
    std::optional<T> value(std::move(items_.front()));
    items_.pop_front();
    not_full_.notify_one();
    return value;
  }

  const size_t capacity_;
  mutable internal::Mutex mu_;
  std::condition_variable not_full_;
  std::condition_variable not_empty_;
  // State below is protected by mu_.
  std::deque<T> items_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace herd

#endif  // HERD_BOUNDED_QUEUE_H_
