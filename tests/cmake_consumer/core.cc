// Copyright 2026 The herd Authors.
//
// herd::core alone: its headers, its compiled library (lib/clock.cc), Abseil
// (herd::Task is an absl::AnyInvocable) and threads.

#include <chrono>
#include <stop_token>
#include <thread>
#include <utility>

#include "consumer.h"
#include "herd/clock.h"
#include "herd/errors.h"
#include "herd/executor.h"

namespace {

// An Executor that runs each task at once.
struct Inline {
  void Schedule(herd::Task task) { std::move(task)(); }
};

}  // namespace

int main() {
  herd::FakeClock clock;
  const auto deadline = clock.Now() + std::chrono::seconds(5);
  bool reached = false;
  {
    std::jthread sleeper([&](std::stop_token stop) {
      reached = clock.SleepUntil(deadline, stop);
    });
    clock.WaitForSleepers(1);
    clock.Advance(std::chrono::seconds(5));
  }
  consumer::Check(reached, "FakeClock wakes a sleeper at its deadline");

  const auto before = herd::Clock::Steady().Now();
  consumer::Check(herd::Clock::Steady().Now() >= before, "Clock::Steady()");

  bool threw = false;
  try {
    throw herd::Closed();
  } catch (const herd::Error&) {
    threw = true;
  }
  consumer::Check(threw, "herd::Closed is a herd::Error");

  Inline executor;
  herd::ExecutorRef ref(executor);
  int ran = 0;
  ref.Schedule([&ran] { ++ran; });
  consumer::Check(ran == 1, "ExecutorRef::Schedule runs through the executor");
  return consumer::Finish("herd_consumer_core");
}
