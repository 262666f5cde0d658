// Copyright 2026 The herd Authors.
//
// A user-profile cache in front of a slow store whose loader is bound when
// the cache is built: 32 threads ask for the same missing key and share one
// load; later reads are hits that take no lock; once the value is older
// than refresh_after, reads still return at once while one background
// reload runs; when the store fails, the last good value is served
// (stale_if_error); GetThen answers without blocking the caller.
//
//   bazel run //examples:loading_cache
//
// Output:
//   32 concurrent Gets of a missing key: 1 load
//   stale read returned "profile 7 (version 1)" at once
//   after the refresh: "profile 7 (version 2)"
//   store down, value expired: "profile 7 (version 2)" (stale, served by fail-safe)
//   GetThen: profile 8 (version 3)
//   loads 4 (1 failed), refreshes 1, stale served 2

#include "herd/loading_cache.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <latch>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

std::atomic<int> version{0};
std::atomic<bool> store_down{false};

// Stands in for a database query that takes 20 ms.
std::string LoadProfile(int id) {
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (store_down.load()) throw std::runtime_error("store unavailable");
  return "profile " + std::to_string(id) + " (version " +
         std::to_string(version.fetch_add(1) + 1) + ")";
}

}  // namespace

int main() {
  using std::chrono::milliseconds;
  herd::LoadingCache<int, std::string> profiles(
      {.ttl = milliseconds(500),
       .refresh_after = milliseconds(100),
       .stale_if_error = std::chrono::minutes(10),
       .clock = &herd::Clock::Steady()},
      LoadProfile);

  {
    std::latch go(32);
    std::vector<std::jthread> threads;
    for (int i = 0; i < 32; ++i) {
      threads.emplace_back([&] {
        go.arrive_and_wait();
        profiles.Get(7);
      });
    }
  }
  std::printf("32 concurrent Gets of a missing key: %llu load\n",
              static_cast<unsigned long long>(profiles.Stats().loads));

  std::this_thread::sleep_for(milliseconds(150));  // past refresh_after
  std::printf("stale read returned \"%s\" at once\n", profiles.Get(7).c_str());
  while (profiles.Stats().load_successes < 2) {  // the reload lands
    std::this_thread::sleep_for(milliseconds(5));
  }
  std::printf("after the refresh: \"%s\"\n", profiles.Get(7).c_str());

  store_down.store(true);
  std::this_thread::sleep_for(milliseconds(600));  // past the ttl
  std::printf("store down, value expired: \"%s\" (stale, served by fail-safe)\n",
              profiles.Get(7).c_str());
  store_down.store(false);

  std::latch answered(1);
  profiles.GetThen(8, [&](const std::string* profile, std::exception_ptr) {
    std::printf("GetThen: %s\n", profile->c_str());
    answered.count_down();
  });
  answered.wait();

  const herd::CacheStats s = profiles.Stats();
  std::printf("loads %llu (%llu failed), refreshes %llu, stale served %llu\n",
              static_cast<unsigned long long>(s.loads),
              static_cast<unsigned long long>(s.load_failures),
              static_cast<unsigned long long>(s.refreshes),
              static_cast<unsigned long long>(s.stale_served));
}
