// Copyright 2026 The herd Authors.
//
// End-to-end tests of herd-stampede (lab/): the lab runs in-process with
// small settings (a 20,000-row database, a ~4 ms query, half a second per
// strategy) against a real SQLite file, and the built binary is run once
// with a bad flag.
//
// The invariants checked are exact where the design makes them so: with
// `share` (and `lock`) every expiry costs exactly one query, because the
// loader looks at the cache again inside the flight; one worker with no
// coalescing also runs exactly one query per expiry. Where the figures come
// from timing (how many workers pile onto an expired key) the checks are
// inequalities with wide margins.

#include "lab/stampede_lab.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace herd::lab {
namespace {

using ::testing::HasSubstr;

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : ::testing::TempDir();
}

Config SmallConfig() {
  Config c = ParseFlags({}).config;
  c.db_path = TempDir() + "/stampede_lab_test.db";
  c.rows = 20000;
  c.query_ms = 4;
  c.workers = 16;
  c.keys = 3;
  c.ttl = Millis(30);
  c.duration = Millis(500);
  c.think = Millis(0.2);
  c.progress = false;
  return c;
}

const StrategyResult& Get(const Report& report, Strategy s) {
  for (const StrategyResult& r : report.results) {
    if (r.strategy == s) return r;
  }
  ADD_FAILURE() << "no row for " << StrategyName(s);
  static const StrategyResult kEmpty{};
  return kEmpty;
}

// What `print` writes to a FILE*.
template <class F>
std::string Capture(F print) {
  char* buf = nullptr;
  size_t size = 0;
  std::FILE* f = open_memstream(&buf, &size);
  print(f);
  std::fclose(f);
  std::string s(buf, size);
  std::free(buf);
  return s;
}

TEST(StampedeLabFlags, AcceptBothForms) {
  const ParsedFlags p =
      ParseFlags({"--workers=8", "--keys", "5", "--strategies=share,none",
                  "--ttl-ms", "250", "--json", "--stall-every=100"});
  ASSERT_EQ(p.error, "");
  EXPECT_EQ(p.config.workers, 8);
  EXPECT_EQ(p.config.keys, 5);
  EXPECT_EQ(p.config.ttl, Millis(250));
  EXPECT_EQ(p.config.stall_every, 100u);
  EXPECT_TRUE(p.config.json_stdout);
  EXPECT_EQ(p.config.strategies,
            (std::vector<Strategy>{Strategy::kShare, Strategy::kNone}));
}

TEST(StampedeLabFlags, DefaultsRunEveryStrategy) {
  const ParsedFlags p = ParseFlags({});
  ASSERT_EQ(p.error, "");
  EXPECT_EQ(p.config.workers, 64);
  EXPECT_EQ(p.config.strategies, AllStrategies());
  EXPECT_EQ(AllStrategies().size(), 7u);
}

TEST(StampedeLabFlags, BadValueNamesTheFlagAndTheRange) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const Case cases[] = {
      {{"--workers=0"}, "--workers must be an integer in [1, 1024], got '0'"},
      {{"--workers", "many"}, "--workers must be an integer in [1, 1024]"},
      {{"--skew=-1"}, "--skew must be a number in [0, 5], got '-1'"},
      {{"--extra-rate=1.5"}, "--extra-rate must be a number in [0, 1]"},
      {{"--refresh-after=1"}, "--refresh-after must be a number in (0, 1)"},
      {{"--query-ms=nan"}, "--query-ms must be a number in [0.1, 10000]"},
      {{"--strategies=share,fast"}, "--strategies must be a comma-separated"},
      {{"--plot=out.jpg"}, "--plot must be a file name ending in .png"},
      {{"--ttl-ms"}, "--ttl-ms needs a value"},
      {{"--bogus=1"}, "unknown flag --bogus"},
      {{"stray"}, "unexpected argument 'stray'"},
      // Values absl cannot parse as the flag's type get the range too.
      {{"--rows=1e4"}, "--rows must be an integer in [1000, 20000000], got "
                       "'1e4'"},
      {{"--requests=1000000000001"},
       "--requests must be an integer in [0, 1000000000000]"},
      {{"--seed=-1"}, "--seed must be an integer in [0, 4611686018427387904]"},
      {{"--workers=99999999999"}, "--workers must be an integer in [1, 1024]"},
      {{"--ttl-ms=3600001"}, "--ttl-ms must be a number in [1, 3600000]"},
      {{"--skew=inf"}, "--skew must be a number in [0, 5], got 'inf'"},
      {{"--cold-start=maybe"}, "--cold-start must be true or false"},
      {{"--strategies="}, "--strategies must be a comma-separated list of "
                          "none,lock,share"},
      {{"--db="}, "--db must be a file path, got ''"},
      {{"--json="}, "--json must be a file name"},
      {{"--plot=.png"}, "--plot must be a file name ending in .png or .svg"},
      // An underscore is a dash; the error names the flag as --help does.
      {{"--query_ms=0"}, "--query-ms must be a number in [0.1, 10000]"},
      // absl's own flags are not the lab's.
      {{"--flagfile=x"}, "unknown flag --flagfile"},
      {{"--"}, "unexpected argument '--'"},
  };
  for (const Case& c : cases) {
    const ParsedFlags p = ParseFlags(c.args);
    EXPECT_THAT(p.error, HasSubstr(c.message)) << c.args[0];
    EXPECT_EQ(p.error.find('\n'), std::string::npos) << "one line";
  }
}

TEST(StampedeLabFlags, EachCallStartsFromTheDefaults) {
  ASSERT_EQ(ParseFlags({"--workers=8", "--cold-start", "--json=out.json"}).error,
            "");
  const ParsedFlags p = ParseFlags({});
  ASSERT_EQ(p.error, "");
  EXPECT_EQ(p.config.workers, 64);
  EXPECT_FALSE(p.config.cold_start);
  EXPECT_EQ(p.config.json_path, "");
  // A failed parse leaves nothing behind either.
  EXPECT_NE(ParseFlags({"--keys=3", "--workers=0"}).error, "");
  EXPECT_EQ(ParseFlags({}).config.keys, 16);
}

TEST(StampedeLabFlags, BooleansUnderscoresAndJsonForms) {
  const ParsedFlags p = ParseFlags(
      {"--cold-start=false", "--no_progress", "--json=-", "--refresh-after",
       "0.25", "--plot=q.svg"});
  ASSERT_EQ(p.error, "");
  EXPECT_FALSE(p.config.cold_start);
  EXPECT_FALSE(p.config.progress);
  EXPECT_TRUE(p.config.json_stdout);
  EXPECT_EQ(p.config.json_path, "");
  EXPECT_EQ(p.config.refresh_after, 0.25);
  EXPECT_EQ(p.config.plot_path, "q.svg");
  const ParsedFlags file = ParseFlags({"--json=out.json"});
  EXPECT_FALSE(file.config.json_stdout);
  EXPECT_EQ(file.config.json_path, "out.json");
  EXPECT_TRUE(ParseFlags({"-h"}).help);
  EXPECT_TRUE(ParseFlags({"--help"}).help);
}

TEST(StampedeLabFlags, UsageListsEveryFlagWithRangeAndDefault) {
  const std::string usage = Usage();
  EXPECT_THAT(usage, HasSubstr("--workers=N"));
  EXPECT_THAT(usage, HasSubstr("request workers [1, 1024] (default 64)"));
  EXPECT_THAT(usage, HasSubstr("--refresh-after=F"));
  EXPECT_THAT(usage, HasSubstr("(0, 1) (default 0.5)"));
  EXPECT_THAT(usage, HasSubstr("--ttl-ms=MS"));
  EXPECT_THAT(usage, HasSubstr("[1, 3600000] (default 1000)"));
  EXPECT_THAT(usage, HasSubstr("--cold-start "));
  EXPECT_THAT(usage, HasSubstr("--no-progress "));
  for (const char* flag :
       {"--db=", "--rows=", "--query-ms=", "--keys=", "--skew=",
        "--duration-ms=", "--requests=", "--think-ms=", "--seed=",
        "--strategies=", "--extra-rate=", "--wait-ms=", "--max-flight-age-ms=",
        "--deadline-ms=", "--beta=", "--stall-every=", "--stall-ms=",
        "--json=", "--plot=", "--help"}) {
    EXPECT_THAT(usage, HasSubstr(flag));
  }
}

// ToJson: what nlohmann-json writes parses back to the same figures, and a
// path with quotes, backslashes, control characters or bytes that are not
// UTF-8 neither breaks the document nor throws.
TEST(StampedeLabJson, RoundTripsAndEscapes) {
  Report report;
  report.config.workers = 3;
  report.calibration.db_path = "/tmp/a \"quoted\"\\dir\n\x01/lab.db";
  report.calibration.rows = 1234;
  StrategyResult share;
  share.strategy = Strategy::kShare;
  share.requests = 10;
  share.queries = 4;
  share.expiries = 4;
  share.elapsed = Millis(500);
  report.results.push_back(share);
  const nlohmann::json j = nlohmann::json::parse(ToJson(report));
  EXPECT_EQ(j["config"]["workers"], 3);
  EXPECT_EQ(j["database"]["path"], report.calibration.db_path);
  EXPECT_EQ(j["database"]["rows"], 1234);
  ASSERT_EQ(j["strategies"].size(), 1u);
  EXPECT_EQ(j["strategies"][0]["strategy"], "share");
  EXPECT_EQ(j["strategies"][0]["requests"], 10);
  EXPECT_EQ(j["strategies"][0]["queries_per_expiry"], 1.0);
  EXPECT_EQ(j["strategies"][0]["throughput"], 20.0);
  EXPECT_EQ(j["interrupted"], false);

  report.calibration.db_path = "/tmp/\xff\xfe.db";
  const nlohmann::json latin1 = nlohmann::json::parse(ToJson(report));
  EXPECT_EQ(latin1["database"]["path"], "/tmp/\uFFFD\uFFFD.db");
}

TEST(StampedeLabMain, BadFlagExitsTwoWithOneLine) {
  std::string out;
  int status = -1;
  const std::string err = Capture([&](std::FILE* e) {
    out = Capture([&](std::FILE* o) {
      status = Main({"--keys=0"}, nullptr, false, o, e);
    });
  });
  EXPECT_EQ(status, 2);
  EXPECT_EQ(err,
            "herd-stampede: --keys must be an integer in [1, 100000], got "
            "'0'\n");
  EXPECT_EQ(out, "");
}

TEST(StampedeLabMain, UnwritableDatabaseIsAClearError) {
  int status = -1;
  const std::string err = Capture([&](std::FILE* e) {
    Capture([&](std::FILE* o) {
      status = Main({"--db=/nonexistent-dir/lab.db"}, nullptr, false, o, e);
    });
  });
  EXPECT_EQ(status, 1);
  EXPECT_THAT(err, HasSubstr("cannot create database "
                             "'/nonexistent-dir/lab.db'"));
}

TEST(StampedeLabMain, ForeignFileIsNotOverwritten) {
  const std::string path = TempDir() + "/not_a_lab.db";
  std::FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("precious data\n", f);
  std::fclose(f);
  int status = -1;
  const std::string err = Capture([&](std::FILE* e) {
    Capture([&](std::FILE* o) {
      status = Main({"--db=" + path}, nullptr, false, o, e);
    });
  });
  EXPECT_EQ(status, 1);
  EXPECT_THAT(err, HasSubstr("is not a herd-stampede database"));
  f = std::fopen(path.c_str(), "r");
  ASSERT_NE(f, nullptr);
  char line[64] = {};
  ASSERT_NE(std::fgets(line, sizeof line, f), nullptr);
  std::fclose(f);
  EXPECT_STREQ(line, "precious data\n");
}

TEST(StampedeLab, EveryStrategyTableInvariants) {
  const Report report = RunLab(SmallConfig());
  ASSERT_FALSE(report.interrupted);
  ASSERT_EQ(report.results.size(), AllStrategies().size());
  EXPECT_GT(report.calibration.scan_rows, 0);
  EXPECT_GT(report.calibration.query_time.count(), 0);

  for (const StrategyResult& r : report.results) {
    SCOPED_TRACE(std::string(StrategyName(r.strategy)));
    EXPECT_GT(r.requests, 0u);
    EXPECT_GT(r.Throughput(), 0);
    // Latency figures are present and ordered.
    EXPECT_GT(r.max.count(), 0);
    EXPECT_LE(r.p50, r.p99);
    EXPECT_LE(r.p99, r.max);
    // Refresh-ahead may keep every one of 3 hot keys from ever expiring.
    if (r.strategy != Strategy::kCacheRefresh) {
      EXPECT_GT(r.expiries, 0u);
    }
    EXPECT_LE(r.refreshes, r.queries);
    EXPECT_EQ(r.stalls, 0u);
  }

  // Coalescing: exactly one database query per expiry of a key.
  const StrategyResult& share = Get(report, Strategy::kShare);
  EXPECT_EQ(share.queries, share.expiries);
  EXPECT_EQ(share.QueriesPerExpiry(), 1.0);
  EXPECT_EQ(share.errors, 0u);
  const StrategyResult& lock = Get(report, Strategy::kLock);
  EXPECT_EQ(lock.queries, lock.expiries);
  EXPECT_EQ(lock.errors, 0u);

  // No coalescing: 16 workers on 3 keys pile onto each expired key.
  const StrategyResult& none = Get(report, Strategy::kNone);
  EXPECT_GT(none.QueriesPerExpiry(), 1.0);
  EXPECT_EQ(none.errors, 0u);

  // Extra executions add queries, never remove them.
  const StrategyResult& sampled = Get(report, Strategy::kShareSampled);
  EXPECT_GE(sampled.queries, sampled.expiries);

  // Refresh-ahead reloads hot keys in the background.
  EXPECT_GT(Get(report, Strategy::kCacheRefresh).refreshes, 0u);

  const std::string table =
      Capture([&](std::FILE* f) { PrintTable(report, f); });
  for (Strategy s : AllStrategies()) {
    EXPECT_THAT(table, HasSubstr("\n" + std::string(StrategyName(s)) + " "));
  }
  EXPECT_THAT(table, HasSubstr("q/expiry"));
  EXPECT_THAT(table, HasSubstr("verdict: share: 1.00 queries per expiry"));
  const nlohmann::json json = nlohmann::json::parse(ToJson(report));
  ASSERT_EQ(json["strategies"].size(), AllStrategies().size());
  for (const nlohmann::json& row : json["strategies"]) {
    if (row["strategy"] == "share") {
      EXPECT_EQ(row["queries_per_expiry"], 1.0);
      EXPECT_EQ(row["queries"], share.queries);
    }
  }
}

TEST(StampedeLab, NoneGrowsWithConcurrencyShareDoesNot) {
  Config c = SmallConfig();
  c.strategies = {Strategy::kNone, Strategy::kShare};
  c.workers = 1;
  const Report alone = RunLab(c);
  c.workers = 16;
  const Report crowd = RunLab(c);

  // One worker cannot stampede: one query per expiry, exactly.
  const StrategyResult& none1 = Get(alone, Strategy::kNone);
  EXPECT_GT(none1.expiries, 0u);
  EXPECT_EQ(none1.queries, none1.expiries);
  const StrategyResult& none16 = Get(crowd, Strategy::kNone);
  EXPECT_GT(none16.QueriesPerExpiry(), none1.QueriesPerExpiry());

  for (const Report* r : {&alone, &crowd}) {
    const StrategyResult& share = Get(*r, Strategy::kShare);
    EXPECT_GT(share.expiries, 0u);
    EXPECT_EQ(share.queries, share.expiries);
  }
}

TEST(StampedeLab, RequestCountIsExact) {
  Config c = SmallConfig();
  c.strategies = {Strategy::kShare};
  c.requests = 500;
  c.duration = Millis(60000);  // ignored
  const Report report = RunLab(c);
  ASSERT_EQ(report.results.size(), 1u);
  EXPECT_EQ(report.results[0].requests, 500u);
}

TEST(StampedeLab, GuardsBoundAStalledQuery) {
  Config c = SmallConfig();
  c.strategies = {Strategy::kShare, Strategy::kShareGuarded};
  c.stall_every = 3;
  c.stall = Millis(2000);
  c.wait = Millis(50);
  c.deadline = Millis(100);
  const Report report = RunLab(c);

  // Plain share: the stalled query holds its callers for the whole stall.
  const StrategyResult& share = Get(report, Strategy::kShare);
  EXPECT_GE(share.stalls, 1u);
  EXPECT_GE(share.stuck, 1u);
  EXPECT_GE(share.max, Millis(2000));

  // share-guarded: waiters rerun after 50 ms, the stuck query is stopped at
  // 100 ms; three attempts at most, so no request comes near a second.
  const StrategyResult& guarded = Get(report, Strategy::kShareGuarded);
  EXPECT_GE(guarded.stalls, 1u);
  EXPECT_EQ(guarded.stuck, 0u);
  EXPECT_LT(guarded.max, Millis(1000));

  const std::string table =
      Capture([&](std::FILE* f) { PrintTable(report, f); });
  EXPECT_THAT(table, HasSubstr("stuck"));
  EXPECT_THAT(table, HasSubstr("stalls: requests held 1.00s or more"));
}

TEST(StampedeLab, StopFlagEndsTheRunAndKeepsWhatWasMeasured) {
  Config c = SmallConfig();
  c.duration = Millis(60000);
  std::atomic<bool> stop{false};
  RunHooks hooks;
  hooks.stop = &stop;
  hooks.on_progress = [&](const Progress& p) {
    if (p.requests > 0) stop = true;  // Ctrl-C, once something was measured
  };
  const auto start = std::chrono::steady_clock::now();
  const Report report = RunLab(c, hooks);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  EXPECT_TRUE(report.interrupted);
  ASSERT_EQ(report.results.size(), 1u);
  EXPECT_TRUE(report.results[0].interrupted);
  EXPECT_GT(report.results[0].requests, 0u);
  const std::string table =
      Capture([&](std::FILE* f) { PrintTable(report, f); });
  EXPECT_THAT(table, HasSubstr("none*"));
  EXPECT_THAT(table, HasSubstr("interrupted"));
}

// The built program, as a user runs it. Bazel puts it in the runfiles
// (data = ["//lab:herd-stampede"]); CMake passes its path in HERD_STAMPEDE.
std::string BinaryPath() {
  if (const char* path = std::getenv("HERD_STAMPEDE")) return path;
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir != nullptr && workspace != nullptr) {
    return std::string(srcdir) + "/" + workspace + "/lab/herd-stampede";
  }
  return "";
}

TEST(StampedeLabBinary, BadFlagExitsTwo) {
  const std::string binary = BinaryPath();
  if (binary.empty() || access(binary.c_str(), X_OK) != 0) {
    GTEST_SKIP() << "herd-stampede not found (set HERD_STAMPEDE)";
  }
  std::FILE* p = popen((binary + " --workers=0 2>&1").c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string output;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p) != nullptr) output += buf;
  const int status = pclose(p);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_EQ(output,
            "herd-stampede: --workers must be an integer in [1, 1024], got "
            "'0'\n");
}

}  // namespace
}  // namespace herd::lab
