// Copyright 2026 The herd Authors.
//
// The strategies and the workload of herd-stampede.

#include "lab/stampede_lab.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <stop_token>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "herd/deadline.h"
#include "herd/errors.h"
#include "herd/loading_cache.h"
#include "herd/share.h"
#include "herd/thread_pool.h"
#include "lab/database.h"
#include "lab/lab_internal.h"

namespace herd::lab {
namespace {

using SteadyTime = std::chrono::steady_clock::time_point;

SteadyTime Now() { return std::chrono::steady_clock::now(); }

struct Named {
  Strategy strategy;
  std::string_view name;
};
constexpr std::array<Named, 10> kNames = {{
    {Strategy::kNone, "none"},
    {Strategy::kLock, "lock"},
    {Strategy::kShare, "share"},
    {Strategy::kShareSampled, "share-sampled"},
    {Strategy::kShareGuarded, "share-guarded"},
    {Strategy::kCacheRefresh, "cache-refresh"},
    {Strategy::kEarly, "early"},
    {Strategy::kFleet, "fleet"},
    {Strategy::kLocal, "local"},
    {Strategy::kRedisLock, "redis-lock"},
}};

using internal::RedisEndpoint;
using internal::Server;

// Keys 0..n-1 with P(k) proportional to 1 / (k + 1)^s: key 0 is the hottest.
class Zipf {
 public:
  Zipf(int n, double s) : cdf_(static_cast<size_t>(n)) {
    double sum = 0;
    for (int k = 0; k < n; ++k) {
      sum += 1.0 / std::pow(k + 1.0, s);
      cdf_[static_cast<size_t>(k)] = sum;
    }
    for (double& c : cdf_) c /= sum;
  }

  int operator()(std::mt19937_64& gen) const {
    const double u = std::uniform_real_distribution<double>(0, 1)(gen);
    const auto it = std::upper_bound(cdf_.begin(), cdf_.end(), u);
    return static_cast<int>(
        std::min<ptrdiff_t>(it - cdf_.begin(), std::ssize(cdf_) - 1));
  }

 private:
  std::vector<double> cdf_;
};

// The hand-written cache in front of the database for the TTL strategies: a
// sharded map of value + expiry, which also counts expiries (see the header
// comment of stampede_lab.h).
class TtlMap {
 public:
  explicit TtlMap(Millis ttl)
      : ttl_(std::chrono::duration_cast<std::chrono::nanoseconds>(ttl)) {}

  // Returns the key's value iff it is cached and fresh. The first lookup to
  // find a value missing or expired counts one expiry.
  std::optional<Row> Get(int key) {
    const SteadyTime now = Now();
    Shard& shard = ShardFor(key);
    std::lock_guard<std::mutex> lock(shard.mu);
    Entry& e = shard.entries[key];
    if (e.has_value && now < e.expires) return e.row;
    if (!e.expiry_counted) {
      e.expiry_counted = true;
      expiries_.fetch_add(1, std::memory_order_relaxed);
    }
    return std::nullopt;
  }

  // Stores `row` as if it had been loaded `age` ago.
  void Put(int key, const Row& row, std::chrono::nanoseconds age = {}) {
    const SteadyTime now = Now();
    Shard& shard = ShardFor(key);
    std::lock_guard<std::mutex> lock(shard.mu);
    Entry& e = shard.entries[key];
    e.row = row;
    e.expires = now + ttl_ - age;
    e.has_value = true;
    e.expiry_counted = false;
  }

  uint64_t expiries() const {
    return expiries_.load(std::memory_order_relaxed);
  }

 private:
  struct Entry {
    Row row;
    SteadyTime expires{};
    bool has_value = false;
    bool expiry_counted = false;  // this lapse was counted
  };
  // std::mutex, as in herd itself: ThreadSanitizer sees it even though
  // Debian's Abseil is not built with -fsanitize=thread.
  struct Shard {
    std::mutex mu;  // protects entries
    absl::flat_hash_map<int, Entry> entries;
  };

  Shard& ShardFor(int key) { return shards_[static_cast<size_t>(key) % 16]; }

  const std::chrono::nanoseconds ttl_;
  std::array<Shard, 16> shards_;
  std::atomic<uint64_t> expiries_{0};
};

// none: a miss queries, whoever else is querying the same key.
class NoneServer : public Server {
 public:
  NoneServer(Database& db, Millis ttl) : db_(db), cache_(ttl) {}

  Row Serve(int key) override {
    if (std::optional<Row> hit = cache_.Get(key)) return *hit;
    Row row = db_.Query(key);
    cache_.Put(key, row);
    return row;
  }
  uint64_t expiries() const override { return cache_.expiries(); }
  void Warm(const std::vector<Row>& rows,
            const std::vector<std::chrono::nanoseconds>& ages) override {
    for (size_t key = 0; key < rows.size(); ++key) {
      cache_.Put(static_cast<int>(key), rows[key], ages[key]);
    }
  }

 protected:
  Database& db_;
  TtlMap cache_;
};

// lock: the usual hand-written fix, a mutex per key and a second look at the
// cache once it is held.
class LockServer : public NoneServer {
 public:
  LockServer(Database& db, Millis ttl, int keys)
      : NoneServer(db, ttl), locks_(static_cast<size_t>(keys)) {}

  Row Serve(int key) override {
    if (std::optional<Row> hit = cache_.Get(key)) return *hit;
    std::lock_guard<std::mutex> lock(locks_[static_cast<size_t>(key)]);
    if (std::optional<Row> hit = cache_.Get(key)) return *hit;
    Row row = db_.Query(key);
    cache_.Put(key, row);
    return row;
  }

 private:
  std::vector<std::mutex> locks_;
};

// share and share-sampled: herd::Share around check-query-store.
class ShareServer : public NoneServer {
 public:
  ShareServer(Database& db, Millis ttl, ShareOptions options)
      : NoneServer(db, ttl), share_(options) {}

  Row Serve(int key) override {
    if (std::optional<Row> hit = cache_.Get(key)) return *hit;
    return share_.Do(key, [this, key] { return Load(key, {}); });
  }

 protected:
  // The flight's loader. It looks again first: a flight that ended between
  // this caller's miss and its Do() has stored a fresh value.
  Row Load(int key, std::stop_token stop) {
    if (std::optional<Row> hit = cache_.Get(key)) return *hit;
    Row row = db_.Query(key, std::move(stop));
    cache_.Put(key, row);
    return row;
  }

  Share<int, Row> share_;
};

// share-guarded: what limits the damage of a query that hangs.
//  * DoFor: a waiter gives up on a flight after `wait`...
//  * ...and Forget(kRerunOnNextCall) lets it run the query again as an extra
//    execution of the same flight, whose result frees every waiter of that
//    flight;
//  * max_flight_age: a caller arriving at a flight that old starts afresh;
//  * WithDeadline: the stuck query itself is stopped after `deadline`.
class GuardedServer : public ShareServer {
 public:
  GuardedServer(Database& db, Millis ttl, const Calibration& cal)
      : ShareServer(db, ttl,
                    ShareOptions{.max_flight_age = Nanos(cal.max_flight_age)}),
        wait_(Nanos(cal.wait)),
        deadline_(Nanos(cal.deadline)) {}

  Row Serve(int key) override {
    if (std::optional<Row> hit = cache_.Get(key)) return *hit;
    auto loader = WithDeadline(deadline_, [this, key](std::stop_token stop) {
      return Load(key, stop);
    });
    for (int attempt = 1;; ++attempt) {
      try {
        return share_.DoFor(key, wait_, loader);
      } catch (const WaitTimeout&) {
        if (attempt == kAttempts) throw;
        // The flight is taking too long: run the query again, as an extra
        // execution whose result answers everyone waiting on the flight.
        share_.Forget(key, ForgetMode::kRerunOnNextCall);
      } catch (const DeadlineExceeded&) {
        if (attempt == kAttempts) throw;
        // The query was stopped: ask again (a new flight, shared as usual).
      }
    }
  }

 private:
  static std::chrono::nanoseconds Nanos(Millis d) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(d);
  }

  static constexpr int kAttempts = 3;

  const std::chrono::nanoseconds wait_;
  const std::chrono::nanoseconds deadline_;
};

// Steady time, except on a thread that sets `age`: there it reads `age`
// earlier, so that LoadingCache::Put() stores a value as if loaded then.
class WarmingClock final : public Clock {
 public:
  time_point Now() const override { return Clock::Steady().Now() - age; }
  bool SleepUntil(time_point deadline,
                  std::stop_token stop = {}) const override {
    return Clock::Steady().SleepUntil(deadline, std::move(stop));
  }
  static inline thread_local Clock::duration age{};
};

// cache-refresh and early: herd::LoadingCache, its loader bound at
// construction, with the fail-safe options derived from the calibrated
// query time as share-guarded's defences are (Calibration):
//  * stale_if_error: when a reload fails or hangs, readers get the last
//    value instead (for up to an hour past its expiry);
//  * soft_timeout = `wait`: a reader that has such a stale value waits at
//    most that long for the reload, then takes the stale value;
//  * hard_timeout = `deadline`: no reader waits longer; the hung query's
//    stop_token is stopped, and the next reader starts a new load;
//  * fail_safe_backoff = `wait`: after a failure, readers get the stale
//    value at once, and no query starts, for that long;
//  * max_flight_age: a reader that finds an older load starts afresh.
// Its expiries are counted from outside: a request that finds the key
// absent (GetIfPresent) and then gets a value from query q counts the lapse
// that q ended, once.
class CacheServer : public Server {
 public:
  CacheServer(Database& db, CacheOptions<int, Row> options, int keys)
      : pool_(std::make_unique<ThreadPool>(4)),
        counted_(static_cast<size_t>(keys)) {
    options.clock = &clock_;
    options.executor = *pool_;
    Database* database = &db;
    cache_ = std::make_unique<LoadingCache<int, Row>>(
        std::move(options), [database](int key, std::stop_token stop) {
          return database->Query(key, std::move(stop));
        });
  }

  ~CacheServer() override { CacheServer::Drain(); }

  Row Serve(int key) override {
    const bool missing = !cache_->GetIfPresent(key).has_value();
    Row row = cache_->Get(key);
    if (missing) {
      std::atomic<uint64_t>& last = counted_[static_cast<size_t>(key)];
      uint64_t seen = last.load(std::memory_order_relaxed);
      while (seen < row.query_id &&
             !last.compare_exchange_weak(seen, row.query_id,
                                         std::memory_order_relaxed)) {
      }
      if (seen < row.query_id) {
        expiries_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    return row;
  }

  uint64_t expiries() const override {
    return expiries_.load(std::memory_order_relaxed);
  }
  uint64_t refreshes() const override {
    return cache_ != nullptr ? cache_->Stats().refreshes : refreshes_;
  }

  void Warm(const std::vector<Row>& rows,
            const std::vector<std::chrono::nanoseconds>& ages) override {
    for (size_t key = 0; key < rows.size(); ++key) {
      WarmingClock::age = ages[key];
      cache_->Put(static_cast<int>(key), rows[key]);
    }
    WarmingClock::age = {};
  }

  void Drain() override {
    if (cache_ == nullptr) return;
    pool_.reset();  // runs the refreshes still queued, then joins
    refreshes_ = cache_->Stats().refreshes;
    cache_.reset();
  }

 private:
  const WarmingClock clock_;          // outlives cache_
  std::unique_ptr<ThreadPool> pool_;  // outlives cache_
  std::unique_ptr<LoadingCache<int, Row>> cache_;
  std::vector<std::atomic<uint64_t>> counted_;  // last query_id counted
  std::atomic<uint64_t> expiries_{0};
  uint64_t refreshes_ = 0;
};

std::unique_ptr<Server> MakeServer(Strategy s, const Config& c,
                                   const Calibration& cal, Database& db,
                                   const RedisEndpoint* redis) {
  switch (s) {
    case Strategy::kFleet:
    case Strategy::kLocal:
    case Strategy::kRedisLock:
      if (redis == nullptr) {
        throw std::logic_error("herd-stampede: a Redis strategy without Redis");
      }
      return internal::MakeRedisServer(s, c, db, *redis);
    case Strategy::kNone:
      return std::make_unique<NoneServer>(db, c.ttl);
    case Strategy::kLock:
      return std::make_unique<LockServer>(db, c.ttl, c.keys);
    case Strategy::kShare:
      return std::make_unique<ShareServer>(db, c.ttl, ShareOptions{});
    case Strategy::kShareSampled:
      return std::make_unique<ShareServer>(
          db, c.ttl, ShareOptions{.extra_execution_rate = c.extra_rate});
    case Strategy::kShareGuarded:
      return std::make_unique<GuardedServer>(db, c.ttl, cal);
    case Strategy::kCacheRefresh:
    case Strategy::kEarly: {
      using std::chrono::duration_cast;
      using std::chrono::nanoseconds;
      CacheOptions<int, Row> o;
      o.ttl = duration_cast<nanoseconds>(c.ttl);
      o.stale_if_error = std::chrono::hours(1);
      o.soft_timeout = duration_cast<nanoseconds>(cal.wait);
      o.hard_timeout = duration_cast<nanoseconds>(cal.deadline);
      o.fail_safe_backoff = duration_cast<nanoseconds>(cal.wait);
      o.max_flight_age = duration_cast<nanoseconds>(cal.max_flight_age);
      if (s == Strategy::kCacheRefresh) {
        o.refresh_after = std::chrono::duration_cast<std::chrono::nanoseconds>(
            c.ttl * c.refresh_after);
        if (o.refresh_after.count() <= 0) o.refresh_after = o.ttl / 2;
      } else {
        o.early_refresh_beta = c.beta;
      }
      o.seed = c.seed + 1;
      return std::make_unique<CacheServer>(db, std::move(o), c.keys);
    }
  }
  throw std::logic_error("herd-stampede: unknown strategy");
}

bool Stopping(const RunHooks& hooks) {
  return hooks.stop != nullptr && hooks.stop->load(std::memory_order_relaxed);
}

// Nearest-rank percentile of sorted `v`.
Millis Percentile(const std::vector<int64_t>& v, double p) {
  if (v.empty()) return Millis(0);
  size_t rank =
      static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  rank = std::clamp<size_t>(rank, 1, v.size());
  return std::chrono::nanoseconds(v[rank - 1]);
}

Millis AtLeast(Millis configured, Millis derived, Millis floor) {
  if (configured.count() > 0) return configured;
  return std::max(derived, floor);
}

}  // namespace

namespace internal {

std::vector<std::chrono::nanoseconds> WarmAges(const Config& c, size_t keys) {
  // A server that has been running a while: every key cached, loaded at
  // times spread over one TTL (the same times for every strategy).
  std::mt19937_64 gen(c.seed);
  std::uniform_real_distribution<double> age(0, 1);
  std::vector<std::chrono::nanoseconds> ages;
  for (size_t key = 0; key < keys; ++key) {
    ages.push_back(
        std::chrono::duration_cast<std::chrono::nanoseconds>(c.ttl * age(gen)));
  }
  return ages;
}

StrategyResult RunStrategy(Strategy strategy, size_t index, const Config& c,
                           const Calibration& cal, Database& db,
                           const std::vector<Row>& warm, const RunHooks& hooks,
                           const RedisEndpoint* redis,
                           std::vector<int64_t>* latencies, uint64_t process,
                           const std::function<void()>& go) {
  StrategyResult result;
  result.strategy = strategy;
  db.InjectStalls(c.stall_every, std::chrono::milliseconds(
                                     static_cast<int64_t>(c.stall.count())));
  std::unique_ptr<Server> server = MakeServer(strategy, c, cal, db, redis);
  if (!warm.empty()) server->Warm(warm, WarmAges(c, warm.size()));
  if (go) go();
  const uint64_t queries_before = db.queries();
  const uint64_t commands_before = server->redis_commands();
  const uint64_t stalls_before = db.stalls();
  const Zipf zipf(c.keys, c.skew);

  struct Worker {
    std::vector<int64_t> latencies;  // nanoseconds
    uint64_t errors = 0;
  };
  std::vector<Worker> workers(static_cast<size_t>(c.workers));
  std::atomic<uint64_t> issued{0};
  std::atomic<uint64_t> completed{0};
  std::latch done(c.workers);

  const SteadyTime start = Now();
  const SteadyTime end =
      start + std::chrono::duration_cast<std::chrono::nanoseconds>(c.duration);
  auto work = [&](size_t i) {
    Worker& w = workers[i];
    w.latencies.reserve(4096);
    // The same seed for every strategy: each sees the same keys in the same
    // order.
    std::mt19937_64 gen(c.seed * 0x9e3779b97f4a7c15ULL + i +
                        process * 0x100000001b3ULL);
    std::uniform_real_distribution<double> jitter(0.5, 1.5);
    while (!Stopping(hooks)) {
      if (c.requests > 0) {
        if (issued.fetch_add(1, std::memory_order_relaxed) >= c.requests) break;
      } else if (Now() >= end) {
        break;
      }
      const int key = zipf(gen);
      const SteadyTime t0 = Now();
      bool failed = false;
      try {
        server->Serve(key);
      } catch (...) {
        failed = true;
      }
      const SteadyTime t1 = Now();
      // A request cut short by Ctrl-C is not a measurement.
      if (failed && Stopping(hooks)) break;
      w.latencies.push_back((t1 - t0).count());
      if (failed) ++w.errors;
      completed.fetch_add(1, std::memory_order_relaxed);
      if (c.think.count() > 0) {
        std::this_thread::sleep_for(c.think * jitter(gen));
      }
    }
  };

  {
    ThreadPool pool(static_cast<size_t>(c.workers));
    for (size_t i = 0; i < workers.size(); ++i) {
      pool.Schedule([&work, &done, i] {
        work(i);
        done.count_down();
      });
    }
    while (true) {
      if (hooks.on_progress) {
        Progress p;
        p.strategy = strategy;
        p.index = index;
        if (c.requests > 0) {
          p.fraction =
              static_cast<double>(std::min<uint64_t>(
                  issued.load(std::memory_order_relaxed), c.requests)) /
              static_cast<double>(c.requests);
        } else {
          p.fraction = std::min(1.0, Millis(Now() - start) / c.duration);
        }
        p.requests = completed.load(std::memory_order_relaxed);
        p.queries = db.queries() - queries_before;
        hooks.on_progress(p);
      }
      if (done.try_wait()) break;
      // Short naps, so that a short run ends soon after its last request.
      for (int nap = 0; nap < 10 && !done.try_wait(); ++nap) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  }
  result.elapsed = Now() - start;
  server->Drain();
  result.refreshes = server->refreshes();
  result.expiries = server->expiries();
  result.redis_commands = server->redis_commands() - commands_before;
  result.queries = db.queries() - queries_before;
  result.stalls = db.stalls() - stalls_before;
  result.interrupted = Stopping(hooks);

  std::vector<int64_t> all;
  for (Worker& w : workers) {
    all.insert(all.end(), w.latencies.begin(), w.latencies.end());
    result.errors += w.errors;
  }
  if (latencies != nullptr) *latencies = all;
  std::sort(all.begin(), all.end());
  result.requests = all.size();
  result.p50 = Percentile(all, 0.50);
  result.p99 = Percentile(all, 0.99);
  result.max = Percentile(all, 1.0);
  if (c.stall_every > 0) {
    const auto half_stall =
        std::chrono::duration_cast<std::chrono::nanoseconds>(c.stall / 2);
    result.stuck = static_cast<uint64_t>(
        all.end() -
        std::lower_bound(all.begin(), all.end(), half_stall.count()));
  }
  return result;
}

}  // namespace internal

std::string_view StrategyName(Strategy s) {
  for (const Named& n : kNames) {
    if (n.strategy == s) return n.name;
  }
  return "?";
}

std::optional<Strategy> ParseStrategy(std::string_view name) {
  for (const Named& n : kNames) {
    if (n.name == name) return n.strategy;
  }
  return std::nullopt;
}

const std::vector<Strategy>& AllStrategies() {
  static const std::vector<Strategy> all = [] {
    std::vector<Strategy> v;
    for (const Named& n : kNames) v.push_back(n.strategy);
    return v;
  }();
  return all;
}

double StrategyResult::QueriesPerExpiry() const {
  if (expiries == 0) return 0;
  return static_cast<double>(queries - std::min(queries, refreshes)) /
         static_cast<double>(expiries);
}

double StrategyResult::RedisCommandsPerExpiry() const {
  if (expiries == 0) return 0;
  return static_cast<double>(redis_commands) / static_cast<double>(expiries);
}

double StrategyResult::Throughput() const {
  const double s = elapsed.count() / 1000.0;
  return s > 0 ? static_cast<double>(requests) / s : 0;
}

Report RunLab(const Config& config, const RunHooks& hooks) {
  Report report;
  report.config = config;
  Calibration& cal = report.calibration;
  cal.db_path = config.db_path;
  if (hooks.log != nullptr) {
    std::fprintf(hooks.log, "database: %s ...", config.db_path.c_str());
    std::fflush(hooks.log);
  }
  Database db(config.db_path, config.rows, hooks.stop);
  cal.rows = db.rows();
  cal.built = db.built();
  cal.build_time = db.build_time();
  cal.query_time = db.Calibrate(Millis(config.query_ms));
  cal.scan_rows = db.scan_rows();
  const Millis q = cal.query_time;
  // Generous: a query slowed by a busy machine is not a stuck one, and a
  // timeout that fires on healthy queries only adds load.
  cal.wait = AtLeast(config.wait, 10 * q, Millis(50));
  cal.max_flight_age = AtLeast(config.max_flight_age, 20 * q, Millis(100));
  cal.deadline = AtLeast(config.deadline, 40 * q, Millis(200));
  if (hooks.log != nullptr) {
    if (cal.built) {
      std::fprintf(hooks.log, " built (%lld orders, %.1f s)",
                   static_cast<long long>(cal.rows),
                   cal.build_time.count() / 1000);
    } else {
      std::fprintf(hooks.log, " reused (%lld orders)",
                   static_cast<long long>(cal.rows));
    }
    std::fprintf(hooks.log,
                 "; one query scans %lld rows in %.1f ms on this machine\n",
                 static_cast<long long>(cal.scan_rows), q.count());
    std::fflush(hooks.log);
  }

  std::vector<Row> warm;
  if (!config.cold_start) warm = db.Snapshot(config.keys);

  if (config.processes > 1 && hooks.args.empty()) {
    throw std::invalid_argument(
        "herd-stampede: --processes > 1 runs the program again, and needs "
        "its flags (RunHooks::args)");
  }
  // The Redis strategies' server: started (or reached) once for the run.
  std::unique_ptr<internal::LabRedis> redis;
  if (std::any_of(config.strategies.begin(), config.strategies.end(),
                  internal::IsRedisStrategy)) {
    std::string error;
    redis = internal::LabRedis::Open(config.redis, &error);
    if (hooks.log != nullptr) {
      if (redis == nullptr) {
        std::fprintf(hooks.log, "redis: %s; skipping fleet, local, redis-lock\n",
                     error.c_str());
      } else {
        std::fprintf(hooks.log, "redis: %s %s:%d\n",
                     redis->started() ? "started redis-server on" : "using",
                     redis->host().c_str(), redis->port());
      }
      std::fflush(hooks.log);
    }
  }

  for (size_t i = 0; i < config.strategies.size(); ++i) {
    if (Stopping(hooks)) {
      report.interrupted = true;
      break;
    }
    const Strategy s = config.strategies[i];
    std::optional<RedisEndpoint> endpoint;
    std::unique_ptr<internal::ExpiryCounter> expiries;
    if (internal::IsRedisStrategy(s)) {
      if (redis == nullptr) continue;
      // Keys of their own for each run: nothing from an earlier one.
      endpoint = RedisEndpoint{
          redis->host(), redis->port(),
          "herd-stampede:" + std::to_string(::getpid()) + ":" +
              std::string(StrategyName(s)) + ":"};
      if (!warm.empty()) {
        internal::WarmRedis(s, config, *endpoint, warm,
                            internal::WarmAges(config, warm.size()));
      }
    }
    const RedisEndpoint* r = endpoint ? &*endpoint : nullptr;
    if (r != nullptr) {
      std::string error;
      expiries = std::make_unique<internal::ExpiryCounter>(*r, &error);
      if (!expiries->ok()) throw std::runtime_error("redis: " + error);
    }
    // Expiries in Redis count from the start of the run, as queries do.
    auto on_go = [&] {
      if (r == nullptr) return;
      std::vector<std::string> keys;
      for (int key = 0; key < config.keys; ++key) {
        keys.push_back(internal::ValueKey(s, *r, key));
      }
      expiries->Start(keys);
    };
    StrategyResult result =
        config.processes > 1
            ? internal::RunInProcesses(s, i, hooks.args, config, cal, db, r,
                                       hooks, on_go)
            : internal::RunStrategy(s, i, config, cal, db, warm, hooks, r,
                                    nullptr, 0, on_go);
    if (expiries != nullptr) result.expiries = expiries->Finish();
    report.results.push_back(result);
    if (report.results.back().interrupted) {
      report.interrupted = true;
      break;
    }
  }
  return report;
}

}  // namespace herd::lab
