// Copyright 2026 The herd Authors.

#include "lib/redis/connection.h"

#include <pthread.h>
#include <sys/time.h>

#include <algorithm>
#include <limits>
#include <utility>

#include "herd/internal/time.h"

namespace herd::redis::internal {

timeval ToTimeval(std::chrono::nanoseconds d) {
  using std::chrono::microseconds;
  // Never {0, 0}, which hiredis and setsockopt read as "no timeout".
  const microseconds us = std::max(
      herd::internal::SaturatingCast<microseconds>(d), microseconds(1));
  timeval tv;
  tv.tv_sec = static_cast<time_t>(us.count() / 1000000);
  tv.tv_usec = static_cast<suseconds_t>(us.count() % 1000000);
  return tv;
}

int PollMillis(std::chrono::nanoseconds d) {
  const int64_t ms = herd::internal::SaturatingCast<std::chrono::milliseconds>(
                         std::max(d, std::chrono::nanoseconds(1)))
                         .count();
  return ms >= std::numeric_limits<int>::max() ? -1 : static_cast<int>(ms);
}

SigpipeBlock::SigpipeBlock() {
  sigemptyset(&pipe_);
  sigaddset(&pipe_, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  was_blocked_ = sigismember(&old_, SIGPIPE) == 1;
}

SigpipeBlock::~SigpipeBlock() {
  if (was_blocked_) return;
  sigset_t pending;
  sigemptyset(&pending);
  if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
    const timespec zero{0, 0};
    sigtimedwait(&pipe_, nullptr, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

Reply SendCommand(redisContext* c, const std::vector<std::string_view>& argv) {
  SigpipeBlock no_sigpipe;
  std::vector<const char*> args;
  std::vector<size_t> lens;
  args.reserve(argv.size());
  lens.reserve(argv.size());
  for (const std::string_view a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  return Reply(static_cast<redisReply*>(redisCommandArgv(
      c, static_cast<int>(args.size()), args.data(), lens.data())));
}

Context Connect(const FleetOptions& options, std::string* error) {
  Context c(redisConnectWithTimeout(options.host.c_str(), options.port,
                                    ToTimeval(options.connect_timeout)));
  if (c == nullptr) {
    *error = "cannot allocate a redis context";
    return nullptr;
  }
  if (c->err != 0) {
    *error = c->errstr;
    return nullptr;
  }
  if (redisSetTimeout(c.get(), ToTimeval(options.command_timeout)) !=
      REDIS_OK) {
    *error = "cannot set the command timeout";
    return nullptr;
  }
  redisEnableKeepAlive(c.get());  // best effort
  // Each setup command is answered, or fails within command_timeout.
  auto run = [&](const std::vector<std::string_view>& argv) {
    Reply r = SendCommand(c.get(), argv);
    if (r == nullptr) {
      *error = c->errstr;
      return false;
    }
    if (r->type == REDIS_REPLY_ERROR) {
      *error = std::string(argv[0]) + ": " + std::string(r->str, r->len);
      return false;
    }
    return true;
  };
  if (!options.password.empty()) {
    if (!options.username.empty()) {
      if (!run({"AUTH", options.username, options.password})) return nullptr;
    } else if (!run({"AUTH", options.password})) {
      return nullptr;
    }
  }
  if (options.db != 0) {
    const std::string db = std::to_string(options.db);
    if (!run({"SELECT", db})) return nullptr;
  }
  return c;
}

std::chrono::nanoseconds Backoff::Fail() {
  const std::chrono::nanoseconds d = next_;
  next_ = std::min(max_, next_ > max_ / 2 ? max_ : next_ * 2);
  std::uniform_int_distribution<int64_t> half(d.count() / 2, d.count());
  return std::chrono::nanoseconds(half(rng_));
}

Pool::Pool(const FleetOptions& options, const Clock& clock, uint64_t seed)
    : options_(options),
      clock_(clock),
      backoff_(options.reconnect_backoff_min, options.reconnect_backoff_max,
               seed) {}

Pool::~Pool() {
  std::vector<Slot> idle;
  {
    herd::internal::MutexLock lock(&mu_);
    idle.swap(idle_);
  }
  // Contexts close here, outside the lock.
}

bool Pool::Reserve(Slot* slot) {
  const auto deadline =
      herd::internal::SaturatingAdd(std::chrono::steady_clock::now(),
                                    options_.command_timeout);
  herd::internal::MutexLock lock(&mu_);
  for (;;) {
    while (!idle_.empty() && idle_.back().generation != generation_) {
      // Opened before a failure that broke its siblings: close it.
      Slot stale = std::move(idle_.back());
      idle_.pop_back();
      --open_;
      // redisFree under the lock: it only closes a socket.
    }
    if (!idle_.empty()) {
      *slot = std::move(idle_.back());
      idle_.pop_back();
      slot->reserved = true;
      return true;
    }
    if (open_ < options_.pool_size) {
      ++open_;
      slot->context = nullptr;
      slot->generation = generation_;
      slot->reserved = true;
      return true;
    }
    if (herd::internal::WaitUntil(cv_, mu_, deadline) == std::cv_status::timeout &&
        idle_.empty() && open_ >= options_.pool_size) {
      return false;
    }
  }
}

void Pool::Free() {
  --open_;
  cv_.notify_one();
}

void Pool::Unreserve(Slot* slot) {
  if (!slot->reserved) return;
  slot->reserved = false;
  if (slot->context != nullptr) {
    Return(slot);
    return;
  }
  herd::internal::MutexLock lock(&mu_);
  Free();
}

bool Pool::Open(Slot* slot, std::string* error) {
  if (slot->context != nullptr) return true;
  {
    herd::internal::MutexLock lock(&mu_);
    if (clock_.Now() < next_connect_) {
      *error = "reconnect backoff";
      slot->reserved = false;
      Free();
      return false;
    }
  }
  Context c = Connect(options_, error);  // no lock held
  herd::internal::MutexLock lock(&mu_);
  if (c == nullptr) {
    ++connect_failures_;
    // Saturating: reconnect_backoff_max may be duration::max().
    next_connect_ =
        herd::internal::SaturatingAdd(clock_.Now(), backoff_.Fail());
    slot->reserved = false;
    Free();
    return false;
  }
  ++connects_;
  backoff_.Succeed();
  slot->context = std::move(c);
  return true;
}

void Pool::Return(Slot* slot) {
  slot->reserved = false;
  herd::internal::MutexLock lock(&mu_);
  if (slot->generation != generation_) {
    Context dead = std::move(slot->context);
    Free();
    return;
  }
  idle_.push_back(std::move(*slot));
  cv_.notify_one();
}

void Pool::Discard(Slot* slot) {
  slot->reserved = false;
  Context dead = std::move(slot->context);
  std::vector<Slot> idle;
  {
    herd::internal::MutexLock lock(&mu_);
    if (slot->generation == generation_) {
      ++generation_;
      open_ -= idle_.size();
      idle.swap(idle_);
      cv_.notify_all();
    }
    Free();
  }
  // `dead` and `idle` close here, outside the lock.
}

size_t Pool::open() const {
  herd::internal::MutexLock lock(&mu_);
  return open_;
}

size_t Pool::idle() const {
  herd::internal::MutexLock lock(&mu_);
  return idle_.size();
}

uint64_t Pool::connects() const {
  herd::internal::MutexLock lock(&mu_);
  return connects_;
}

uint64_t Pool::connect_failures() const {
  herd::internal::MutexLock lock(&mu_);
  return connect_failures_;
}

}  // namespace herd::redis::internal
