// Copyright 2026 The herd Authors.
//
// Randomized, seeded, time-bounded stress of the fleet tier: several Fleets
// (standing for processes) with threads that Load, Put and Invalidate a few
// keys with short and random TTLs, stale-while-revalidate and XFetch on,
// while the server is paused once. Run under ThreadSanitizer it checks the
// pool, the subscription, the renewer and the waiters for races; in every
// build it checks the invariants below. HERD_STRESS_SEED and
// HERD_STRESS_MS override the seed and the run time.
//
// Invariants:
//   * no call throws, and every value returned is one the loader (or a Put)
//     made for that key;
//   * no payload fails to decode (nothing corrupts them here);
//   * while the server runs, loads never outnumber the fleet's writes plus
//     its fallbacks plus the writes that lost their lease: a load that is
//     neither stored, nor a fallback, nor fenced out is a bug.

#include <atomic>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "herd/redis/fleet.h"
#include "herd/redis/tier.h"
#include "herd/share.h"
#include "tests/redis/testing.h"

namespace herd::redis {
namespace {

using std::chrono::milliseconds;
using SteadyTime = std::chrono::steady_clock;
using StringTier = Tier<std::string, std::string>;

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

TEST(FleetStress, ManyFleetsLoadPutAndInvalidateThroughAPause) {
  test::RedisServer server;
  HERD_START_REDIS(server);
  const uint64_t seed = EnvOr("HERD_STRESS_SEED", std::random_device{}());
  const auto run_for = milliseconds(EnvOr("HERD_STRESS_MS", 3000));
  std::printf("HERD_STRESS_SEED=%llu HERD_STRESS_MS=%lld\n",
              static_cast<unsigned long long>(seed),
              static_cast<long long>(run_for.count()));
  constexpr int kFleets = 4, kThreads = 6, kKeys = 6;

  FleetOptions o;
  o.host = "127.0.0.1";
  o.port = server.port();
  o.prefix = test::TestPrefix();
  o.command_timeout = milliseconds(100);
  o.connect_timeout = milliseconds(100);
  o.lease_ttl = milliseconds(150);
  o.poll_interval = milliseconds(20);
  o.breaker.open_duration = milliseconds(200);
  o.reconnect_backoff_max = milliseconds(200);
  o.pool_size = 4;

  std::atomic<uint64_t> loads{0}, calls{0}, bad{0}, puts{0};
  std::vector<std::unique_ptr<Fleet>> fleets;
  std::vector<std::unique_ptr<StringTier>> tiers;
  for (int f = 0; f < kFleets; ++f) {
    o.seed = seed + static_cast<uint64_t>(f) + 1;
    fleets.push_back(std::make_unique<Fleet>(o));
    tiers.push_back(std::make_unique<StringTier>(
        *fleets.back(),
        StringTier::Options{
            .name = "s",
            .expire_after =
                [](const std::string&, const std::string& v) {
                  // 5..40 ms, from the value: TTLs differ per write.
                  return milliseconds(5 + static_cast<int>(v.size() * 7 % 36));
                },
            .refresh_after = milliseconds(3),
            .early_refresh_beta = 1.0},
        [&](const std::string& key) {
          ++loads;
          if (loads % 7 == 0) std::this_thread::sleep_for(milliseconds(2));
          return key + ":" + std::to_string(loads.load());
        }));
  }
  auto valid = [](const std::string& key, const std::string& v) {
    return v.rfind(key + ":", 0) == 0 || v == key + ":put";
  };

  std::vector<std::unique_ptr<Share<std::string, std::string>>> shares;
  for (int f = 0; f < kFleets; ++f) {
    shares.push_back(std::make_unique<Share<std::string, std::string>>());
  }
  const auto deadline = SteadyTime::now() + run_for;
  std::vector<std::jthread> threads;
  for (int f = 0; f < kFleets; ++f) {
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, f, t] {
        std::mt19937_64 rng(seed * 1000 + static_cast<uint64_t>(f * 100 + t));
        StringTier& tier = *tiers[static_cast<size_t>(f)];
        auto& share = *shares[static_cast<size_t>(f)];
        while (SteadyTime::now() < deadline) {
          const std::string key = "k" + std::to_string(rng() % kKeys);
          const unsigned op = rng() % 100;
          try {
            if (op < 3) {
              if (tier.Put(key, key + ":put")) ++puts;
            } else if (op < 6) {
              tier.Invalidate(key);
            } else {
              const std::string v =
                  share.Do(key, [&] { return tier.Load(key); });
              if (!valid(key, v)) ++bad;
            }
          } catch (...) {
            ++bad;
          }
          ++calls;
        }
      });
    }
  }
  // Half way, pause the server for 300 ms: timeouts, the breaker,
  // fallbacks, lost subscriptions, renewals that fail.
  std::this_thread::sleep_until(deadline - run_for / 2);
  server.Pause();
  std::this_thread::sleep_for(milliseconds(300));
  server.Resume();
  threads.clear();
  tiers.clear();  // waits for background refreshes

  uint64_t decode_errors = 0;
  for (auto& f : fleets) {
    const FleetStats s = f->Stats();
    decode_errors += s.decode_errors;
    std::printf(
        "fleet: commands=%llu hits=%llu leases_won=%llu leases_lost=%llu "
        "refreshes=%llu stale=%llu fallbacks=%llu fenced=%llu\n",
        (unsigned long long)s.commands, (unsigned long long)s.hits,
        (unsigned long long)s.leases_won, (unsigned long long)s.leases_lost,
        (unsigned long long)s.refreshes, (unsigned long long)s.stale_served,
        (unsigned long long)s.fallbacks, (unsigned long long)s.writes_rejected);
  }
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_EQ(decode_errors, 0u);
  EXPECT_GT(calls.load(), 1000u);
  uint64_t writes = 0, fallbacks = 0, fenced = 0, failed_writes = 0;
  for (auto& f : fleets) {
    const FleetStats s = f->Stats();
    writes += s.writes;
    fallbacks += s.fallbacks;
    fenced += s.writes_rejected;
    failed_writes += s.write_failures;
  }
  // Every load was stored, fenced out, could not be written, or ran as a
  // fallback (writes count Puts too; a refresh whose encode was refused
  // does not occur here).
  ASSERT_LE(puts.load(), writes);
  EXPECT_LE(loads.load(), writes - puts.load() + fallbacks + fenced +
                              failed_writes)
      << "loads " << loads << " writes " << writes << " puts " << puts
      << " fallbacks " << fallbacks << " fenced " << fenced
      << " failed writes " << failed_writes;
}

}  // namespace
}  // namespace herd::redis
