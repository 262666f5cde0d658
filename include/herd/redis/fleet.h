// Copyright 2026 The herd Authors.
//
// herd/redis/fleet.h: one database load per expiry across every process
// that shares a Redis server. The connection to Redis and the protocol.
//
//   herd::redis::FleetOptions  where Redis is, timeouts, lease and poll times
//   herd::redis::Fleet         one per process: a pool of hiredis connections
//                              behind a circuit breaker, one pub/sub
//                              subscription, a lease renewer, the protocol
//   herd::redis::FleetStats    counters and gauges, from Fleet::Stats()
//   herd::redis::FormatMetrics FleetStats in the Prometheus text format
//
// Most code does not call Fleet's protocol members: herd::redis::Tier
// (herd/redis/tier.h) puts typed keys and values on top, and
// herd::redis::FleetCache (herd/redis/fleet_cache.h) a herd::LoadingCache.
//
// Example:
//
//   herd::redis::Fleet fleet({.host = "127.0.0.1", .port = 6379,
//                             .prefix = "myapp:"});
//   herd::redis::Tier<std::string, std::string> users(
//       fleet, {.name = "user", .ttl = std::chrono::minutes(5)},
//       [&](const std::string& id) { return db.LoadUser(id); });
//   herd::Share<std::string, std::string> share;  // coalesces this process
//   std::string row = share.Do(id, [&] { return users.Load(id); });
//
// The protocol, for one key, called once per local flight (a herd::Share or
// herd::LoadingCache already makes the threads of a process share one call):
//   1. READ (one EVALSHA): the value if Redis has it; otherwise try the
//      lease, `SET lease token NX PX lease_ttl` with a random token.
//   2. The lease holder runs the loader (no connection held meanwhile; a
//      renewer thread extends the lease every lease_ttl / 3 while it runs),
//      then WRITE (one EVALSHA): stores the value with Redis's TIME as its
//      write time and the load's duration, deletes the lease and publishes
//      the key, iff the lease still holds its token. Put and Invalidate
//      delete the lease too, so a write from a holder whose lease expired,
//      was taken over, or was overtaken by a Put or an Invalidate is
//      rejected, and the newer value stays (a fencing token checked by
//      Redis itself, atomically).
//   3. Every other process waits: one pub/sub subscription per Fleet wakes
//      the waiters of any key as soon as it is written, released or
//      invalidated; each waiter also READs again after a poll interval
//      (jittered, in [poll_interval / 2, poll_interval], and never past the
//      lease's expiry), the backstop for a lost message. A waiter that finds
//      the lease gone takes it over: if the holder died, every waiter is
//      served within lease_ttl + one load + one poll interval.
//   4. Stale-while-revalidate: a value older than refresh_after (by Redis's
//      clock) is returned at once, and the READ that finds it so takes the
//      lease without waiting: exactly one process in the fleet refreshes it
//      (in the background), the others serve the stale value. XFetch early
//      refresh does the same, at random, shortly before the value expires,
//      from the stored load time.
// Redis commands per flight: a hit costs 1; a miss 2 for the loader and 2
// for each waiting process (plus one per poll interval that a load outlasts).
// Threads that share a local flight add none.
//
// When Redis is unreachable or slow: every connect and every command has a
// timeout; a herd::CircuitBreaker guards the connection. A call that cannot
// reach Redis runs the loader itself (a *fallback*: the local flight still
// coalesces the process's threads, so at most one load per process per
// expiry) and is slowed by at most connect_timeout (only when it must open a
// connection to a host that does not answer) plus command_timeout (plus, if
// all pool_size connections are busy, up to command_timeout waiting for
// one); once the breaker opens, by nothing. The breaker's trial calls find Redis back, and
// the pool and the subscription reconnect by themselves, with backoff.
//
// Redis keys: `<prefix><namespace>:v:<key>` holds a value,
// `<prefix><namespace>:l:<key>` its lease; `<prefix>events@<db>` is the
// pub/sub channel. Nothing but options.host:options.port is ever contacted.
//
// Thread safety: Fleet has internal synchronization and may be safely
// accessed concurrently from multiple threads. No lock is held and no
// connection is checked out while a loader or a listener runs.
//
// Memory ordering: a value is handed between processes as bytes; within a
// process, everything the thread that ran a loader did before it returned is
// visible to the caller of Fetch() that receives its result.

#ifndef HERD_REDIS_FLEET_H_
#define HERD_REDIS_FLEET_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "herd/circuit_breaker.h"
#include "herd/clock.h"
#include "herd/executor.h"

namespace herd::redis {

struct FleetOptions {
  // Where Redis listens. Nothing else is ever contacted.
  // REQUIRES: host is not empty; 0 < port < 65536.
  std::string host{};
  int port = 6379;
  // AUTH: `AUTH password` when password is set, `AUTH username password`
  // (Redis 6 ACLs) when both are. SELECT db when db != 0. REQUIRES: db >= 0.
  std::string username{};
  std::string password{};
  int db = 0;
  // Prefix of every key and of the channel: give each application (and each
  // test) its own.
  std::string prefix = "herd:";

  // Timeouts. REQUIRES: > 0 (duration::max() is clamped to one hour).
  std::chrono::nanoseconds connect_timeout = std::chrono::milliseconds(200);
  std::chrono::nanoseconds command_timeout = std::chrono::milliseconds(100);
  // Connections in the pool; a command waits at most command_timeout for
  // one to be free. REQUIRES: >= 1.
  size_t pool_size = 8;
  // A failed connect delays the next one by a backoff that doubles from
  // reconnect_backoff_min to reconnect_backoff_max (with jitter), for the
  // pool and for the subscription. REQUIRES: 0 < min <= max.
  std::chrono::nanoseconds reconnect_backoff_min = std::chrono::milliseconds(50);
  std::chrono::nanoseconds reconnect_backoff_max = std::chrono::seconds(1);
  // Guards the connection: a connect failure, a timeout or a lost connection
  // is a failure (an error reply from Redis is not). Keep open_duration >=
  // reconnect_backoff_max, so that a trial call is not refused by the
  // backoff. Its clock, when null, is this struct's.
  CircuitBreakerOptions breaker = {.failure_threshold = 3,
                                   .open_duration = std::chrono::seconds(1)};

  // How long a lease lasts without renewal; its holder renews it every
  // lease_ttl / 3 while its load runs. REQUIRES: >= 3 ms.
  std::chrono::nanoseconds lease_ttl = std::chrono::seconds(2);
  // A waiter READs again after a jittered [poll_interval / 2,
  // poll_interval], if no message woke it first. REQUIRES: > 0.
  std::chrono::nanoseconds poll_interval = std::chrono::milliseconds(100);
  // A waiter that has waited this long for another process's load runs the
  // loader itself (a fallback). duration::max() waits as long as the holder
  // keeps its lease (as Share::Do waits for its flight). REQUIRES: >= 0.
  std::chrono::nanoseconds wait_limit = std::chrono::nanoseconds::max();
  // The subscription PINGs Redis after this long without traffic and
  // reconnects if no answer comes within another. REQUIRES: > 0.
  std::chrono::nanoseconds ping_interval = std::chrono::seconds(1);

  // Reads time for the breaker, backoffs, renewals, polls and load times
  // (values' ages come from Redis's clock). nullptr means Clock::Steady().
  // Must outlive the Fleet.
  const Clock* clock = nullptr;
  // Seeds the jitter; 0 draws a seed. Lease tokens are always random.
  uint64_t seed = 0;
};

// Counters since construction (exact; read one after another, so a snapshot
// under load is not atomic), then gauges.
struct FleetStats {
  uint64_t commands = 0;          // commands sent through the pool (replied
                                  // or not), scripts and NOSCRIPT retries
                                  // included; the subscription's apart
  uint64_t command_failures = 0;  // ...that timed out or lost the connection
  uint64_t error_replies = 0;     // ...that Redis answered with an error
  uint64_t refused = 0;           // commands not sent: the breaker refused
                                  // them, or no connection was free within
                                  // command_timeout
  uint64_t connects = 0;          // pool connections opened
  uint64_t connect_failures = 0;
  uint64_t hits = 0;              // READs that returned a usable value
  uint64_t misses = 0;            // READs that found no (usable) value
  uint64_t leases_won = 0;        // for a miss, a refresh, or a takeover
  uint64_t leases_lost = 0;       // calls that found the lease held and
                                  // waited (once per call)
  uint64_t leases_expired = 0;    // holders that lost their lease before
                                  // they wrote (renewal refused, or write
                                  // rejected)
  uint64_t renewals = 0;          // lease renewals that Redis accepted
  uint64_t writes = 0;            // values stored (loads, refreshes, Puts)
  uint64_t writes_rejected = 0;   // fenced writes refused: lease lost
  uint64_t write_failures = 0;    // writes that could not reach Redis
  uint64_t stale_served = 0;      // values returned past refresh_after
  uint64_t refreshes = 0;         // background refreshes this process won
  uint64_t early_refreshes = 0;   // ...of which XFetch, before refresh_after
  uint64_t fallbacks = 0;         // loads run without the fleet: Redis
                                  // unavailable, or wait_limit passed
  uint64_t decode_errors = 0;     // corrupt or foreign payloads (reloaded)
  uint64_t waits = 0;             // sleeps of waiters
  uint64_t wakeups = 0;           // ...ended by a message for their key
  uint64_t messages = 0;          // pub/sub messages received
  uint64_t invalidations_sent = 0;      // Put and Invalidate that reached Redis
  uint64_t invalidations_received = 0;  // ...from other processes
  uint64_t subscribes = 0;        // successful (re)subscriptions

  size_t connections_open = 0;
  size_t connections_idle = 0;
  CircuitBreaker::State breaker = CircuitBreaker::State::kClosed;
  bool subscribed = false;
  size_t waiting_keys = 0;        // keys with a waiter now
  size_t leases_held = 0;         // leases being renewed now
};

// Prometheus text exposition of `stats`: one `<prefix><name>` line per
// counter (with a `_total` suffix) and gauge.
std::string FormatMetrics(const FleetStats& stats,
                          std::string_view prefix = "herd_redis_");

// Where Fetch() got its value.
enum class Source {
  kRedis,   // read from Redis
  kLoaded,  // this call held the lease and ran the loader
  kLocal,   // a fallback: the loader ran without the fleet
};

std::string_view ToString(Source source);

// The Redis keys of one logical key (see Fleet::KeysFor).
struct KeyRef {
  std::string value_key;
  std::string lease_key;
};

// What a load hands to Redis: the encoded value and how long Redis keeps it
// (nanoseconds::max(): no expiry; rounded up to whole milliseconds).
struct Payload {
  std::string bytes{};
  std::chrono::nanoseconds ttl = std::chrono::nanoseconds::max();
};

struct FetchPolicy {
  // Fingerprint(Codec::Tag()): a stored value with another tag is foreign.
  uint64_t tag = 0;
  // Stale-while-revalidate after this age (0: never stale).
  std::chrono::nanoseconds refresh_after{0};
  // XFetch: > 0 makes a reader refresh early, at random, once the value's
  // remaining life is below beta * its load time * -ln(U(0,1)).
  double early_refresh_beta = 0.0;
};

struct FetchResult {
  Source source = Source::kRedis;
  bool stale = false;  // read past refresh_after (returned at once)
  // Since the value was written, by Redis's clock, plus the READ's round
  // trip (0 unless kRedis).
  std::chrono::nanoseconds age{0};
  // Until Redis drops the value (nanoseconds::max(): never), less the round
  // trip of the command that learned it: a copy kept this long from when
  // Fetch() returns never outlives Redis's. kLocal: the Payload's ttl.
  std::chrono::nanoseconds expires_in = std::chrono::nanoseconds::max();
  // Not empty iff this call won the refresh lease of a stale (or early)
  // value: the caller must pass it to Refresh() or Release().
  std::string refresh_token{};
};

class Fleet {
 public:
  // Starts the subscription and renewer threads; connects lazily (a Fleet
  // built while Redis is down works, by fallback, and connects later).
  // Throws: std::invalid_argument if an option breaks its REQUIRES.
  explicit Fleet(FleetOptions options);
  // Stops the threads and closes every connection. REQUIRES: no call into
  // the Fleet is running, and every Tier / FleetCache on it is destroyed.
  ~Fleet();
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  FleetStats Stats() const;
  const FleetOptions& options() const;

  // The Redis keys of `key` (already encoded) in `name_space`. Distinct
  // (name_space, key) pairs give distinct keys only for name spaces with
  // no ':' (Tier checks its name).
  KeyRef KeysFor(std::string_view name_space, std::string_view key) const;

  // --- The protocol (what Tier calls), on bytes.

  // One local flight's call, as in the file comment. `decode` is called with
  // each payload read (after its length, checksum and tag were checked) and
  // returns true iff it accepted it (the caller keeps the decoded value);
  // false counts a decode error, and the value is then treated as a miss.
  // `load(store)` runs the loader; with store true it returns the Payload to
  // write (nullopt: do not write). Returns how the caller's value was got:
  // from the last payload `decode` accepted, or from its `load` call.
  // Throws: what `load` throws (the lease, if held, is released first, and
  // waiters in other processes retry: errors are not shared between
  // processes).
  FetchResult Fetch(
      const KeyRef& key, const FetchPolicy& policy,
      absl::FunctionRef<bool(std::string_view)> decode,
      absl::FunctionRef<std::optional<Payload>(bool store)> load);

  // Finishes a refresh that Fetch() handed out with `token`: holds (and
  // renews) the lease while `load(true)` runs, then writes its Payload,
  // fenced. Returns true iff the value was stored.
  // Throws: what `load` throws (the lease is released first).
  bool Refresh(const KeyRef& key, uint64_t tag, std::string_view token,
               absl::FunctionRef<std::optional<Payload>(bool store)> load);

  // Gives back a lease that will not be used (a refresh that could not be
  // scheduled). Returns true iff Redis deleted it.
  bool Release(const KeyRef& key, std::string_view token);

  // Writes `payload` as the key's value, unconditionally, and deletes the
  // lease (an in-flight load's write is then rejected); every other process
  // is told. A payload whose ttl is <= 0 deletes the value instead
  // (Invalidate). Returns true iff Redis was reached.
  bool Put(const KeyRef& key, uint64_t tag, const Payload& payload);

  // Deletes the value and the lease; every other process is told. Returns
  // true iff Redis was reached.
  bool Invalidate(const KeyRef& key);

  // Listens for Put and Invalidate of keys in `name_space` by other
  // processes: on_key(the encoded key) for each; on_resync() after the
  // subscription was lost and restored (messages may have been missed).
  // Both run on the subscription's thread, with no lock held. Destroying
  // the returned handle unregisters them and waits for a running call to
  // return (unless it is destroyed by that call itself).
  class Listener;
  std::unique_ptr<Listener> Listen(std::string_view name_space,
                                   std::function<void(std::string_view)> on_key,
                                   std::function<void()> on_resync);

  // An executor for background refreshes: one thread the Fleet owns.
  ExecutorRef background();

  // A fresh random token (128 bits, hex).
  std::string NewToken();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

class Fleet::Listener {
 public:
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

 private:
  friend class Fleet;
  struct State;
  Listener(Fleet::Impl* impl, std::shared_ptr<State> state);
  Fleet::Impl* impl_;
  std::shared_ptr<State> state_;
};

}  // namespace herd::redis

#endif  // HERD_REDIS_FLEET_H_
