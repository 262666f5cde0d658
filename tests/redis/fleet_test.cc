// Copyright 2026 The herd Authors.
//
// herd::redis::Fleet and Tier in one process, against a redis-server the
// test starts. Several Fleets in one process stand for several processes:
// each has its own pool, subscription, origin and lease tokens, so the
// protocol cannot tell them apart. The multi-process tests are in
// fleet_process_test.cc.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <cstdint>
#include <future>
#include <latch>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "herd/redis/codec.h"
#include "herd/redis/fleet.h"
#include "herd/redis/tier.h"
#include "herd/share.h"
#include "tests/redis/testing.h"
#include "tests/testing/sync.h"

namespace herd::redis {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using test::Client;
using test::RedisServer;
using StringTier = Tier<std::string, std::string>;
using SteadyTime = std::chrono::steady_clock;

constexpr auto kBound = seconds(20);  // no wait in these tests is longer

FleetOptions OptionsFor(int port) {
  FleetOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.prefix = test::TestPrefix();
  return o;
}

// Blocks until `done()` holds, at most kBound. Returns whether it did.
template <class Pred>
bool Eventually(Pred done) {
  const auto deadline = SteadyTime::now() + kBound;
  while (!done()) {
    if (SteadyTime::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

// The payload of a stored envelope (what follows its first newline).
std::string PayloadOf(const std::string& stored) {
  return stored.substr(stored.find('\n') + 1);
}

// --- Codecs (no server) -----------------------------------------------------------

TEST(FleetCodec, StringRoundTripsEveryByte) {
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  std::string out;
  Codec<std::string>::Encode(all, out);
  EXPECT_EQ(Codec<std::string>::Decode(out), all);
}

TEST(FleetCodec, TriviallyCopyableRoundTripsAndRejectsWrongSize) {
  struct Point {
    int64_t x;
    double y;
  };
  std::string out;
  Codec<Point>::Encode(Point{-7, 2.5}, out);
  ASSERT_EQ(out.size(), sizeof(Point));
  const std::optional<Point> back = Codec<Point>::Decode(out);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->x, -7);
  EXPECT_EQ(back->y, 2.5);
  // codec.h: Decode returns nullopt for bytes it does not accept.
  EXPECT_FALSE(Codec<Point>::Decode(out.substr(1)).has_value());
  EXPECT_FALSE(Codec<Point>::Decode(out + "x").has_value());
  EXPECT_FALSE(Codec<Point>::Decode("").has_value());
}

// codec.h: the built-in codec "is sound for ... arrays and structs of
// them", padding included: Encode copies the object representation through
// unsigned char, the one type std::bit_cast may fill from padding bytes
// (their values are unspecified; the members round-trip).
TEST(FleetCodec, StructWithPaddingRoundTrips) {
  struct Padded {
    char tag;  // then 7 bytes of padding
    int64_t value;
    uint16_t small;  // then 6 more
  };
  static_assert(sizeof(Padded) == 24);
  std::string out;
  Codec<Padded>::Encode(Padded{'k', -123456789, 65535}, out);
  ASSERT_EQ(out.size(), sizeof(Padded));
  const std::optional<Padded> back = Codec<Padded>::Decode(out);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->tag, 'k');
  EXPECT_EQ(back->value, -123456789);
  EXPECT_EQ(back->small, 65535);
}

TEST(FleetCodec, BoolAcceptsOnlyZeroAndOne) {
  EXPECT_EQ(Codec<bool>::Decode(std::string(1, '\0')), false);
  EXPECT_EQ(Codec<bool>::Decode(std::string(1, '\1')), true);
  EXPECT_FALSE(Codec<bool>::Decode(std::string(1, '\2')).has_value());
}

TEST(FleetCodec, TagsTellTypesApart) {
  EXPECT_NE(Codec<int64_t>::Tag(), Codec<double>::Tag());
  EXPECT_NE(Codec<int32_t>::Tag(), Codec<uint32_t>::Tag());
  EXPECT_NE(Codec<int64_t>::Tag(), Codec<std::string>::Tag());
}

TEST(FleetCodec, FingerprintIsFnv1a64) {
  EXPECT_EQ(Fingerprint(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(Fingerprint("a"), 0xaf63dc4c8601ec8cull);
}

TEST(FleetCodec, KeyCodecsRoundTripAndRejectGarbage) {
  std::string text;
  KeyCodec<int64_t>::Encode(-42, text);
  EXPECT_EQ(text, "-42");
  EXPECT_EQ(KeyCodec<int64_t>::Decode(text), -42);
  EXPECT_FALSE(KeyCodec<int64_t>::Decode("4x").has_value());
  EXPECT_FALSE(KeyCodec<int64_t>::Decode("").has_value());
  EXPECT_FALSE(KeyCodec<uint8_t>::Decode("256").has_value());

  struct Pair {
    int32_t a, b;
  };
  std::string hex;
  KeyCodec<Pair>::Encode(Pair{1, -1}, hex);
  EXPECT_EQ(hex.size(), 2 * sizeof(Pair));
  const std::optional<Pair> back = KeyCodec<Pair>::Decode(hex);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->a, 1);
  EXPECT_EQ(back->b, -1);
  EXPECT_FALSE(KeyCodec<Pair>::Decode(hex.substr(2)).has_value());
  EXPECT_FALSE(KeyCodec<Pair>::Decode(std::string(hex.size(), 'z')).has_value());
}

// --- Options (no server) -----------------------------------------------------------

TEST(FleetOptionsTest, EachRequiresIsChecked) {
  auto bad = [](auto change) {
    FleetOptions o = OptionsFor(6379);
    change(o);
    EXPECT_THROW(Fleet fleet(o), std::invalid_argument);
  };
  bad([](FleetOptions& o) { o.host = ""; });
  bad([](FleetOptions& o) { o.port = 0; });
  bad([](FleetOptions& o) { o.port = 65536; });
  bad([](FleetOptions& o) { o.db = -1; });
  bad([](FleetOptions& o) { o.connect_timeout = nanoseconds(0); });
  bad([](FleetOptions& o) { o.command_timeout = -milliseconds(1); });
  bad([](FleetOptions& o) { o.pool_size = 0; });
  bad([](FleetOptions& o) { o.reconnect_backoff_min = nanoseconds(0); });
  bad([](FleetOptions& o) {
    o.reconnect_backoff_min = seconds(2);
    o.reconnect_backoff_max = seconds(1);
  });
  bad([](FleetOptions& o) { o.lease_ttl = milliseconds(2); });
  bad([](FleetOptions& o) { o.poll_interval = nanoseconds(0); });
  bad([](FleetOptions& o) { o.wait_limit = -nanoseconds(1); });
  bad([](FleetOptions& o) { o.ping_interval = nanoseconds(0); });
  bad([](FleetOptions& o) { o.breaker.failure_threshold = 0; });
}

TEST(FleetOptionsTest, MaximalDurationsMeanNoLimitAndAreAccepted) {
  FleetOptions o = OptionsFor(6379);
  o.connect_timeout = nanoseconds::max();
  o.command_timeout = nanoseconds::max();
  o.lease_ttl = nanoseconds::max();
  o.poll_interval = nanoseconds::max();
  o.wait_limit = nanoseconds::max();
  o.reconnect_backoff_max = nanoseconds::max();
  EXPECT_NO_THROW(Fleet fleet(o));
}

TEST(FleetOptionsTest, TierChecksItsOptionsAndLoader) {
  FleetOptions o = OptionsFor(6379);
  Fleet fleet(o);
  auto loader = [](const std::string& k) { return k; };
  EXPECT_THROW(StringTier(fleet, {.ttl = -seconds(1)}, loader),
               std::invalid_argument);
  EXPECT_THROW(
      StringTier(fleet, {.ttl = seconds(1), .refresh_after = seconds(1)},
                 loader),
      std::invalid_argument);
  EXPECT_THROW(StringTier(fleet, {.refresh_after = -seconds(1)}, loader),
               std::invalid_argument);
  EXPECT_THROW(StringTier(fleet, {.early_refresh_beta = -1}, loader),
               std::invalid_argument);
  EXPECT_THROW(StringTier(fleet, {.early_refresh_beta = NAN}, loader),
               std::invalid_argument);
  EXPECT_THROW(StringTier(fleet, {}, std::function<std::string(const std::string&)>()),
               std::invalid_argument);
}

// tier.h, TierOptions::name: "REQUIRES: contains no ':'". Without it, two
// tiers' Redis keys could be one key: tier "a" with key "b:v:c" and tier
// "a:v:b" with key "c" both map to <prefix>a:v:b:v:c (and tier "a"'s
// listener would be handed tier "a:v:b"'s invalidations).
TEST(FleetOptionsTest, TierNamesCannotMakeTwoTiersShareARedisKey) {
  Fleet fleet(OptionsFor(6379));
  auto loader = [](const std::string& k) { return k; };
  EXPECT_THROW(StringTier(fleet, {.name = "a:v:b"}, loader),
               std::invalid_argument);
  EXPECT_THROW(StringTier(fleet, {.name = "a:"}, loader),
               std::invalid_argument);
  StringTier a(fleet, {.name = "a"}, loader);
  StringTier ab(fleet, {.name = "a_v_b"}, loader);
  EXPECT_NE(a.RedisKeys("b:v:c").value_key, ab.RedisKeys("c").value_key);
  EXPECT_EQ(a.RedisKeys("b:v:c").value_key,
            fleet.options().prefix + "a:v:b:v:c");
}

// --- With a server -----------------------------------------------------------------

class FleetTest : public ::testing::Test {
 protected:
  void SetUp() override { HERD_START_REDIS(server_); }
  FleetOptions Options() const { return OptionsFor(server_.port()); }

  RedisServer server_;
};

TEST_F(FleetTest, MissLoadsUnderTheLeaseThenEveryFleetHits) {
  Fleet a(Options()), b(Options());
  std::atomic<int> loads{0};
  auto loader = [&](const std::string& k) {
    ++loads;
    return "row:" + k;
  };
  StringTier ta(a, {.name = "t", .ttl = seconds(60)}, loader);
  StringTier tb(b, {.name = "t", .ttl = seconds(60)}, loader);

  Loaded<std::string> first = ta.Fetch("k");
  EXPECT_EQ(first.value, "row:k");
  EXPECT_EQ(first.source, Source::kLoaded);
  Loaded<std::string> second = tb.Fetch("k");
  EXPECT_EQ(second.value, "row:k");
  EXPECT_EQ(second.source, Source::kRedis);
  EXPECT_FALSE(second.stale);
  EXPECT_GT(second.expires_in, seconds(50));
  EXPECT_LE(second.expires_in, seconds(60));
  EXPECT_EQ(loads.load(), 1);

  const FleetStats sa = a.Stats(), sb = b.Stats();
  EXPECT_EQ(sa.misses, 1u);
  EXPECT_EQ(sa.leases_won, 1u);
  EXPECT_EQ(sa.writes, 1u);
  EXPECT_EQ(sb.hits, 1u);
  EXPECT_EQ(sb.misses, 0u);
  EXPECT_EQ(sa.fallbacks + sb.fallbacks, 0u);

  // fleet.h: `<prefix><namespace>:v:<key>` holds the value, with its TTL.
  Client client(server_.port());
  const KeyRef keys = ta.RedisKeys("k");
  EXPECT_EQ(keys.value_key, Options().prefix + "t:v:k");
  const std::optional<std::string> stored = client.Get(keys.value_key);
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(PayloadOf(*stored), "row:k");
  EXPECT_GT(client.Pttl(keys.value_key), 50000);
  EXPECT_EQ(client.Pttl(keys.lease_key), -2);  // released by the write
}

// A value codec whose Encode throws for the value "unencodable".
struct PickyCodec {
  static std::string Tag() { return "picky"; }
  static void Encode(const std::string& value, std::string& out) {
    if (value == "unencodable") throw std::runtime_error("cannot encode");
    out += value;
  }
  static std::optional<std::string> Decode(std::string_view bytes) {
    return std::string(bytes);
  }
};

// tier.h: "A value that cannot be encoded is returned but not stored"; the
// lease is given back, and Loaded::expires_in is the ttl the value would
// have had ("A local copy kept this long is never staler than Redis's"),
// not "never": nothing in Redis ever expires it.
TEST_F(FleetTest, UnencodableValueIsReturnedNotStoredAndStillExpires) {
  Fleet fleet(Options());
  Tier<std::string, std::string, PickyCodec> tier(
      fleet, {.name = "picky", .ttl = seconds(60)},
      [](const std::string& k) { return k; });
  const Loaded<std::string> got = tier.Fetch("unencodable");
  EXPECT_EQ(got.value, "unencodable");
  EXPECT_EQ(got.source, Source::kLoaded);
  EXPECT_LE(got.expires_in, seconds(60));
  EXPECT_LE(got.fresh_for, seconds(60));
  Client client(server_.port());
  const KeyRef keys = tier.RedisKeys("unencodable");
  EXPECT_FALSE(client.Get(keys.value_key).has_value());
  EXPECT_EQ(client.Pttl(keys.lease_key), -2);  // given back
  EXPECT_EQ(fleet.Stats().writes, 0u);
  // An encodable value of the same tier is stored as usual.
  EXPECT_EQ(tier.Fetch("fine").source, Source::kLoaded);
  EXPECT_TRUE(client.Get(tier.RedisKeys("fine").value_key).has_value());
}

TEST_F(FleetTest, TtlZeroKeepsTheValueAndExpireAfterDecidesPerValue) {
  Fleet fleet(Options());
  StringTier forever(fleet, {.name = "forever"},
                     [](const std::string& k) { return k; });
  StringTier per_value(
      fleet,
      {.name = "per",
       .expire_after = [](const std::string&, const std::string& v) {
         return v == "keep" ? nanoseconds::max()
                : v == "drop" ? nanoseconds(0)
                              : nanoseconds(seconds(30));
       }},
      [](const std::string& k) { return k; });
  Client client(server_.port());
  forever.Load("x");
  EXPECT_EQ(client.Pttl(forever.RedisKeys("x").value_key), -1);
  per_value.Load("keep");
  EXPECT_EQ(client.Pttl(per_value.RedisKeys("keep").value_key), -1);
  per_value.Load("drop");  // <= 0: not stored
  EXPECT_EQ(client.Pttl(per_value.RedisKeys("drop").value_key), -2);
  EXPECT_EQ(client.Pttl(per_value.RedisKeys("drop").lease_key), -2);
  ASSERT_TRUE(per_value.Put("keep", "drop"));  // fleet.h Put(): ttl <= 0 deletes
  EXPECT_EQ(client.Pttl(per_value.RedisKeys("keep").value_key), -2);
  per_value.Load("other");
  const int64_t pttl = client.Pttl(per_value.RedisKeys("other").value_key);
  EXPECT_GT(pttl, 25000);
  EXPECT_LE(pttl, 30000);
}

// fleet.h: "Threads that share a local flight add none" -- commands per
// flight from INFO commandstats, for 1 thread and for 64.
TEST_F(FleetTest, CommandsPerFlightAreTheSameForOneThreadAndSixtyFour) {
  FleetOptions o = Options();
  o.lease_ttl = seconds(60);  // no renewal during a flight
  Fleet fleet(o);
  std::atomic<int> loads{0};
  Share<std::string, std::string> share;
  StringTier tier(fleet, {.name = "c", .ttl = seconds(60)},
                  [&](const std::string& k) {
                    ++loads;
                    return "v" + k;
                  });
  Client client(server_.port());
  tier.Load("warm-up");  // the scripts are loaded once per server
  ASSERT_TRUE(Eventually([&] { return fleet.Stats().subscribed; }));

  // Redis's own count of what this process sent for one flight; the test's
  // client's INFO / CONFIG and the subscription's PINGs are not the flight's.
  auto flight_commands = [&](int threads, const std::string& key)
      -> std::map<std::string, uint64_t> {
    client.Run({"CONFIG", "RESETSTAT"});
    const uint64_t before = fleet.Stats().commands;
    const uint64_t calls_before = share.Stats().calls;
    std::latch start(threads);
    std::vector<std::jthread> callers;
    for (int i = 0; i < threads; ++i) {
      callers.emplace_back([&] {
        start.arrive_and_wait();
        EXPECT_EQ(share.Do(key,
                           [&] {
                             // Hold the flight until every caller joined it.
                             herd::test::AwaitCalls(share,
                                                    calls_before + threads);
                             return tier.Load(key);
                           }),
                  "v" + key);
      });
    }
    callers.clear();
    std::map<std::string, uint64_t> stats = client.CommandStats();
    for (const char* own : {"config|resetstat", "info", "ping"}) stats.erase(own);
    uint64_t total = 0;
    for (const auto& [name, calls] : stats) total += calls;
    stats["(total)"] = total;
    stats["(fleet)"] = fleet.Stats().commands - before;
    EXPECT_EQ(share.Stats().calls, calls_before + threads);
    return stats;
  };

  const int loads_before = loads.load();
  const auto miss_1 = flight_commands(1, "one");
  const auto miss_64 = flight_commands(64, "sixty-four");
  EXPECT_EQ(loads.load(), loads_before + 2);
  EXPECT_EQ(miss_1, miss_64);
  // A miss: READ and WRITE, one EVALSHA each.
  EXPECT_EQ(miss_1.at("evalsha"), 2u);
  EXPECT_EQ(miss_1.at("(fleet)"), 2u);

  const auto hit_1 = flight_commands(1, "one");
  const auto hit_64 = flight_commands(64, "one");
  EXPECT_EQ(hit_1, hit_64);
  EXPECT_EQ(hit_1.at("evalsha"), 1u);  // a hit: READ alone
  EXPECT_EQ(hit_1.at("(fleet)"), 1u);
  EXPECT_EQ(loads.load(), loads_before + 2);
}

// fleet.h: the holder "renews the lease every lease_ttl / 3 while its load
// runs": a load that outlives lease_ttl several times is not taken over.
TEST_F(FleetTest, LeaseIsRenewedWhileALongLoadRuns) {
  FleetOptions o = Options();
  o.lease_ttl = milliseconds(150);
  Fleet a(o), b(o);
  std::atomic<int> loads{0};
  herd::test::Gate finish;
  StringTier ta(a, {.name = "r", .ttl = seconds(60)},
                [&](const std::string&) {
                  ++loads;
                  finish.Wait();
                  return std::string("from-a");
                });
  StringTier tb(b, {.name = "r", .ttl = seconds(60)},
                [&](const std::string&) {
                  ++loads;
                  return std::string("from-b");
                });
  auto holder = std::async(std::launch::async, [&] { return ta.Load("k"); });
  ASSERT_TRUE(Eventually([&] { return a.Stats().leases_won == 1; }));
  auto waiter = std::async(std::launch::async, [&] { return tb.Load("k"); });
  // Three renewals: the load has run at least twice lease_ttl, and b waits.
  ASSERT_TRUE(Eventually([&] {
    return a.Stats().renewals >= 3 && b.Stats().leases_lost == 1;
  }));
  EXPECT_EQ(a.Stats().leases_held, 1u);
  finish.Open();
  ASSERT_EQ(waiter.wait_for(kBound), std::future_status::ready);
  EXPECT_EQ(holder.get(), "from-a");
  EXPECT_EQ(waiter.get(), "from-a");
  EXPECT_EQ(loads.load(), 1);
  EXPECT_EQ(a.Stats().writes, 1u);
  EXPECT_EQ(a.Stats().writes_rejected, 0u);
  EXPECT_EQ(b.Stats().fallbacks, 0u);
  EXPECT_EQ(a.Stats().leases_held, 0u);
}

// fleet.h Fetch(): "Throws: what load throws (the lease ... is released
// first, and waiters in other processes retry)".
TEST_F(FleetTest, LoaderExceptionReleasesTheLeaseAndAWaiterLoads) {
  FleetOptions o = Options();
  o.lease_ttl = seconds(30);  // a waiter that had to wait it out would time out
  o.poll_interval = seconds(30);
  Fleet a(o), b(o);
  std::promise<void> b_waits;
  std::atomic<int> b_loads{0};
  struct DbDown : std::runtime_error {
    DbDown() : std::runtime_error("db down") {}
  };
  StringTier ta(a, {.name = "e", .ttl = seconds(60)},
                [&](const std::string&) -> std::string {
                  b_waits.get_future().wait();
                  throw DbDown();
                });
  StringTier tb(b, {.name = "e", .ttl = seconds(60)},
                [&](const std::string&) {
                  ++b_loads;
                  return std::string("from-b");
                });
  auto holder = std::async(std::launch::async, [&] { return ta.Load("k"); });
  ASSERT_TRUE(Eventually([&] { return a.Stats().leases_won == 1; }));
  auto waiter = std::async(std::launch::async, [&] { return tb.Load("k"); });
  ASSERT_TRUE(Eventually([&] { return b.Stats().leases_lost == 1; }));
  b_waits.set_value();
  EXPECT_THROW(holder.get(), DbDown);
  ASSERT_EQ(waiter.wait_for(seconds(10)), std::future_status::ready);
  EXPECT_EQ(waiter.get(), "from-b");
  EXPECT_EQ(b_loads.load(), 1);
  EXPECT_GE(b.Stats().wakeups, 1u);  // the release message, not a poll
  EXPECT_EQ(b.Stats().leases_won, 1u);
}

// fleet.h Put(): "deletes the lease (an in-flight load's write is then
// rejected)" -- a Put during a load wins.
TEST_F(FleetTest, PutDuringALoadWinsAndTheLoadsWriteIsRejected) {
  Fleet a(Options()), b(Options());
  herd::test::Gate finish;
  StringTier ta(a, {.name = "p", .ttl = seconds(60)},
                [&](const std::string&) {
                  finish.Wait();
                  return std::string("loaded");
                });
  StringTier tb(b, {.name = "p", .ttl = seconds(60)},
                [](const std::string&) { return std::string("b-loaded"); });
  auto holder = std::async(std::launch::async, [&] { return ta.Load("k"); });
  ASSERT_TRUE(Eventually([&] { return a.Stats().leases_won == 1; }));
  ASSERT_TRUE(tb.Put("k", "put"));
  finish.Open();
  EXPECT_EQ(holder.get(), "loaded");  // its own callers get what it loaded
  EXPECT_EQ(a.Stats().writes_rejected, 1u);
  EXPECT_EQ(a.Stats().leases_expired, 1u);
  EXPECT_EQ(a.Stats().writes, 0u);
  Loaded<std::string> now = tb.Fetch("k");
  EXPECT_EQ(now.value, "put");
  EXPECT_EQ(now.source, Source::kRedis);
}

TEST_F(FleetTest, InvalidateDuringALoadKeepsItsResultOutOfRedis) {
  Fleet a(Options()), b(Options());
  herd::test::Gate finish;
  StringTier ta(a, {.name = "i", .ttl = seconds(60)},
                [&](const std::string&) {
                  finish.Wait();
                  return std::string("loaded");
                });
  StringTier tb(b, {.name = "i", .ttl = seconds(60)},
                [](const std::string&) { return std::string("b"); });
  auto holder = std::async(std::launch::async, [&] { return ta.Load("k"); });
  ASSERT_TRUE(Eventually([&] { return a.Stats().leases_won == 1; }));
  ASSERT_TRUE(tb.Invalidate("k"));
  finish.Open();
  EXPECT_EQ(holder.get(), "loaded");
  EXPECT_EQ(a.Stats().writes_rejected, 1u);
  Client client(server_.port());
  EXPECT_EQ(client.Pttl(ta.RedisKeys("k").value_key), -2);
  EXPECT_EQ(client.Pttl(ta.RedisKeys("k").lease_key), -2);
}

// fleet.h: "a value older than refresh_after (by Redis's clock) is returned
// at once, and ... exactly one process in the fleet refreshes it".
TEST_F(FleetTest, StaleValueIsServedByEveryFleetAndRefreshedOnce) {
  constexpr int kFleets = 4;
  std::vector<std::unique_ptr<Fleet>> fleets;
  std::vector<std::unique_ptr<StringTier>> tiers;
  std::atomic<int> loads{0};
  herd::test::Gate refresh_may_finish;
  for (int i = 0; i < kFleets; ++i) {
    fleets.push_back(std::make_unique<Fleet>(Options()));
    tiers.push_back(std::make_unique<StringTier>(
        *fleets.back(),
        StringTier::Options{.name = "s",
                            .ttl = seconds(60),
                            .refresh_after = milliseconds(100)},
        [&](const std::string&) {
          const int n = ++loads;
          if (n > 1) refresh_may_finish.Wait();
          return "v" + std::to_string(n);
        }));
  }
  EXPECT_EQ(tiers[0]->Load("k"), "v1");
  // Let the value age past refresh_after by Redis's clock (its PTTL).
  Client client(server_.port());
  const std::string value_key = tiers[0]->RedisKeys("k").value_key;
  ASSERT_TRUE(Eventually([&] { return client.Pttl(value_key) < 59850; }));

  for (int i = 0; i < kFleets; ++i) {
    Loaded<std::string> got = tiers[i]->Fetch("k");
    EXPECT_EQ(got.value, "v1") << i;
    EXPECT_TRUE(got.stale) << i;
    EXPECT_EQ(got.source, Source::kRedis);
    EXPECT_EQ(got.fresh_for, nanoseconds(0));
    EXPECT_GE(got.age, milliseconds(100));
  }
  uint64_t refreshes = 0, stale = 0;
  for (auto& f : fleets) {
    refreshes += f->Stats().refreshes;
    stale += f->Stats().stale_served;
  }
  EXPECT_EQ(refreshes, 1u);
  EXPECT_EQ(stale, static_cast<uint64_t>(kFleets));
  refresh_may_finish.Open();
  ASSERT_TRUE(Eventually([&] {
    uint64_t writes = 0;
    for (auto& f : fleets) writes += f->Stats().writes;
    return writes == 2;
  }));
  EXPECT_EQ(loads.load(), 2);
  Loaded<std::string> fresh = tiers[3]->Fetch("k");
  EXPECT_EQ(fresh.value, "v2");
  EXPECT_FALSE(fresh.stale);
  EXPECT_GT(fresh.fresh_for, nanoseconds(0));
}

// fleet.h: "XFetch early refresh does the same, at random, shortly before
// the value expires, from the stored load time". A huge beta makes it sure.
TEST_F(FleetTest, XFetchRefreshesEarlyFromTheStoredLoadTime) {
  Fleet a(Options()), b(Options()), c(Options());
  std::atomic<int> loads{0};
  auto loader = [&](const std::string&) {
    std::this_thread::sleep_for(milliseconds(3));  // the query's cost
    return "v" + std::to_string(++loads);
  };
  StringTier ta(a, {.name = "x", .ttl = seconds(60)}, loader);
  StringTier never(b, {.name = "x", .ttl = seconds(60)}, loader);
  StringTier eager(c, {.name = "x", .ttl = seconds(60), .early_refresh_beta = 1e9},
                   loader);
  EXPECT_EQ(ta.Load("k"), "v1");
  Loaded<std::string> plain = never.Fetch("k");
  EXPECT_EQ(plain.value, "v1");
  EXPECT_EQ(b.Stats().refreshes, 0u);
  Loaded<std::string> early = eager.Fetch("k");
  EXPECT_EQ(early.value, "v1");
  EXPECT_FALSE(early.stale);
  EXPECT_EQ(c.Stats().refreshes, 1u);
  EXPECT_EQ(c.Stats().early_refreshes, 1u);
  ASSERT_TRUE(Eventually([&] { return c.Stats().writes == 1; }));
  EXPECT_EQ(loads.load(), 2);
  EXPECT_EQ(never.Fetch("k").value, "v2");
}

// fleet.h FleetOptions::wait_limit: "A waiter that has waited this long for
// another process's load runs the loader itself (a fallback)"; 0: at once.
TEST_F(FleetTest, AWaiterPastWaitLimitLoadsByItself) {
  FleetOptions holder_options = Options();
  holder_options.lease_ttl = seconds(30);
  Fleet a(holder_options);
  herd::test::Gate finish;
  StringTier ta(a, {.name = "w", .ttl = seconds(60)},
                [&](const std::string&) {
                  finish.Wait();
                  return std::string("slow");
                });
  auto holder = std::async(std::launch::async, [&] { return ta.Load("k"); });
  ASSERT_TRUE(Eventually([&] { return a.Stats().leases_won == 1; }));

  for (const nanoseconds limit : {nanoseconds(0), nanoseconds(milliseconds(150))}) {
    FleetOptions o = Options();
    o.poll_interval = seconds(10);  // only the limit can end the wait
    o.wait_limit = limit;
    Fleet b(o);
    std::atomic<int> loads{0};
    StringTier tb(b, {.name = "w", .ttl = seconds(60)},
                  [&](const std::string&) {
                    ++loads;
                    return std::string("own");
                  });
    const auto t0 = SteadyTime::now();
    Loaded<std::string> got = tb.Fetch("k");
    const auto took = SteadyTime::now() - t0;
    EXPECT_EQ(got.value, "own");
    EXPECT_EQ(got.source, Source::kLocal);
    EXPECT_EQ(loads.load(), 1);
    EXPECT_EQ(b.Stats().fallbacks, 1u);
    EXPECT_EQ(b.Stats().leases_lost, 1u);
    EXPECT_GE(took, limit);
    EXPECT_LT(took, limit + seconds(2));  // nowhere near the 10 s poll
  }
  finish.Open();
  EXPECT_EQ(holder.get(), "slow");
}

// tier.h TierOptions::executor: a refresh the executor refuses gives its
// lease back (fleet.h Release()), so the next stale read can refresh.
TEST_F(FleetTest, ARefreshTheExecutorRefusesReleasesItsLease) {
  struct Refusing {
    void Schedule(Task) { throw std::runtime_error("full"); }
  } refusing;
  Fleet fleet(Options());
  std::atomic<int> loads{0};
  StringTier tier(fleet,
                  {.name = "q",
                   .ttl = seconds(60),
                   .refresh_after = milliseconds(50),
                   .executor = refusing},
                  [&](const std::string&) { return "v" + std::to_string(++loads); });
  EXPECT_EQ(tier.Load("k"), "v1");
  Client client(server_.port());
  const KeyRef keys = tier.RedisKeys("k");
  ASSERT_TRUE(Eventually([&] { return client.Pttl(keys.value_key) < 59900; }));
  Loaded<std::string> stale = tier.Fetch("k");
  EXPECT_TRUE(stale.stale);
  EXPECT_EQ(fleet.Stats().refreshes, 1u);  // won, then could not schedule
  EXPECT_EQ(client.Pttl(keys.lease_key), -2);
  EXPECT_TRUE(tier.Fetch("k").stale);
  EXPECT_EQ(fleet.Stats().refreshes, 2u);  // the lease was free again
  EXPECT_EQ(loads.load(), 1);
}

// tier.h: "A failed refresh leaves the stale value; the lease was released,
// so the next reader past refresh_after tries again."
TEST_F(FleetTest, AFailedRefreshKeepsTheStaleValueAndTheNextReaderRetries) {
  Fleet fleet(Options());
  std::atomic<int> loads{0};
  StringTier tier(fleet,
                  {.name = "ff", .ttl = seconds(60), .refresh_after = milliseconds(50)},
                  [&](const std::string&) -> std::string {
                    const int n = ++loads;
                    if (n == 2) throw std::runtime_error("refresh failed");
                    return "v" + std::to_string(n);
                  });
  EXPECT_EQ(tier.Load("k"), "v1");
  Client client(server_.port());
  const KeyRef keys = tier.RedisKeys("k");
  ASSERT_TRUE(Eventually([&] { return client.Pttl(keys.value_key) < 59900; }));
  EXPECT_EQ(tier.Fetch("k").value, "v1");  // stale; refresh 1 fails
  ASSERT_TRUE(Eventually([&] {
    return loads.load() == 2 && client.Pttl(keys.lease_key) == -2;
  }));
  EXPECT_EQ(tier.Fetch("k").value, "v1");  // still stale; refresh 2
  ASSERT_TRUE(Eventually([&] { return fleet.Stats().writes == 2; }));
  EXPECT_EQ(tier.Fetch("k").value, "v3");
  EXPECT_EQ(fleet.Stats().refreshes, 2u);
}

// codec.h: "a reader ... treats the value as foreign (a decode error:
// counted, treated as a miss, reloaded)"; the checksum catches altered bytes.
TEST_F(FleetTest, CorruptOrForeignPayloadIsCountedAndReloaded) {
  Fleet fleet(Options());
  std::atomic<int> loads{0};
  StringTier tier(fleet, {.name = "z", .ttl = seconds(60)},
                  [&](const std::string&) {
                    return "good" + std::to_string(++loads);
                  });
  Tier<std::string, int64_t> other_type(
      fleet, {.name = "z", .ttl = seconds(60)},
      [](const std::string&) { return int64_t{7}; });
  Client client(server_.port());
  const std::string key = tier.RedisKeys("k").value_key;
  ASSERT_EQ(tier.Load("k"), "good1");
  const std::string stored = *client.Get(key);

  const std::vector<std::pair<std::string, std::string>> corruptions = {
      {"foreign bytes", "not an envelope"},
      {"empty", ""},
      {"flipped payload byte", stored.substr(0, stored.size() - 1) + "X"},
      {"truncated", stored.substr(0, stored.size() - 2)},
      {"appended", stored + "!"},
      {"bad header", "H1 123 zz 5 \n"},
      {"header only", stored.substr(0, stored.find('\n'))},
  };
  uint64_t errors = fleet.Stats().decode_errors;
  int expected_loads = 1;
  for (const auto& [what, bytes] : corruptions) {
    ASSERT_TRUE(client.Set(key, bytes)) << what;
    Loaded<std::string> got = tier.Fetch("k");
    ++expected_loads;
    EXPECT_EQ(got.value, "good" + std::to_string(expected_loads)) << what;
    EXPECT_EQ(got.source, Source::kLoaded) << what;
    EXPECT_EQ(fleet.Stats().decode_errors, ++errors) << what;
    // Reloaded and stored: the next read hits.
    EXPECT_EQ(tier.Fetch("k").source, Source::kRedis) << what;
    EXPECT_EQ(loads.load(), expected_loads) << what;
  }

  // A value of another type under the same key: its tag differs.
  ASSERT_TRUE(other_type.Put("k", 7));
  EXPECT_EQ(tier.Load("k"), "good" + std::to_string(++expected_loads));
  EXPECT_EQ(fleet.Stats().decode_errors, ++errors);
  EXPECT_EQ(fleet.Stats().fallbacks, 0u);
}

// fleet.h: Listen(): "on_key ... for each" Put and Invalidate "by other
// processes", within 100 ms; a Fleet does not hear its own.
TEST_F(FleetTest, ListenersHearOtherFleetsPutsAndInvalidationsNotTheirOwn) {
  Fleet a(Options()), b(Options());
  StringTier ta(a, {.name = "l"}, [](const std::string& k) { return k; });
  StringTier tb(b, {.name = "l"}, [](const std::string& k) { return k; });
  StringTier other_space(a, {.name = "m"}, [](const std::string& k) { return k; });
  std::mutex mu;
  std::vector<std::string> heard_by_b, heard_by_a;
  std::condition_variable cv;
  auto listen_b = tb.Listen(
      [&](const std::string& k) {
        {
          std::lock_guard<std::mutex> lock(mu);
          heard_by_b.push_back(k);
        }
        cv.notify_all();
      },
      nullptr);
  auto listen_a = ta.Listen(
      [&](const std::string& k) {
        std::lock_guard<std::mutex> lock(mu);
        heard_by_a.push_back(k);
      },
      nullptr);
  ASSERT_TRUE(Eventually([&] { return a.Stats().subscribed && b.Stats().subscribed; }));
  auto wait_for = [&](size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, kBound, [&] { return heard_by_b.size() >= n; });
  };
  const auto t0 = SteadyTime::now();
  ASSERT_TRUE(ta.Invalidate("k1"));
  ASSERT_TRUE(wait_for(1));
  EXPECT_LT(SteadyTime::now() - t0, milliseconds(100));
  ASSERT_TRUE(ta.Put("k2", "v"));
  ASSERT_TRUE(wait_for(2));
  ASSERT_TRUE(other_space.Invalidate("k3"));  // another name space
  ASSERT_TRUE(ta.Invalidate("k4"));
  ASSERT_TRUE(wait_for(3));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_THAT(heard_by_b, ::testing::ElementsAre("k1", "k2", "k4"));
  EXPECT_TRUE(heard_by_a.empty());
  EXPECT_EQ(b.Stats().invalidations_received, 4u);  // k3 too, for no listener
}

TEST_F(FleetTest, AListenerMayUnregisterItselfFromItsOwnCall) {
  Fleet a(Options()), b(Options());
  StringTier ta(a, {.name = "u"}, [](const std::string& k) { return k; });
  StringTier tb(b, {.name = "u"}, [](const std::string& k) { return k; });
  std::unique_ptr<Fleet::Listener> listener;
  std::promise<void> called;
  listener = tb.Listen(
      [&](const std::string&) {
        listener.reset();  // Listener: "unless it is destroyed by that call"
        called.set_value();
      },
      nullptr);
  ASSERT_TRUE(Eventually([&] { return b.Stats().subscribed; }));
  ASSERT_TRUE(ta.Invalidate("k"));
  EXPECT_EQ(called.get_future().wait_for(kBound), std::future_status::ready);
}

TEST_F(FleetTest, MetricsTextNamesEveryCounterAndGauge) {
  Fleet fleet(Options());
  StringTier tier(fleet, {.name = "metrics"},
                  [](const std::string& k) { return k; });
  tier.Load("k");
  const std::string text = FormatMetrics(fleet.Stats(), "app_");
  for (const char* name :
       {"app_commands_total 4",  // SCRIPT LOAD of READ and WRITE, then both
       "app_leases_won_total 1", "app_writes_total 1",
        "app_decode_errors_total 0", "app_fallbacks_total 0",
        "app_stale_served_total 0", "app_leases_expired_total 0",
        "# TYPE app_breaker_open gauge", "app_connections_open 1"}) {
    EXPECT_NE(text.find(name), std::string::npos) << name << "\n" << text;
  }
}

// fleet.h FleetOptions: AUTH and SELECT db.
TEST(FleetAuth, PasswordAndDatabaseIndexAreUsed) {
  RedisServer server;
  HERD_START_REDIS(server, {"--requirepass", "s3cret"});
  FleetOptions o = OptionsFor(server.port());
  o.breaker.failure_threshold = 1000;
  std::atomic<int> loads{0};
  auto loader = [&](const std::string& k) {
    ++loads;
    return k;
  };
  {
    Fleet no_password(o);
    StringTier tier(no_password, {.name = "a"}, loader);
    EXPECT_EQ(tier.Fetch("k").source, Source::kLocal);  // refused: a fallback
    EXPECT_EQ(no_password.Stats().fallbacks, 1u);
  }
  o.password = "s3cret";
  FleetOptions db3 = o;
  db3.db = 3;
  Fleet zero(o), three(db3);
  StringTier t0(zero, {.name = "a"}, loader);
  StringTier t3(three, {.name = "a"}, loader);
  EXPECT_EQ(t3.Fetch("k").source, Source::kLoaded);
  EXPECT_EQ(t3.Fetch("k").source, Source::kRedis);
  EXPECT_EQ(t0.Fetch("k").source, Source::kLoaded);  // db 0 does not have it
  EXPECT_EQ(loads.load(), 3);
  Client client(server.port(), "s3cret");
  EXPECT_EQ(client.Pttl(t3.RedisKeys("k").value_key), -1);
  client.Run({"SELECT", "3"});
  EXPECT_EQ(client.Pttl(t3.RedisKeys("k").value_key), -1);
  EXPECT_EQ(zero.Stats().fallbacks + three.Stats().fallbacks, 0u);
}

// --- Redis unreachable, killed, paused ---------------------------------------------

FleetOptions FaultOptions(int port) {
  FleetOptions o = OptionsFor(port);
  o.connect_timeout = milliseconds(100);
  o.command_timeout = milliseconds(100);
  o.breaker.failure_threshold = 3;
  o.breaker.open_duration = milliseconds(300);
  o.reconnect_backoff_min = milliseconds(20);
  o.reconnect_backoff_max = milliseconds(300);
  o.ping_interval = milliseconds(200);
  return o;
}

// fleet.h: "A call that cannot reach Redis runs the loader itself ... once
// the breaker opens, [slowed] by nothing".
TEST(FleetFailSafe, UnreachableRedisFallsBackAndTheBreakerStopsTrying) {
  RedisServer server;
  HERD_START_REDIS(server);
  const int port = server.port();
  server.Kill();  // nothing listens there now
  Fleet fleet(FaultOptions(port));
  std::atomic<int> loads{0};
  StringTier tier(fleet, {.name = "f"}, [&](const std::string& k) {
    ++loads;
    return k;
  });
  for (int i = 0; i < 20; ++i) {
    const auto t0 = SteadyTime::now();
    Loaded<std::string> got = tier.Fetch("k");
    EXPECT_EQ(got.value, "k");
    EXPECT_EQ(got.source, Source::kLocal);
    EXPECT_LT(SteadyTime::now() - t0, milliseconds(200 + 100)) << i;
  }
  EXPECT_EQ(loads.load(), 20);
  const FleetStats s = fleet.Stats();
  EXPECT_EQ(s.fallbacks, 20u);
  EXPECT_EQ(s.commands, 0u);
  EXPECT_GE(s.connect_failures, 1u);
  EXPECT_LE(s.connect_failures, 3u);  // then the breaker refuses unsent
  EXPECT_GE(s.refused, 17u);
  EXPECT_NE(s.breaker, CircuitBreaker::State::kClosed);
  EXPECT_FALSE(tier.Put("k", "v"));
  EXPECT_FALSE(tier.Invalidate("k"));
}

// A stream of flights on several keys while Redis goes away and comes back.
class Workload {
 public:
  Workload(StringTier& tier, int threads, int keys)
      : tier_(tier), keys_(keys) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this, i](std::stop_token stop) { Run(i, stop); });
    }
  }
  ~Workload() { Stop(); }
  void Stop() {
    for (auto& t : threads_) t.request_stop();
    threads_.clear();
  }
  uint64_t calls() const { return calls_.load(); }
  uint64_t failures() const { return failures_.load(); }
  nanoseconds max_latency() const { return nanoseconds(max_ns_.load()); }
  // Flights (Tier loads) slower than the mark, since ResetLatency().
  uint64_t slow_calls() const { return slow_.load(); }
  void MarkSlow(nanoseconds d) { slow_mark_ns_ = d.count(); }
  void ResetLatency() {
    max_ns_ = 0;
    slow_ = 0;
  }

 private:
  void Run(int i, std::stop_token stop) {
    uint64_t n = static_cast<uint64_t>(i);
    while (!stop.stop_requested()) {
      const std::string key = "k" + std::to_string(n++ % keys_);
      const auto t0 = SteadyTime::now();
      try {
        const std::string v = share_.Do(key, [&] {
          // One flight's time in the Tier: callers that join it wait as
          // long, but it is one slowed load.
          const auto start = SteadyTime::now();
          std::string loaded = tier_.Load(key);
          if ((SteadyTime::now() - start).count() > slow_mark_ns_.load()) {
            ++slow_;
          }
          return loaded;
        });
        if (v != "v:" + key) ++failures_;
      } catch (...) {
        ++failures_;
      }
      const int64_t took = (SteadyTime::now() - t0).count();
      int64_t seen = max_ns_.load();
      while (took > seen && !max_ns_.compare_exchange_weak(seen, took)) {
      }
      ++calls_;
    }
  }

  StringTier& tier_;
  const int keys_;
  Share<std::string, std::string> share_;
  std::atomic<uint64_t> calls_{0}, failures_{0}, slow_{0};
  std::atomic<int64_t> max_ns_{0};
  std::atomic<int64_t> slow_mark_ns_{nanoseconds::max().count()};
  std::vector<std::jthread> threads_;
};

// fleet.h: "keeps serving ... recovers by itself when Redis returns".
TEST(FleetFailSafe, RedisKilledMidRunKeepsServingAndRecoversAfterRestart) {
  RedisServer server;
  HERD_START_REDIS(server);
  const FleetOptions o = FaultOptions(server.port());
  Fleet fleet(o);
  std::atomic<int> loads{0};
  StringTier tier(fleet, {.name = "kill", .ttl = milliseconds(20)},
                  [&](const std::string& k) {
                    ++loads;
                    return "v:" + k;
                  });
  Workload work(tier, 8, 4);
  ASSERT_TRUE(Eventually([&] { return fleet.Stats().writes >= 5; }));
  ASSERT_TRUE(Eventually([&] { return fleet.Stats().subscribed; }));

  server.Kill();
  const uint64_t calls_at_kill = work.calls();
  const uint64_t fallbacks_at_kill = fleet.Stats().fallbacks;
  ASSERT_TRUE(Eventually([&] {
    return work.calls() > calls_at_kill + 200 &&
           fleet.Stats().breaker != CircuitBreaker::State::kClosed &&
           !fleet.Stats().subscribed;
  }));
  EXPECT_GT(fleet.Stats().fallbacks, fallbacks_at_kill);

  // Sampled before the restart: the subscription may be back before
  // Restart() returns.
  const uint64_t writes_at_restart = fleet.Stats().writes;
  const uint64_t subscribes_at_restart = fleet.Stats().subscribes;
  std::string error;
  ASSERT_TRUE(server.Restart(&error)) << error;
  ASSERT_TRUE(Eventually([&] {
    const FleetStats s = fleet.Stats();
    return s.writes >= writes_at_restart + 5 && s.subscribed &&
           s.subscribes > subscribes_at_restart &&
           s.breaker == CircuitBreaker::State::kClosed;
  })) << FormatMetrics(fleet.Stats());
  work.Stop();
  EXPECT_EQ(work.failures(), 0u);
  // Killed: refused at once. Bound: one connect plus one command timeout.
  EXPECT_LE(work.max_latency(), o.connect_timeout + o.command_timeout +
                                    milliseconds(300))
      << "max latency " << work.max_latency().count() / 1000000 << " ms";
  Client client(server.port());
  EXPECT_TRUE(client.Get(tier.RedisKeys("k0").value_key).has_value() ||
              client.Get(tier.RedisKeys("k1").value_key).has_value() ||
              client.Get(tier.RedisKeys("k2").value_key).has_value() ||
              client.Get(tier.RedisKeys("k3").value_key).has_value());
}

// fleet.h: "each call slowed by at most ... command_timeout; once the breaker
// opens, by nothing": a paused server accepts connections and never answers.
TEST(FleetFailSafe, PausedRedisSlowsCallsByOneCommandTimeoutUntilTheBreakerOpens) {
  RedisServer server;
  HERD_START_REDIS(server);
  FleetOptions o = FaultOptions(server.port());
  o.breaker.open_duration = milliseconds(500);
  o.reconnect_backoff_max = milliseconds(500);
  constexpr int kThreads = 4;
  o.pool_size = kThreads;  // no call waits for a connection
  Fleet fleet(o);
  StringTier tier(fleet, {.name = "pause", .ttl = milliseconds(20)},
                  [](const std::string& k) { return "v:" + k; });
  Workload work(tier, kThreads, 4);
  ASSERT_TRUE(Eventually([&] { return fleet.Stats().writes >= 5; }));

  const nanoseconds slow = o.command_timeout / 2;
  work.MarkSlow(slow);
  work.ResetLatency();
  server.Pause();
  const auto paused_at = SteadyTime::now();
  const uint64_t calls_at_pause = work.calls();
  ASSERT_TRUE(Eventually([&] {
    return work.calls() > calls_at_pause + 500 &&
           fleet.Stats().breaker != CircuitBreaker::State::kClosed;
  }));
  const auto paused_for = SteadyTime::now() - paused_at;
  const uint64_t slow_flights = work.slow_calls();
  const nanoseconds max_latency = work.max_latency();
  server.Resume();
  ASSERT_TRUE(Eventually([&] {
    return fleet.Stats().breaker == CircuitBreaker::State::kClosed &&
           fleet.Stats().subscribed;
  }));
  work.Stop();
  EXPECT_EQ(work.failures(), 0u);
  // Each call made at most one attempt: the command timeout (plus the load
  // and the scheduling of a busy 2-core machine).
  EXPECT_LE(max_latency, o.command_timeout + milliseconds(250))
      << max_latency.count() / 1000000 << " ms";
  // Slow flights: those under way when the pause began (one per thread),
  // then one trial each time the breaker half-opened.
  const int64_t trials = paused_for / o.breaker.open_duration + 1;
  EXPECT_GE(slow_flights, 3u);  // the breaker opened on 3 timeouts
  EXPECT_LE(slow_flights, static_cast<uint64_t>(kThreads + trials))
      << "paused for " << paused_for.count() / 1000000 << " ms";
}

// fleet.h Listen(): "on_resync() after the subscription was lost and
// restored (messages may have been missed)".
TEST(FleetFailSafe, ListenersAreToldToResyncAfterTheSubscriptionReturns) {
  RedisServer server;
  HERD_START_REDIS(server);
  Fleet fleet(FaultOptions(server.port()));
  StringTier tier(fleet, {.name = "r"}, [](const std::string& k) { return k; });
  std::atomic<int> resyncs{0};
  auto listener = tier.Listen(nullptr, [&] { ++resyncs; });
  ASSERT_TRUE(Eventually([&] { return fleet.Stats().subscribed; }));
  const int before = resyncs.load();
  server.Kill();
  ASSERT_TRUE(Eventually([&] { return !fleet.Stats().subscribed; }));
  std::string error;
  ASSERT_TRUE(server.Restart(&error)) << error;
  ASSERT_TRUE(Eventually([&] { return resyncs.load() == before + 1; }));
  EXPECT_TRUE(fleet.Stats().subscribed);
}

}  // namespace
}  // namespace herd::redis
