// Copyright 2026 The herd Authors.
//
// lab/lab_internal.h: what stampede_lab.cc and fleet_lab.cc share; not part
// of the lab's interface (lab/stampede_lab.h).
//
//   Server            how one strategy serves a request
//   RedisEndpoint     the Redis server a run uses, and the run's key prefix
//   LabRedis          a redis-server the lab starts (or the one --redis
//                     names), with keyspace notifications for expiries
//   ExpiryCounter     counts the lapses of a run's values in Redis
//   MakeRedisServer   the strategies fleet, local and redis-lock
//   WarmRedis         stores every key's value in Redis, as if loaded at
//                     times spread over one TTL
//   RunStrategy       one strategy in this process
//   RunInProcesses    one strategy in config.processes processes
//   WorkerMain        a worker process's side of RunInProcesses

#ifndef HERD_LAB_LAB_INTERNAL_H_
#define HERD_LAB_LAB_INTERNAL_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lab/database.h"
#include "lab/stampede_lab.h"

namespace herd::lab::internal {

class Server {
 public:
  virtual ~Server() = default;
  // Returns the key's row. Throws whatever the strategy lets through
  // (herd::DeadlineExceeded, herd::WaitTimeout, QueryStopped, ...).
  virtual Row Serve(int key) = 0;
  virtual uint64_t expiries() const = 0;
  // Background refresh queries so far.
  virtual uint64_t refreshes() const { return 0; }
  // Redis commands sent so far (0 for the strategies without Redis).
  virtual uint64_t redis_commands() const { return 0; }
  // Before the run: stores rows[key] for every key, as if loaded `ages[key]`
  // ago.
  virtual void Warm(const std::vector<Row>& rows,
                    const std::vector<std::chrono::nanoseconds>& ages) = 0;
  // Lets background work finish; called once the workers have stopped.
  virtual void Drain() {}
};

struct RedisEndpoint {
  std::string host;
  int port = 0;
  std::string prefix;  // of every key of one strategy's run
};

// True for fleet, local and redis-lock.
bool IsRedisStrategy(Strategy s);

class LabRedis {
 public:
  // `address` "HOST:PORT": that server (keyspace notifications are turned
  // on with CONFIG SET); empty: a redis-server of our own on a free
  // 127.0.0.1 port, stopped by the destructor. Returns null and sets
  // `*error` when neither works.
  static std::unique_ptr<LabRedis> Open(const std::string& address,
                                        std::string* error);
  ~LabRedis();

  const std::string& host() const { return host_; }
  int port() const { return port_; }
  bool started() const { return pid_ > 0; }

 private:
  LabRedis() = default;
  std::string host_;
  int port_ = 0;
  int pid_ = -1;
  std::string dir_;
};

// Counts the lapses of a run's rows in Redis, from its "expired" keyspace
// events: each is one lapse (a row that expired while nobody asked for it
// counts too; the lab's keys are all asked for constantly).
class ExpiryCounter {
 public:
  // Subscribes. ok() tells whether it could.
  ExpiryCounter(const RedisEndpoint& redis, std::string* error);
  ~ExpiryCounter();
  bool ok() const;

  // The run starts: in one step in Redis (a script), counts the rows of
  // `value_keys` missing now (each a lapse whose query comes after the
  // start) and marks the event stream, so that every lapse before the
  // start is left out and every one after it is counted. Throws
  // std::runtime_error if Redis does not answer.
  void Start(const std::vector<std::string>& value_keys);
  // The run ended: the lapses since Start(), those missing at the start
  // included.
  uint64_t Finish();

 private:
  struct State;
  uint64_t Mark(const std::vector<std::string>& keys);
  std::unique_ptr<State> state_;
};

// The Redis key that holds `key`'s row for strategy `s`.
std::string ValueKey(Strategy s, const RedisEndpoint& redis, int key);

std::unique_ptr<Server> MakeRedisServer(Strategy s, const Config& c,
                                        Database& db,
                                        const RedisEndpoint& redis);

// Stores rows[key] in Redis for `s` (its format), expiring ttl - ages[key]
// from now.
void WarmRedis(Strategy s, const Config& c, const RedisEndpoint& redis,
               const std::vector<Row>& rows,
               const std::vector<std::chrono::nanoseconds>& ages);

// The load times of a warm start: spread over one TTL, the same for every
// strategy.
std::vector<std::chrono::nanoseconds> WarmAges(const Config& c, size_t keys);

// Runs one strategy's workload in this process. `redis` is required by the
// Redis strategies. `latencies`, when not null, receives every request's
// latency in nanoseconds (unsorted). `go`, when set, is called once the
// server is built and warm, just before the workers start (a worker
// process waits there for the orchestrator's start signal); the figures
// count from then on. `process` (0 in a run of one process) gives each
// worker process keys of its own to draw.
StrategyResult RunStrategy(Strategy strategy, size_t index, const Config& c,
                           const Calibration& cal, Database& db,
                           const std::vector<Row>& warm, const RunHooks& hooks,
                           const RedisEndpoint* redis,
                           std::vector<int64_t>* latencies, uint64_t process = 0,
                           const std::function<void()>& go = nullptr);

// Runs `strategy` in c.processes worker processes (this program, run again
// with HERD_STAMPEDE_WORKER set), started together, and merges their
// figures: requests, errors, queries, expiries (summed), latencies (merged),
// Redis commands (summed). Expiries of the Redis strategies are counted by
// the caller (ExpiryCounter).
StrategyResult RunInProcesses(Strategy strategy, size_t index,
                              const std::vector<std::string>& args,
                              const Config& c, const Calibration& cal,
                              const Database& db,
                              const RedisEndpoint* redis,
                              const RunHooks& hooks,
                              const std::function<void()>& on_go);

// In a worker process: HERD_STAMPEDE_WORKER holds its assignment. Returns
// the exit status.
int WorkerMain(const std::vector<std::string>& args, const char* assignment,
               const std::atomic<bool>* stop);

}  // namespace herd::lab::internal

#endif  // HERD_LAB_LAB_INTERNAL_H_
