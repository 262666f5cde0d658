// Copyright 2026 The herd Authors.
//
// herd/executor.h: how herd hands work to other threads.
//
//   herd::Task         the unit of work: a move-only callable, run at most once
//   herd::Executor     concept: anything with a Schedule(callable) member
//   herd::ExecutorRef  a non-owning, type-erased reference to an Executor,
//                      for options structs (CacheOptions::executor)
//
// Example:
//
//   herd::ThreadPool pool(4);                 // an Executor
//   share.DoAsync(key, loader, pool);         // taken as a template argument
//   herd::CacheOptions options{.executor = pool};  // held as an ExecutorRef
//
// The contract every herd component relies on, and what it tolerates:
//   * Schedule(task) returns normally: the executor has accepted the task,
//     and will run it once or destroy it unrun (a dropped task). herd
//     treats a task destroyed unrun as refused: its callers get
//     herd::Closed. It never waits on a task that was destroyed.
//   * Schedule(task) throws: the task was refused, and herd reports the
//     exception to the task's callers. An executor that runs or keeps the
//     task and then throws anyway is tolerated: the task's work is settled
//     exactly once, by whichever comes first (the run, or the throw).
// Schedule is called with no herd lock held, from any thread, possibly
// concurrently and from inside a task of the same executor.
//
// herd::ThreadPool (herd/thread_pool.h) is an Executor. A type whose
// Schedule takes only copyable callables (std::function) is not: herd's
// tasks own move-only state.
//
// Thread safety: an ExecutorRef is a value (a pointer pair); calling
// Schedule through it is as thread-safe as the executor it refers to.

#ifndef HERD_EXECUTOR_H_
#define HERD_EXECUTOR_H_

#include <concepts>
#include <type_traits>
#include <utility>

#include "absl/functional/any_invocable.h"

namespace herd {

// What an executor is asked to run: once, as an rvalue.
using Task = absl::AnyInvocable<void() &&>;

// Anything whose Schedule member accepts a move-only nullary callable.
template <class E>
concept Executor = requires(E& executor, Task task) {
  executor.Schedule(std::move(task));
};

// A non-owning reference to any Executor. The executor must outlive every
// ExecutorRef to it and every task scheduled through one. A default
// constructed ExecutorRef refers to nothing (explicit operator bool is
// false); Schedule on it is undefined.
class ExecutorRef {
 public:
  ExecutorRef() = default;

  template <class E>
    requires(Executor<E> && !std::same_as<std::remove_cv_t<E>, ExecutorRef>)
  ExecutorRef(E& executor)  // NOLINT(google-explicit-constructor): a reference
      : target_(const_cast<void*>(static_cast<const void*>(&executor))),
        schedule_([](void* target, Task task) {
          static_cast<E*>(target)->Schedule(std::move(task));
        }) {}

  // Forwards to the referenced executor's Schedule; throws what it throws.
  void Schedule(Task task) const { schedule_(target_, std::move(task)); }

  explicit operator bool() const noexcept { return target_ != nullptr; }

  // True iff both refer to the same executor object.
  friend bool operator==(const ExecutorRef& a, const ExecutorRef& b) noexcept {
    return a.target_ == b.target_;
  }

 private:
  void* target_ = nullptr;
  void (*schedule_)(void*, Task) = nullptr;
};

}  // namespace herd

#endif  // HERD_EXECUTOR_H_
