// Copyright 2026 The herd Authors.
//
// herd-stampede across processes that share Redis: the strategies fleet,
// local and redis-lock, the Redis server the lab uses, the count of
// expiries in Redis, and the worker processes of --processes.

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "herd/redis/codec.h"
#include "herd/redis/fleet.h"
#include "herd/redis/tier.h"
#include "herd/share.h"
#include "lab/lab_internal.h"

extern char** environ;

namespace herd::lab::internal {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using SteadyClock = std::chrono::steady_clock;

nanoseconds Nanos(Millis d) {
  return std::chrono::duration_cast<nanoseconds>(d);
}

timeval Tv(milliseconds d) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}

struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;
struct ContextFree {
  void operator()(redisContext* c) const { redisFree(c); }
};
using ContextPtr = std::unique_ptr<redisContext, ContextFree>;

ContextPtr Connect(const std::string& host, int port) {
  ContextPtr c(redisConnectWithTimeout(host.c_str(), port, Tv(milliseconds(2000))));
  if (c == nullptr || c->err != 0) return nullptr;
  redisSetTimeout(c.get(), Tv(milliseconds(10000)));
  return c;
}

ReplyPtr Command(redisContext* c, const std::vector<std::string>& argv) {
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const std::string& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  return ReplyPtr(static_cast<redisReply*>(redisCommandArgv(
      c, static_cast<int>(args.size()), args.data(), lens.data())));
}

// --- Redis strategies --------------------------------------------------------

// Each process's copies of the rows, each until its Redis copy expires: the
// same cache in front of Redis for the three strategies.
class LocalCopies {
 public:
  std::optional<Row> Get(int key) {
    const auto now = SteadyClock::now();
    Shard& s = ShardFor(key);
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.rows.find(key);
    if (it == s.rows.end() || now >= it->second.expires) return std::nullopt;
    return it->second.row;
  }
  void Put(int key, const Row& row, nanoseconds keep) {
    const auto expires = SteadyClock::now() + std::min(keep, nanoseconds(std::chrono::hours(24)));
    Shard& s = ShardFor(key);
    std::lock_guard<std::mutex> lock(s.mu);
    s.rows[key] = Entry{row, expires};
  }

 private:
  struct Entry {
    Row row;
    SteadyClock::time_point expires;
  };
  struct Shard {
    std::mutex mu;  // protects rows
    absl::flat_hash_map<int, Entry> rows;
  };
  Shard& ShardFor(int key) { return shards_[static_cast<size_t>(key) % 16]; }
  std::array<Shard, 16> shards_;
};

// hiredis contexts for the hand-written strategies, one per thread at a
// time, each command counted.
class Connections {
 public:
  explicit Connections(const RedisEndpoint& redis) : redis_(redis) {}
  ~Connections() {
    for (redisContext* c : idle_) redisFree(c);
  }

  // Runs one command; a null reply means the connection failed.
  ReplyPtr Run(const std::vector<std::string>& argv) {
    redisContext* c = Acquire();
    if (c == nullptr) return nullptr;
    commands_.fetch_add(1, std::memory_order_relaxed);
    ReplyPtr r = Command(c, argv);
    if (r == nullptr) {
      redisFree(c);
    } else {
      Release(c);
    }
    return r;
  }
  uint64_t commands() const { return commands_.load(std::memory_order_relaxed); }

 private:
  redisContext* Acquire() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!idle_.empty()) {
        redisContext* c = idle_.back();
        idle_.pop_back();
        return c;
      }
    }
    return Connect(redis_.host, redis_.port).release();
  }
  void Release(redisContext* c) {
    std::lock_guard<std::mutex> lock(mu_);
    idle_.push_back(c);
  }

  const RedisEndpoint redis_;
  std::mutex mu_;  // protects idle_
  std::vector<redisContext*> idle_;
  std::atomic<uint64_t> commands_{0};
};

// A row in Redis for local and redis-lock: the Row's bytes, then when it
// expires (milliseconds of the system clock), so that readers keep their
// copy exactly as long as Redis does.
std::string EncodeStored(const Row& row, nanoseconds ttl) {
  std::string out;
  herd::redis::Codec<Row>::Encode(row, out);
  const int64_t expires_ms =
      std::chrono::duration_cast<milliseconds>(
          std::chrono::system_clock::now().time_since_epoch() + ttl)
          .count();
  herd::redis::Codec<int64_t>::Encode(expires_ms, out);
  return out;
}

std::optional<std::pair<Row, nanoseconds>> DecodeStored(std::string_view s) {
  if (s.size() != sizeof(Row) + sizeof(int64_t)) return std::nullopt;
  std::optional<Row> row = herd::redis::Codec<Row>::Decode(s.substr(0, sizeof(Row)));
  std::optional<int64_t> expires_ms =
      herd::redis::Codec<int64_t>::Decode(s.substr(sizeof(Row)));
  if (!row || !expires_ms) return std::nullopt;
  const nanoseconds left =
      milliseconds(*expires_ms) -
      std::chrono::duration_cast<nanoseconds>(
          std::chrono::system_clock::now().time_since_epoch());
  return std::make_pair(*row, std::max(nanoseconds::zero(), left));
}

std::string PlainKey(const RedisEndpoint& r, const char* kind, int key) {
  return r.prefix + kind + ":" + std::to_string(key);
}

// fleet: a herd::Share per process in front of herd::redis::Tier.
class FleetServer : public Server {
 public:
  FleetServer(const Config& c, Database& db, const RedisEndpoint& redis)
      : fleet_(Options(redis)),
        tier_(fleet_, {.name = "lab", .ttl = Nanos(c.ttl)},
              [&db](const int& key) { return db.Query(key); }) {
    const auto deadline = SteadyClock::now() + std::chrono::seconds(10);
    while (!fleet_.Stats().subscribed && SteadyClock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(1));
    }
  }

  Row Serve(int key) override {
    if (std::optional<Row> hit = local_.Get(key)) return *hit;
    return share_.Do(key, [this, key] {
      if (std::optional<Row> hit = local_.Get(key)) return *hit;
      herd::redis::Loaded<Row> got = tier_.Fetch(key);
      local_.Put(key, got.value, got.fresh_for);
      return got.value;
    });
  }
  uint64_t expiries() const override { return 0; }  // counted in Redis
  uint64_t redis_commands() const override { return fleet_.Stats().commands; }
  // A process that has been running a while has a copy of every row that
  // Redis has: read them (before the run, so not counted).
  void Warm(const std::vector<Row>& rows,
            const std::vector<nanoseconds>&) override {
    for (size_t key = 0; key < rows.size(); ++key) Serve(static_cast<int>(key));
  }

 private:
  static herd::redis::FleetOptions Options(const RedisEndpoint& redis) {
    herd::redis::FleetOptions o;
    o.host = redis.host;
    o.port = redis.port;
    o.prefix = redis.prefix;
    // A lab machine under a stampede is busy: a slow command here is not a
    // Redis outage, and a fallback would add a query.
    o.command_timeout = std::chrono::seconds(2);
    o.pool_size = 16;
    return o;
  }

  herd::redis::Fleet fleet_;
  herd::redis::Tier<int, Row> tier_;
  Share<int, Row> share_;
  LocalCopies local_;
};

// local: a herd::Share per process around GET, query, SET: every process
// queries once per expiry.
class LocalServer : public Server {
 public:
  LocalServer(const Config& c, Database& db, const RedisEndpoint& redis)
      : db_(db), redis_(redis), ttl_(Nanos(c.ttl)), connections_(redis) {}

  Row Serve(int key) override {
    if (std::optional<Row> hit = local_.Get(key)) return *hit;
    return share_.Do(key, [this, key] {
      if (std::optional<Row> hit = local_.Get(key)) return *hit;
      const std::string value_key = PlainKey(redis_, "v", key);
      ReplyPtr r = connections_.Run({"GET", value_key});
      if (r != nullptr && r->type == REDIS_REPLY_STRING) {
        if (auto stored = DecodeStored(std::string_view(r->str, r->len))) {
          local_.Put(key, stored->first, stored->second);
          return stored->first;
        }
      }
      Row row = db_.Query(key);
      connections_.Run({"SET", value_key, EncodeStored(row, ttl_), "PX",
                        std::to_string(std::chrono::duration_cast<milliseconds>(ttl_).count())});
      local_.Put(key, row, ttl_);
      return row;
    });
  }
  uint64_t expiries() const override { return 0; }
  uint64_t redis_commands() const override { return connections_.commands(); }
  void Warm(const std::vector<Row>& rows, const std::vector<nanoseconds>&) override {
    for (size_t key = 0; key < rows.size(); ++key) Serve(static_cast<int>(key));
  }

 private:
  Database& db_;
  const RedisEndpoint redis_;
  const nanoseconds ttl_;
  Connections connections_;
  Share<int, Row> share_;
  LocalCopies local_;
};

// redis-lock: the usual hand-written lock in Redis. Every request that
// misses asks Redis; one takes `SET lock NX PX`, checks again, queries and
// stores; the others poll GET until the value is there.
class RedisLockServer : public Server {
 public:
  static constexpr milliseconds kPoll{10};
  static constexpr milliseconds kLockTtl{5000};

  RedisLockServer(const Config& c, Database& db, const RedisEndpoint& redis)
      : db_(db), redis_(redis), ttl_(Nanos(c.ttl)), connections_(redis) {}

  Row Serve(int key) override {
    if (std::optional<Row> hit = local_.Get(key)) return *hit;
    const std::string value_key = PlainKey(redis_, "v", key);
    const std::string lock_key = PlainKey(redis_, "lock", key);
    auto read = [&]() -> std::optional<Row> {
      ReplyPtr r = connections_.Run({"GET", value_key});
      if (r == nullptr || r->type != REDIS_REPLY_STRING) return std::nullopt;
      auto stored = DecodeStored(std::string_view(r->str, r->len));
      if (!stored) return std::nullopt;
      local_.Put(key, stored->first, stored->second);
      return stored->first;
    };
    const auto give_up = SteadyClock::now() + kLockTtl;
    for (;;) {
      if (std::optional<Row> hit = read()) return *hit;
      ReplyPtr locked = connections_.Run(
          {"SET", lock_key, "1", "NX", "PX", std::to_string(kLockTtl.count())});
      if ((locked != nullptr && locked->type == REDIS_REPLY_STATUS) ||
          SteadyClock::now() >= give_up) {
        // Look again: the holder before us may have just stored it.
        if (std::optional<Row> hit = read()) {
          connections_.Run({"DEL", lock_key});
          return *hit;
        }
        Row row = db_.Query(key);
        connections_.Run({"SET", value_key, EncodeStored(row, ttl_), "PX",
                          std::to_string(std::chrono::duration_cast<milliseconds>(ttl_).count())});
        connections_.Run({"DEL", lock_key});
        local_.Put(key, row, ttl_);
        return row;
      }
      std::this_thread::sleep_for(kPoll);
    }
  }
  uint64_t expiries() const override { return 0; }
  uint64_t redis_commands() const override { return connections_.commands(); }
  void Warm(const std::vector<Row>& rows, const std::vector<nanoseconds>&) override {
    for (size_t key = 0; key < rows.size(); ++key) Serve(static_cast<int>(key));
  }

 private:
  Database& db_;
  const RedisEndpoint redis_;
  const nanoseconds ttl_;
  Connections connections_;
  LocalCopies local_;
};

// --- Helpers for processes -----------------------------------------------------

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

std::string FindOnPath(const char* name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = dir + "/" + name;
    if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  const std::string fixed = std::string("/usr/bin/") + name;
  return ::access(fixed.c_str(), X_OK) == 0 ? fixed : "";
}

bool Ping(const std::string& host, int port) {
  ContextPtr c = Connect(host, port);
  if (c == nullptr) return false;
  ReplyPtr r = Command(c.get(), {"PING"});
  return r != nullptr && r->type == REDIS_REPLY_STATUS;
}

std::string TempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
      "/herd-stampede-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return "";
  return templ;
}

// A line from fd, or nullopt after `timeout` or at EOF.
std::optional<std::string> ReadLine(int fd, std::string& buffer,
                                    milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    const size_t nl = buffer.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      return line;
    }
    const auto left = std::chrono::duration_cast<milliseconds>(
        deadline - SteadyClock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    char buf[512];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    buffer.append(buf, static_cast<size_t>(n));
  }
}

void WriteLine(int fd, const std::string& line) {
  const std::string text = line + "\n";
  (void)!::write(fd, text.data(), text.size());
}

std::map<std::string, std::string> ParseAssignment(std::string_view s) {
  std::map<std::string, std::string> fields;
  while (!s.empty()) {
    const size_t end = std::min(s.find(';'), s.size());
    const std::string_view field = s.substr(0, end);
    const size_t eq = field.find('=');
    if (eq != std::string_view::npos) {
      fields[std::string(field.substr(0, eq))] = std::string(field.substr(eq + 1));
    }
    s.remove_prefix(std::min(end + 1, s.size()));
  }
  return fields;
}

}  // namespace

bool IsRedisStrategy(Strategy s) {
  return s == Strategy::kFleet || s == Strategy::kLocal ||
         s == Strategy::kRedisLock;
}

std::unique_ptr<Server> MakeRedisServer(Strategy s, const Config& c,
                                        Database& db,
                                        const RedisEndpoint& redis) {
  switch (s) {
    case Strategy::kFleet:
      return std::make_unique<FleetServer>(c, db, redis);
    case Strategy::kLocal:
      return std::make_unique<LocalServer>(c, db, redis);
    case Strategy::kRedisLock:
      return std::make_unique<RedisLockServer>(c, db, redis);
    default:
      throw std::logic_error("herd-stampede: not a Redis strategy");
  }
}

void WarmRedis(Strategy s, const Config& c, const RedisEndpoint& redis,
               const std::vector<Row>& rows,
               const std::vector<nanoseconds>& ages) {
  const nanoseconds ttl = Nanos(c.ttl);
  auto left = [&](size_t key) {
    return std::max<nanoseconds>(milliseconds(1), ttl - ages[key]);
  };
  if (s == Strategy::kFleet) {
    herd::redis::FleetOptions o;
    o.host = redis.host;
    o.port = redis.port;
    o.prefix = redis.prefix;
    o.command_timeout = std::chrono::seconds(2);
    herd::redis::Fleet fleet(o);
    herd::redis::Tier<int, Row> tier(
        fleet,
        {.name = "lab",
         .expire_after = [&](const int& key, const Row&) {
           return left(static_cast<size_t>(key));
         }},
        [](const int&) -> Row { throw std::logic_error("warm: no loads"); });
    for (size_t key = 0; key < rows.size(); ++key) {
      if (!tier.Put(static_cast<int>(key), rows[key])) {
        throw std::runtime_error("cannot warm Redis (fleet)");
      }
    }
    return;
  }
  ContextPtr conn = Connect(redis.host, redis.port);
  if (conn == nullptr) throw std::runtime_error("cannot connect to Redis");
  for (size_t key = 0; key < rows.size(); ++key) {
    const nanoseconds keep = left(key);
    ReplyPtr r = Command(
        conn.get(),
        {"SET", PlainKey(redis, "v", static_cast<int>(key)),
         EncodeStored(rows[key], keep), "PX",
         std::to_string(std::chrono::duration_cast<milliseconds>(keep).count())});
    if (r == nullptr || r->type != REDIS_REPLY_STATUS) {
      throw std::runtime_error("cannot warm Redis");
    }
  }
}

// --- LabRedis -------------------------------------------------------------------

std::unique_ptr<LabRedis> LabRedis::Open(const std::string& address,
                                         std::string* error) {
  std::unique_ptr<LabRedis> redis(new LabRedis());
  if (!address.empty()) {
    const size_t colon = address.rfind(':');
    int port = 0;
    if (colon == std::string::npos ||
        std::from_chars(address.data() + colon + 1,
                        address.data() + address.size(), port)
                .ec != std::errc() ||
        port <= 0 || port >= 65536) {
      *error = "--redis must be HOST:PORT, got '" + address + "'";
      return nullptr;
    }
    redis->host_ = address.substr(0, colon);
    redis->port_ = port;
    ContextPtr c = Connect(redis->host_, port);
    if (c == nullptr) {
      *error = "cannot connect to Redis at " + address;
      return nullptr;
    }
    ReplyPtr r = Command(c.get(), {"CONFIG", "SET", "notify-keyspace-events", "Ex"});
    if (r == nullptr || r->type == REDIS_REPLY_ERROR) {
      *error = "Redis at " + address +
               " refused CONFIG SET notify-keyspace-events Ex (needed to "
               "count expiries)";
      return nullptr;
    }
    return redis;
  }
  const std::string binary = FindOnPath("redis-server");
  if (binary.empty()) {
    *error = "redis-server is not installed (apt-get install redis-server), "
             "and no --redis=HOST:PORT was given";
    return nullptr;
  }
  redis->dir_ = TempDir();
  if (redis->dir_.empty()) {
    *error = "cannot create a directory for redis-server";
    return nullptr;
  }
  redis->host_ = "127.0.0.1";
  for (int attempt = 0; attempt < 5; ++attempt) {
    const int port = FreePort();
    const std::string log = redis->dir_ + "/redis.log";
    std::vector<std::string> args = {
        binary, "--port", std::to_string(port), "--bind", "127.0.0.1",
        "--save", "", "--appendonly", "no", "--notify-keyspace-events", "Ex",
        "--dir", redis->dir_, "--logfile", log, "--daemonize", "no"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, binary.c_str(), &actions, nullptr,
                                 argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      *error = std::string("cannot start redis-server: ") + std::strerror(rc);
      return nullptr;
    }
    const auto deadline = SteadyClock::now() + std::chrono::seconds(10);
    bool exited = false;
    while (SteadyClock::now() < deadline) {
      if (::waitpid(pid, nullptr, WNOHANG) == pid) {
        exited = true;  // most likely the port was taken: try another
        break;
      }
      if (Ping(redis->host_, port)) {
        redis->pid_ = pid;
        redis->port_ = port;
        return redis;
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
    if (!exited) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  *error = "redis-server did not start (see " + redis->dir_ + "/redis.log)";
  return nullptr;
}

LabRedis::~LabRedis() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    const auto deadline = SteadyClock::now() + std::chrono::seconds(10);
    while (::waitpid(pid_, nullptr, WNOHANG) == 0) {
      if (SteadyClock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(milliseconds(5));
    }
  }
  if (!dir_.empty()) {
    ::unlink((dir_ + "/redis.log").c_str());
    ::rmdir(dir_.c_str());
  }
}

// --- ExpiryCounter ------------------------------------------------------------------

struct ExpiryCounter::State {
  RedisEndpoint redis;
  ContextPtr context;
  int wake = -1;
  std::thread thread;

  std::mutex mu;  // protects the members below
  std::condition_variable marked;
  uint64_t count = 0;
  uint64_t marker_seen = 0;     // the last marker the thread read
  uint64_t count_at_marker = 0;
  uint64_t next_marker = 0;
  uint64_t base = 0;            // count at Start()'s marker
  uint64_t missing_at_start = 0;
};

namespace {

constexpr char kExpiredChannel[] = "__keyevent@0__:expired";
constexpr char kMarker[] = "herd-stampede-marker:";

// Counts the missing keys and publishes the marker in one step: no key
// lapses in between (Redis runs a script atomically, and expires the keys
// it touches, with their events, before the marker).
constexpr char kMarkScript[] = R"lua(
local missing = 0
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 0 then missing = missing + 1 end
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return missing
)lua";

}  // namespace

std::string ValueKey(Strategy s, const RedisEndpoint& redis, int key) {
  if (s == Strategy::kFleet) {
    return redis.prefix + "lab:v:" + std::to_string(key);  // Fleet::KeysFor
  }
  return PlainKey(redis, "v", key);
}

ExpiryCounter::ExpiryCounter(const RedisEndpoint& redis, std::string* error)
    : state_(std::make_unique<State>()) {
  state_->redis = redis;
  state_->context = Connect(redis.host, redis.port);
  if (state_->context == nullptr) {
    *error = "cannot connect to Redis to count expiries";
    return;
  }
  ReplyPtr r = Command(state_->context.get(), {"SUBSCRIBE", kExpiredChannel});
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY) {
    *error = "cannot subscribe to Redis's expired events";
    state_->context.reset();
    return;
  }
  state_->wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  State* s = state_.get();
  s->thread = std::thread([s] {
    redisContext* c = s->context.get();
    for (;;) {
      void* raw = nullptr;
      while (redisGetReplyFromReader(c, &raw) == REDIS_OK && raw != nullptr) {
        ReplyPtr m(static_cast<redisReply*>(raw));
        raw = nullptr;
        if (m->type != REDIS_REPLY_ARRAY || m->elements != 3 ||
            m->element[2]->type != REDIS_REPLY_STRING) {
          continue;
        }
        const std::string_view key(m->element[2]->str, m->element[2]->len);
        std::lock_guard<std::mutex> lock(s->mu);
        if (key.starts_with(kMarker)) {
          s->marker_seen = std::strtoull(
              std::string(key.substr(sizeof kMarker - 1)).c_str(), nullptr, 10);
          s->count_at_marker = s->count;
          s->marked.notify_all();
        } else if (key.starts_with(s->redis.prefix) &&
                   key.find(":v:") != std::string_view::npos) {
          ++s->count;
        }
      }
      pollfd fds[2] = {{c->fd, POLLIN, 0}, {s->wake, POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
      if (fds[1].revents != 0) return;
      if (fds[0].revents != 0 && redisBufferRead(c) != REDIS_OK) return;
    }
  });
}

ExpiryCounter::~ExpiryCounter() {
  if (state_->thread.joinable()) {
    const uint64_t one = 1;
    (void)!::write(state_->wake, &one, sizeof one);
    state_->thread.join();
  }
  if (state_->wake >= 0) ::close(state_->wake);
}

bool ExpiryCounter::ok() const { return state_->thread.joinable(); }

uint64_t ExpiryCounter::Mark(const std::vector<std::string>& keys) {
  uint64_t marker;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    marker = ++state_->next_marker;
  }
  ContextPtr c = Connect(state_->redis.host, state_->redis.port);
  if (c == nullptr) throw std::runtime_error("redis: cannot mark the run");
  std::vector<std::string> argv = {"EVAL", kMarkScript,
                                   std::to_string(keys.size())};
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.push_back(kExpiredChannel);
  argv.push_back(kMarker + std::to_string(marker));
  ReplyPtr r = Command(c.get(), argv);
  if (r == nullptr || r->type != REDIS_REPLY_INTEGER) {
    throw std::runtime_error("redis: cannot mark the run");
  }
  std::unique_lock<std::mutex> lock(state_->mu);
  if (!state_->marked.wait_for(lock, std::chrono::seconds(10), [&] {
        return state_->marker_seen >= marker;
      })) {
    throw std::runtime_error("redis: the expiry count lost its subscription");
  }
  return static_cast<uint64_t>(r->integer);
}

void ExpiryCounter::Start(const std::vector<std::string>& value_keys) {
  const uint64_t missing = Mark(value_keys);
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->base = state_->count_at_marker;
  state_->missing_at_start = missing;
}

uint64_t ExpiryCounter::Finish() {
  Mark({});
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->count_at_marker - state_->base + state_->missing_at_start;
}

// --- Processes ------------------------------------------------------------------------

StrategyResult RunInProcesses(Strategy strategy, size_t index,
                              const std::vector<std::string>& args,
                              const Config& c, const Calibration& cal,
                              const Database& db, const RedisEndpoint* redis,
                              const RunHooks& hooks,
                              const std::function<void()>& on_go) {
  const std::string dir = TempDir();
  if (dir.empty()) throw std::runtime_error("cannot create a temporary directory");
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) throw std::runtime_error("cannot find /proc/self/exe");
  exe[n] = '\0';

  struct Worker {
    pid_t pid = -1;
    int control = -1;  // we write
    int status = -1;   // we read
    std::string buffer;
    std::string out;
  };
  std::vector<Worker> workers(static_cast<size_t>(c.processes));
  auto cleanup = [&] {
    for (Worker& w : workers) {
      if (w.pid > 0) {
        ::kill(w.pid, SIGKILL);
        ::waitpid(w.pid, nullptr, 0);
        w.pid = -1;
      }
      if (w.control >= 0) ::close(w.control);
      if (w.status >= 0) ::close(w.status);
      w.control = w.status = -1;
      if (!w.out.empty()) ::unlink(w.out.c_str());
    }
    ::rmdir(dir.c_str());
  };
  try {
    for (size_t i = 0; i < workers.size(); ++i) {
      Worker& w = workers[i];
      w.out = dir + "/worker-" + std::to_string(i);
      std::ostringstream assignment;
      assignment << "strategy=" << StrategyName(strategy) << ";index=" << index
                 << ";id=" << i << ";limit=" << db.limit()
                 << ";repeats=" << db.repeats() << ";out=" << w.out
                 << ";wait=" << cal.wait.count()
                 << ";age=" << cal.max_flight_age.count()
                 << ";deadline=" << cal.deadline.count();
      if (redis != nullptr) {
        assignment << ";host=" << redis->host << ";port=" << redis->port
                   << ";prefix=" << redis->prefix;
      }
      int control[2], status[2];
      if (::pipe2(control, O_CLOEXEC) != 0 || ::pipe2(status, O_CLOEXEC) != 0) {
        throw std::runtime_error("pipe2 failed");
      }
      std::vector<std::string> argv_s = {exe};
      argv_s.insert(argv_s.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (std::string& a : argv_s) argv.push_back(a.data());
      argv.push_back(nullptr);
      std::vector<std::string> env_s;
      for (char** e = environ; *e != nullptr; ++e) {
        if (std::string_view(*e).starts_with("HERD_STAMPEDE_WORKER=")) continue;
        env_s.emplace_back(*e);
      }
      env_s.push_back("HERD_STAMPEDE_WORKER=" + assignment.str());
      std::vector<char*> envp;
      for (std::string& e : env_s) envp.push_back(e.data());
      envp.push_back(nullptr);
      posix_spawn_file_actions_t actions;
      posix_spawn_file_actions_init(&actions);
      posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
      posix_spawn_file_actions_adddup2(&actions, control[0], 3);
      posix_spawn_file_actions_adddup2(&actions, status[1], 4);
      const int rc = ::posix_spawn(&w.pid, exe, &actions, nullptr, argv.data(),
                                   envp.data());
      posix_spawn_file_actions_destroy(&actions);
      ::close(control[0]);
      ::close(status[1]);
      w.control = control[1];
      w.status = status[0];
      if (rc != 0) {
        w.pid = -1;
        throw std::runtime_error(std::string("cannot start a worker: ") +
                                 std::strerror(rc));
      }
    }
    for (Worker& w : workers) {
      const std::optional<std::string> line =
          ReadLine(w.status, w.buffer, std::chrono::seconds(60));
      if (line != "ready") {
        throw std::runtime_error("a worker process did not start: " +
                                 line.value_or("(no answer)"));
      }
    }
    if (on_go) on_go();
    const auto start = SteadyClock::now();
    for (Worker& w : workers) WriteLine(w.control, "go");
    // Each worker runs for the configured time, then answers.
    const auto limit = Nanos(c.duration) + std::chrono::seconds(120);
    for (Worker& w : workers) {
      for (;;) {
        if (hooks.on_progress) {
          Progress p;
          p.strategy = strategy;
          p.index = index;
          p.fraction = c.requests > 0
                           ? 0
                           : std::min(1.0, Millis(SteadyClock::now() - start) /
                                               c.duration);
          hooks.on_progress(p);
        }
        const std::optional<std::string> line =
            ReadLine(w.status, w.buffer, milliseconds(100));
        if (line == "done") break;
        if (line.has_value() || SteadyClock::now() - start > limit) {
          throw std::runtime_error("a worker process failed: " +
                                   line.value_or("(timed out)"));
        }
        int status = 0;
        if (::waitpid(w.pid, &status, WNOHANG) == w.pid) {
          w.pid = -1;
          throw std::runtime_error("a worker process exited early (status " +
                                   std::to_string(status) + ")");
        }
      }
    }
    StrategyResult merged;
    merged.strategy = strategy;
    std::vector<int64_t> all;
    for (Worker& w : workers) {
      int status = 0;
      ::waitpid(w.pid, &status, 0);
      w.pid = -1;
      // A worker that said "done" and then failed (a sanitizer's report at
      // exit, say) fails the run.
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        throw std::runtime_error("a worker process failed at exit (status " +
                                 std::to_string(status) + ")");
      }
      std::ifstream in(w.out, std::ios::binary);
      uint64_t requests, errors, queries, refreshes, expiries, stalls, redis_commands,
          interrupted, count;
      double elapsed_ms;
      in >> requests >> errors >> queries >> refreshes >> expiries >> stalls >>
          redis_commands >> interrupted >> elapsed_ms >> count;
      in.get();  // the newline before the latencies
      if (!in) throw std::runtime_error("a worker's result is unreadable");
      const size_t before = all.size();
      all.resize(before + count);
      in.read(reinterpret_cast<char*>(all.data() + before),
              static_cast<std::streamsize>(count * sizeof(int64_t)));
      if (!in) throw std::runtime_error("a worker's latencies are unreadable");
      merged.errors += errors;
      merged.queries += queries;
      merged.refreshes += refreshes;
      merged.expiries += expiries;
      merged.stalls += stalls;
      merged.redis_commands += redis_commands;
      merged.interrupted |= interrupted != 0;
      merged.elapsed = std::max(merged.elapsed, Millis(elapsed_ms));
      (void)requests;
    }
    std::sort(all.begin(), all.end());
    merged.requests = all.size();
    auto pct = [&](double p) {
      if (all.empty()) return Millis(0);
      size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(all.size())));
      rank = std::clamp<size_t>(rank, 1, all.size());
      return Millis(nanoseconds(all[rank - 1]));
    };
    merged.p50 = pct(0.5);
    merged.p99 = pct(0.99);
    merged.max = pct(1.0);
    if (c.stall_every > 0) {
      const int64_t half = Nanos(c.stall / 2).count();
      merged.stuck = static_cast<uint64_t>(
          all.end() - std::lower_bound(all.begin(), all.end(), half));
    }
    cleanup();
    return merged;
  } catch (...) {
    cleanup();
    throw;
  }
}

int WorkerMain(const std::vector<std::string>& args, const char* assignment,
               const std::atomic<bool>* stop) {
  const std::map<std::string, std::string> a = ParseAssignment(assignment);
  auto field = [&](const char* name) {
    auto it = a.find(name);
    return it == a.end() ? std::string() : it->second;
  };
  const ParsedFlags flags = ParseFlags(args);
  const std::optional<Strategy> strategy = ParseStrategy(field("strategy"));
  if (!flags.error.empty() || !strategy) {
    WriteLine(4, "bad assignment");
    return 2;
  }
  const Config& c = flags.config;
  const uint64_t id = std::strtoull(field("id").c_str(), nullptr, 10);
  try {
    Database db(c.db_path, c.rows, nullptr);
    db.SetScan(std::strtoll(field("limit").c_str(), nullptr, 10),
               std::atoi(field("repeats").c_str()));
    Calibration cal;  // the orchestrator's, as derived there
    cal.wait = Millis(std::strtod(field("wait").c_str(), nullptr));
    cal.max_flight_age = Millis(std::strtod(field("age").c_str(), nullptr));
    cal.deadline = Millis(std::strtod(field("deadline").c_str(), nullptr));
    std::optional<RedisEndpoint> redis;
    if (!field("host").empty()) {
      redis = RedisEndpoint{field("host"), std::atoi(field("port").c_str()),
                            field("prefix")};
    }
    std::vector<Row> warm;
    if (!c.cold_start) warm = db.Snapshot(c.keys);
    std::vector<int64_t> latencies;
    RunHooks hooks;
    hooks.stop = stop;  // Ctrl-C reaches the whole process group
    StrategyResult r = RunStrategy(
        *strategy, std::strtoull(field("index").c_str(), nullptr, 10), c, cal,
        db, warm, hooks, redis ? &*redis : nullptr, &latencies, id + 1, [] {
          WriteLine(4, "ready");
          std::string buffer;
          const std::optional<std::string> go =
              ReadLine(3, buffer, std::chrono::hours(1));
          if (go != "go") std::_Exit(3);
        });
    std::ofstream out(field("out"), std::ios::binary | std::ios::trunc);
    out << r.requests << ' ' << r.errors << ' ' << r.queries << ' '
        << r.refreshes << ' ' << r.expiries << ' ' << r.stalls << ' '
        << r.redis_commands << ' ' << (r.interrupted ? 1 : 0) << ' '
        << r.elapsed.count() << ' ' << latencies.size() << '\n';
    out.write(reinterpret_cast<const char*>(latencies.data()),
              static_cast<std::streamsize>(latencies.size() * sizeof(int64_t)));
    out.close();
    if (!out) {
      WriteLine(4, "cannot write the result");
      return 1;
    }
    WriteLine(4, "done");
    return 0;
  } catch (const std::exception& e) {
    WriteLine(4, std::string("error: ") + e.what());
    return 1;
  }
}

}  // namespace herd::lab::internal
