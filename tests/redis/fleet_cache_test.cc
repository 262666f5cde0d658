// Copyright 2026 The herd Authors.
//
// herd::redis::FleetCache: a LoadingCache per process over the Redis tier.
// In one process (several Fleets stand for several processes) and across
// real processes (this binary runs itself again with --herd-helper=cache).

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "herd/redis/fleet.h"
#include "herd/redis/fleet_cache.h"
#include "tests/redis/testing.h"

namespace herd::redis {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using test::Arg;
using test::Child;
using test::Client;
using test::RedisServer;
using test::ReadControl;
using test::WriteStatus;
using StringCache = FleetCache<std::string, std::string>;
using SteadyTime = std::chrono::steady_clock;

constexpr auto kBound = milliseconds(20000);

template <class Pred>
bool Eventually(Pred done) {
  const auto deadline = SteadyTime::now() + kBound;
  while (!done()) {
    if (SteadyTime::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

FleetOptions OptionsFor(int port, std::string prefix) {
  FleetOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.prefix = std::move(prefix);
  return o;
}

class FleetCacheTest : public ::testing::Test {
 protected:
  void SetUp() override { HERD_START_REDIS(server_); }
  FleetOptions Options() const {
    return OptionsFor(server_.port(), test::TestPrefix());
  }
  RedisServer server_;
};

// fleet_cache.h: "from this process's copy while it is fresh" -- no Redis
// command for a local hit.
TEST_F(FleetCacheTest, LocalCopyAnswersWithoutRedisUntilItTurnsStale) {
  Fleet fleet(Options());
  std::atomic<int> loads{0};
  StringCache cache(fleet, {.tier = {.name = "c", .ttl = seconds(60)}},
                    [&](const std::string& k) {
                      ++loads;
                      return "v:" + k;
                    });
  // fleet_cache.h: the first subscription drops what was loaded before it.
  ASSERT_TRUE(Eventually([&] { return fleet.Stats().subscribed; }));
  EXPECT_EQ(cache.Get("k"), "v:k");
  const uint64_t commands = fleet.Stats().commands;
  for (int i = 0; i < 100; ++i) EXPECT_EQ(cache.Get("k"), "v:k");
  EXPECT_EQ(fleet.Stats().commands, commands);
  EXPECT_EQ(loads.load(), 1);
  EXPECT_EQ(cache.GetIfPresent("k"), "v:k");
}

// fleet_cache.h: a local copy "lives until Redis's copy turns stale or
// expires".
TEST_F(FleetCacheTest, LocalCopyExpiresWithTheRedisCopy) {
  Fleet fleet(Options());
  std::atomic<int> loads{0};
  StringCache cache(fleet, {.tier = {.name = "e", .ttl = milliseconds(300)}},
                    [&](const std::string& k) {
                      return k + std::to_string(++loads);
                    });
  ASSERT_TRUE(Eventually([&] { return fleet.Stats().subscribed; }));
  EXPECT_EQ(cache.Get("k"), "k1");
  Client client(server_.port());
  const std::string value_key = cache.tier().RedisKeys("k").value_key;
  ASSERT_TRUE(Eventually([&] { return client.Pttl(value_key) == -2; }));
  // Redis dropped it; the local copy went at the same moment, give or take
  // the read's round trip.
  ASSERT_TRUE(Eventually([&] { return !cache.GetIfPresent("k").has_value(); }));
  EXPECT_EQ(cache.Get("k"), "k2");
}

// fleet_cache.h: Invalidate / Put drop "every other process's copy ...
// within 100 ms".
TEST_F(FleetCacheTest, InvalidateAndPutDropTheOtherFleetsCopiesWithin100Ms) {
  Fleet a(Options()), b(Options());
  std::atomic<int> loads{0};
  auto loader = [&](const std::string& k) {
    return k + std::to_string(++loads);
  };
  StringCache ca(a, {.tier = {.name = "i", .ttl = seconds(60)}}, loader);
  StringCache cb(b, {.tier = {.name = "i", .ttl = seconds(60)}}, loader);
  ASSERT_TRUE(Eventually([&] { return a.Stats().subscribed && b.Stats().subscribed; }));
  EXPECT_EQ(ca.Get("k"), "k1");
  EXPECT_EQ(cb.Get("k"), "k1");  // from Redis
  EXPECT_EQ(loads.load(), 1);

  auto t0 = SteadyTime::now();
  ASSERT_TRUE(ca.Invalidate("k"));
  EXPECT_FALSE(ca.GetIfPresent("k").has_value());
  ASSERT_TRUE(Eventually([&] { return !cb.GetIfPresent("k").has_value(); }));
  EXPECT_LT(SteadyTime::now() - t0, milliseconds(100));
  EXPECT_EQ(cb.Get("k"), "k2");  // Redis was emptied too: a new load
  EXPECT_EQ(ca.Get("k"), "k2");

  t0 = SteadyTime::now();
  ASSERT_TRUE(cb.Put("k", "put"));
  EXPECT_EQ(cb.GetIfPresent("k"), "put");
  ASSERT_TRUE(Eventually([&] { return !ca.GetIfPresent("k").has_value(); }));
  EXPECT_LT(SteadyTime::now() - t0, milliseconds(100));
  EXPECT_EQ(ca.Get("k"), "put");  // from Redis, no load
  EXPECT_EQ(loads.load(), 2);
}

// fleet_cache.h: "When the subscription was lost ... every local copy is
// dropped once it is back".
TEST(FleetCacheFailSafe, LocalCopiesAreDroppedAfterTheSubscriptionReturns) {
  RedisServer server;
  HERD_START_REDIS(server);
  FleetOptions o = OptionsFor(server.port(), test::TestPrefix());
  o.command_timeout = milliseconds(100);
  o.connect_timeout = milliseconds(100);
  o.reconnect_backoff_max = milliseconds(200);
  o.breaker.open_duration = milliseconds(200);
  Fleet fleet(o);
  std::atomic<int> loads{0};
  StringCache cache(fleet, {.tier = {.name = "r", .ttl = seconds(60)}},
                    [&](const std::string& k) {
                      return k + std::to_string(++loads);
                    });
  ASSERT_TRUE(Eventually([&] { return fleet.Stats().subscribed; }));
  EXPECT_EQ(cache.Get("k"), "k1");
  server.Kill();
  EXPECT_EQ(cache.Get("k"), "k1");  // still served, locally
  ASSERT_TRUE(Eventually([&] { return !fleet.Stats().subscribed; }));
  std::string error;
  ASSERT_TRUE(server.Restart(&error)) << error;
  ASSERT_TRUE(Eventually([&] { return !cache.GetIfPresent("k").has_value(); }));
  EXPECT_EQ(cache.Get("k"), "k2");
}

// Helper: a FleetCache holding "k"; "ready", then "dropped" as soon as its
// copy is gone; exits on "exit".
int CacheHelper(int argc, char** argv) {
  Fleet fleet(OptionsFor(std::atoi(Arg(argc, argv, "port").c_str()),
                         Arg(argc, argv, "prefix")));
  StringCache cache(fleet, {.tier = {.name = "p", .ttl = seconds(60)}},
                    [](const std::string& k) { return "v:" + k; });
  if (!Eventually([&] { return fleet.Stats().subscribed; })) return 1;
  if (cache.Get("k") != "v:k") return 1;
  WriteStatus("ready");
  std::jthread watch([&](std::stop_token stop) {
    const auto deadline = SteadyTime::now() + kBound;
    while (!stop.stop_requested() && SteadyTime::now() < deadline) {
      if (!cache.GetIfPresent("k").has_value()) {
        WriteStatus("dropped");
        return;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  while (ReadControl() != "exit") {
  }
  return 0;
}

TEST(FleetCacheProcesses, AnInvalidationDropsEveryOtherProcessesCopyWithin100Ms) {
  RedisServer server;
  HERD_START_REDIS(server);
  const std::string prefix = test::TestPrefix();
  std::vector<std::unique_ptr<Child>> children;
  for (int i = 0; i < 3; ++i) {
    children.push_back(Child::Spawn(
        "cache", {"--port=" + std::to_string(server.port()), "--prefix=" + prefix}));
    ASSERT_NE(children.back(), nullptr);
  }
  for (auto& c : children) ASSERT_EQ(c->ReadLine(kBound), "ready");
  Fleet fleet(OptionsFor(server.port(), prefix));
  StringCache cache(fleet, {.tier = {.name = "p", .ttl = seconds(60)}},
                    [](const std::string& k) { return "v:" + k; });
  const auto t0 = SteadyTime::now();
  ASSERT_TRUE(cache.Invalidate("k"));
  for (auto& c : children) {
    EXPECT_EQ(c->ReadLine(kBound), "dropped");
    const auto took = SteadyTime::now() - t0;
    EXPECT_LT(took, milliseconds(100))
        << std::chrono::duration_cast<milliseconds>(took).count() << " ms";
  }
  for (auto& c : children) {
    c->Send("exit");
    EXPECT_EQ(c->Wait(kBound), 0);
  }
}

}  // namespace
}  // namespace herd::redis

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  if (argc > 1 && std::string_view(argv[1]) == "--herd-helper=cache") {
    return herd::redis::CacheHelper(argc, argv);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
