// Copyright 2026 The herd Authors.
//
// lib/redis/connection.h: hiredis contexts and replies as RAII types, how a
// connection is opened (timeouts, keepalive, AUTH, SELECT), and the pool.
//
//   Context / Reply   unique_ptrs that free with hiredis's own functions
//   Connect()         a ready connection to options.host:options.port
//   SendCommand()     one command, binary-safe arguments
//   Pool              up to pool_size contexts, each used by one thread at a
//                     time; reconnects with a jittered, doubling backoff
//
// Thread safety: Pool's members may be called concurrently; a Context is
// used by one thread at a time (the one that checked it out).

#ifndef HERD_LIB_REDIS_CONNECTION_H_
#define HERD_LIB_REDIS_CONNECTION_H_

#include <hiredis/hiredis.h>
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "herd/clock.h"
#include "herd/internal/mutex.h"
#include "herd/redis/fleet.h"

namespace herd::redis::internal {

struct ContextDeleter {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;

struct ReplyDeleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// `d` as a timeval, rounded up to whole microseconds (at least 1), never
// clamped above: nanoseconds::max() is about 292 years, which hiredis 0.14
// accepts for a connect (it waits at most INT_MAX ms, about 24.8 days, in
// one poll) and the kernel for SO_RCVTIMEO / SO_SNDTIMEO (it saturates to
// no limit). REQUIRES: d >= 1 ms (FleetOptions' check).
timeval ToTimeval(std::chrono::nanoseconds d);

// `d` as a poll(2) timeout: whole milliseconds, rounded up, at least 1; -1
// (wait without limit) from INT_MAX ms (about 24.8 days) on, so that
// nanoseconds::max() never wakes.
int PollMillis(std::chrono::nanoseconds d);

// Opens a connection with connect_timeout, sets command_timeout on it and
// TCP keepalive, then AUTH and SELECT as the options ask. Returns null, with
// `*error` set, on any failure.
Context Connect(const FleetOptions& options, std::string* error);

// Blocks SIGPIPE on this thread while it lives: hiredis write()s to a
// socket the server may have closed, and the default action of the SIGPIPE
// that raises would kill the process. A SIGPIPE raised meanwhile is
// consumed. Does nothing if SIGPIPE was blocked already.
class SigpipeBlock {
 public:
  SigpipeBlock();
  ~SigpipeBlock();
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool was_blocked_ = false;
};

// Sends one command and reads its reply. Returns null iff the connection
// failed (I/O error, timeout, closed): the context is then unusable.
Reply SendCommand(redisContext* c, const std::vector<std::string_view>& argv);

// Doubling backoff with jitter: each Fail() pushes the next allowed attempt
// to now + U[d/2, d], d doubling from min to max; Succeed() resets it.
class Backoff {
 public:
  Backoff(std::chrono::nanoseconds min, std::chrono::nanoseconds max,
          uint64_t seed)
      : min_(min), max_(max), next_(min), rng_(seed) {}
  // The time before the next attempt may start, after a failure.
  std::chrono::nanoseconds Fail();
  void Succeed() { next_ = min_; }

 private:
  const std::chrono::nanoseconds min_, max_;
  std::chrono::nanoseconds next_;
  std::mt19937_64 rng_;
};

class Pool {
 public:
  Pool(const FleetOptions& options, const Clock& clock, uint64_t seed);
  ~Pool();

  // A slot in the pool, reserved by Reserve(): an idle connection, or the
  // right to open one.
  struct Slot {
    Context context;       // null: open one with Open()
    uint64_t generation = 0;
    bool reserved = false;
  };

  // Takes an idle connection, or the right to open one, waiting at most
  // command_timeout for either. Returns false iff none came in time.
  bool Reserve(Slot* slot) ABSL_LOCKS_EXCLUDED(mu_);
  // Gives back a reservation unused (the breaker refused the call).
  void Unreserve(Slot* slot) ABSL_LOCKS_EXCLUDED(mu_);

  // Opens the slot's connection if it has none. Returns false (and frees
  // the slot) iff that failed, or the backoff forbids an attempt yet.
  bool Open(Slot* slot, std::string* error) ABSL_LOCKS_EXCLUDED(mu_);

  // The command on the slot's connection succeeded: keep it for reuse.
  void Return(Slot* slot) ABSL_LOCKS_EXCLUDED(mu_);
  // The connection failed: close it, and every idle one opened before it
  // (a restarted or vanished server broke them all).
  void Discard(Slot* slot) ABSL_LOCKS_EXCLUDED(mu_);

  size_t open() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t idle() const ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t connects() const ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t connect_failures() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Free() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const FleetOptions& options_;
  const Clock& clock_;

  mutable herd::internal::Mutex mu_;
  std::condition_variable cv_;  // a slot was freed
  // State below is protected by mu_.
  std::vector<Slot> idle_ ABSL_GUARDED_BY(mu_);
  size_t open_ ABSL_GUARDED_BY(mu_) = 0;  // idle + checked out + opening
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  Clock::time_point next_connect_ ABSL_GUARDED_BY(mu_){};
  Backoff backoff_ ABSL_GUARDED_BY(mu_);
  uint64_t connects_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t connect_failures_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace herd::redis::internal

#endif  // HERD_LIB_REDIS_CONNECTION_H_
