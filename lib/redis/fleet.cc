// Copyright 2026 The herd Authors.
//
// herd::redis::Fleet: the pool, the breaker, the subscription thread, the
// lease renewer and the protocol of herd/redis/fleet.h.

#include "herd/redis/fleet.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "herd/internal/mutex.h"
#include "herd/internal/time.h"
#include "herd/thread_pool.h"
#include "lib/redis/connection.h"
#include "lib/redis/envelope.h"
#include "lib/redis/scripts.h"

namespace herd::redis {

using internal::Context;
using internal::Reply;
using internal::Script;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

std::string_view ToString(Source source) {
  switch (source) {
    case Source::kRedis:
      return "redis";
    case Source::kLoaded:
      return "loaded";
    case Source::kLocal:
      return "local";
  }
  return "?";
}

namespace {

FleetOptions Checked(FleetOptions o) {
  auto fail = [](const char* what) {
    throw std::invalid_argument(std::string("herd::redis::Fleet: ") + what);
  };
  // Each message names the option and the range it must lie in. Nothing is
  // clamped: a value is used as given, and duration::max() saturates
  // wherever it is added to a time (fleet.h says what it means per option).
  if (o.host.empty()) fail("host must not be empty");
  if (o.port <= 0 || o.port >= 65536) fail("port must be in [1, 65535]");
  if (o.db < 0) fail("db must be >= 0");
  // hiredis waits for a connect in whole milliseconds: a shorter timeout
  // could not be kept.
  if (o.connect_timeout < milliseconds(1)) {
    fail("connect_timeout must be >= 1 ms");
  }
  if (o.command_timeout < milliseconds(1)) {
    fail("command_timeout must be >= 1 ms");
  }
  if (o.pool_size < 1) fail("pool_size must be >= 1");
  if (!(o.reconnect_backoff_min > nanoseconds::zero())) {
    fail("reconnect_backoff_min must be > 0");
  }
  if (o.reconnect_backoff_max < o.reconnect_backoff_min) {
    fail("reconnect_backoff_max must be >= reconnect_backoff_min");
  }
  if (o.lease_ttl < milliseconds(3)) fail("lease_ttl must be >= 3 ms");
  if (!(o.poll_interval > nanoseconds::zero())) {
    fail("poll_interval must be > 0");
  }
  if (o.wait_limit < nanoseconds::zero()) fail("wait_limit must be >= 0");
  if (!(o.ping_interval > nanoseconds::zero())) {
    fail("ping_interval must be > 0");
  }
  if (o.clock == nullptr) o.clock = &Clock::Steady();
  if (o.breaker.clock == nullptr) o.breaker.clock = o.clock;
  if (o.seed == 0) o.seed = (uint64_t{std::random_device{}()} << 32) ^
                            std::random_device{}() ^ uint64_t(::getpid());
  return o;
}

// Whole milliseconds, rounded up, for PX / PEXPIRE. nanoseconds::max() is
// 9223372036855 ms (about 292 years), which Redis accepts.
int64_t CeilMillis(nanoseconds d) {
  return herd::internal::SaturatingCast<milliseconds>(d).count();
}

// A count of milliseconds from Redis (an age, a PTTL) as nanoseconds,
// saturating: a PTTL set from a ttl near nanoseconds::max() is rounded up
// to whole milliseconds, past what nanoseconds can hold.
nanoseconds FromMillis(int64_t ms) {
  return herd::internal::SaturatingCast<nanoseconds>(milliseconds(ms));
}

// Lets a thread asleep in Clock::SleepUntil be woken: each Notify() stops
// the token handed out before it and starts a new one.
class Wakeup {
 public:
  std::stop_token Token() ABSL_LOCKS_EXCLUDED(mu_) {
    herd::internal::MutexLock lock(&mu_);
    return source_.get_token();
  }
  void Notify() ABSL_LOCKS_EXCLUDED(mu_) {
    herd::internal::MutexLock lock(&mu_);
    source_.request_stop();
    source_ = std::stop_source();
  }

 private:
  herd::internal::Mutex mu_;
  std::stop_source source_ ABSL_GUARDED_BY(mu_);
};

// The id READ's Lua pattern '^H1 (%d+) (%x+) (%d+) ' captures from a
// stored value, or "" when it does not match (as Lua's `id or ''`).
std::string_view LuaId(std::string_view v) {
  auto digits = [&](size_t i, bool hex) {
    size_t j = i;
    while (j < v.size() &&
           (std::isdigit(static_cast<unsigned char>(v[j])) ||
            (hex && std::isxdigit(static_cast<unsigned char>(v[j]))))) {
      ++j;
    }
    return j;
  };
  if (!v.starts_with("H1 ")) return {};
  const size_t w = digits(3, false);
  if (w == 3 || w >= v.size() || v[w] != ' ') return {};
  const size_t id = digits(w + 1, true);
  if (id == w + 1 || id >= v.size() || v[id] != ' ') return {};
  const size_t load = digits(id + 1, false);
  if (load == id + 1 || load >= v.size() || v[load] != ' ') return {};
  return v.substr(w + 1, id - w - 1);
}

std::string_view View(const redisReply* r) {
  return std::string_view(r->str, r->len);
}

}  // namespace

struct Fleet::Listener::State {
  std::string prefix;  // value keys of the name space start with it
  std::function<void(std::string_view)> on_key;
  std::function<void()> on_resync;
  int calls = 0;  // running now; guarded by Impl::listen_mu
};

struct Fleet::Impl {
  explicit Impl(FleetOptions o);
  ~Impl();

  // --- Commands.
  Reply Run(const std::vector<std::string_view>& argv);
  Reply Eval(Script script, const std::vector<std::string_view>& keys,
             const std::vector<std::string_view>& args);
  std::string LoadScript(Script script);

  // --- The protocol.
  struct ReadResult {
    enum Kind { kUnavailable, kValue, kWon, kHeld } kind = kUnavailable;
    std::string value;
    int64_t age_ms = -1, pttl_ms = -1, lease_pttl_ms = -1;
    bool stale = false, won = false;
  };
  ReadResult Read(const KeyRef& key, const std::string& token, int64_t soft_ms,
                  double factor, std::string_view forced);
  FetchResult Fetch(const KeyRef& key, const FetchPolicy& policy,
                    absl::FunctionRef<bool(std::string_view)> decode,
                    absl::FunctionRef<std::optional<Payload>(bool)> load);
  FetchResult Fallback(absl::FunctionRef<std::optional<Payload>(bool)> load);
  // Runs load(true) holding `token`'s lease; writes the result, fenced.
  // Returns whether it was stored; `*ttl` gets the payload's ttl.
  bool LoadAndWrite(const KeyRef& key, uint64_t tag, std::string_view token,
                    absl::FunctionRef<std::optional<Payload>(bool)> load,
                    nanoseconds* ttl);
  bool ReleaseLease(const KeyRef& key, std::string_view token);
  std::string Message(char type, std::string_view value_key) const;
  std::string NewToken();
  nanoseconds Jitter(nanoseconds d);
  double XFetchFactor(double beta);

  // --- Waiters: one slot per key that a call of this process waits on.
  class Watch;
  void NotifyKey(std::string_view value_key);
  void NotifyAll();

  // --- Lease renewal.
  struct Held {
    std::string lease_key, token;
    Clock::time_point due;
    std::atomic<bool> lost{false};
  };
  class Hold;
  void RenewLoop(std::stop_token stop);

  // --- Subscription.
  void SubscribeLoop(std::stop_token stop);
  void ReadLoop(redisContext* c, const std::stop_token& stop);
  void OnPush(const redisReply* r);
  template <class F>
  void ForListeners(std::string_view value_key, bool all, F f);

  const FleetOptions options;
  const Clock& clock;
  const std::string channel;
  const std::string origin;  // 16 hex digits naming this Fleet in messages
  CircuitBreaker breaker;
  internal::Pool pool;

  struct Counters {
    std::atomic<uint64_t> commands{0}, command_failures{0}, error_replies{0},
        refused{0}, hits{0}, misses{0}, leases_won{0}, leases_lost{0},
        leases_expired{0}, renewals{0}, writes{0}, writes_rejected{0},
        write_failures{0}, stale_served{0}, refreshes{0}, early_refreshes{0},
        fallbacks{0}, decode_errors{0}, waits{0}, wakeups{0}, messages{0},
        invalidations_sent{0}, invalidations_received{0}, subscribes{0};
  } n;
  static void Add(std::atomic<uint64_t>& c) {
    c.fetch_add(1, std::memory_order_relaxed);
  }

  herd::internal::Mutex sha_mu;
  std::string sha[internal::kScriptCount] ABSL_GUARDED_BY(sha_mu);

  herd::internal::Mutex rng_mu;
  std::mt19937_64 jitter_rng ABSL_GUARDED_BY(rng_mu);
  std::mt19937_64 token_rng ABSL_GUARDED_BY(rng_mu);

  struct WaitSlot {
    int refs = 0;
    std::stop_source wake;
  };
  herd::internal::Mutex wait_mu;
  absl::flat_hash_map<std::string, WaitSlot> waiting ABSL_GUARDED_BY(wait_mu);

  herd::internal::Mutex renew_mu;
  absl::flat_hash_map<uint64_t, std::shared_ptr<Held>> held
      ABSL_GUARDED_BY(renew_mu);
  uint64_t next_hold ABSL_GUARDED_BY(renew_mu) = 0;
  Wakeup renew_wake;

  herd::internal::Mutex listen_mu;
  std::condition_variable listen_cv;  // a listener call returned
  std::vector<std::shared_ptr<Listener::State>> listeners
      ABSL_GUARDED_BY(listen_mu);

  std::atomic<bool> subscribed{false};
  const int wake_fd;  // written once, to stop the subscription thread

  ThreadPool background{1};
  // Last: started once everything above exists, joined first.
  std::jthread renewer;
  std::jthread subscriber;
};

// Registers interest in a key for the whole of one Fetch: a message for the
// key stops the token that Arm() handed out last.
class Fleet::Impl::Watch {
 public:
  Watch(Impl* impl, const std::string& key) : impl_(impl), key_(key) {
    herd::internal::MutexLock lock(&impl_->wait_mu);
    ++impl_->waiting[key_].refs;
  }
  ~Watch() {
    herd::internal::MutexLock lock(&impl_->wait_mu);
    auto it = impl_->waiting.find(key_);
    if (--it->second.refs == 0) impl_->waiting.erase(it);
  }
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;

  // Call before each READ: a message that arrives after it stops the token.
  std::stop_token Arm() {
    herd::internal::MutexLock lock(&impl_->wait_mu);
    return impl_->waiting.find(key_)->second.wake.get_token();
  }

 private:
  Impl* const impl_;
  const std::string& key_;
};

// A lease being renewed while its holder's load runs.
class Fleet::Impl::Hold {
 public:
  Hold(Impl* impl, std::string_view lease_key, std::string_view token)
      : impl_(impl), held_(std::make_shared<Held>()) {
    held_->lease_key = std::string(lease_key);
    held_->token = std::string(token);
    held_->due = herd::internal::SaturatingAdd(impl_->clock.Now(),
                                               impl_->options.lease_ttl / 3);
    {
      herd::internal::MutexLock lock(&impl_->renew_mu);
      id_ = impl_->next_hold++;
      impl_->held.emplace(id_, held_);
    }
    impl_->renew_wake.Notify();
  }
  ~Hold() {
    herd::internal::MutexLock lock(&impl_->renew_mu);
    impl_->held.erase(id_);
  }
  Hold(const Hold&) = delete;
  Hold& operator=(const Hold&) = delete;

 private:
  Impl* const impl_;
  std::shared_ptr<Held> held_;
  uint64_t id_ = 0;
};

Fleet::Impl::Impl(FleetOptions o)
    : options(Checked(std::move(o))),
      clock(*options.clock),
      channel(options.prefix + "events@" + std::to_string(options.db)),
      origin([&] {
        std::random_device rd;
        char buf[17];
        std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
        return std::string(buf, 16);
      }()),
      breaker(options.breaker),
      pool(options, clock, options.seed),
      jitter_rng(options.seed),
      token_rng([] {
        std::random_device rd;
        std::seed_seq seq{rd(), rd(), rd(), rd(), unsigned(::getpid())};
        return std::mt19937_64(seq);
      }()),
      wake_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (wake_fd < 0) throw std::system_error(errno, std::generic_category(),
                                           "herd::redis::Fleet: eventfd");
  renewer = std::jthread([this](std::stop_token stop) { RenewLoop(stop); });
  subscriber =
      std::jthread([this](std::stop_token stop) { SubscribeLoop(stop); });
}

Fleet::Impl::~Impl() {
  subscriber.request_stop();
  const uint64_t one = 1;
  (void)!::write(wake_fd, &one, sizeof one);
  renewer.request_stop();
  renew_wake.Notify();
  subscriber.join();
  renewer.join();
  ::close(wake_fd);
}

// --- Commands ----------------------------------------------------------------

Reply Fleet::Impl::Run(const std::vector<std::string_view>& argv) {
  internal::Pool::Slot slot;
  // Reserve first: waiting for a busy pool says nothing about Redis, and
  // must not spend the breaker's trial ticket.
  if (!pool.Reserve(&slot)) {
    Add(n.refused);
    return nullptr;
  }
  std::optional<CircuitBreaker::Ticket> ticket = breaker.TryAdmit();
  if (!ticket) {
    pool.Unreserve(&slot);
    Add(n.refused);
    return nullptr;
  }
  std::string error;
  if (!pool.Open(&slot, &error)) {
    breaker.Record(*ticket, /*failed=*/true);
    return nullptr;
  }
  Add(n.commands);
  Reply r = internal::SendCommand(slot.context.get(), argv);
  if (r == nullptr) {
    Add(n.command_failures);
    pool.Discard(&slot);
    breaker.Record(*ticket, /*failed=*/true);
    return nullptr;
  }
  pool.Return(&slot);
  breaker.Record(*ticket, /*failed=*/false);
  if (r->type == REDIS_REPLY_ERROR) Add(n.error_replies);
  return r;
}

std::string Fleet::Impl::LoadScript(Script script) {
  const int i = static_cast<int>(script);
  Reply r = Run({"SCRIPT", "LOAD", internal::kScripts[i]});
  if (r == nullptr || r->type != REDIS_REPLY_STRING) return "";
  std::string sha(View(r.get()));
  herd::internal::MutexLock lock(&sha_mu);
  this->sha[i] = sha;
  return sha;
}

Reply Fleet::Impl::Eval(Script script,
                        const std::vector<std::string_view>& keys,
                        const std::vector<std::string_view>& args) {
  const int i = static_cast<int>(script);
  std::string digest;
  {
    herd::internal::MutexLock lock(&sha_mu);
    digest = sha[i];
  }
  if (digest.empty()) {
    digest = LoadScript(script);
    if (digest.empty()) return nullptr;
  }
  const std::string numkeys = std::to_string(keys.size());
  std::vector<std::string_view> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.push_back("EVALSHA");
  argv.push_back(digest);
  argv.push_back(numkeys);
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  Reply r = Run(argv);
  if (r != nullptr && r->type == REDIS_REPLY_ERROR &&
      View(r.get()).starts_with("NOSCRIPT")) {
    // The server lost its script cache (a restart, SCRIPT FLUSH).
    digest = LoadScript(script);
    if (digest.empty()) return nullptr;
    argv[1] = digest;
    r = Run(argv);
  }
  if (r != nullptr && r->type == REDIS_REPLY_ERROR) return nullptr;
  return r;
}

// --- Protocol ----------------------------------------------------------------

std::string Fleet::Impl::NewToken() {
  uint64_t a, b;
  {
    herd::internal::MutexLock lock(&rng_mu);
    a = token_rng();
    b = token_rng();
  }
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx",
                static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b));
  return std::string(buf, 32);
}

nanoseconds Fleet::Impl::Jitter(nanoseconds d) {
  std::uniform_int_distribution<int64_t> dist(d.count() / 2, d.count());
  herd::internal::MutexLock lock(&rng_mu);
  return nanoseconds(dist(jitter_rng));
}

double Fleet::Impl::XFetchFactor(double beta) {
  if (!(beta > 0)) return 0;
  std::uniform_real_distribution<double> u(0.0, 1.0);
  double x;
  {
    herd::internal::MutexLock lock(&rng_mu);
    x = 1.0 - u(jitter_rng);  // (0, 1]
  }
  return beta * -std::log(x);
}

std::string Fleet::Impl::Message(char type, std::string_view value_key) const {
  std::string m;
  m.reserve(18 + value_key.size());
  m += type;
  m += origin;
  m += ' ';
  m += value_key;
  return m;
}

Fleet::Impl::ReadResult Fleet::Impl::Read(const KeyRef& key,
                                          const std::string& token,
                                          int64_t soft_ms, double factor,
                                          std::string_view forced) {
  const std::string lease_ms = std::to_string(CeilMillis(options.lease_ttl));
  const std::string soft = std::to_string(soft_ms);
  char f[32];
  std::snprintf(f, sizeof f, "%.6f", factor);
  Reply r = Eval(Script::kRead, {key.value_key, key.lease_key},
                 {token, lease_ms, soft, f, forced});
  ReadResult out;
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
      r->element[0]->type != REDIS_REPLY_INTEGER) {
    return out;
  }
  const auto integer = [&](size_t i, int64_t* v) {
    if (i >= r->elements || r->element[i]->type != REDIS_REPLY_INTEGER) {
      return false;
    }
    *v = r->element[i]->integer;
    return true;
  };
  int64_t stale = 0, won = 0;
  switch (r->element[0]->integer) {
    case 1:
      if (r->elements != 6 || r->element[1]->type != REDIS_REPLY_STRING ||
          !integer(2, &out.age_ms) || !integer(3, &out.pttl_ms) ||
          !integer(4, &stale) || !integer(5, &won)) {
        return out;
      }
      out.value.assign(r->element[1]->str, r->element[1]->len);
      out.stale = stale != 0;
      out.won = won != 0;
      out.kind = ReadResult::kValue;
      return out;
    case 2:
      out.kind = ReadResult::kWon;
      return out;
    case 3:
      if (!integer(1, &out.lease_pttl_ms)) return out;
      out.kind = ReadResult::kHeld;
      return out;
  }
  return out;
}

FetchResult Fleet::Impl::Fallback(
    absl::FunctionRef<std::optional<Payload>(bool)> load) {
  Add(n.fallbacks);
  std::optional<Payload> p = load(false);
  FetchResult result;
  result.source = Source::kLocal;
  if (p) result.expires_in = p->ttl;
  return result;
}

FetchResult Fleet::Impl::Fetch(
    const KeyRef& key, const FetchPolicy& policy,
    absl::FunctionRef<bool(std::string_view)> decode,
    absl::FunctionRef<std::optional<Payload>(bool)> load) {
  Watch watch(this, key.value_key);  // before the first READ: no message lost
  const std::string token = NewToken();
  const int64_t soft_ms = policy.refresh_after > nanoseconds::zero()
                              ? CeilMillis(policy.refresh_after)
                              : -1;
  std::string forced = "-";  // the id of a corrupt value: treat it as missing
  int corrupt = 0;
  bool missed = false;
  std::optional<Clock::time_point> give_up;  // set by the first wait
  bool waited = false;
  for (;;) {
    std::stop_token wake = watch.Arm();
    const Clock::time_point sent = clock.Now();
    ReadResult r = Read(key, token, soft_ms,
                        XFetchFactor(policy.early_refresh_beta), forced);
    // Redis measured age and PTTL somewhere in the round trip: count the
    // whole of it against the value, so that a copy kept for expires_in
    // never outlives Redis's.
    const nanoseconds trip = clock.Now() - sent;
    switch (r.kind) {
      case ReadResult::kUnavailable:
        return Fallback(load);

      case ReadResult::kValue: {
        internal::Envelope env;
        const bool parsed = internal::ParseEnvelope(r.value, &env);
        bool accepted = false;
        if (parsed && r.age_ms >= 0 && env.tag == policy.tag) {
          try {
            accepted = decode(env.payload);
          } catch (...) {
            // A codec that throws on bytes it does not accept: a decode
            // error like any other (codec.h), never the caller's exception.
          }
        }
        if (!accepted) {
          Add(n.decode_errors);
          // READ treats the value with this id as missing from now on.
          forced = std::string(LuaId(r.value));
          if (++corrupt > 3) return Fallback(load);
          continue;
        }
        Add(n.hits);
        FetchResult result;
        result.source = Source::kRedis;
        result.stale = r.stale;
        result.age = FromMillis(r.age_ms) + trip;
        result.expires_in =
            r.pttl_ms < 0
                ? nanoseconds::max()
                : std::max(nanoseconds::zero(), FromMillis(r.pttl_ms) - trip);
        if (r.stale) Add(n.stale_served);
        if (r.won) {
          Add(n.leases_won);
          Add(n.refreshes);
          if (!r.stale) Add(n.early_refreshes);
          result.refresh_token = token;
        }
        return result;
      }

      case ReadResult::kWon: {
        if (!missed) Add(n.misses);
        Add(n.leases_won);
        FetchResult result;
        result.source = Source::kLoaded;
        LoadAndWrite(key, policy.tag, token, load, &result.expires_in);
        return result;
      }

      case ReadResult::kHeld: {
        if (!missed) {
          Add(n.misses);
          missed = true;
        }
        if (!waited) {
          Add(n.leases_lost);
          waited = true;
          give_up = herd::internal::DeadlineAfter(clock.Now(),
                                                  options.wait_limit);
        }
        const Clock::time_point now = clock.Now();
        if (give_up && now >= *give_up) return Fallback(load);
        // Saturating: poll_interval and lease_ttl may be duration::max().
        Clock::time_point until = herd::internal::SaturatingAdd(
            now, Jitter(options.poll_interval));
        if (r.lease_pttl_ms >= 0) {
          // Wake as the lease expires, to take it over at once.
          until = std::min(until, herd::internal::SaturatingAdd(
                                      now, milliseconds(r.lease_pttl_ms) +
                                               milliseconds(1)));
        }
        if (give_up) until = std::min(until, *give_up);
        Add(n.waits);
        if (!clock.SleepUntil(until, wake)) Add(n.wakeups);
        continue;
      }
    }
  }
}

bool Fleet::Impl::LoadAndWrite(
    const KeyRef& key, uint64_t tag, std::string_view token,
    absl::FunctionRef<std::optional<Payload>(bool)> load, nanoseconds* ttl) {
  const Clock::time_point start = clock.Now();
  std::optional<Payload> p;
  try {
    Hold hold(this, key.lease_key, token);  // renewed while the load runs
    p = load(true);  // no connection is held here
  } catch (...) {
    // Waiters elsewhere retry at once; the loader's exception goes on.
    try {
      ReleaseLease(key, token);
    } catch (...) {
    }
    throw;
  }
  const nanoseconds took = clock.Now() - start;
  if (!p) {
    ReleaseLease(key, token);
    return false;
  }
  *ttl = p->ttl;
  if (p->ttl <= nanoseconds::zero()) {
    ReleaseLease(key, token);  // expired at once: nothing to store
    return false;
  }
  const uint64_t load_us = static_cast<uint64_t>(std::max<int64_t>(
      0, std::chrono::duration_cast<std::chrono::microseconds>(took).count()));
  const std::string tail =
      internal::EnvelopeTail(token, load_us, tag, p->bytes);
  const std::string px = p->ttl == nanoseconds::max()
                             ? std::string("0")
                             : std::to_string(CeilMillis(p->ttl));
  const std::string message = Message('w', key.value_key);
  const Clock::time_point sent = clock.Now();
  Reply r = Eval(Script::kWrite, {key.value_key, key.lease_key},
                 {token, tail, px, channel, message});
  // Redis started the value's TTL somewhere in the round trip.
  if (p->ttl != nanoseconds::max()) {
    *ttl = std::max(nanoseconds::zero(), p->ttl - (clock.Now() - sent));
  }
  if (r == nullptr || r->type != REDIS_REPLY_INTEGER) {
    Add(n.write_failures);
    return false;
  }
  if (r->integer == 1) {
    Add(n.writes);
    return true;
  }
  Add(n.writes_rejected);
  Add(n.leases_expired);
  return false;
}

bool Fleet::Impl::ReleaseLease(const KeyRef& key, std::string_view token) {
  const std::string message = Message('r', key.value_key);
  Reply r = Eval(Script::kRelease, {key.lease_key}, {token, channel, message});
  return r != nullptr && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
}

// --- Waiters -----------------------------------------------------------------

void Fleet::Impl::NotifyKey(std::string_view value_key) {
  herd::internal::MutexLock lock(&wait_mu);
  // absl::string_view: Debian's Abseil has its own.
  auto it = waiting.find(absl::string_view(value_key.data(), value_key.size()));
  if (it == waiting.end()) return;
  it->second.wake.request_stop();
  it->second.wake = std::stop_source();
}

void Fleet::Impl::NotifyAll() {
  herd::internal::MutexLock lock(&wait_mu);
  for (auto& [key, slot] : waiting) {
    slot.wake.request_stop();
    slot.wake = std::stop_source();
  }
}

// --- Renewer -----------------------------------------------------------------

void Fleet::Impl::RenewLoop(std::stop_token stop) {
  std::stop_callback wake_on_stop(stop, [this] { renew_wake.Notify(); });
  const nanoseconds period = options.lease_ttl / 3;
  const std::string lease_ms = std::to_string(CeilMillis(options.lease_ttl));
  while (!stop.stop_requested()) {
    std::stop_token wake = renew_wake.Token();
    if (stop.stop_requested()) break;
    std::vector<std::shared_ptr<Held>> due;
    Clock::time_point now = clock.Now();
    Clock::time_point next = herd::internal::SaturatingAdd(
        now, std::chrono::hours(1));
    {
      herd::internal::MutexLock lock(&renew_mu);
      for (auto& [id, h] : held) {
        if (h->lost.load()) continue;  // refused once: it will not come back
        if (h->due <= now) {
          due.push_back(h);
          // The next try, whatever this one gives.
          h->due = herd::internal::SaturatingAdd(now, period);
        }
        next = std::min(next, h->due);
      }
    }
    for (const std::shared_ptr<Held>& h : due) {
      Reply r = Eval(Script::kRenew, {h->lease_key}, {h->token, lease_ms});
      if (r != nullptr && r->type == REDIS_REPLY_INTEGER) {
        if (r->integer == 1) {
          Add(n.renewals);
        } else {
          h->lost.store(true);
        }
      }
    }
    if (!due.empty()) continue;
    clock.SleepUntil(next, wake);
  }
}

// --- Subscription ------------------------------------------------------------

void Fleet::Impl::SubscribeLoop(std::stop_token stop) {
  internal::Backoff backoff(options.reconnect_backoff_min,
                            options.reconnect_backoff_max, options.seed + 1);
  while (!stop.stop_requested()) {
    std::string error;
    Context c = internal::Connect(options, &error);
    if (c != nullptr) {
      Reply r = internal::SendCommand(c.get(), {"SUBSCRIBE", channel});
      if (r == nullptr || r->type != REDIS_REPLY_ARRAY) c.reset();
    }
    if (c == nullptr) {
      clock.SleepUntil(
          herd::internal::SaturatingAdd(clock.Now(), backoff.Fail()), stop);
      continue;
    }
    backoff.Succeed();
    subscribed.store(true);
    Add(n.subscribes);
    // Messages sent while there was no subscription are lost: waiters READ
    // again now, and listeners drop what they may have missed.
    NotifyAll();
    ForListeners("", /*all=*/true, [](Listener::State& s) {
      if (s.on_resync) s.on_resync();
    });
    ReadLoop(c.get(), stop);
    subscribed.store(false);
  }
}

void Fleet::Impl::ReadLoop(redisContext* c, const std::stop_token& stop) {
  const int ping_ms = internal::PollMillis(options.ping_interval);
  bool ping_pending = false;
  for (;;) {
    for (;;) {  // every reply already read
      void* raw = nullptr;
      if (redisGetReplyFromReader(c, &raw) != REDIS_OK) return;
      if (raw == nullptr) break;
      Reply r(static_cast<redisReply*>(raw));
      ping_pending = false;  // any traffic shows the server is alive
      OnPush(r.get());
    }
    if (stop.stop_requested()) return;
    pollfd fds[2] = {{c->fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    const int ready = ::poll(fds, 2, ping_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;  // stopping
    if (fds[0].revents != 0) {
      if (redisBufferRead(c) != REDIS_OK) return;
      continue;
    }
    // Quiet for ping_interval: ask; no answer by the next one, reconnect.
    if (ping_pending) return;
    internal::SigpipeBlock no_sigpipe;
    if (redisAppendCommand(c, "PING") != REDIS_OK) return;
    int done = 0;
    do {
      if (redisBufferWrite(c, &done) != REDIS_OK) return;
    } while (done == 0);
    ping_pending = true;
  }
}

void Fleet::Impl::OnPush(const redisReply* r) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
  const redisReply* kind = r->element[0];
  const redisReply* body = r->element[2];
  if (kind->type != REDIS_REPLY_STRING || View(kind) != "message" ||
      body->type != REDIS_REPLY_STRING) {
    return;
  }
  Add(n.messages);
  const std::string_view m = View(body);
  if (m.size() < 18 || m[17] != ' ') return;
  const char type = m[0];
  const std::string_view from = m.substr(1, 16);
  const std::string_view value_key = m.substr(18);
  NotifyKey(value_key);
  if ((type == 'p' || type == 'i') && from != origin) {
    Add(n.invalidations_received);
    ForListeners(value_key, /*all=*/false, [&](Listener::State& s) {
      if (s.on_key) s.on_key(value_key.substr(s.prefix.size()));
    });
  }
}

template <class F>
void Fleet::Impl::ForListeners(std::string_view value_key, bool all, F f) {
  std::vector<std::shared_ptr<Listener::State>> targets;
  {
    herd::internal::MutexLock lock(&listen_mu);
    for (const auto& s : listeners) {
      if (all || value_key.starts_with(s->prefix)) {
        ++s->calls;
        targets.push_back(s);
      }
    }
  }
  for (const auto& s : targets) {
    try {
      f(*s);  // user code: no lock held
    } catch (...) {
      // A listener's exception must not end the subscription.
    }
    herd::internal::MutexLock lock(&listen_mu);
    --s->calls;
    listen_cv.notify_all();
  }
}

// --- Fleet -------------------------------------------------------------------

Fleet::Fleet(FleetOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

Fleet::~Fleet() = default;

const FleetOptions& Fleet::options() const { return impl_->options; }

KeyRef Fleet::KeysFor(std::string_view name_space, std::string_view key) const {
  KeyRef ref;
  const std::string& prefix = impl_->options.prefix;
  ref.value_key.reserve(prefix.size() + name_space.size() + 3 + key.size());
  ref.value_key.append(prefix).append(name_space).append(":v:").append(key);
  ref.lease_key.reserve(ref.value_key.size());
  ref.lease_key.append(prefix).append(name_space).append(":l:").append(key);
  return ref;
}

FetchResult Fleet::Fetch(
    const KeyRef& key, const FetchPolicy& policy,
    absl::FunctionRef<bool(std::string_view)> decode,
    absl::FunctionRef<std::optional<Payload>(bool)> load) {
  return impl_->Fetch(key, policy, decode, load);
}

bool Fleet::Refresh(const KeyRef& key, uint64_t tag, std::string_view token,
                    absl::FunctionRef<std::optional<Payload>(bool)> load) {
  nanoseconds ttl{0};
  return impl_->LoadAndWrite(key, tag, token, load, &ttl);
}

bool Fleet::Release(const KeyRef& key, std::string_view token) {
  return impl_->ReleaseLease(key, token);
}

bool Fleet::Put(const KeyRef& key, uint64_t tag, const Payload& payload) {
  if (payload.ttl <= nanoseconds::zero()) return Invalidate(key);
  const std::string id = impl_->NewToken();
  const std::string tail = internal::EnvelopeTail(id, 0, tag, payload.bytes);
  const std::string px = payload.ttl == nanoseconds::max()
                             ? std::string("0")
                             : std::to_string(CeilMillis(payload.ttl));
  const std::string message = impl_->Message('p', key.value_key);
  Reply r = impl_->Eval(Script::kPut, {key.value_key, key.lease_key},
                        {tail, px, impl_->channel, message});
  if (r == nullptr || r->type != REDIS_REPLY_INTEGER) {
    Impl::Add(impl_->n.write_failures);
    return false;
  }
  Impl::Add(impl_->n.writes);
  Impl::Add(impl_->n.invalidations_sent);
  return true;
}

bool Fleet::Invalidate(const KeyRef& key) {
  const std::string message = impl_->Message('i', key.value_key);
  Reply r = impl_->Eval(Script::kInvalidate, {key.value_key, key.lease_key},
                        {impl_->channel, message});
  if (r == nullptr || r->type != REDIS_REPLY_INTEGER) return false;
  Impl::Add(impl_->n.invalidations_sent);
  return true;
}

std::unique_ptr<Fleet::Listener> Fleet::Listen(
    std::string_view name_space, std::function<void(std::string_view)> on_key,
    std::function<void()> on_resync) {
  auto state = std::make_shared<Listener::State>();
  state->prefix = KeysFor(name_space, "").value_key;
  state->on_key = std::move(on_key);
  state->on_resync = std::move(on_resync);
  std::unique_ptr<Listener> listener(new Listener(impl_.get(), state));
  herd::internal::MutexLock lock(&impl_->listen_mu);
  impl_->listeners.push_back(std::move(state));
  return listener;
}

Fleet::Listener::Listener(Fleet::Impl* impl, std::shared_ptr<State> state)
    : impl_(impl), state_(std::move(state)) {}

Fleet::Listener::~Listener() {
  herd::internal::MutexLock lock(&impl_->listen_mu);
  auto& all = impl_->listeners;
  all.erase(std::remove(all.begin(), all.end(), state_), all.end());
  if (std::this_thread::get_id() == impl_->subscriber.get_id()) return;
  while (state_->calls > 0) herd::internal::Wait(impl_->listen_cv, impl_->listen_mu);
}

ExecutorRef Fleet::background() { return ExecutorRef(impl_->background); }

std::string Fleet::NewToken() { return impl_->NewToken(); }

FleetStats Fleet::Stats() const {
  const Impl::Counters& c = impl_->n;
  auto get = [](const std::atomic<uint64_t>& a) {
    return a.load(std::memory_order_relaxed);
  };
  FleetStats s;
  s.commands = get(c.commands);
  s.command_failures = get(c.command_failures);
  s.error_replies = get(c.error_replies);
  s.refused = get(c.refused);
  s.connects = impl_->pool.connects();
  s.connect_failures = impl_->pool.connect_failures();
  s.hits = get(c.hits);
  s.misses = get(c.misses);
  s.leases_won = get(c.leases_won);
  s.leases_lost = get(c.leases_lost);
  s.leases_expired = get(c.leases_expired);
  s.renewals = get(c.renewals);
  s.writes = get(c.writes);
  s.writes_rejected = get(c.writes_rejected);
  s.write_failures = get(c.write_failures);
  s.stale_served = get(c.stale_served);
  s.refreshes = get(c.refreshes);
  s.early_refreshes = get(c.early_refreshes);
  s.fallbacks = get(c.fallbacks);
  s.decode_errors = get(c.decode_errors);
  s.waits = get(c.waits);
  s.wakeups = get(c.wakeups);
  s.messages = get(c.messages);
  s.invalidations_sent = get(c.invalidations_sent);
  s.invalidations_received = get(c.invalidations_received);
  s.subscribes = get(c.subscribes);
  s.connections_open = impl_->pool.open();
  s.connections_idle = impl_->pool.idle();
  s.breaker = impl_->breaker.state();
  s.subscribed = impl_->subscribed.load();
  {
    herd::internal::MutexLock lock(&impl_->wait_mu);
    s.waiting_keys = impl_->waiting.size();
  }
  {
    herd::internal::MutexLock lock(&impl_->renew_mu);
    s.leases_held = impl_->held.size();
  }
  return s;
}

std::string FormatMetrics(const FleetStats& s, std::string_view prefix) {
  std::string out;
  auto line = [&](std::string_view name, const char* type, double value,
                  const char* help) {
    const std::string full = std::string(prefix) + std::string(name);
    char num[64];
    std::snprintf(num, sizeof num, "%.17g", value);
    out += "# HELP " + full + " " + help + "\n";
    out += "# TYPE " + full + " " + type + "\n";
    out += full + " " + num + "\n";
  };
  auto counter = [&](std::string_view name, uint64_t v, const char* help) {
    line(std::string(name) + "_total", "counter", static_cast<double>(v),
         help);
  };
  counter("commands", s.commands, "Redis commands sent through the pool.");
  counter("command_failures", s.command_failures,
          "Commands that timed out or lost the connection.");
  counter("error_replies", s.error_replies, "Commands answered with an error.");
  counter("refused", s.refused, "Calls refused unsent (breaker or busy pool).");
  counter("connects", s.connects, "Pool connections opened.");
  counter("connect_failures", s.connect_failures, "Failed connects.");
  counter("hits", s.hits, "READs that returned a usable value.");
  counter("misses", s.misses, "Calls that found no usable value.");
  counter("leases_won", s.leases_won, "Leases taken.");
  counter("leases_lost", s.leases_lost, "Calls that waited for a holder.");
  counter("leases_expired", s.leases_expired,
          "Holders that lost their lease before writing.");
  counter("renewals", s.renewals, "Lease renewals accepted.");
  counter("writes", s.writes, "Values stored.");
  counter("writes_rejected", s.writes_rejected, "Fenced writes refused.");
  counter("write_failures", s.write_failures, "Writes that failed to reach Redis.");
  counter("stale_served", s.stale_served, "Values returned past refresh_after.");
  counter("refreshes", s.refreshes, "Background refreshes won.");
  counter("early_refreshes", s.early_refreshes, "XFetch refreshes won.");
  counter("fallbacks", s.fallbacks, "Loads run without the fleet.");
  counter("decode_errors", s.decode_errors, "Corrupt or foreign payloads.");
  counter("waits", s.waits, "Waiter sleeps.");
  counter("wakeups", s.wakeups, "Waiter sleeps ended by a message.");
  counter("messages", s.messages, "Pub/sub messages received.");
  counter("invalidations_sent", s.invalidations_sent, "Puts and invalidations sent.");
  counter("invalidations_received", s.invalidations_received,
          "Puts and invalidations received from other processes.");
  counter("subscribes", s.subscribes, "Successful (re)subscriptions.");
  line("connections_open", "gauge", static_cast<double>(s.connections_open),
       "Pool connections open.");
  line("connections_idle", "gauge", static_cast<double>(s.connections_idle),
       "Pool connections idle.");
  line("breaker_open", "gauge",
       s.breaker == CircuitBreaker::State::kClosed ? 0.0 : 1.0,
       "1 while the circuit breaker is open or half-open.");
  line("subscribed", "gauge", s.subscribed ? 1.0 : 0.0,
       "1 while the pub/sub subscription is up.");
  line("waiting_keys", "gauge", static_cast<double>(s.waiting_keys),
       "Keys with a waiter now.");
  line("leases_held", "gauge", static_cast<double>(s.leases_held),
       "Leases being renewed now.");
  return out;
}

}  // namespace herd::redis
