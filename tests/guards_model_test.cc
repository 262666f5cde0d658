// Copyright 2026 The herd Authors.
//
// Model-based random tests of the guards: each test drives one guard with
// random calls on a FakeClock (or a scripted clock), keeps a model of what
// its header's contract allows, and checks every call against it: the
// result, the exact instant a waiter will wake, waiting(), state(). Time
// moves, stops arrive and permits come back only when the test says so, and
// the test waits for each effect (a future, FakeClock::WaitForSleepers,
// ConcurrencyLimiter::waiting()) before the next call, so a run is a
// deterministic function of its seed.
//
//   TokenBucketModel         token_bucket.h: reservations, ready times,
//                            cancellation, and the bound "tokens granted in
//                            [a, b] <= capacity + (b - a) / tick"
//   ConcurrencyLimiterModel  concurrency_limiter.h: a counting semaphore
//                            whose queued calls get permits first come,
//                            first served; stops before, after and racing a
//                            release
//   CircuitBreakerModel      circuit_breaker.h: the closed / open /
//                            half-open state machine, both trip modes
//   RetryModel               retry.h: attempts, backoffs, the stop token
//                            before every attempt, what is rethrown
//   BoundedQueueModel        bounded_queue.h: a FIFO of fixed capacity,
//                            then many producers and consumers, Close()
//   TimerModel               timer.h: callbacks run once, never early, in
//                            (deadline, id) order; Cancel() iff pending
//
// Seeded: the seed is printed; HERD_MODEL_SEED (or HERD_STRESS_SEED)
// replays a whole test, and HERD_MODEL_RUN=N replays only its run N (the
// failure message names both). HERD_MODEL_SECONDS (default 0.5) bounds each
// test's time; each also stops after kMaxRuns runs.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "herd/bounded_queue.h"
#include "herd/circuit_breaker.h"
#include "herd/clock.h"
#include "herd/concurrency_limiter.h"
#include "herd/errors.h"
#include "herd/retry.h"
#include "herd/timer.h"
#include "herd/token_bucket.h"
#include "tests/testing/clocks.h"

namespace herd {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using TimePoint = Clock::time_point;
using Rng = std::mt19937_64;

constexpr int kMaxRuns = 5000;

// --- Seeds, runs and the time budget.

std::optional<uint64_t> EnvU64(const char* name) {
  if (const char* s = std::getenv(name)) return std::strtoull(s, nullptr, 10);
  return std::nullopt;
}

uint64_t ModelSeed() {
  if (auto s = EnvU64("HERD_MODEL_SEED")) return *s;
  if (auto s = EnvU64("HERD_STRESS_SEED")) return *s;
  return std::random_device{}();
}

double ModelSeconds() {
  if (const char* s = std::getenv("HERD_MODEL_SECONDS")) {
    return std::strtod(s, nullptr);
  }
  return 0.5;
}

// Calls run(rng) for run 0, 1, ... until the time budget or kMaxRuns is
// spent, each with its own generator derived from the seed and the run
// number; stops at the first run with a failure and says how to replay it.
template <class Run>
void ForEachRun(const char* name, Run run) {
  const uint64_t seed = ModelSeed();
  const double budget = ModelSeconds();
  const std::optional<uint64_t> only = EnvU64("HERD_MODEL_RUN");
  std::printf("%s: HERD_MODEL_SEED=%llu HERD_MODEL_SECONDS=%g\n", name,
              static_cast<unsigned long long>(seed), budget);
  const auto start = std::chrono::steady_clock::now();
  int runs = 0;
  for (uint64_t r = only.value_or(0);; ++r) {
    std::seed_seq seq{seed, r};
    Rng rng(seq);
    {
      SCOPED_TRACE("HERD_MODEL_SEED=" + std::to_string(seed) +
                   " HERD_MODEL_RUN=" + std::to_string(r));
      run(rng);
    }
    ++runs;
    if (::testing::Test::HasFailure()) {
      std::printf("%s: replay with HERD_MODEL_SEED=%llu HERD_MODEL_RUN=%llu\n",
                  name, static_cast<unsigned long long>(seed),
                  static_cast<unsigned long long>(r));
      return;
    }
    const std::chrono::duration<double> elapsed =
        std::chrono::steady_clock::now() - start;
    if (only || runs >= kMaxRuns || elapsed.count() >= budget) break;
  }
  std::printf("%s: %d runs\n", name, runs);
}

// The value of `f`, which the model says is (or is about to be) ready. A
// wrong implementation may never set it: after a minute that is a failure
// (and nullopt) rather than a hang. Correct code sets it at once.
template <class T>
std::optional<T> Expected(std::future<T>& f) {
  if (f.wait_for(std::chrono::minutes(1)) != std::future_status::ready) {
    ADD_FAILURE() << "a call the model expected to return did not";
    return std::nullopt;
  }
  return f.get();
}

// Until limiter.waiting() == n, which the model says it is about to be;
// after a minute, a failure rather than a hang.
void AwaitWaiting(const ConcurrencyLimiter& limiter, size_t n) {
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::minutes(1);
  while (limiter.waiting() != static_cast<std::ptrdiff_t>(n)) {
    if (std::chrono::steady_clock::now() > give_up) {
      ADD_FAILURE() << "waiting() is " << limiter.waiting() << ", not " << n;
      return;
    }
    std::this_thread::yield();
  }
}

int Uniform(Rng& rng, int lo, int hi) {  // [lo, hi]
  return std::uniform_int_distribution<int>(lo, hi)(rng);
}
int64_t Uniform64(Rng& rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}
bool OneIn(Rng& rng, int n) { return Uniform(rng, 1, n) == 1; }

// ===========================================================================
// TokenBucket

// token_bucket.h's contract, written out: the chain of reservations, each
// owning [end - n * tick, end]; ready = max(end, now); a cancelled one gives
// its tokens back only as the last live one, back to the end of the latest
// reservation not cancelled.
class TokenBucketModel {
 public:
  TokenBucketModel(int64_t tick, int64_t capacity, TimePoint now)
      : tick_(tick),
        capacity_(capacity),
        full_(nanoseconds(tick * capacity)),
        now_(now),
        end_(now - full_),
        floor_(end_) {}

  struct Reserved {
    TimePoint ready;
    bool waits;
  };

  // A reservation of n by `latest` (nullopt: now), or nullopt if refused.
  std::optional<Reserved> Reserve(int id, int64_t n,
                                  std::optional<TimePoint> latest) {
    const TimePoint start = std::max(end_, now_ - full_);
    const TimePoint end = start + nanoseconds(n * tick_);
    const TimePoint ready = std::max(end, now_);
    if (ready > latest.value_or(now_)) return std::nullopt;
    end_ = end;
    if (ready <= now_) {
      floor_ = std::max(floor_, end);
      grants_.push_back({now_, n});
      return Reserved{ready, false};
    }
    live_.push_back({id, n, end, ready});
    return Reserved{ready, true};
  }

  void Cancel(int id) {
    auto it = Find(id);
    const bool last = std::next(it) == live_.end();
    live_.erase(it);
    if (last)
      end_ = live_.empty() ? floor_ : std::max(floor_, live_.back().end);
  }

  // Moves time to t; returns the ids granted, in order.
  std::vector<int> AdvanceTo(TimePoint t) {
    now_ = t;
    std::vector<int> granted;
    for (auto it = live_.begin(); it != live_.end();) {
      if (it->ready <= now_) {
        granted.push_back(it->id);
        floor_ = std::max(floor_, it->end);
        grants_.push_back({it->ready, it->n});
        it = live_.erase(it);
      } else {
        ++it;
      }
    }
    return granted;
  }

  double Available() const {
    const nanoseconds stored =
        std::min(std::chrono::duration_cast<nanoseconds>(now_ - end_), full_);
    if (stored <= nanoseconds::zero()) return 0.0;
    return static_cast<double>(stored.count()) / static_cast<double>(tick_);
  }

  // The header's bound: for instants a <= b, tokens granted in [a, b] are
  // at most capacity + (b - a) / tick.
  void CheckGrantBound() const {
    std::vector<std::pair<TimePoint, int64_t>> g = grants_;
    std::sort(g.begin(), g.end());
    for (size_t i = 0; i < g.size(); ++i) {
      int64_t sum = 0;
      for (size_t j = i; j < g.size(); ++j) {
        sum += g[j].second;
        const int64_t span = (g[j].first - g[i].first).count() / tick_;
        ASSERT_LE(sum, capacity_ + span)
            << "tokens granted in [" << i << ", " << j << "] of " << g.size();
      }
    }
  }

  TimePoint now() const { return now_; }
  size_t live() const { return live_.size(); }
  bool Waits(int id) const { return Find(id) != live_.end(); }
  std::optional<TimePoint> NextReady() const {
    std::optional<TimePoint> next;
    for (const Live& l : live_) {
      if (!next || l.ready < *next) next = l.ready;
    }
    return next;
  }

 private:
  struct Live {
    int id;
    int64_t n;
    TimePoint end;
    TimePoint ready;
  };
  std::vector<Live>::iterator Find(int id) {
    return std::find_if(live_.begin(), live_.end(),
                        [&](const Live& l) { return l.id == id; });
  }
  std::vector<Live>::const_iterator Find(int id) const {
    return std::find_if(live_.begin(), live_.end(),
                        [&](const Live& l) { return l.id == id; });
  }

  const int64_t tick_;
  const int64_t capacity_;
  const nanoseconds full_;
  TimePoint now_;
  TimePoint end_;
  TimePoint floor_;
  std::vector<Live> live_;
  std::vector<std::pair<TimePoint, int64_t>> grants_;
};

// One Acquire / AcquireFor running on its own thread.
struct BucketCall {
  int id;
  bool stoppable;
  std::stop_source stop;
  std::promise<bool> promise;
  std::future<bool> result = promise.get_future();
  std::jthread thread;
};

TEST(GuardsModel, TokenBucketModel) {
  ForEachRun("TokenBucketModel", [](Rng& rng) {
    static constexpr double kRates[] = {1, 3, 7, 10, 1000, 3e8, 1e9};
    const double rate = kRates[Uniform(rng, 0, 6)];
    const int64_t capacity = Uniform(rng, 1, 8);
    FakeClock fake;
    test::RecordingClock clock(fake);
    TokenBucket bucket({.rate = rate, .capacity = capacity, .clock = &clock});
    const int64_t tick = bucket.token_cost().count();
    ASSERT_EQ(tick, std::llround(1e9 / rate));
    TokenBucketModel model(tick, capacity, clock.Now());
    std::map<int, std::unique_ptr<BucketCall>> calls;  // waiting ones
    int next_id = 0;

    auto finish = [&](int id, bool expected) {
      auto it = calls.find(id);
      ASSERT_NE(it, calls.end());
      const std::optional<bool> got = Expected(it->second->result);
      ASSERT_TRUE(got.has_value()) << "call " << id;
      ASSERT_EQ(*got, expected) << "call " << id;
      calls.erase(it);
    };
    auto check_sleepers = [&] {
      ASSERT_EQ(fake.Sleepers(), model.live());
      ASSERT_DOUBLE_EQ(bucket.Available(), model.Available());
    };

    const int steps = Uniform(rng, 10, 60);
    for (int step = 0; step < steps; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      const int op = Uniform(rng, 0, 9);
      if (op <= 1) {  // TryAcquire(n)
        const int64_t n = Uniform64(rng, 0, capacity);
        const bool expected = model.Reserve(-1, n, std::nullopt).has_value();
        ASSERT_EQ(bucket.TryAcquire(n), expected);
      } else if (op <= 4) {  // a call that may wait, on its own thread
        if (model.live() >= 6) continue;
        const int64_t n = Uniform64(rng, 0, capacity);
        auto call = std::make_unique<BucketCall>();
        call->id = next_id++;
        const int kind = Uniform(rng, 0, 3);
        call->stoppable = kind != 0;
        std::optional<TimePoint> latest = TimePoint::max();
        std::optional<nanoseconds> timeout;
        if (kind == 3) {  // AcquireFor: zero, a while, or max()
          const int t = Uniform(rng, 0, 2);
          timeout = t == 0 ? nanoseconds::zero()
                    : t == 1
                        ? nanoseconds(Uniform64(rng, 0, 3 * tick * capacity))
                        : nanoseconds::max();
          latest = t == 2 ? TimePoint::max() : model.now() + *timeout;
        }
        const std::optional<TokenBucketModel::Reserved> expected =
            model.Reserve(call->id, n, latest);
        BucketCall* c = call.get();
        c->thread = std::jthread([&bucket, c, kind, n, timeout] {
          bool got = false;
          switch (kind) {
            case 0:
              bucket.Acquire(n);
              got = true;
              break;
            case 1:
            case 2:
              got = bucket.Acquire(n, c->stop.get_token());
              break;
            case 3:
              got = bucket.AcquireFor(n, *timeout, c->stop.get_token());
              break;
          }
          c->promise.set_value(got);
        });
        const int id = c->id;
        calls.emplace(id, std::move(call));
        if (!expected || !expected->waits) {
          finish(id, expected.has_value());
        } else {
          fake.WaitForSleepers(model.live());
          // Sleeping exactly until its ready time.
          ASSERT_EQ(clock.deadlines().back(), expected->ready);
        }
      } else if (op <= 6) {  // stop a waiting call
        std::vector<int> stoppable;
        for (auto& [id, c] : calls) {
          if (c->stoppable) stoppable.push_back(id);
        }
        if (stoppable.empty()) continue;
        const int id = stoppable[Uniform(rng, 0, stoppable.size() - 1)];
        calls[id]->stop.request_stop();
        model.Cancel(id);
        finish(id, false);
      } else {  // time moves: sometimes to a ready time exactly, or 1 short
        const std::optional<TimePoint> next = model.NextReady();
        TimePoint to =
            model.now() + nanoseconds(Uniform64(rng, 0, 2 * tick * capacity));
        if (next && OneIn(rng, 2)) to = *next - nanoseconds(Uniform(rng, 0, 1));
        to = std::max(to, model.now());
        fake.AdvanceTo(to);
        for (int id : model.AdvanceTo(to)) finish(id, true);
      }
      check_sleepers();
      if (::testing::Test::HasFailure()) break;
    }
    // Drain: stop what can be stopped, then let time grant the rest.
    for (auto& [id, c] : calls) {
      if (c->stoppable) c->stop.request_stop();
    }
    if (::testing::Test::HasFailure()) {
      fake.AdvanceTo(FakeClock::kEndOfTime);  // wakes every waiter
      return;
    }
    std::vector<int> ids;
    for (auto& [id, c] : calls) ids.push_back(id);
    for (int id : ids) {
      if (calls[id]->stoppable) {
        model.Cancel(id);
        finish(id, false);
      }
    }
    while (std::optional<TimePoint> next = model.NextReady()) {
      fake.AdvanceTo(*next);
      for (int id : model.AdvanceTo(*next)) finish(id, true);
    }
    model.CheckGrantBound();
  });
}

// ===========================================================================
// ConcurrencyLimiter

// One waiting call on its own thread; the permit it got, if any, comes back
// through the future.
struct LimiterCall {
  int id;
  bool stoppable;
  std::stop_source stop;
  std::promise<std::optional<ConcurrencyLimiter::Permit>> promise;
  std::future<std::optional<ConcurrencyLimiter::Permit>> result =
      promise.get_future();
  std::jthread thread;
};

TEST(GuardsModel, ConcurrencyLimiterModel) {
  ForEachRun("ConcurrencyLimiterModel", [](Rng& rng) {
    const int max = Uniform(rng, 1, 3);
    ConcurrencyLimiter limiter(max);
    // The model: a counting semaphore whose queued calls are served first
    // come, first served at the instant a permit comes back.
    int free = max;
    std::deque<int> queue;
    std::vector<ConcurrencyLimiter::Permit> held;
    std::map<int, std::unique_ptr<LimiterCall>> calls;
    int next_id = 0;

    auto take_result = [&](int id, bool expect_permit) {
      auto it = calls.find(id);
      ASSERT_NE(it, calls.end());
      std::optional<std::optional<ConcurrencyLimiter::Permit>> p =
          Expected(it->second->result);
      ASSERT_TRUE(p.has_value()) << "call " << id;
      ASSERT_EQ(p->has_value(), expect_permit) << "call " << id;
      if (*p) held.push_back(std::move(**p));
      calls.erase(it);
    };
    auto unqueue = [&](int id) {
      queue.erase(std::find(queue.begin(), queue.end(), id));
    };
    // A permit comes back: to the oldest queued call, else free.
    auto returned = [&] {
      if (queue.empty()) {
        ++free;
        return;
      }
      const int front = queue.front();
      queue.pop_front();
      take_result(front, true);
    };

    const int steps = Uniform(rng, 10, 60);
    for (int step = 0; step < steps; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      const int op = Uniform(rng, 0, 9);
      if (op <= 1) {  // TryAcquire(), or TryAcquireFor(0)
        std::optional<ConcurrencyLimiter::Permit> p =
            OneIn(rng, 2) ? limiter.TryAcquire()
                          : limiter.TryAcquireFor(nanoseconds::zero());
        ASSERT_EQ(p.has_value(), free > 0);
        if (p) {
          --free;
          held.push_back(std::move(*p));
        }
      } else if (op <= 4) {  // a call that may wait
        if (queue.size() >= 5) continue;
        auto call = std::make_unique<LimiterCall>();
        call->id = next_id++;
        const int kind = Uniform(rng, 0, 4);
        call->stoppable = kind != 0 && kind != 3;
        const bool stopped_first = call->stoppable && OneIn(rng, 6);
        if (stopped_first) call->stop.request_stop();
        LimiterCall* c = call.get();
        c->thread = std::jthread([&limiter, c, kind] {
          std::optional<ConcurrencyLimiter::Permit> p;
          switch (kind) {
            case 0:
              p = limiter.Acquire();
              break;
            case 1:
              p = limiter.Acquire(c->stop.get_token());
              break;
            case 2:
              p = limiter.TryAcquireFor(nanoseconds::max(),
                                        c->stop.get_token());
              break;
            case 3:
              p = limiter.TryAcquireFor(std::chrono::hours::max());
              break;
            case 4:
              p = limiter.TryAcquireFor(nanoseconds::zero(),
                                        c->stop.get_token());
              break;
          }
          c->promise.set_value(std::move(p));
        });
        const int id = c->id;
        calls.emplace(id, std::move(call));
        if (stopped_first) {
          take_result(id, false);  // even with a permit free
        } else if (free > 0) {
          --free;
          take_result(id, true);
        } else if (kind == 4) {
          take_result(id, false);  // zero timeout: never queues
        } else {
          queue.push_back(id);
          AwaitWaiting(limiter, queue.size());
        }
      } else if (op <= 5) {  // stop a queued call before any release
        std::vector<int> stoppable;
        for (int id : queue) {
          if (calls[id]->stoppable) stoppable.push_back(id);
        }
        if (stoppable.empty()) continue;
        const int id = stoppable[Uniform(rng, 0, stoppable.size() - 1)];
        calls[id]->stop.request_stop();
        unqueue(id);
        ASSERT_EQ(limiter.waiting(), static_cast<std::ptrdiff_t>(queue.size()));
        take_result(id, false);
      } else if (op <= 7 || queue.empty() || !calls[queue.front()]->stoppable) {
        // Release a held permit; sometimes stop the oldest call just after
        // its handoff (too late: it keeps the permit).
        if (held.empty()) continue;
        const size_t i = Uniform(rng, 0, held.size() - 1);
        ConcurrencyLimiter::Permit p = std::move(held[i]);
        held.erase(held.begin() + i);
        const std::optional<int> front =
            queue.empty() ? std::nullopt : std::optional<int>(queue.front());
        p.Release();
        if (front && calls[*front]->stoppable && OneIn(rng, 2)) {
          calls[*front]->stop.request_stop();  // too late: handed off
        }
        returned();
      } else {  // the oldest call's stop races a release
        if (held.empty() || queue.empty()) continue;
        const int front = queue.front();
        ConcurrencyLimiter::Permit p = std::move(held.back());
        held.pop_back();
        std::latch go(2);
        {
          std::jthread stopper([&] {
            go.arrive_and_wait();
            calls[front]->stop.request_stop();
          });
          go.arrive_and_wait();
          p.Release();
        }
        // Exactly one outcome: the front call has the permit, or it was
        // cancelled and the permit went on as if it had never queued.
        std::optional<std::optional<ConcurrencyLimiter::Permit>> got =
            Expected(calls[front]->result);
        ASSERT_TRUE(got.has_value());
        queue.pop_front();
        calls.erase(front);
        if (*got) {
          held.push_back(std::move(**got));
        } else {
          returned();
        }
      }
      ASSERT_EQ(limiter.waiting(), static_cast<std::ptrdiff_t>(queue.size()));
      ASSERT_EQ(free + static_cast<int>(held.size()), max);
      if (::testing::Test::HasFailure()) break;
    }
    // Drain: stop the stoppable, release until every call has returned.
    if (::testing::Test::HasFailure()) {
      // Give every permit back as soon as it is seen, so that calls that
      // cannot be stopped get one and their threads end.
      for (auto& [id, c] : calls) c->stop.request_stop();
      held.clear();
      while (!calls.empty()) {
        for (auto it = calls.begin(); it != calls.end();) {
          if (it->second->result.wait_for(seconds(0)) ==
              std::future_status::ready) {
            it->second->result.get();  // drops the permit, if any
            it = calls.erase(it);
          } else {
            ++it;
          }
        }
        std::this_thread::yield();
      }
      return;
    }
    while (!queue.empty()) {
      const int front = queue.front();
      if (calls[front]->stoppable) {
        calls[front]->stop.request_stop();
        unqueue(front);
        take_result(front, false);
      } else {
        ASSERT_FALSE(held.empty());
        held.pop_back();  // returns it: to `front`
        returned();
      }
    }
    held.clear();
    ASSERT_EQ(limiter.waiting(), 0);
    std::vector<std::optional<ConcurrencyLimiter::Permit>> all;
    for (int i = 0; i < max; ++i) all.push_back(limiter.TryAcquire());
    for (auto& p : all) ASSERT_TRUE(p.has_value());
    ASSERT_FALSE(limiter.TryAcquire().has_value());
  });
}

// ===========================================================================
// CircuitBreaker

// circuit_breaker.h's state machine, written out.
class BreakerModel {
 public:
  explicit BreakerModel(const CircuitBreakerOptions& o) : o_(o) {}

  struct Ticket {
    uint64_t generation;
    bool trial;
  };

  std::optional<Ticket> Admit(TimePoint now) {
    Refresh(now);
    if (state_ == State::kClosed) return Ticket{generation_, false};
    if (state_ == State::kHalfOpen && trials_admitted_ < o_.half_open_trials) {
      ++trials_admitted_;
      return Ticket{generation_, true};
    }
    ++rejected_;
    return std::nullopt;
  }

  void Record(const Ticket& t, bool failed, TimePoint now) {
    if (t.generation != generation_) return;
    if (t.trial) {
      if (failed) {
        Open(now);
      } else if (++trials_succeeded_ == o_.half_open_trials) {
        Close();
      }
      return;
    }
    bool trip;
    if (o_.window_size == 0) {
      consecutive_ = failed ? consecutive_ + 1 : 0;
      trip = consecutive_ >= o_.failure_threshold;
    } else {
      outcomes_.push_back(failed);
      if (static_cast<int>(outcomes_.size()) > o_.window_size) {
        outcomes_.pop_front();
      }
      const int failures = static_cast<int>(
          std::count(outcomes_.begin(), outcomes_.end(), true));
      // "of the last window_size calls, at least failure_ratio failed":
      // failures / window >= ratio, in exact integers (ratio = k / 20).
      trip = static_cast<int>(outcomes_.size()) == o_.window_size &&
             failures * 20 >= ratio_twentieths_ * o_.window_size;
    }
    if (trip) Open(now);
  }

  CircuitBreaker::State StateAt(TimePoint now) const {
    if (state_ == State::kOpen && now - opened_at_ >= o_.open_duration) {
      return State::kHalfOpen;
    }
    return state_;
  }
  int64_t rejected() const { return rejected_; }
  void set_ratio_twentieths(int k) { ratio_twentieths_ = k; }

 private:
  using State = CircuitBreaker::State;
  void Refresh(TimePoint now) {
    if (state_ == State::kOpen && now - opened_at_ >= o_.open_duration) {
      state_ = State::kHalfOpen;
      ++generation_;
      trials_admitted_ = trials_succeeded_ = 0;
    }
  }
  void Open(TimePoint now) {
    state_ = State::kOpen;
    ++generation_;
    opened_at_ = now;
  }
  void Close() {
    state_ = State::kClosed;
    ++generation_;
    consecutive_ = 0;
    outcomes_.clear();
  }

  const CircuitBreakerOptions o_;
  int ratio_twentieths_ = 10;
  State state_ = State::kClosed;
  uint64_t generation_ = 0;
  TimePoint opened_at_;
  int consecutive_ = 0;
  std::deque<bool> outcomes_;
  int trials_admitted_ = 0;
  int trials_succeeded_ = 0;
  int64_t rejected_ = 0;
};

TEST(GuardsModel, CircuitBreakerModel) {
  ForEachRun("CircuitBreakerModel", [](Rng& rng) {
    FakeClock clock;
    CircuitBreakerOptions o;
    o.failure_threshold = Uniform(rng, 1, 4);
    const bool ratio_mode = OneIn(rng, 2);
    const int twentieths = Uniform(rng, 1, 20);  // ratio in (0, 1], exact
    if (ratio_mode) {
      o.window_size = Uniform(rng, 1, 6);
      o.failure_ratio = twentieths / 20.0;
    }
    o.open_duration = OneIn(rng, 8) ? Clock::duration::max()
                                    : milliseconds(Uniform(rng, 1, 50));
    o.half_open_trials = Uniform(rng, 1, 3);
    o.clock = &clock;
    CircuitBreaker breaker(o);
    BreakerModel model(o);
    model.set_ratio_twentieths(twentieths);
    struct Outstanding {
      CircuitBreaker::Ticket real;
      BreakerModel::Ticket model;
    };
    std::vector<Outstanding> outstanding;
    const int steps = Uniform(rng, 20, 200);
    for (int step = 0; step < steps; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      const int op = Uniform(rng, 0, 9);
      if (op <= 3) {
        std::optional<CircuitBreaker::Ticket> t = breaker.TryAdmit();
        std::optional<BreakerModel::Ticket> m = model.Admit(clock.Now());
        ASSERT_EQ(t.has_value(), m.has_value());
        if (t) outstanding.push_back({*t, *m});
      } else if (op <= 6) {
        if (outstanding.empty()) continue;
        const size_t i = Uniform(rng, 0, outstanding.size() - 1);
        const bool failed = OneIn(rng, 2);
        breaker.Record(outstanding[i].real, failed);
        model.Record(outstanding[i].model, failed, clock.Now());
        outstanding.erase(outstanding.begin() + i);
      } else if (op <= 8) {
        // Often exactly at, or one tick before, the end of an open period.
        const auto d = o.open_duration == Clock::duration::max()
                           ? milliseconds(Uniform(rng, 0, 100))
                           : o.open_duration / Uniform(rng, 1, 3) -
                                 nanoseconds(Uniform(rng, 0, 1));
        clock.Advance(std::max(Clock::duration(d), Clock::duration::zero()));
      } else {
        ASSERT_EQ(breaker.state(), model.StateAt(clock.Now()));
      }
      ASSERT_EQ(breaker.rejected(), model.rejected());
    }
    ASSERT_EQ(breaker.state(), model.StateAt(clock.Now()));
  });
}

// ===========================================================================
// Retry

struct Transient : std::runtime_error {
  explicit Transient(int a) : std::runtime_error("transient"), attempt(a) {}
  int attempt;
};
struct Permanent : std::runtime_error {
  explicit Permanent(int a) : std::runtime_error("permanent"), attempt(a) {}
  int attempt;
};

// Where the stop token of a call is stopped, if at all.
enum class StopAt {
  kNever,
  kBeforeTheCall,
  kDuringAttempt,     // inside attempt `stop_index`
  kDuringBackoff,     // as backoff `stop_index` begins (the sleep ends early)
  kAtTheBackoffsEnd,  // as backoff `stop_index` reaches its deadline
};

// A single-threaded clock: every sleep jumps to its deadline at once and is
// recorded, unless the script stops the token as it begins or as it ends.
class ScriptedClock final : public Clock {
 public:
  time_point Now() const override { return now_; }
  bool SleepUntil(time_point deadline, std::stop_token stop) const override {
    const int index = static_cast<int>(sleeps_.size()) + 1;
    sleeps_.push_back(deadline - now_);
    if (stop.stop_requested()) return false;
    if (stop_at_ == StopAt::kDuringBackoff && stop_index_ == index) {
      source_->request_stop();
      return false;
    }
    now_ = std::max(now_, deadline);
    if (stop_at_ == StopAt::kAtTheBackoffsEnd && stop_index_ == index) {
      source_->request_stop();
    }
    return true;
  }
  void Script(StopAt at, int index, std::stop_source* source) {
    stop_at_ = at;
    stop_index_ = index;
    source_ = source;
  }
  const std::vector<duration>& sleeps() const { return sleeps_; }

 private:
  mutable time_point now_{seconds(1000)};
  mutable std::vector<duration> sleeps_;
  StopAt stop_at_ = StopAt::kNever;
  int stop_index_ = 0;
  std::stop_source* source_ = nullptr;
};

TEST(GuardsModel, RetryModel) {
  ForEachRun("RetryModel", [](Rng& rng) {
    ScriptedClock clock;
    RetryOptions o;
    o.max_attempts = Uniform(rng, 1, 5);
    o.initial_delay = milliseconds(Uniform(rng, 0, 50));
    static constexpr double kMultipliers[] = {1.0, 1.5, 2.0, 3.0};
    o.multiplier = kMultipliers[Uniform(rng, 0, 3)];
    o.max_delay = OneIn(rng, 4)
                      ? Clock::duration::max()
                      : o.initial_delay + milliseconds(Uniform(rng, 0, 200));
    o.jitter = OneIn(rng, 2) ? 0.0 : Uniform(rng, 0, 10) / 10.0;
    const bool only_transient = OneIn(rng, 2);
    if (only_transient) o.retry_if = Retry::On<Transient>();
    o.clock = &clock;
    const Retry policy(o);

    // Outcome of attempt k: 0 success, 1 Transient, 2 Permanent,
    // 3 CircuitOpen (never retried by default).
    std::vector<int> outcome(o.max_attempts + 1);
    for (int& x : outcome) x = Uniform(rng, 0, 9) < 7 ? 1 : Uniform(rng, 0, 3);
    std::stop_source source;
    const StopAt stop_at = static_cast<StopAt>(Uniform(rng, 0, 4));
    const int stop_index = Uniform(rng, 1, o.max_attempts);
    clock.Script(stop_at, stop_index, &source);
    if (stop_at == StopAt::kBeforeTheCall) source.request_stop();

    int attempts = 0;
    auto loader = WithRetry(policy, [&](std::stop_token stop) -> int {
      ++attempts;
      EXPECT_FALSE(stop.stop_requested())
          << "attempt " << attempts << " started after the stop";
      if (stop_at == StopAt::kDuringAttempt && stop_index == attempts) {
        source.request_stop();
      }
      switch (outcome[attempts]) {
        case 0:
          return attempts;
        case 1:
          throw Transient(attempts);
        case 2:
          throw Permanent(attempts);
        default:
          throw CircuitOpen();
      }
    });

    // The model: which attempt ends the call, and how.
    int expect_attempts = 0;
    int expect_sleeps = 0;
    bool stopped = stop_at == StopAt::kBeforeTheCall;
    for (int k = 1; !stopped; ++k) {
      expect_attempts = k;
      if (stop_at == StopAt::kDuringAttempt && stop_index == k) stopped = true;
      const int out = outcome[k];
      if (out == 0) break;
      const bool retryable = only_transient ? out == 1 : out != 3;
      if (k == o.max_attempts || stopped || !retryable) break;
      ++expect_sleeps;
      if ((stop_at == StopAt::kDuringBackoff ||
           stop_at == StopAt::kAtTheBackoffsEnd) &&
          stop_index == k) {
        stopped = true;  // no attempt k + 1, whichever way
      }
    }

    int result = 0;
    std::exception_ptr error;
    try {
      result = loader(source.get_token());
    } catch (...) {
      error = std::current_exception();
    }
    ASSERT_EQ(attempts, expect_attempts);
    ASSERT_EQ(static_cast<int>(clock.sleeps().size()), expect_sleeps);
    if (expect_attempts == 0) {
      ASSERT_TRUE(error);
      EXPECT_THROW(std::rethrow_exception(error), Cancelled);
    } else if (outcome[expect_attempts] == 0) {
      ASSERT_FALSE(error);
      ASSERT_EQ(result, expect_attempts);
    } else {
      // The last attempt's own exception, unchanged.
      ASSERT_TRUE(error);
      try {
        std::rethrow_exception(error);
      } catch (const Transient& e) {
        EXPECT_EQ(outcome[expect_attempts], 1);
        EXPECT_EQ(e.attempt, expect_attempts);
      } catch (const Permanent& e) {
        EXPECT_EQ(outcome[expect_attempts], 2);
        EXPECT_EQ(e.attempt, expect_attempts);
      } catch (const CircuitOpen&) {
        EXPECT_EQ(outcome[expect_attempts], 3);
      }
    }
    // Every backoff lies in [ceiling * (1 - jitter), ceiling], with
    // ceiling_k = min(max_delay, initial_delay * multiplier^(k-1)).
    for (int k = 1; k <= static_cast<int>(clock.sleeps().size()); ++k) {
      const long double exact =
          static_cast<long double>(o.initial_delay.count()) *
          std::pow(static_cast<long double>(o.multiplier), k - 1);
      const int64_t ceiling =
          exact >= static_cast<long double>(o.max_delay.count())
              ? o.max_delay.count()
              : static_cast<int64_t>(exact);
      const int64_t slept = clock.sleeps()[k - 1].count();
      ASSERT_LE(slept, ceiling) << "backoff " << k;
      ASSERT_GE(slept, std::floor(ceiling * (1.0L - o.jitter)) - 1)
          << "backoff " << k;
      if (o.jitter == 0.0) {
        ASSERT_EQ(slept, ceiling);
      }
    }
  });
}

// ===========================================================================
// BoundedQueue

TEST(GuardsModel, BoundedQueueModel) {
  ForEachRun("BoundedQueueModel", [](Rng& rng) {
    const size_t capacity = Uniform(rng, 1, 4);
    BoundedQueue<std::unique_ptr<int>> q(capacity);
    std::deque<int> model;
    bool closed = false;
    int next = 0;
    const int steps = Uniform(rng, 10, 80);
    for (int step = 0; step < steps; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      const int op = Uniform(rng, 0, 9);
      if (op <= 3) {  // TryPush or PushFor(0): only if it can be done now
        auto value = std::make_unique<int>(next);
        const bool ok = OneIn(rng, 2)
                            ? q.TryPush(std::move(value))
                            : q.PushFor(std::move(value), nanoseconds::zero());
        const bool expected = !closed && model.size() < capacity;
        ASSERT_EQ(ok, expected);
        if (ok) {
          model.push_back(next++);
        } else {
          ASSERT_NE(value, nullptr);  // untouched
          ASSERT_EQ(*value, next);
        }
      } else if (op <= 7) {  // TryPop or PopFor(0)
        std::optional<std::unique_ptr<int>> v =
            OneIn(rng, 2) ? q.TryPop() : q.PopFor(std::chrono::hours::zero());
        ASSERT_EQ(v.has_value(), !model.empty());
        if (v) {
          ASSERT_EQ(**v, model.front());
          model.pop_front();
        }
      } else if (op == 8 && OneIn(rng, 4)) {
        q.Close();
        closed = true;
        ASSERT_THROW(q.Push(std::make_unique<int>(-1)), Closed);
      }
      ASSERT_EQ(q.size(), model.size());
      ASSERT_EQ(q.closed(), closed);
    }

    // Then threads: producers push their own increasing sequences through
    // Push, PushFor(max) and TryPush, consumers take through Pop and
    // PopFor(max); Close() ends it. Nothing accepted is lost or doubled,
    // and each consumer sees each producer's elements in order.
    BoundedQueue<std::pair<int, int>> shared(capacity);
    constexpr int kProducers = 3, kConsumers = 2;
    const int per_producer = Uniform(rng, 1, 60);
    std::vector<std::vector<std::pair<int, int>>> seen(kConsumers);
    {
      std::vector<std::jthread> consumers;
      for (int c = 0; c < kConsumers; ++c) {
        consumers.emplace_back([&, c, pop_for = OneIn(rng, 2)] {
          while (auto v = pop_for ? shared.PopFor(nanoseconds::max())
                                  : shared.Pop()) {
            seen[c].push_back(*v);
          }
        });
      }
      {
        std::vector<std::jthread> producers;
        for (int p = 0; p < kProducers; ++p) {
          producers.emplace_back([&, p] {
            for (int i = 0; i < per_producer; ++i) {
              switch (i % 3) {
                case 0:
                  shared.Push({p, i});
                  break;
                case 1:
                  EXPECT_TRUE(shared.PushFor({p, i}, nanoseconds::max()));
                  break;
                case 2:
                  while (!shared.TryPush({p, i})) std::this_thread::yield();
                  break;
              }
            }
          });
        }
      }
      shared.Close();
    }
    std::vector<std::vector<int>> hits(kProducers,
                                       std::vector<int>(per_producer, 0));
    for (const auto& s : seen) {
      std::vector<int> last(kProducers, -1);
      for (auto [p, i] : s) {
        ASSERT_GT(i, last[p]) << "out of order";
        last[p] = i;
        ++hits[p][i];
      }
    }
    for (int p = 0; p < kProducers; ++p) {
      for (int i = 0; i < per_producer; ++i) {
        ASSERT_EQ(hits[p][i], 1) << "element " << p << "/" << i;
      }
    }
  });
}

// ===========================================================================
// Timer

TEST(GuardsModel, TimerModel) {
  ForEachRun("TimerModel", [](Rng& rng) {
    FakeClock clock;
    // What ran, in order, and when.
    std::mutex mu;
    std::vector<std::pair<Timer::Id, TimePoint>> log;
    // The model: pending callbacks by id, with their deadlines.
    std::map<Timer::Id, TimePoint> pending;
    std::map<Timer::Id, TimePoint> deadlines;  // of every callback
    std::vector<Timer::Id> expected_log;
    Timer timer({.clock = &clock});
    auto callback = [&](Timer::Id* id_slot) {
      return [&, id_slot] {
        std::lock_guard<std::mutex> lock(mu);
        log.emplace_back(*id_slot, clock.Now());
      };
    };
    std::vector<std::unique_ptr<Timer::Id>> slots;
    // Runs every callback due by now, then checks the log against the model:
    // the due ones ran, in (deadline, id) order, none before its deadline.
    auto settle = [&] {
      std::promise<void> done;
      std::future<void> ran = done.get_future();
      timer.RunAt(clock.Now(), [&] { done.set_value(); });  // due last
      ran.wait();
      std::vector<std::pair<TimePoint, Timer::Id>> due;
      for (auto it = pending.begin(); it != pending.end();) {
        if (it->second <= clock.Now()) {
          due.emplace_back(it->second, it->first);
          it = pending.erase(it);
        } else {
          ++it;
        }
      }
      std::sort(due.begin(), due.end());
      for (auto& [deadline, id] : due) expected_log.push_back(id);
      std::lock_guard<std::mutex> lock(mu);
      ASSERT_EQ(log.size(), expected_log.size());
      for (size_t i = 0; i < log.size(); ++i) {
        ASSERT_EQ(log[i].first, expected_log[i]) << "run " << i;
      }
      ASSERT_EQ(timer.Pending(), pending.size());
    };
    const int steps = Uniform(rng, 10, 60);
    for (int step = 0; step < steps; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      const int op = Uniform(rng, 0, 9);
      if (op <= 4) {
        slots.push_back(std::make_unique<Timer::Id>(0));
        Timer::Id* slot = slots.back().get();
        // Deadlines in the past, now, soon, far, and never (max()).
        const int kind = Uniform(rng, 0, 5);
        TimePoint deadline;
        {
          // Hold the log's lock so a callback due at once cannot read its
          // slot before it is written.
          std::lock_guard<std::mutex> lock(mu);
          switch (kind) {
            case 0:
              deadline = clock.Now() - milliseconds(Uniform(rng, 1, 5));
              *slot = timer.RunAt(deadline, callback(slot));
              break;
            case 1:
              deadline = clock.Now();
              *slot = timer.RunAfter(nanoseconds::zero(), callback(slot));
              break;
            case 2:
            case 3: {
              const milliseconds d(Uniform(rng, 1, 30));
              deadline = clock.Now() + d;
              *slot = timer.RunAfter(d, callback(slot));
              break;
            }
            case 4:
              deadline = TimePoint::max();
              *slot = timer.RunAfter(nanoseconds::max(), callback(slot));
              break;
            default:
              deadline = clock.Now() + milliseconds(Uniform(rng, 0, 30));
              *slot = timer.RunAt(deadline, callback(slot));
              break;
          }
        }
        pending.emplace(*slot, deadline);
        deadlines.emplace(*slot, deadline);
      } else if (op <= 6) {  // Cancel: true iff pending
        if (slots.empty()) continue;
        const Timer::Id id = *slots[Uniform(rng, 0, slots.size() - 1)];
        const bool was_pending = pending.erase(id) == 1;
        ASSERT_EQ(timer.Cancel(id), was_pending);
      } else {
        clock.Advance(milliseconds(Uniform(rng, 0, 20)));
      }
      settle();
      if (::testing::Test::HasFailure()) break;
    }
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [id, at] : log) ASSERT_GE(at, deadlines[id]) << "ran early";
  });
}

}  // namespace
}  // namespace herd
