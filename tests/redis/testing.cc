// Copyright 2026 The herd Authors.

#include "tests/redis/testing.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "gtest/gtest.h"

extern char** environ;

namespace herd::redis::test {
namespace {

using Clock = std::chrono::steady_clock;

timeval Tv(std::chrono::milliseconds d) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}

// A port nobody listens on now (the kernel's pick); a server that loses the
// race for it fails to bind, and Start() tries another.
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

std::string TempRoot() {
  for (const char* var : {"TEST_TMPDIR", "TMPDIR"}) {
    const char* v = std::getenv(var);
    if (v != nullptr && *v != '\0') return v;
  }
  return "/tmp";
}

}  // namespace

std::string FindRedisServer() {
  const char* given = std::getenv("HERD_REDIS_SERVER");
  if (given != nullptr && *given != '\0') {
    return ::access(given, X_OK) == 0 ? given : "";
  }
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const std::string candidate = dir + "/redis-server";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  for (const char* fixed : {"/usr/bin/redis-server", "/usr/local/bin/redis-server"}) {
    if (::access(fixed, X_OK) == 0) return fixed;
  }
  return "";
}

bool RedisRequired() {
  auto is = [](const char* var, std::initializer_list<const char*> values) {
    const char* v = std::getenv(var);
    if (v == nullptr) return false;
    for (const char* x : values) {
      if (std::strcmp(v, x) == 0) return true;
    }
    return false;
  };
  return is("CI", {"true", "1"}) || is("HERD_REQUIRE_REDIS", {"1"});
}

std::string TestPrefix() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string prefix = "herd-test:";
  if (info != nullptr) {
    prefix += std::string(info->test_suite_name()) + "." + info->name() + ":";
  }
  return prefix;
}

// --- Client -------------------------------------------------------------------

Client::Client(int port, std::string password) {
  c_ = redisConnectWithTimeout("127.0.0.1", port, Tv(std::chrono::seconds(2)));
  if (c_ == nullptr || c_->err != 0) return;
  redisSetTimeout(c_, Tv(std::chrono::seconds(10)));
  if (!password.empty()) Run({"AUTH", password});
}

Client::~Client() {
  if (c_ != nullptr) redisFree(c_);
}

ReplyPtr Client::Run(const std::vector<std::string>& argv) {
  if (!ok()) return nullptr;
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const std::string& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  return ReplyPtr(static_cast<redisReply*>(redisCommandArgv(
      c_, static_cast<int>(args.size()), args.data(), lens.data())));
}

std::optional<std::string> Client::Get(const std::string& key) {
  ReplyPtr r = Run({"GET", key});
  if (r == nullptr || r->type != REDIS_REPLY_STRING) return std::nullopt;
  return std::string(r->str, r->len);
}

bool Client::Set(const std::string& key, const std::string& value) {
  ReplyPtr r = Run({"SET", key, value});
  return r != nullptr && r->type == REDIS_REPLY_STATUS;
}

int64_t Client::Pttl(const std::string& key) {
  ReplyPtr r = Run({"PTTL", key});
  return r != nullptr && r->type == REDIS_REPLY_INTEGER ? r->integer : -3;
}

std::map<std::string, uint64_t> Client::CommandStats() {
  std::map<std::string, uint64_t> calls;
  ReplyPtr r = Run({"INFO", "commandstats"});
  if (r == nullptr || r->type != REDIS_REPLY_STRING) return calls;
  std::stringstream lines(std::string(r->str, r->len));
  std::string line;
  while (std::getline(lines, line)) {
    // cmdstat_get:calls=3,usec=12,...
    if (line.rfind("cmdstat_", 0) != 0) continue;
    const size_t colon = line.find(':');
    const size_t eq = line.find("calls=");
    if (colon == std::string::npos || eq == std::string::npos) continue;
    calls[line.substr(8, colon - 8)] =
        std::strtoull(line.c_str() + eq + 6, nullptr, 10);
  }
  return calls;
}

// --- RedisServer --------------------------------------------------------------

bool RedisServer::Start(std::string* error, std::vector<std::string> extra) {
  binary_ = FindRedisServer();
  if (binary_.empty()) {
    *error = "redis-server not found";
    return false;
  }
  std::string templ = TempRoot() + "/herd-redis-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    *error = std::string("mkdtemp: ") + std::strerror(errno);
    return false;
  }
  dir_ = templ;
  extra_ = std::move(extra);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const int port = FreePort();
    if (port == 0) continue;
    if (Launch(port, error)) return true;
    if (error->find("in use") == std::string::npos) return false;
  }
  return false;
}

bool RedisServer::Restart(std::string* error) {
  if (running()) Kill();
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (Launch(port_, error)) return true;
  }
  return false;
}

bool RedisServer::Launch(int port, std::string* error) {
  const std::string log_path = dir_ + "/redis.log";
  std::vector<std::string> args = {binary_,        "--port",      std::to_string(port),
                                   "--bind",       "127.0.0.1",   "--save",
                                   "",             "--appendonly", "no",
                                   "--dir",        dir_,          "--logfile",
                                   log_path,       "--daemonize", "no"};
  args.insert(args.end(), extra_.begin(), extra_.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, binary_.c_str(), &actions, nullptr,
                               argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    *error = std::string("posix_spawn redis-server: ") + std::strerror(rc);
    return false;
  }
  pid_ = pid;
  port_ = port;
  // Until it answers PING, or exits (a port clash), or 20 s pass.
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      const std::string text = log();
      *error = text.find("Address already in use") != std::string::npos
                   ? "port " + std::to_string(port) + " in use"
                   : "redis-server exited: " + text;
      return false;
    }
    Client probe(port_);
    if (probe.ok()) {
      ReplyPtr r = probe.Run({"PING"});
      if (r != nullptr && r->type == REDIS_REPLY_STATUS &&
          std::string_view(r->str, r->len) == "PONG") {
        return true;
      }
      // -NOAUTH: up, and asking for a password.
      if (r != nullptr && r->type == REDIS_REPLY_ERROR &&
          std::string_view(r->str, r->len).starts_with("NOAUTH")) {
        return true;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Kill();
  *error = "redis-server did not answer PING within 20 s";
  return false;
}

std::string RedisServer::log() const {
  std::ifstream in(dir_ + "/redis.log");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void RedisServer::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void RedisServer::Pause() {
  if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void RedisServer::Resume() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

void RedisServer::Stop() {
  if (pid_ > 0) {
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (::waitpid(pid_, nullptr, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        Kill();
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid_ = -1;
  }
  if (!dir_.empty()) {
    ::unlink((dir_ + "/redis.log").c_str());
    ::rmdir(dir_.c_str());
    dir_.clear();
  }
}

// --- Child --------------------------------------------------------------------

std::unique_ptr<Child> Child::Spawn(const std::string& mode,
                                    const std::vector<std::string>& args) {
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return nullptr;
  exe[n] = '\0';
  int control[2], status[2];
  if (::pipe2(control, O_CLOEXEC) != 0) return nullptr;
  if (::pipe2(status, O_CLOEXEC) != 0) {
    ::close(control[0]);
    ::close(control[1]);
    return nullptr;
  }
  std::vector<std::string> all = {exe, "--herd-helper=" + mode};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, control[0], 3);
  posix_spawn_file_actions_adddup2(&actions, status[1], 4);
  pid_t pid = -1;
  const int rc =
      ::posix_spawn(&pid, exe, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(control[0]);
  ::close(status[1]);
  if (rc != 0) {
    ::close(control[1]);
    ::close(status[0]);
    return nullptr;
  }
  auto child = std::unique_ptr<Child>(new Child());
  child->pid_ = pid;
  child->control_ = control[1];
  child->status_ = status[0];
  return child;
}

Child::~Child() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (control_ >= 0) ::close(control_);
  if (status_ >= 0) ::close(status_);
}

void Child::Send(std::string_view line) {
  std::string text(line);
  text += '\n';
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t w = ::write(control_, text.data() + done, text.size() - done);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      return;  // it died; its status pipe tells the test
    }
    done += static_cast<size_t>(w);
  }
}

bool Child::TakeLine(std::string* line) {
  const size_t nl = buffer_.find('\n');
  if (nl == std::string::npos) return false;
  *line = buffer_.substr(0, nl);
  buffer_.erase(0, nl + 1);
  return true;
}

bool Child::Fill() {
  char buf[4096];
  const ssize_t n = ::read(status_, buf, sizeof buf);
  if (n <= 0) {
    if (n < 0 && errno == EINTR) return true;
    eof_ = true;
    return false;
  }
  buffer_.append(buf, static_cast<size_t>(n));
  return true;
}

std::optional<std::string> Child::ReadLine(std::chrono::milliseconds timeout) {
  auto got = ReadAny({this}, timeout);
  if (!got) return std::nullopt;
  return std::move(got->second);
}

void Child::Signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

int Child::Wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  const auto deadline = Clock::now() + timeout;
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return status;
    }
    if (Clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::optional<std::pair<size_t, std::string>> ReadAny(
    const std::vector<Child*>& children, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    std::string line;
    for (size_t i = 0; i < children.size(); ++i) {
      if (children[i]->TakeLine(&line)) return std::make_pair(i, line);
    }
    std::vector<pollfd> fds;
    std::vector<size_t> index;
    for (size_t i = 0; i < children.size(); ++i) {
      if (children[i]->eof_) continue;
      fds.push_back({children[i]->status_, POLLIN, 0});
      index.push_back(i);
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - Clock::now());
    if (fds.empty() || left.count() <= 0) return std::nullopt;
    const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) return std::nullopt;
    for (size_t j = 0; j < fds.size(); ++j) {
      if (fds[j].revents != 0) children[index[j]]->Fill();
    }
  }
}

// --- In a helper --------------------------------------------------------------

std::string ReadControl() {
  std::string line;
  char c;
  for (;;) {
    const ssize_t n = ::read(3, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || c == '\n') return line;
    line += c;
  }
}

void WriteStatus(std::string_view line) {
  std::string text(line);
  text += '\n';
  // One write of less than PIPE_BUF bytes: lines of threads never interleave.
  (void)!::write(4, text.data(), text.size());
}

std::string Arg(int argc, char** argv, std::string_view name,
                std::string fallback) {
  const std::string flag = "--" + std::string(name) + "=";
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a.starts_with(flag)) return std::string(a.substr(flag.size()));
  }
  return fallback;
}

}  // namespace herd::redis::test
