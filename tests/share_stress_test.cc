// Copyright 2026 The herd Authors.
//
// Randomized stress test of herd::Share: threads issue random Do, DoFor,
// DoAsync, Forget, Cancel, CancelAll and AllowExtraExecution calls on a few
// keys, with loaders that succeed, throw, take a while or wait for their
// stop_token. Checks that every call comes back with a value of its own key, a
// loader exception or a herd::Error, never anything else, that no call hangs,
// and that no flight is left behind.
//
// Seeded: set HERD_STRESS_SEED to replay a run (the seed is printed), and
// HERD_STRESS_SECONDS to change how long it runs (default 2).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <mutex>
#include <random>
#include <stdexcept>
#include <stop_token>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "herd/errors.h"
#include "herd/share.h"
#include "herd/thread_pool.h"

namespace herd {
namespace {

struct LoaderFailure {
  int key;
};

uint64_t SeedFromEnv() {
  if (const char* s = std::getenv("HERD_STRESS_SEED")) {
    return std::strtoull(s, nullptr, 10);
  }
  return std::random_device{}();
}

double SecondsFromEnv() {
  if (const char* s = std::getenv("HERD_STRESS_SECONDS")) {
    return std::strtod(s, nullptr);
  }
  return 2.0;
}

// A loader for `key` whose behaviour is drawn from `rng`.
int64_t Load(int key, int behaviour, std::stop_token stop) {
  switch (behaviour) {
    case 0:  // throws
      throw LoaderFailure{key};
    case 1: {  // takes a little while
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      break;
    }
    case 2: {  // waits for its stop token, but not forever
      std::mutex mu;
      std::condition_variable_any cv;
      std::unique_lock<std::mutex> lock(mu);
      cv.wait_for(lock, stop, std::chrono::milliseconds(2),
                  [] { return false; });
      break;
    }
    default:
      break;
  }
  return int64_t{key} * 1000 + behaviour;
}

TEST(ShareStress, EveryCallReturnsWithAValueOrAnError) {
  const uint64_t seed = SeedFromEnv();
  const double seconds = SecondsFromEnv();
  std::printf("HERD_STRESS_SEED=%llu HERD_STRESS_SECONDS=%g\n",
              static_cast<unsigned long long>(seed), seconds);
  std::fflush(stdout);

  constexpr int kThreads = 8;
  constexpr int kKeys = 4;
  Share<int, int64_t> share(
      ShareOptions{.extra_execution_rate = 0.05,
                   .max_flight_age = std::chrono::milliseconds(50),
                   .shards = 2});
  ThreadPool pool(2);
  const auto stop_at =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);

  std::atomic<uint64_t> calls{0}, values{0}, loader_errors{0}, herd_errors{0},
      wrong{0};
  // Each DoAsync future, with the key it was asked for.
  std::vector<std::pair<int, std::shared_future<int64_t>>>
      async_futures[kThreads];

  auto worker = [&](int id) {
    std::mt19937_64 rng(seed + static_cast<uint64_t>(id));
    while (std::chrono::steady_clock::now() < stop_at) {
      const int key = static_cast<int>(rng() % kKeys);
      const int behaviour = static_cast<int>(rng() % 6);
      // Both kinds of loader: one that takes the flight's stop token, and a
      // plain Value() one.
      auto stoppable = [key, behaviour](std::stop_token stop) {
        return Load(key, behaviour, stop);
      };
      auto plain = [key, behaviour] {
        return Load(key, behaviour, std::stop_token());
      };
      const bool use_plain = rng() % 2 == 0;
      const int op = static_cast<int>(rng() % 100);
      if (op < 5) {
        share.Forget(key, rng() % 2 ? ForgetMode::kDetach
                                    : ForgetMode::kRerunOnNextCall);
        continue;
      }
      if (op < 8) {
        share.Cancel(key);
        continue;
      }
      if (op < 9) {
        share.CancelAll();
        continue;
      }
      if (op < 12) {
        share.AllowExtraExecution(key);
        continue;
      }
      calls.fetch_add(1);
      if (op < 17) {
        async_futures[id].emplace_back(
            key, use_plain ? share.DoAsync(key, plain, pool)
                           : share.DoAsync(key, stoppable, pool));
        continue;
      }
      const auto timeout = std::chrono::microseconds(rng() % 3000);
      auto call = [&](auto& loader) {
        return op < 60 ? share.Do(key, loader)
                       : share.DoFor(key, timeout, loader);
      };
      try {
        const int64_t v = use_plain ? call(plain) : call(stoppable);
        values.fetch_add(1);
        if (v / 1000 != key) wrong.fetch_add(1);
      } catch (const LoaderFailure& f) {
        loader_errors.fetch_add(1);
        if (f.key != key) wrong.fetch_add(1);
      } catch (const Error&) {
        herd_errors.fetch_add(1);
      } catch (...) {
        wrong.fetch_add(1);
      }
    }
  };

  // A watchdog: a hung call fails the test instead of hanging CI.
  std::promise<void> finished;
  std::thread watchdog([f = finished.get_future(), seconds]() mutable {
    if (f.wait_for(std::chrono::duration<double>(seconds + 60)) !=
        std::future_status::ready) {
      std::fprintf(stderr, "ShareStress: a call hung; aborting\n");
      std::abort();
    }
  });

  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(worker, i);
  for (auto& t : threads) t.join();
  for (auto& futures : async_futures) {
    for (auto& [key, f] : futures) {
      try {
        const int64_t v = f.get();
        values.fetch_add(1);
        if (v / 1000 != key) wrong.fetch_add(1);
      } catch (const LoaderFailure& e) {
        loader_errors.fetch_add(1);
        if (e.key != key) wrong.fetch_add(1);
      } catch (const Error&) {
        herd_errors.fetch_add(1);
      } catch (...) {
        wrong.fetch_add(1);
      }
    }
  }
  finished.set_value();
  watchdog.join();

  std::printf("calls=%llu values=%llu loader_errors=%llu herd_errors=%llu\n",
              static_cast<unsigned long long>(calls.load()),
              static_cast<unsigned long long>(values.load()),
              static_cast<unsigned long long>(loader_errors.load()),
              static_cast<unsigned long long>(herd_errors.load()));
  EXPECT_EQ(wrong.load(), 0u);
  EXPECT_EQ(values + loader_errors + herd_errors, calls.load());
  EXPECT_GT(values.load(), 0u);
  EXPECT_EQ(share.InFlight(), 0u);
  EXPECT_EQ(share.Stats().calls, calls.load());
}

}  // namespace
}  // namespace herd
