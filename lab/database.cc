// Copyright 2026 The herd Authors.

#include "lab/database.h"

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <utility>

#include "herd/clock.h"

namespace herd::lab {
namespace {

using Millis = std::chrono::duration<double, std::milli>;

constexpr int kSchemaVersion = 1;

constexpr char kQuery[] =
    "SELECT count(*), total(amount), max(created) FROM orders "
    "WHERE id <= ?1 AND customer_key = ?2";

std::string Describe(sqlite3* db) {
  return db != nullptr ? sqlite3_errmsg(db) : "out of memory";
}

// Runs `sql` (no results expected). Throws DatabaseError.
void Exec(sqlite3* db, const char* sql, const std::string& what) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = what + ": " + (error != nullptr ? error : "?");
    sqlite3_free(error);
    throw DatabaseError(message);
  }
}

// Closes a handle at scope exit.
struct CloseDb {
  sqlite3* db;
  ~CloseDb() { sqlite3_close_v2(db); }
};
struct FinalizeStmt {
  sqlite3_stmt* stmt;
  ~FinalizeStmt() { sqlite3_finalize(stmt); }
};

}  // namespace

struct Database::Connection {
  sqlite3* db = nullptr;
  sqlite3_stmt* stmt = nullptr;
  // Read by the progress handler during a query.
  std::stop_token stop;
  const std::atomic<bool>* process_stop = nullptr;

  ~Connection() {
    sqlite3_finalize(stmt);
    sqlite3_close_v2(db);
  }

  // SQLite calls this every few thousand virtual-machine instructions; a
  // non-zero return interrupts the query (SQLITE_INTERRUPT).
  static int Progress(void* self) {
    auto* c = static_cast<Connection*>(self);
    return c->stop.stop_requested() ||
           (c->process_stop != nullptr &&
            c->process_stop->load(std::memory_order_relaxed));
  }
};

// A connection borrowed from the pool for one query.
class Database::Lease {
 public:
  explicit Lease(Database& db) : db_(db) {
    {
      std::lock_guard<std::mutex> lock(db_.mu_);
      if (!db_.idle_.empty()) {
        c_ = std::move(db_.idle_.back());
        db_.idle_.pop_back();
      }
    }
    if (c_ == nullptr) c_ = db_.Open();
  }
  ~Lease() {
    c_->stop = {};
    std::lock_guard<std::mutex> lock(db_.mu_);
    db_.idle_.push_back(std::move(c_));
  }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  Connection& operator*() { return *c_; }

 private:
  Database& db_;
  std::unique_ptr<Connection> c_;
};

Database::Database(const std::string& path, int64_t rows,
                   const std::atomic<bool>* stop)
    : path_(path), rows_(rows), stop_(stop), limit_(rows) {
  if (!Usable()) {
    const auto start = std::chrono::steady_clock::now();
    Build();
    build_time_ = std::chrono::steady_clock::now() - start;
    built_ = true;
  }
}

Database::~Database() = default;

bool Database::Usable() {
  if (access(path_.c_str(), F_OK) != 0) return false;
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  CloseDb close{db};
  if (rc != SQLITE_OK) {
    throw DatabaseError("cannot open database '" + path_ +
                        "': " + Describe(db));
  }
  sqlite3_stmt* stmt = nullptr;
  const char* sql =
      "SELECT (SELECT value FROM meta WHERE name = 'herd_stampede_schema'), "
      "(SELECT value FROM meta WHERE name = 'orders')";
  if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK ||
      sqlite3_step(stmt) != SQLITE_ROW ||
      sqlite3_column_int64(stmt, 0) != kSchemaVersion) {
    sqlite3_finalize(stmt);
    throw DatabaseError("'" + path_ +
                        "' exists and is not a herd-stampede database "
                        "(left untouched): pass another --db");
  }
  const int64_t orders = sqlite3_column_int64(stmt, 1);
  sqlite3_finalize(stmt);
  return orders == rows_;
}

void Database::Build() {
  const std::string tmp = path_ + ".tmp." + std::to_string(getpid());
  std::remove(tmp.c_str());
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(
      tmp.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    std::string why = Describe(db);
    sqlite3_close_v2(db);
    throw DatabaseError("cannot create database '" + path_ + "': " + why +
                        " (is the directory writable? pass --db=PATH)");
  }
  try {
    CloseDb close{db};
    const std::string what = "building '" + path_ + "'";
    Exec(db,
         "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
         "CREATE TABLE meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
         "CREATE TABLE customers(key INTEGER PRIMARY KEY, name TEXT NOT NULL);"
         "CREATE TABLE orders(id INTEGER PRIMARY KEY,"
         " customer_key INTEGER NOT NULL, amount REAL NOT NULL,"
         " created INTEGER NOT NULL);"
         "BEGIN;",
         what);
    sqlite3_stmt* stmt = nullptr;
    auto prepare = [&](const char* sql) {
      if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK) {
        throw DatabaseError(what + ": " + Describe(db));
      }
    };
    auto step = [&] {
      if (sqlite3_step(stmt) != SQLITE_DONE) {
        throw DatabaseError(what + ": " + Describe(db));
      }
      sqlite3_reset(stmt);
    };
    prepare("INSERT INTO customers VALUES (?1, 'customer ' || ?1)");
    {
      FinalizeStmt finalize{stmt};
      for (int key = 0; key < kCustomers; ++key) {
        sqlite3_bind_int(stmt, 1, key);
        step();
      }
    }
    prepare("INSERT INTO orders VALUES (?1, ?2, ?3, ?4)");
    {
      FinalizeStmt finalize{stmt};
      std::mt19937_64 gen(42);  // the same file on every machine
      for (int64_t id = 1; id <= rows_; ++id) {
        sqlite3_bind_int64(stmt, 1, id);
        sqlite3_bind_int64(stmt, 2, static_cast<int64_t>(gen() % kCustomers));
        sqlite3_bind_double(stmt, 3,
                            static_cast<double>(gen() % 100000) / 100.0);
        sqlite3_bind_int64(stmt, 4, 1700000000 + id * 7);
        step();
        if ((id & 0xffff) == 0 && Stopping()) {
          throw DatabaseError("interrupted while building '" + path_ + "'");
        }
      }
    }
    const std::string meta =
        "INSERT INTO meta VALUES ('herd_stampede_schema', " +
        std::to_string(kSchemaVersion) + "), ('orders', " +
        std::to_string(rows_) + "); COMMIT;";
    Exec(db, meta.c_str(), what);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw DatabaseError("cannot create database '" + path_ + "': " + why);
  }
}

std::unique_ptr<Database::Connection> Database::Open() {
  auto c = std::make_unique<Connection>();
  c->process_stop = stop_;
  if (sqlite3_open_v2(path_.c_str(), &c->db,
                      SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    throw DatabaseError("cannot open database '" + path_ +
                        "': " + Describe(c->db));
  }
  // Memory-mapped reads: no copy of every page into each connection's cache,
  // so 64 connections cost what one does.
  Exec(c->db, "PRAGMA mmap_size = 1073741824; PRAGMA cache_size = -512;",
       "configuring '" + path_ + "'");
  if (sqlite3_prepare_v2(c->db, kQuery, -1, &c->stmt, nullptr) != SQLITE_OK) {
    throw DatabaseError("preparing the query on '" + path_ +
                        "': " + Describe(c->db));
  }
  sqlite3_progress_handler(c->db, 2000, &Connection::Progress, c.get());
  return c;
}

Row Database::Run(Connection& c, int key, std::stop_token stop) {
  c.stop = std::move(stop);
  Row row;
  for (int i = 0; i < repeats_; ++i) {
    sqlite3_bind_int64(c.stmt, 1, limit_);
    sqlite3_bind_int(c.stmt, 2, key);
    const int rc = sqlite3_step(c.stmt);
    if (rc == SQLITE_ROW) {
      row.orders = sqlite3_column_int64(c.stmt, 0);
      row.total = sqlite3_column_double(c.stmt, 1);
      row.last_created = sqlite3_column_int64(c.stmt, 2);
    }
    sqlite3_reset(c.stmt);
    if (rc == SQLITE_INTERRUPT) throw QueryStopped();
    if (rc != SQLITE_ROW) {
      throw DatabaseError("query on '" + path_ + "': " + Describe(c.db));
    }
  }
  return row;
}

std::chrono::duration<double, std::milli> Database::Calibrate(
    std::chrono::duration<double, std::milli> target) {
  Lease lease(*this);
  auto median_of_three = [&] {
    Millis t[3];
    for (Millis& d : t) {
      const auto start = std::chrono::steady_clock::now();
      Run(*lease, 0, {});
      d = std::chrono::steady_clock::now() - start;
    }
    std::sort(t, t + 3);
    return t[1];
  };
  limit_ = rows_;
  repeats_ = 1;
  const Millis full = median_of_three();
  const double rows_per_ms =
      static_cast<double>(rows_) / std::max(full.count(), 1e-3);
  const double wanted = std::max(100.0, target.count() * rows_per_ms);
  if (wanted <= static_cast<double>(rows_)) {
    limit_ = static_cast<int64_t>(wanted);
  } else {
    repeats_ = static_cast<int>(
        std::min(1e6, std::ceil(wanted / static_cast<double>(rows_))));
    limit_ = static_cast<int64_t>(wanted / repeats_);
  }
  return median_of_three();
}

std::vector<Row> Database::Snapshot(int keys) {
  std::vector<Row> rows(static_cast<size_t>(keys));
  Lease lease(*this);
  sqlite3* db = (*lease).db;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db,
                         "SELECT customer_key, count(*), total(amount), "
                         "max(created) FROM orders WHERE id <= ?1 AND "
                         "customer_key < ?2 GROUP BY customer_key",
                         -1, &stmt, nullptr) != SQLITE_OK) {
    throw DatabaseError("snapshot of '" + path_ + "': " + Describe(db));
  }
  FinalizeStmt finalize{stmt};
  sqlite3_bind_int64(stmt, 1, limit_);
  sqlite3_bind_int(stmt, 2, keys);
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    Row& row = rows[static_cast<size_t>(sqlite3_column_int(stmt, 0))];
    row.orders = sqlite3_column_int64(stmt, 1);
    row.total = sqlite3_column_double(stmt, 2);
    row.last_created = sqlite3_column_int64(stmt, 3);
  }
  if (rc == SQLITE_INTERRUPT) throw QueryStopped();
  if (rc != SQLITE_DONE) {
    throw DatabaseError("snapshot of '" + path_ + "': " + Describe(db));
  }
  return rows;
}

void Database::InjectStalls(uint64_t every, std::chrono::milliseconds stall) {
  stall_every_ = every;
  stall_ = stall;
  stall_base_ = queries_.load(std::memory_order_relaxed);
}

Row Database::Query(int key, std::stop_token stop) {
  const uint64_t n = queries_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (stall_every_ != 0 && (n - stall_base_) % stall_every_ == 0) {
    stalls_.fetch_add(1, std::memory_order_relaxed);
    // The classic bug: this query blocks. It still ends early when stopped,
    // checking the process flag (set by a signal handler, which cannot wake
    // anyone) every 20 ms.
    const auto end = Clock::Steady().Now() + stall_;
    while (Clock::Steady().Now() < end) {
      if (stop.stop_requested() || Stopping()) throw QueryStopped();
      Clock::Steady().SleepUntil(
          std::min(end, Clock::Steady().Now() + std::chrono::milliseconds(20)),
          stop);
    }
  }
  if (stop.stop_requested() || Stopping()) throw QueryStopped();
  Lease lease(*this);
  Row row = Run(*lease, key, std::move(stop));
  row.query_id = n;
  return row;
}

}  // namespace herd::lab
