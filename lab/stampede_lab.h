// Copyright 2026 The herd Authors.
//
// lab/stampede_lab.h: herd-stampede, a cache-stampede lab on a real SQLite
// database. The binary (lab/main.cc) is a thin shell around Main(); tests
// call the pieces in-process.
//
//   herd::lab::Strategy     how a cache miss reaches the database: none,
//                           lock, share, share-sampled, share-guarded,
//                           cache-refresh, early; and across processes that
//                           share Redis: fleet, local, redis-lock
//   herd::lab::Config       every flag, with its default
//   herd::lab::ParseFlags   argv -> Config, or a one-line error naming the
//                           flag and the accepted range
//   herd::lab::RunLab       builds/reuses the database, calibrates the query,
//                           runs the workload once per strategy -> Report
//   herd::lab::PrintTable   the table and verdict a person reads
//   herd::lab::ToJson       the same figures for scripts (nlohmann-json)
//   herd::lab::Main         the whole program; returns its exit status
//
// The workload: `workers` threads of a herd::ThreadPool play a server. Each
// loops: draw a key from a Zipf distribution, serve it through the
// strategy's cache (a short TTL, so hot keys expire again and again while
// under load), record the latency, think for about `think` and repeat, until
// `duration` passes (or `requests` have been issued) or the stop flag is
// set.
//
// Counting: an *expiry* is one lapse of one key's cached value that at least
// one request found (missing or expired): however many requests then miss,
// it counts once, until a new value is stored. "queries per expiry" is the
// database queries run for misses divided by expiries (background refreshes
// are counted apart). With `share` it is exactly 1: the loader checks the
// cache again inside the flight, so a caller that missed just before the
// previous flight stored its value finds that value instead of querying.
//
// Processes: with --processes=P the workload runs in P processes (this
// program, run again as workers), each with `workers` threads and a cache
// of its own, over the one SQLite file; their figures are summed (latencies
// merged). The Redis strategies share a Redis server (one the lab starts, or
// --redis=HOST:PORT): each process keeps a copy of a row until the row
// expires in Redis, and an expiry is one lapse of a row in Redis (counted
// from Redis's keyspace notifications), however many processes then miss
// it. "Redis commands per expiry" is the commands the strategy sent,
// fleet-wide, per expiry.
//
// Thread safety: RunLab() uses threads internally; call it from one thread
// at a time.

#ifndef HERD_LAB_STAMPEDE_LAB_H_
#define HERD_LAB_STAMPEDE_LAB_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace herd::lab {

enum class Strategy {
  kNone,          // a TTL cache; every miss queries
  kLock,          // a per-key mutex around check-query-store
  kShare,         // herd::Share around check-query-store
  kShareSampled,  // ...with extra executions (extra_execution_rate)
  kShareGuarded,  // ...with DoFor + Forget(kRerunOnNextCall),
                  // max_flight_age and WithDeadline: the defences
                  // against a stalled query
  kCacheRefresh,  // herd::LoadingCache with refresh_after, fail-safe
  kEarly,         // herd::LoadingCache with XFetch (early_refresh_beta),
                  // fail-safe (stale_if_error, soft/hard timeouts)
  // Across processes that share Redis (each with a copy per process):
  kFleet,      // herd::Share + herd::redis::Tier: leases, one load per expiry
  kLocal,      // herd::Share around GET, query, SET: no leases
  kRedisLock,  // the usual SET NX lock with polling, no in-process coalescing
};

std::string_view StrategyName(Strategy s);
std::optional<Strategy> ParseStrategy(std::string_view name);
const std::vector<Strategy>& AllStrategies();

using Millis = std::chrono::duration<double, std::milli>;

struct Config {
  // Database.
  std::string db_path;    // default: $TMPDIR (or /tmp)/herd-stampede.db
  int64_t rows = 250000;  // orders in the table
  double query_ms = 20;   // target time of one query, calibrated

  // Workload.
  int workers = 64;
  int keys = 16;
  double skew = 1.1;  // Zipf exponent; 0 is uniform
  Millis ttl{1000};
  Millis duration{4000};  // per strategy
  uint64_t requests = 0;  // per strategy; when > 0, instead of duration
  Millis think{1};        // mean pause between a worker's requests
  uint64_t seed = 1;
  // Start each strategy with an empty cache (a restart) instead of a warm
  // one (every key cached, loaded at times spread over one TTL).
  bool cold_start = false;
  std::vector<Strategy> strategies = AllStrategies();
  // Processes, each running the workload with `workers` threads.
  int processes = 1;
  // The Redis strategies' server, HOST:PORT; empty: the lab starts a
  // redis-server on 127.0.0.1 (and skips them if there is none).
  std::string redis;

  // Strategy knobs. Zero means "derived from the calibrated query time".
  double extra_rate = 0.05;    // share-sampled
  Millis wait{0};              // share-guarded: DoFor timeout; cache-refresh,
                               // early: soft_timeout (10 queries)
  Millis max_flight_age{0};    // all three (20 queries)
  Millis deadline{0};          // share-guarded: WithDeadline; cache-refresh,
                               // early: hard_timeout (40 queries)
  double refresh_after = 0.5;  // cache-refresh: fraction of ttl
  double beta = 1.0;           // early: XFetch beta

  // Fault injection: query n blocks for stall when n % stall_every == 0.
  uint64_t stall_every = 0;
  Millis stall{10000};

  // Output.
  bool json_stdout = false;  // --json: JSON on stdout instead of the table
  std::string json_path;     // --json=FILE: JSON to FILE, table as usual
  std::string plot_path;     // --plot=FILE.png|FILE.svg
  bool progress = true;      // a progress bar, when stderr is a terminal
};

struct ParsedFlags {
  Config config;
  bool help = false;
  std::string error;  // empty iff the flags are valid
};

// Parses `args` (argv without argv[0]): --name=value or --name value (a
// boolean flag alone means true). The flags are absl flags (lab/flags.cc)
// that each call first resets to their defaults: call it from one thread at
// a time.
ParsedFlags ParseFlags(const std::vector<std::string>& args);

// The --help text.
std::string Usage();

// The figures of one strategy's run.
struct StrategyResult {
  Strategy strategy;
  uint64_t requests = 0;   // completed, errors included
  uint64_t errors = 0;     // requests that threw
  uint64_t queries = 0;    // database queries started
  uint64_t refreshes = 0;  // ...of which background refreshes
  uint64_t expiries = 0;
  uint64_t stalls = 0;  // queries that stalled
  uint64_t stuck = 0;   // requests that took at least half a stall
  uint64_t redis_commands = 0;  // sent by the Redis strategies, fleet-wide
  Millis elapsed{0};
  Millis p50{0}, p99{0}, max{0};  // request latency
  bool interrupted = false;

  // Misses' queries per expiry; 0 when there was no expiry.
  double QueriesPerExpiry() const;
  // Redis commands per expiry; 0 when there was no expiry.
  double RedisCommandsPerExpiry() const;
  double Throughput() const;  // requests per second
};

struct Calibration {
  std::string db_path;
  int64_t rows = 0;
  bool built = false;
  Millis build_time{0};
  int64_t scan_rows = 0;                           // rows one query scans
  Millis query_time{0};                            // measured, idle
  // share-guarded's, resolved; cache-refresh and early use them too.
  Millis wait{0}, max_flight_age{0}, deadline{0};
};

struct Report {
  Config config;
  Calibration calibration;
  std::vector<StrategyResult> results;
  bool interrupted = false;  // the stop flag cut the run short
};

// What RunLab reports while it runs, about ten times a second.
struct Progress {
  Strategy strategy;
  size_t index = 0;     // of the strategy in config.strategies
  double fraction = 0;  // of this strategy's run, in [0, 1]
  uint64_t requests = 0;
  uint64_t queries = 0;
};

struct RunHooks {
  // When not null, the run stops early once it reads true (Ctrl-C).
  const std::atomic<bool>* stop = nullptr;
  std::function<void(const Progress&)> on_progress;
  // Lines about the setup ("database: ..."); may be null.
  std::FILE* log = nullptr;
  // The program's flags (argv without argv[0]): --processes > 1 runs the
  // program again with them as its workers.
  std::vector<std::string> args;
};

// Runs the lab. REQUIRES: `config` came from ParseFlags (or is as valid).
// Throws: DatabaseError (lab/database.h) if the database cannot be built or
// opened.
Report RunLab(const Config& config, const RunHooks& hooks = {});

void PrintTable(const Report& report, std::FILE* out);
// The verdict lines under the table (empty when nothing compares).
std::string Verdict(const Report& report);
std::string ToJson(const Report& report);
// Draws queries and p99 per strategy with gnuplot. Returns an empty string
// or why it could not.
std::string Plot(const Report& report, const std::string& path);

// The program: parses `args`, runs, prints. Returns the exit status: 0, 1 on
// a runtime error (the database cannot be written, ...), 2 on a bad flag,
// 130 when stopped by `stop` (after printing what was measured).
int Main(const std::vector<std::string>& args, const std::atomic<bool>* stop,
         bool stderr_is_terminal, std::FILE* out, std::FILE* err);

}  // namespace herd::lab

#endif  // HERD_LAB_STAMPEDE_LAB_H_
