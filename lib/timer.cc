// Copyright 2026 The herd Authors.

#include "herd/timer.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace herd {

Timer::Timer(TimerOptions options)
    : clock_(options.clock != nullptr ? *options.clock : Clock::Steady()),
      thread_([this] { Loop(); }) {}

Timer::Timer(const Clock& clock) : Timer(TimerOptions{.clock = &clock}) {}

Timer::~Timer() {
  std::unordered_map<Id, Callback> cancelled;
  {
    internal::MutexLock lock(&mu_);
    shutdown_ = true;
    cancelled.swap(callbacks_);
    heap_.clear();
    wake_.request_stop();
  }
  idle_cv_.notify_all();
  thread_.join();
  // `cancelled` is destroyed here, outside the lock: user destructors run.
}

Timer& Timer::Default() {
  static Timer* const timer = new Timer();
  return *timer;
}

Timer::Id Timer::RunAt(Clock::time_point deadline, Callback callback) {
  if (!callback) {
    throw std::invalid_argument("herd::Timer::RunAt: empty callback");
  }
  bool notify_idle = false;
  Id id;
  {
    internal::MutexLock lock(&mu_);
    // Everything that can throw comes first: room in the heap, then the
    // map's node. After the emplace nothing throws, so a failed RunAt
    // leaves no callback behind (and no heap entry without one).
    if (heap_.size() == heap_.capacity()) {
      heap_.reserve(std::max<size_t>(16, 2 * heap_.capacity()));
    }
    id = next_id_;
    callbacks_.emplace(id, std::move(callback));
    ++next_id_;
    heap_.push_back(Entry{deadline, id});
    std::push_heap(heap_.begin(), heap_.end(), Later());
    if (idle_) {
      notify_idle = true;
    } else if (sleeping_ && deadline < sleep_deadline_) {
      // The thread sleeps until a later deadline: wake it to re-plan.
      wake_.request_stop();
    }
  }
  if (notify_idle) idle_cv_.notify_one();
  return id;
}

bool Timer::Cancel(Id id) {
  Callback cancelled;
  {
    internal::MutexLock lock(&mu_);
    auto it = callbacks_.find(id);
    if (it == callbacks_.end()) return false;
    cancelled = std::move(it->second);
    callbacks_.erase(it);
    // The heap entry stays until it reaches the top or a compaction.
    MaybeCompact();
  }
  return true;  // `cancelled` is destroyed outside the lock.
}

size_t Timer::Pending() const {
  internal::MutexLock lock(&mu_);
  return callbacks_.size();
}

void Timer::DropStaleTop() {
  while (!heap_.empty() && !callbacks_.contains(heap_.front().id)) {
    std::pop_heap(heap_.begin(), heap_.end(), Later());
    heap_.pop_back();
  }
}

void Timer::MaybeCompact() {
  // Amortised O(1) per Cancel: a rebuild costs O(n) and happens only after
  // at least n/2 cancellations since the last one.
  if (heap_.size() < 64 || heap_.size() < 2 * callbacks_.size()) return;
  std::erase_if(heap_, [this](const Entry& e) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return !callbacks_.contains(e.id);  // runs inside MaybeCompact's lock
  });
  std::make_heap(heap_.begin(), heap_.end(), Later());
}

void Timer::Loop() {
  mu_.Lock();
  while (!shutdown_) {
    DropStaleTop();
    if (heap_.empty()) {
      idle_ = true;
      internal::Wait(idle_cv_, mu_);
      idle_ = false;
      continue;
    }
    const Entry top = heap_.front();
    if (clock_.Now() >= top.deadline) {
      std::pop_heap(heap_.begin(), heap_.end(), Later());
      heap_.pop_back();
      auto it = callbacks_.find(top.id);
      Callback callback = std::move(it->second);
      callbacks_.erase(it);
      mu_.Unlock();
      std::move(callback)();  // throwing out of here terminates
      callback = nullptr;     // destroy captures outside the lock too
      mu_.Lock();
      continue;
    }
    // Sleep until the earliest deadline, or until RunAt() or the destructor
    // stops wake_. The stop is sticky, so one requested between Unlock() and
    // SleepUntil() still ends the sleep at once.
    wake_ = std::stop_source();
    std::stop_token token = wake_.get_token();
    sleeping_ = true;
    sleep_deadline_ = top.deadline;
    mu_.Unlock();
    clock_.SleepUntil(top.deadline, token);
    mu_.Lock();
    sleeping_ = false;
  }
  mu_.Unlock();
}

}  // namespace herd
