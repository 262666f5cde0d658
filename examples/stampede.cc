// Copyright 2026 The herd Authors.
//
// 64 threads miss the cache for the same key at the same moment. Without
// coalescing each runs the slow query; with herd::Share they share one.
//
//   bazel run //examples:stampede
//
// Output (loads of the slow query):
//   without herd::Share: 64 loads for 64 requests
//   with    herd::Share: 1 load for 64 requests (63 shared the result)

#include <atomic>
#include <chrono>
#include <cstdio>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "herd/share.h"

namespace {

constexpr int kThreads = 64;

std::atomic<int> loads{0};

// Stands in for a database query that takes 50 ms.
std::string SlowQuery(const std::string& key) {
  loads.fetch_add(1);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return "row for " + key;
}

// Runs `request` on kThreads threads released at the same instant.
template <class Request>
void Stampede(Request request) {
  std::latch go(kThreads);
  std::vector<std::jthread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      go.arrive_and_wait();
      request();
    });
  }
}

}  // namespace

int main() {
  Stampede([] { SlowQuery("user:42"); });
  std::printf("without herd::Share: %d loads for %d requests\n", loads.load(),
              kThreads);

  loads = 0;
  herd::Share<std::string, std::string> share;
  Stampede([&] {
    share.Do("user:42", [] { return SlowQuery("user:42"); });
  });
  const herd::ShareStats stats = share.Stats();
  std::printf("with    herd::Share: %d load%s for %d requests (%llu shared "
              "the result)\n",
              loads.load(), loads.load() == 1 ? "" : "s", kThreads,
              static_cast<unsigned long long>(stats.shared));
  return 0;
}
