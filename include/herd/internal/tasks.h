// Copyright 2026 The herd Authors.
//
// herd/internal/tasks.h: handing work to an Executor so that it is settled
// exactly once, and waiting for every task a component handed out.
//
//   herd::internal::TaskCounter   tasks given out and not yet destroyed;
//                                 a destructor waits for zero
//   herd::internal::ScheduleOnce  schedules a body whose Run() or
//                                 Abandon(error) is called exactly once,
//                                 whatever the executor does
//
// Thread safety: TaskCounter's members may be called concurrently.
// ScheduleOnce may be called concurrently; each body is touched by one
// thread at a time.

#ifndef HERD_INTERNAL_TASKS_H_
#define HERD_INTERNAL_TASKS_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <mutex>
#include <new>
#include <utility>

#include "herd/errors.h"
#include "herd/executor.h"

namespace herd::internal {

// Counts tasks a component has given an executor and that still exist.
// The component's destructor calls WaitForZero(): once it returns, no task
// of the component runs, and none will touch the component again.
class TaskCounter {
 public:
  TaskCounter() = default;
  TaskCounter(const TaskCounter&) = delete;
  TaskCounter& operator=(const TaskCounter&) = delete;

  void Add() {
    std::lock_guard<std::mutex> lock(mu_);
    ++pending_;
  }

  // The last touch of the counter by a task: it may be destroyed (by the
  // thread in WaitForZero) as soon as this returns. The notification is
  // sent under the lock for that reason.
  void Done() noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    if (--pending_ == 0) zero_.notify_all();
  }

  void WaitForZero() {
    std::unique_lock<std::mutex> lock(mu_);
    zero_.wait(lock, [&] { return pending_ == 0; });
  }

  size_t Pending() const {
    std::lock_guard<std::mutex> lock(mu_);
    return pending_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable zero_;
  size_t pending_ = 0;  // guarded by mu_
};

// The exception a dropped task's body is abandoned with: one herd::Closed,
// made on first use. ScheduleOnce makes it before it schedules anything, so
// that Abandon (noexcept) never has to allocate it.
// Throws: std::bad_alloc, on first use only.
inline const std::exception_ptr& DroppedTaskError() {
  static const std::exception_ptr error = std::make_exception_ptr(
      Closed("herd: the executor destroyed a task without running it"));
  return error;
}

// Schedules `body` on `executor` so that exactly one of
//   body.Run()                       (on the executor's thread), or
//   body.Abandon(std::exception_ptr) (noexcept; the task was refused)
// is called, exactly once, and `body` is destroyed after it, before
// `tasks->Done()`. The cases:
//   * the executor runs the task: Run();
//   * it destroys the task unrun: Abandon(herd::Closed);
//   * Schedule throws: Abandon(that exception) on this thread, then the
//     exception propagates, unless the task already ran (an executor that
//     ran it and then threw), in which case Run() was the call;
//   * it keeps the task and throws: Abandon(the exception) at once; the
//     task, when it runs or is destroyed later, does nothing.
// Throws: std::bad_alloc before anything is counted or scheduled (the body
// is then destroyed without Run or Abandon); what Schedule throws.
// Body must be nothrow-destructible; Run() must not throw (an exception
// from it reaches the executor) and Abandon must be noexcept.
template <class Body, class Exec>
void ScheduleOnce(Exec& executor, TaskCounter* tasks, Body body) {
  // Shared by the task and this frame: whichever of them claims it settles
  // the body; the last reference destroys it.
  struct State {
    explicit State(Body b, TaskCounter* t) : body(std::move(b)), tasks(t) {}
    Body body;
    TaskCounter* tasks;
    std::atomic<bool> claimed{false};
    // While Schedule() runs, a task destroyed unrun leaves the verdict to
    // the scheduling thread: an executor that refuses by throwing destroys
    // the task (its by-value parameter) before the exception reaches us,
    // and the callers should see that exception, not herd::Closed.
    std::atomic<bool> scheduling{true};
    std::atomic<bool> dropped{false};
    std::atomic<int> refs{2};

    bool Claim() noexcept {
      return !claimed.exchange(true, std::memory_order_acq_rel);
    }
    static void Unref(State* s) noexcept {
      if (s->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        TaskCounter* t = s->tasks;
        delete s;   // the body's captures die before the count drops
        t->Done();  // the last touch of the owner
      }
    }
  };
  // The task given to the executor: runs the body once, or abandons it if
  // destroyed first.
  class Job {
   public:
    explicit Job(State* s) : s_(s) {}
    Job(Job&& other) noexcept : s_(std::exchange(other.s_, nullptr)) {}
    Job& operator=(Job&&) = delete;
    ~Job() {
      if (s_ == nullptr) return;
      // seq_cst, with the scheduling thread's pair below: at least one of
      // the two sees the other's store, so a drop is never missed.
      s_->dropped.store(true);
      if (!s_->scheduling.load()) AbandonDropped(s_);
      State::Unref(s_);
    }
    void operator()() && {
      State* s = std::exchange(s_, nullptr);
      if (s->Claim()) {
        try {
          s->body.Run();
        } catch (...) {
          State::Unref(s);
          throw;  // a Run that throws is the body's bug; the executor sees it
        }
      }
      State::Unref(s);
    }

    static void AbandonDropped(State* s) noexcept {
      if (s->Claim()) s->body.Abandon(DroppedTaskError());
    }

   private:
    State* s_;
  };

  DroppedTaskError();  // made now: abandoning a dropped task cannot throw
  State* state = new State(std::move(body), tasks);  // may throw bad_alloc
  tasks->Add();
  try {
    executor.Schedule(Task(Job(state)));
  } catch (...) {
    state->scheduling.store(false);
    if (state->Claim()) state->body.Abandon(std::current_exception());
    State::Unref(state);
    throw;
  }
  state->scheduling.store(false);
  if (state->dropped.load()) Job::AbandonDropped(state);
  State::Unref(state);
}

}  // namespace herd::internal

#endif  // HERD_INTERNAL_TASKS_H_
