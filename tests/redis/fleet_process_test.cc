// Copyright 2026 The herd Authors.
//
// The fleet tier across real processes: this binary runs itself again as
// helper processes (--herd-helper=MODE), each with its own herd::Share,
// Fleet and Tier, against one redis-server the test starts. The test orders
// them with handshakes over pipes (tests/redis/testing.h): a helper's loader
// says "loading" and waits for the test's "finish <value>", so the test
// decides when each load ends and knows who is waiting. Database loads are
// counted in a file every loader appends one byte to (O_APPEND), so a
// SIGKILLed holder's load is counted too.

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <latch>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "herd/redis/fleet.h"
#include "herd/redis/tier.h"
#include "herd/share.h"
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
using StringTier = Tier<std::string, std::string>;
using SteadyTime = std::chrono::steady_clock;

constexpr auto kBound = milliseconds(20000);  // any single wait in a test

FleetOptions HelperOptions(int argc, char** argv) {
  FleetOptions o;
  o.host = "127.0.0.1";
  o.port = std::atoi(Arg(argc, argv, "port").c_str());
  o.prefix = Arg(argc, argv, "prefix");
  o.lease_ttl = milliseconds(std::atoi(Arg(argc, argv, "lease-ms", "2000").c_str()));
  o.poll_interval =
      milliseconds(std::atoi(Arg(argc, argv, "poll-ms", "100").c_str()));
  return o;
}

bool AwaitSubscribed(const Fleet& fleet) {
  const auto deadline = SteadyTime::now() + kBound;
  while (!fleet.Stats().subscribed) {
    if (SteadyTime::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

std::string StatsLine(const FleetStats& s) {
  std::ostringstream out;
  out << "stats commands=" << s.commands << " leases_won=" << s.leases_won
      << " leases_lost=" << s.leases_lost
      << " leases_expired=" << s.leases_expired << " writes=" << s.writes
      << " writes_rejected=" << s.writes_rejected
      << " fallbacks=" << s.fallbacks << " decode_errors=" << s.decode_errors
      << " wakeups=" << s.wakeups << " hits=" << s.hits;
  return out.str();
}

void CountLoad(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) {
    (void)!::write(fd, "L", 1);
    ::close(fd);
  }
}

// Helper: `threads` threads of one process ask for one key through a
// herd::Share in front of a Tier. Status: "ready", then on "go": "waiting"
// once this process found the lease held, "loading" when its loader runs
// (answered by "finish <value>"), "done <callers served> <value|MIXED>",
// and a stats line.
int StampedeHelper(int argc, char** argv) {
  const FleetOptions options = HelperOptions(argc, argv);
  const int threads = std::atoi(Arg(argc, argv, "threads", "1").c_str());
  const std::string key = Arg(argc, argv, "key", "k");
  const std::string loads = Arg(argc, argv, "loads");
  Fleet fleet(options);
  Share<std::string, std::string> share;
  StringTier tier(fleet, {.name = "s", .ttl = seconds(60)},
                  [&](const std::string&) {
                    CountLoad(loads);
                    WriteStatus("loading");
                    const std::string line = ReadControl();  // finish <value>
                    return line.size() > 7 ? line.substr(7) : line;
                  });
  if (!AwaitSubscribed(fleet)) {
    WriteStatus("error: no subscription");
    return 1;
  }
  WriteStatus("ready");
  if (ReadControl() != "go") return 1;

  std::jthread monitor([&](std::stop_token stop) {
    const auto deadline = SteadyTime::now() + kBound;
    while (!stop.stop_requested() && SteadyTime::now() < deadline) {
      if (fleet.Stats().leases_lost >= 1) {
        WriteStatus("waiting");
        return;
      }
      std::this_thread::sleep_for(milliseconds(1));
    }
  });
  std::vector<std::string> results(static_cast<size_t>(threads));
  {
    std::latch start(threads);
    std::vector<std::jthread> callers;
    for (int i = 0; i < threads; ++i) {
      callers.emplace_back([&, i] {
        start.arrive_and_wait();
        try {
          results[static_cast<size_t>(i)] =
              share.Do(key, [&] { return tier.Load(key); });
        } catch (const std::exception& e) {
          results[static_cast<size_t>(i)] = std::string("ERROR:") + e.what();
        }
      });
    }
  }
  monitor.request_stop();
  monitor.join();
  int served = 0;
  std::string value = results.empty() ? "" : results[0];
  for (const std::string& r : results) {
    if (!r.starts_with("ERROR:")) ++served;
    if (r != value) value = "MIXED";
  }
  WriteStatus("done " + std::to_string(served) + " " + value);
  WriteStatus(StatsLine(fleet.Stats()));
  return 0;
}

// Helper: listens for Put / Invalidate of the tier "s" by other processes;
// "ready" once subscribed, then "key <key>" for each; exits on "exit".
int ListenHelper(int argc, char** argv) {
  Fleet fleet(HelperOptions(argc, argv));
  StringTier tier(fleet, {.name = "s"}, [](const std::string& k) { return k; });
  auto listener = tier.Listen(
      [](const std::string& key) { WriteStatus("key " + key); }, nullptr);
  if (!AwaitSubscribed(fleet)) return 1;
  WriteStatus("ready");
  while (ReadControl() != "exit") {
  }
  return 0;
}

// --- The tests -------------------------------------------------------------------

std::string TempFile(const char* name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/herd-" +
                     std::to_string(::getpid()) + "-" + name;
  ::unlink(path.c_str());
  return path;
}

int64_t CountOf(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

std::map<std::string, uint64_t> ParseStats(const std::string& line) {
  std::map<std::string, uint64_t> stats;
  std::istringstream in(line.substr(6));
  std::string field;
  while (in >> field) {
    const size_t eq = field.find('=');
    stats[field.substr(0, eq)] = std::stoull(field.substr(eq + 1));
  }
  return stats;
}

class FleetProcesses : public ::testing::Test {
 protected:
  void SetUp() override {
    HERD_START_REDIS(server_);
    prefix_ = test::TestPrefix();
    loads_ = TempFile("loads");
  }
  void TearDown() override { ::unlink(loads_.c_str()); }

  std::unique_ptr<Child> Spawn(const std::string& mode, int threads,
                               int lease_ms, int poll_ms) {
    auto child = Child::Spawn(
        mode, {"--port=" + std::to_string(server_.port()), "--prefix=" + prefix_,
               "--threads=" + std::to_string(threads),
               "--lease-ms=" + std::to_string(lease_ms),
               "--poll-ms=" + std::to_string(poll_ms), "--loads=" + loads_});
    EXPECT_NE(child, nullptr);
    return child;
  }

  // Spawns n stampede helpers and waits for each to be ready.
  std::vector<std::unique_ptr<Child>> Stampeders(int n, int threads,
                                                 int lease_ms, int poll_ms) {
    std::vector<std::unique_ptr<Child>> children;
    for (int i = 0; i < n; ++i) {
      children.push_back(Spawn("stampede", threads, lease_ms, poll_ms));
    }
    for (auto& c : children) {
      EXPECT_EQ(c->ReadLine(kBound), "ready");
    }
    return children;
  }

  static std::vector<Child*> Raw(const std::vector<std::unique_ptr<Child>>& v) {
    std::vector<Child*> raw;
    for (const auto& c : v) raw.push_back(c.get());
    return raw;
  }

  std::string ValueKey(const std::string& key) const {
    return prefix_ + "s:v:" + key;  // fleet.h: <prefix><namespace>:v:<key>
  }

  RedisServer server_;
  std::string prefix_;
  std::string loads_;
};

// Waits until one child says "loading" and every other says "waiting".
// Returns the loader's index, or -1.
int AwaitOneLoaderRestWaiting(const std::vector<Child*>& children) {
  int loader = -1;
  size_t waiting = 0;
  while (loader < 0 || waiting + 1 < children.size()) {
    auto line = test::ReadAny(children, kBound);
    if (!line) return -1;
    if (line->second == "loading") {
      if (loader >= 0) return -1;  // a second load
      loader = static_cast<int>(line->first);
    } else if (line->second == "waiting") {
      ++waiting;
    } else {
      ADD_FAILURE() << "unexpected: " << line->second;
      return -1;
    }
  }
  return loader;
}

// fleet.h: "one database load per expiry across every process": 4 processes
// x 16 threads on one expired key: exactly 1 load, every caller served.
TEST_F(FleetProcesses, FourProcessesOfSixteenThreadsLoadAnExpiredKeyOnce) {
  Client client(server_.port());
  // The key expired: it was there, and Redis dropped it.
  client.Run({"SET", ValueKey("k"), "old", "PX", "1"});
  const auto deadline = SteadyTime::now() + kBound;
  while (client.Pttl(ValueKey("k")) != -2 && SteadyTime::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  ASSERT_EQ(client.Pttl(ValueKey("k")), -2);

  auto children = Stampeders(4, 16, /*lease_ms=*/5000, /*poll_ms=*/5000);
  ASSERT_FALSE(HasFailure());
  for (auto& c : children) c->Send("go");
  const int loader = AwaitOneLoaderRestWaiting(Raw(children));
  ASSERT_GE(loader, 0);
  children[static_cast<size_t>(loader)]->Send("finish fresh");

  uint64_t leases_won = 0, leases_lost = 0, fallbacks = 0, writes = 0,
           wakeups = 0;
  for (auto& c : children) {
    EXPECT_EQ(c->ReadLine(kBound), "done 16 fresh");
    const std::optional<std::string> stats = c->ReadLine(kBound);
    ASSERT_TRUE(stats.has_value());
    std::map<std::string, uint64_t> s = ParseStats(*stats);
    leases_won += s["leases_won"];
    leases_lost += s["leases_lost"];
    fallbacks += s["fallbacks"];
    writes += s["writes"];
    wakeups += s["wakeups"];
    std::printf("%s\n", stats->c_str());
    EXPECT_EQ(c->Wait(kBound), 0);
  }
  EXPECT_EQ(CountOf(loads_), 1);
  EXPECT_EQ(leases_won, 1u);
  EXPECT_EQ(leases_lost, 3u);
  EXPECT_EQ(writes, 1u);
  EXPECT_EQ(fallbacks, 0u);
  EXPECT_EQ(wakeups, 3u);  // the write's message woke each waiter (poll: 5 s)
  const std::optional<std::string> stored = client.Get(ValueKey("k"));
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->substr(stored->find('\n') + 1), "fresh");
}

// fleet.h: "A waiter that finds the lease gone takes it over: if the holder
// died, every waiter is served within lease_ttl + one load + one poll
// interval."
TEST_F(FleetProcesses, LeaseHolderKilledMidLoadIsTakenOverWithinTheBound) {
  constexpr int kLeaseMs = 500, kPollMs = 100;
  auto children = Stampeders(4, 4, kLeaseMs, kPollMs);
  ASSERT_FALSE(HasFailure());
  for (auto& c : children) c->Send("go");
  const int loader = AwaitOneLoaderRestWaiting(Raw(children));
  ASSERT_GE(loader, 0);
  children[static_cast<size_t>(loader)]->Signal(SIGKILL);
  const auto killed_at = SteadyTime::now();
  const int status = children[static_cast<size_t>(loader)]->Wait(kBound);
  EXPECT_TRUE(WIFSIGNALED(status));
  std::vector<Child*> survivors;
  for (size_t i = 0; i < children.size(); ++i) {
    if (static_cast<int>(i) != loader) survivors.push_back(children[i].get());
  }

  auto line = test::ReadAny(survivors, kBound);
  ASSERT_TRUE(line.has_value());
  ASSERT_EQ(line->second, "loading");  // a survivor took the lease over
  survivors[line->first]->Send("finish second");  // a load of ~0 ms

  std::vector<SteadyTime::duration> served_after;
  uint64_t fallbacks = 0, leases_won = 0;
  for (Child* c : survivors) {
    EXPECT_EQ(c->ReadLine(kBound), "done 4 second");
    served_after.push_back(SteadyTime::now() - killed_at);
    std::map<std::string, uint64_t> s = ParseStats(c->ReadLine(kBound).value_or("stats "));
    fallbacks += s["fallbacks"];
    leases_won += s["leases_won"];
    EXPECT_EQ(c->Wait(kBound), 0);
  }
  EXPECT_EQ(CountOf(loads_), 2);  // the killed one's, and the takeover
  EXPECT_EQ(leases_won, 1u);
  EXPECT_EQ(fallbacks, 0u);
  // The bound, plus 400 ms for scheduling processes on a busy 2-core box
  // (the loads themselves take ~0 ms here).
  const auto bound = milliseconds(kLeaseMs + kPollMs + 400);
  for (const auto& d : served_after) {
    EXPECT_LE(d, bound) << std::chrono::duration_cast<milliseconds>(d).count()
                        << " ms after the kill";
  }
}

// fleet.h: "a write from a holder whose lease expired, was taken over ...
// is rejected, and the newer value stays".
TEST_F(FleetProcesses, HolderWhoseLeaseExpiredFinishesLateAndItsWriteIsRejected) {
  constexpr int kLeaseMs = 300;
  auto late = Stampeders(1, 1, kLeaseMs, 100);
  ASSERT_FALSE(HasFailure());
  late[0]->Send("go");
  ASSERT_EQ(late[0]->ReadLine(kBound), "loading");
  late[0]->Signal(SIGSTOP);  // a pause (GC, swap, a debugger): no renewals

  Client client(server_.port());
  const std::string lease_key = prefix_ + "s:l:k";
  const auto deadline = SteadyTime::now() + kBound;
  while (client.Pttl(lease_key) != -2 && SteadyTime::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_EQ(client.Pttl(lease_key), -2) << "the lease never expired";

  auto newer = Stampeders(1, 1, kLeaseMs, 100);
  ASSERT_FALSE(HasFailure());
  newer[0]->Send("go");
  ASSERT_EQ(newer[0]->ReadLine(kBound), "loading");
  newer[0]->Send("finish new");
  EXPECT_EQ(newer[0]->ReadLine(kBound), "done 1 new");
  ASSERT_TRUE(newer[0]->ReadLine(kBound).has_value());
  EXPECT_EQ(newer[0]->Wait(kBound), 0);

  late[0]->Signal(SIGCONT);
  late[0]->Send("finish old");
  EXPECT_EQ(late[0]->ReadLine(kBound), "done 1 old");  // its callers: its value
  std::map<std::string, uint64_t> s =
      ParseStats(late[0]->ReadLine(kBound).value_or("stats "));
  EXPECT_EQ(s["writes"], 0u);
  EXPECT_EQ(s["writes_rejected"], 1u);
  EXPECT_EQ(s["leases_expired"], 1u);
  EXPECT_EQ(late[0]->Wait(kBound), 0);

  EXPECT_EQ(CountOf(loads_), 2);
  const std::optional<std::string> stored = client.Get(ValueKey("k"));
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->substr(stored->find('\n') + 1), "new");
}

// codec.h: a corrupt payload is "counted, treated as a miss, reloaded" --
// once for the whole fleet.
TEST_F(FleetProcesses, CorruptPayloadIsReloadedOnceAcrossProcesses) {
  Client client(server_.port());
  ASSERT_TRUE(client.Set(ValueKey("k"), "H1 17 abc 5 garbage"));
  auto children = Stampeders(3, 4, 5000, 5000);
  ASSERT_FALSE(HasFailure());
  for (auto& c : children) c->Send("go");
  const int loader = AwaitOneLoaderRestWaiting(Raw(children));
  ASSERT_GE(loader, 0);
  children[static_cast<size_t>(loader)]->Send("finish clean");
  uint64_t decode_errors = 0;
  for (auto& c : children) {
    EXPECT_EQ(c->ReadLine(kBound), "done 4 clean");
    decode_errors += ParseStats(c->ReadLine(kBound).value_or("stats "))["decode_errors"];
    EXPECT_EQ(c->Wait(kBound), 0);
  }
  EXPECT_EQ(CountOf(loads_), 1);
  EXPECT_EQ(decode_errors, 3u);  // each process saw it once
}

// fleet.h Put / Invalidate: "every other process is told"; tier.h Listen().
TEST_F(FleetProcesses, InvalidationsReachEveryOtherProcessWithin100Ms) {
  std::vector<std::unique_ptr<Child>> children;
  for (int i = 0; i < 3; ++i) children.push_back(Spawn("listen", 1, 2000, 100));
  for (auto& c : children) ASSERT_EQ(c->ReadLine(kBound), "ready");
  FleetOptions o;
  o.host = "127.0.0.1";
  o.port = server_.port();
  o.prefix = prefix_;
  Fleet fleet(o);
  StringTier tier(fleet, {.name = "s"}, [](const std::string& k) { return k; });

  auto expect_everyone_hears = [&](const std::string& key, auto send) {
    const auto t0 = SteadyTime::now();
    ASSERT_TRUE(send());
    for (auto& c : children) {
      EXPECT_EQ(c->ReadLine(kBound), "key " + key);
      const auto took = SteadyTime::now() - t0;
      EXPECT_LT(took, milliseconds(100))
          << std::chrono::duration_cast<milliseconds>(took).count() << " ms";
    }
  };
  expect_everyone_hears("gone", [&] { return tier.Invalidate("gone"); });
  expect_everyone_hears("new", [&] { return tier.Put("new", "value"); });
  for (auto& c : children) {
    c->Send("exit");
    EXPECT_EQ(c->Wait(kBound), 0);
  }
}

}  // namespace

int RunHelper(int argc, char** argv) {
  const std::string_view mode = std::string_view(argv[1]).substr(14);
  if (mode == "stampede") return StampedeHelper(argc, argv);
  if (mode == "listen") return ListenHelper(argc, argv);
  std::fprintf(stderr, "unknown helper mode %.*s\n", static_cast<int>(mode.size()),
               mode.data());
  return 2;
}

}  // namespace herd::redis

int main(int argc, char** argv) {
  // A helper that died leaves its control pipe without a reader.
  std::signal(SIGPIPE, SIG_IGN);
  if (argc > 1 && std::string_view(argv[1]).starts_with("--herd-helper=")) {
    return herd::redis::RunHelper(argc, argv);
  }
  ::testing::InitGoogleMock(&argc, argv);
  return RUN_ALL_TESTS();
}
