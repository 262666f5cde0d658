// Copyright 2026 The herd Authors.
//
// lab/database.h: the stampede lab's database, a real SQLite file on disk
// with a real, slow query.
//
//   herd::lab::Row             what one query returns (a customer's totals)
//   herd::lab::Database        builds or reuses the file, calibrates the
//                              query to a target time, runs it on a pool of
//                              read-only connections, counts queries and
//                              injects stalls
//   herd::lab::DatabaseError   the file cannot be created, opened or used
//   herd::lab::QueryStopped    a query gave up: Ctrl-C, or its stop_token
//
// The file holds `customers(key, name)` and `orders(id, customer_key,
// amount, created)`, with no index on customer_key: the query
//
//   SELECT count(*), total(amount), max(created) FROM orders
//    WHERE id <= :limit AND customer_key = :key
//
// is a scan of the first `limit` rows (a rowid range), so its cost is set by
// `limit` (and, on a machine too fast for the table, by running it several
// times). Calibrate() picks them so that one query takes about the target
// time on an idle machine.
//
// Thread safety: Query() and the counters may be called concurrently from
// any number of threads; each concurrent query uses its own connection.
// Calibrate() and InjectStalls() must not run concurrently with Query().

#ifndef HERD_LAB_DATABASE_H_
#define HERD_LAB_DATABASE_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace herd::lab {

// One customer's totals, and which query produced them.
struct Row {
  int64_t orders = 0;
  double total = 0;
  int64_t last_created = 0;
  uint64_t query_id = 0;  // 1 + the number of queries started before it
};

class DatabaseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown by Query() when the process is stopping or the caller's stop_token
// was stopped (herd::WithDeadline then reports herd::DeadlineExceeded).
class QueryStopped : public std::runtime_error {
 public:
  QueryStopped() : std::runtime_error("query stopped") {}
};

class Database {
 public:
  static constexpr int kCustomers = 100000;

  // Opens the lab database at `path`, building it first (into a temporary
  // file renamed into place) if it is missing or holds a different number of
  // orders. A file that is not a lab database is never overwritten. `stop`,
  // when not null, makes running queries give up once it reads true.
  // Throws: DatabaseError, with a message that names the path.
  Database(const std::string& path, int64_t rows,
           const std::atomic<bool>* stop);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  const std::string& path() const { return path_; }
  int64_t rows() const { return rows_; }
  // True iff the constructor built the file (false: reused it).
  bool built() const { return built_; }
  std::chrono::duration<double, std::milli> build_time() const {
    return build_time_;
  }

  // Sizes the query so that one takes about `target` here. Returns the
  // measured time of one query at that size (the median of three).
  std::chrono::duration<double, std::milli> Calibrate(
      std::chrono::duration<double, std::milli> target);
  int64_t scan_rows() const { return limit_ * repeats_; }
  // The size Calibrate() chose, for another process to use as it is.
  int64_t limit() const { return limit_; }
  int repeats() const { return repeats_; }
  // Sizes the query without calibrating. REQUIRES: limit >= 1, repeats >= 1.
  void SetScan(int64_t limit, int repeats) {
    limit_ = std::max<int64_t>(1, limit);
    repeats_ = std::max(1, repeats);
  }

  // From now on the n-th query from this call (counting from 1) blocks for
  // `stall` before it runs when n % every == 0. every == 0 turns stalls off. A
  // stall ends early when the query is stopped.
  void InjectStalls(uint64_t every, std::chrono::milliseconds stall);

  // Runs the query for customer `key` (0 <= key < kCustomers).
  // Throws: QueryStopped if `stop` or the process stop flag stops it first;
  // DatabaseError on an SQLite error.
  Row Query(int key, std::stop_token stop = {});

  // The rows of customers 0..keys-1 as Query() would return them (with
  // query_id 0), from one grouped scan; not counted as a query. For warming
  // a cache before a run.
  std::vector<Row> Snapshot(int keys);

  uint64_t queries() const { return queries_.load(std::memory_order_relaxed); }
  uint64_t stalls() const { return stalls_.load(std::memory_order_relaxed); }

 private:
  struct Connection;
  class Lease;

  // Returns true iff the file at path_ is a lab database with rows_ orders.
  // Throws DatabaseError if it exists and is not a lab database.
  bool Usable();
  void Build();
  std::unique_ptr<Connection> Open();
  Row Run(Connection& c, int key, std::stop_token stop);
  bool Stopping() const {
    return stop_ != nullptr && stop_->load(std::memory_order_relaxed);
  }

  const std::string path_;
  const int64_t rows_;
  const std::atomic<bool>* const stop_;
  bool built_ = false;
  std::chrono::duration<double, std::milli> build_time_{0};

  // Set by Calibrate() and InjectStalls(), before queries run.
  int64_t limit_;
  int repeats_ = 1;
  uint64_t stall_every_ = 0;
  uint64_t stall_base_ = 0;  // queries_ when InjectStalls() was called
  std::chrono::milliseconds stall_{0};

  std::atomic<uint64_t> queries_{0};
  std::atomic<uint64_t> stalls_{0};

  std::mutex mu_;                                  // protects idle_
  std::vector<std::unique_ptr<Connection>> idle_;  // connections not in use
};

}  // namespace herd::lab

#endif  // HERD_LAB_DATABASE_H_
