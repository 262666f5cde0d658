// Copyright 2026 The herd Authors.
//
// Model-based random test of herd::Share: episodes of random calls (Do,
// DoFor, DoAsync on executors that run, queue, drop, refuse, run-then-throw
// or keep-then-throw, Forget, AllowExtraExecution, Cancel, CancelAll,
// tasks run or dropped later, time moving on, loaders that call back into
// the Share), each checked against tests/testing/share_model.h's model of
// herd/share.h: every call's result, every future's outcome, every
// ShareStats counter, InFlight() and every loader's stop token.
//
// Seeded: the seed is printed; HERD_MODEL_SEED=<n> replays a run (a failure
// prints the seed that replays its episode first). HERD_MODEL_SECONDS sets
// how long it runs (default 2).

#include "tests/testing/share_model.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "gtest/gtest.h"

namespace herd {
namespace {

uint64_t SeedFromEnv() {
  if (const char* s = std::getenv("HERD_MODEL_SEED")) {
    return std::strtoull(s, nullptr, 10);
  }
  return std::random_device{}();
}

double SecondsFromEnv() {
  if (const char* s = std::getenv("HERD_MODEL_SECONDS")) {
    return std::strtod(s, nullptr);
  }
  return 2.0;
}

TEST(ShareModel, EveryCallMatchesTheModel) {
  const uint64_t seed = SeedFromEnv();
  const double seconds = SecondsFromEnv();
  std::printf("HERD_MODEL_SEED=%llu HERD_MODEL_SECONDS=%g\n",
              static_cast<unsigned long long>(seed), seconds);
  std::fflush(stdout);
  constexpr uint64_t kMaxEpisodes = 1000000;
  constexpr int kStepsPerEpisode = 200;
  const auto stop_at =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  uint64_t episodes = 0;
  size_t steps = 0;
  for (; episodes < kMaxEpisodes &&
         (episodes == 0 || std::chrono::steady_clock::now() < stop_at);
       ++episodes) {
    // Episode e is the first episode of seed + e.
    const uint64_t episode_seed = seed + episodes;
    std::mt19937_64 rng(episode_seed);
    const test::ShareModel::Chooser choose = [&rng](uint32_t n) {
      return static_cast<uint32_t>(rng() % n);
    };
    test::ShareModel model(choose, test::ShareModel::DrawConfig(choose));
    for (int i = 0; i < kStepsPerEpisode && model.Step(); ++i) {
    }
    model.Finish();
    steps += model.steps();
    ASSERT_EQ(model.failure(), "")
        << "replay with HERD_MODEL_SEED=" << episode_seed;
  }
  std::printf("episodes=%llu calls=%zu\n",
              static_cast<unsigned long long>(episodes), steps);
}

}  // namespace
}  // namespace herd
