// Copyright 2026 The herd Authors.
//
// Tests herd/executor.h (the Executor concept, ExecutorRef) and the contract
// of herd::internal::ScheduleOnce (herd/internal/tasks.h): a scheduled body
// is run or abandoned exactly once, whatever the executor does.

#include "herd/executor.h"

#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "herd/errors.h"
#include "herd/internal/tasks.h"
#include "herd/thread_pool.h"

namespace herd {
namespace {

using internal::ScheduleOnce;
using internal::TaskCounter;

// Records what happened to one body.
struct Log {
  int runs = 0;
  int abandons = 0;
  std::string abandon_what;
  bool destroyed = false;
  int pending_at_destruction = -1;
};

struct Body {
  Log* log;
  TaskCounter* tasks;
  Body(Log* l, TaskCounter* t) : log(l), tasks(t) {}
  Body(Body&& other) noexcept
      : log(std::exchange(other.log, nullptr)), tasks(other.tasks) {}
  ~Body() {
    if (log == nullptr) return;
    log->destroyed = true;
    log->pending_at_destruction = static_cast<int>(tasks->Pending());
  }
  void Run() { ++log->runs; }
  void Abandon(std::exception_ptr e) noexcept {
    ++log->abandons;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      log->abandon_what = ex.what();
    }
  }
};

// Runs tasks when the test says so.
struct ManualExecutor {
  std::vector<Task> tasks;
  void Schedule(Task t) { tasks.push_back(std::move(t)); }
  void RunAll() {
    auto run = std::move(tasks);
    for (Task& t : run) std::move(t)();
  }
};

struct InlineThenThrowExecutor {
  void Schedule(Task t) {
    std::move(t)();
    throw std::runtime_error("ran, then threw");
  }
};

struct KeepThenThrowExecutor {
  std::vector<Task> kept;
  void Schedule(Task t) {
    kept.push_back(std::move(t));
    throw std::runtime_error("kept, then threw");
  }
};

struct RefusingExecutor {
  void Schedule(Task) { throw std::runtime_error("refused"); }
};

struct DroppingExecutor {
  void Schedule(Task t) { Task dropped = std::move(t); }
};

struct CopyableOnlyExecutor {
  void Schedule(std::function<void()>) {}
};

static_assert(Executor<ThreadPool>);
static_assert(Executor<ManualExecutor>);
static_assert(!Executor<CopyableOnlyExecutor>);
static_assert(!Executor<int>);

TEST(ExecutorRef, ForwardsToTheExecutorItRefersTo) {
  ManualExecutor executor;
  ExecutorRef ref = executor;
  EXPECT_TRUE(static_cast<bool>(ref));
  int ran = 0;
  ref.Schedule([&] { ++ran; });
  ASSERT_EQ(executor.tasks.size(), 1u);
  executor.RunAll();
  EXPECT_EQ(ran, 1);
  EXPECT_TRUE(ref == ExecutorRef(executor));
  EXPECT_FALSE(static_cast<bool>(ExecutorRef()));
}

TEST(ExecutorRef, PropagatesScheduleExceptions) {
  RefusingExecutor executor;
  ExecutorRef ref = executor;
  EXPECT_THROW(ref.Schedule([] {}), std::runtime_error);
}

TEST(ScheduleOnce, RunsOnceThenDestroysTheBodyBeforeTheCountDrops) {
  TaskCounter tasks;
  ManualExecutor executor;
  Log log;
  ScheduleOnce(executor, &tasks, Body(&log, &tasks));
  EXPECT_EQ(tasks.Pending(), 1u);
  EXPECT_EQ(log.runs, 0);
  executor.RunAll();
  EXPECT_EQ(log.runs, 1);
  EXPECT_EQ(log.abandons, 0);
  EXPECT_TRUE(log.destroyed);
  EXPECT_EQ(log.pending_at_destruction, 1);  // destroyed, then counted down
  EXPECT_EQ(tasks.Pending(), 0u);
  tasks.WaitForZero();
}

TEST(ScheduleOnce, DroppedTaskIsAbandonedWithClosed) {
  TaskCounter tasks;
  DroppingExecutor executor;
  Log log;
  ScheduleOnce(executor, &tasks, Body(&log, &tasks));
  EXPECT_EQ(log.runs, 0);
  EXPECT_EQ(log.abandons, 1);
  EXPECT_NE(log.abandon_what.find("without running"), std::string::npos);
  EXPECT_EQ(tasks.Pending(), 0u);
}

TEST(ScheduleOnce, RefusedTaskIsAbandonedWithTheExecutorsException) {
  TaskCounter tasks;
  RefusingExecutor executor;
  Log log;
  EXPECT_THROW(ScheduleOnce(executor, &tasks, Body(&log, &tasks)),
               std::runtime_error);
  EXPECT_EQ(log.runs, 0);
  EXPECT_EQ(log.abandons, 1);
  EXPECT_EQ(log.abandon_what, "refused");
  EXPECT_TRUE(log.destroyed);
  EXPECT_EQ(tasks.Pending(), 0u);
}

TEST(ScheduleOnce, ExecutorThatRunsThenThrowsSettlesOnce) {
  TaskCounter tasks;
  InlineThenThrowExecutor executor;
  Log log;
  EXPECT_THROW(ScheduleOnce(executor, &tasks, Body(&log, &tasks)),
               std::runtime_error);
  EXPECT_EQ(log.runs, 1);
  EXPECT_EQ(log.abandons, 0);
  EXPECT_EQ(tasks.Pending(), 0u);
}

TEST(ScheduleOnce, ExecutorThatKeepsThenThrowsSettlesOnce) {
  TaskCounter tasks;
  KeepThenThrowExecutor executor;
  Log log;
  EXPECT_THROW(ScheduleOnce(executor, &tasks, Body(&log, &tasks)),
               std::runtime_error);
  EXPECT_EQ(log.abandons, 1);
  EXPECT_EQ(log.abandon_what, "kept, then threw");
  EXPECT_EQ(tasks.Pending(), 1u);  // the kept task still holds the body
  EXPECT_FALSE(log.destroyed);
  ASSERT_EQ(executor.kept.size(), 1u);
  std::move(executor.kept[0])();  // runs later: does nothing
  EXPECT_EQ(log.runs, 0);
  EXPECT_EQ(log.abandons, 1);
  executor.kept.clear();
  EXPECT_TRUE(log.destroyed);
  EXPECT_EQ(tasks.Pending(), 0u);
}

TEST(ScheduleOnce, KeptThenDestroyedTaskIsAbandonedOnce) {
  TaskCounter tasks;
  KeepThenThrowExecutor executor;
  Log log;
  EXPECT_THROW(ScheduleOnce(executor, &tasks, Body(&log, &tasks)),
               std::runtime_error);
  executor.kept.clear();  // destroyed unrun, after the throw was handled
  EXPECT_EQ(log.runs, 0);
  EXPECT_EQ(log.abandons, 1);
  EXPECT_EQ(tasks.Pending(), 0u);
}

TEST(ScheduleOnce, OnAThreadPoolWaitForZeroWaitsForTheBody) {
  TaskCounter tasks;
  Log log;
  {
    ThreadPool pool(1);
    ScheduleOnce(pool, &tasks, Body(&log, &tasks));
    tasks.WaitForZero();
    // WaitForZero returned: the body ran and was destroyed.
    EXPECT_EQ(log.runs, 1);
    EXPECT_TRUE(log.destroyed);
  }
}

}  // namespace
}  // namespace herd
