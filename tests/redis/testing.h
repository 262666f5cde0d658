// Copyright 2026 The herd Authors.
//
// tests/redis/testing.h: what the fleet tier's tests share.
//
//   RedisServer     a redis-server of the test's own, on a free 127.0.0.1
//                   port (retried on a clash), nothing written to disk;
//                   Kill / Pause / Resume / Restart for fault injection
//   Client          a plain hiredis connection for the tests' own checks
//   Child           a helper process: this test binary, exec'd again with
//                   --herd-helper=MODE, a control pipe (its fd 3) and a
//                   status pipe (its fd 4), both line based
//   ReadAny()       the next status line of any of several children
//   HERD_START_REDIS(server)  starts it, or fails the test (skips it when
//                   redis-server is not installed, outside CI)
//
// Every wait here is bounded: a helper that does not answer in time fails
// the test instead of hanging it.

#ifndef HERD_TESTS_REDIS_TESTING_H_
#define HERD_TESTS_REDIS_TESTING_H_

#include <hiredis/hiredis.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herd::redis::test {

// $HERD_REDIS_SERVER, else redis-server on PATH; "" when there is none.
std::string FindRedisServer();

// True iff a missing redis-server must fail the test: CI=true or CI=1, or
// HERD_REQUIRE_REDIS=1.
bool RedisRequired();

struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;

class Client {
 public:
  Client(int port, std::string password = "");
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool ok() const { return c_ != nullptr && c_->err == 0; }
  // One command; null if the connection failed.
  ReplyPtr Run(const std::vector<std::string>& argv);
  // GET: nullopt for a missing key or an error.
  std::optional<std::string> Get(const std::string& key);
  bool Set(const std::string& key, const std::string& value);
  int64_t Pttl(const std::string& key);  // -2 missing, -1 no expiry
  // INFO commandstats: command name -> calls.
  std::map<std::string, uint64_t> CommandStats();

 private:
  redisContext* c_ = nullptr;
};

class RedisServer {
 public:
  RedisServer() = default;
  ~RedisServer() { Stop(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Starts redis-server --port N --bind 127.0.0.1 --save '' --appendonly no
  // (plus `extra`) on a free port, retrying on a clash, and waits (at most
  // 20 s) until it answers PING. Returns false with `*error` set.
  bool Start(std::string* error, std::vector<std::string> extra = {});
  // Starts it again on the same port (after Kill or Stop).
  bool Restart(std::string* error);
  void Kill();    // SIGKILL, and reaps it
  void Stop();    // SIGTERM, and reaps it (SIGKILL after 10 s)
  void Pause();   // SIGSTOP: a server that accepts and never answers
  void Resume();  // SIGCONT

  int port() const { return port_; }
  bool running() const { return pid_ > 0; }
  std::string log() const;

 private:
  bool Launch(int port, std::string* error);

  std::string binary_;
  std::string dir_;
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
  int port_ = 0;
};

#define HERD_START_REDIS(server, ...)                                       \
  do {                                                                      \
    std::string herd_start_error_;                                          \
    if (::herd::redis::test::FindRedisServer().empty()) {                   \
      if (::herd::redis::test::RedisRequired()) {                           \
        FAIL() << "redis-server is not installed (CI requires it)";         \
      }                                                                     \
      GTEST_SKIP() << "redis-server is not installed";                      \
    }                                                                       \
    ASSERT_TRUE((server).Start(&herd_start_error_ __VA_OPT__(, ) __VA_ARGS__)) \
        << herd_start_error_;                                               \
  } while (0)

// A prefix of its own for each test: "herd-test:<Suite>.<Name>:".
std::string TestPrefix();

class Child {
 public:
  // Runs this binary with --herd-helper=<mode> and `args`. fd 3 of the
  // child reads the control pipe, fd 4 writes the status pipe.
  static std::unique_ptr<Child> Spawn(const std::string& mode,
                                      const std::vector<std::string>& args);
  ~Child();  // kills it if it still runs

  pid_t pid() const { return pid_; }
  void Send(std::string_view line);  // a line to its control pipe
  // Its next status line, or nullopt after `timeout`.
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout);
  void Signal(int sig);
  // Reaps it: its exit status (as from waitpid), or -1 if it did not exit
  // within `timeout` (it is then killed).
  int Wait(std::chrono::milliseconds timeout);

 private:
  friend std::optional<std::pair<size_t, std::string>> ReadAny(
      const std::vector<Child*>&, std::chrono::milliseconds);
  bool TakeLine(std::string* line);
  bool Fill();  // reads what is there; false on EOF

  pid_t pid_ = -1;
  int control_ = -1;
  int status_ = -1;
  bool eof_ = false;
  std::string buffer_;
};

// The next status line of any child, with its index, or nullopt after
// `timeout`.
std::optional<std::pair<size_t, std::string>> ReadAny(
    const std::vector<Child*>& children, std::chrono::milliseconds timeout);

// In a helper process.
std::string ReadControl();              // the next control line ("" on EOF)
void WriteStatus(std::string_view line);  // one status line
// --name=value from a helper's argv.
std::string Arg(int argc, char** argv, std::string_view name,
                std::string fallback = "");

}  // namespace herd::redis::test

#endif  // HERD_TESTS_REDIS_TESTING_H_
