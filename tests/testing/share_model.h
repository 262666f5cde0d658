// Copyright 2026 The herd Authors.
//
// tests/testing/share_model.h: a model of what herd/share.h allows, and a
// driver that runs random calls against a real herd::Share and the model
// side by side, checking every result.
//
//   herd::test::ShareModel  one episode: a Share, a scripted executor, a
//                           FakeClock, and the model; Step() makes one
//                           call, Finish() drains and checks the end state
//
// Used by tests/share_model_test.cc (choices from a seeded generator) and
// fuzz/share_fuzzer.cc (choices from libFuzzer's bytes). Everything runs on
// one thread, so the model is exact: each call's result, the outcome of
// every future DoAsync returned, every ShareStats counter, InFlight(), and
// what each loader's std::stop_token reports are predicted and checked.
//
// The model, in share.h's terms. A key has at most one current flight. A
// call that finds none (or one at least max_flight_age old, which it
// detaches) starts one and runs its loader; one that finds a flight its own
// thread is executing gets RecursiveCall; one that finds another runs an
// extra execution if the flight has credits (AllowExtraExecution,
// kRerunOnNextCall) or the rate is 1, and otherwise waits. Waits would block
// this one thread, so the driver makes every call that may wait a DoFor
// with a zero timeout, which the model predicts to give WaitTimeout unless
// the flight has already ended. When an execution ends: a cancelled flight
// gives Cancelled; a flight already decided gives its outcome (shared); a
// failure decides the flight only when no other execution is running (then
// with the flight's first failure); a success decides it. DoAsync joins or
// starts a flight and its task goes to a scripted executor that runs it now
// or later, drops it, refuses it, runs then throws, or keeps then throws.
// Loaders may call back into the Share (nested calls, two levels deep).

#ifndef HERD_TESTS_TESTING_SHARE_MODEL_H_
#define HERD_TESTS_TESTING_SHARE_MODEL_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "herd/clock.h"
#include "herd/errors.h"
#include "herd/executor.h"
#include "herd/share.h"

namespace herd::test {

class ShareModel {
 public:
  // Returns a choice in [0, n), n >= 1: from a seeded generator, or from
  // fuzzer input.
  using Chooser = std::function<uint32_t(uint32_t n)>;

  struct Config {
    size_t shards = 1;
    bool extra_always = false;  // extra_execution_rate 1 (else 0)
    bool max_age = false;       // max_flight_age kMaxAge (else off)
  };

  // A Config drawn with `choose`.
  static Config DrawConfig(const Chooser& choose) {
    static constexpr size_t kShards[] = {1, 2, 16};
    Config c;
    c.shards = kShards[choose(3)];
    c.extra_always = choose(4) == 0;
    c.max_age = choose(2) == 0;
    return c;
  }

  ShareModel(Chooser choose, Config config)
      : choose_(std::move(choose)),
        config_(config),
        share_(std::make_unique<Share<int, int64_t>>(ShareOptions{
            .extra_execution_rate = config.extra_always ? 1.0 : 0.0,
            .max_flight_age = config.max_age ? std::chrono::nanoseconds(kMaxAge)
                                             : std::chrono::nanoseconds(0),
            .shards = config.shards,
            .clock = &clock_})),
        now_(clock_.Now()) {}

  ShareModel(const ShareModel&) = delete;
  ShareModel& operator=(const ShareModel&) = delete;

  ~ShareModel() {
    // Tasks still held would keep ~Share waiting: drop them first.
    pending_.clear();
    share_.reset();
  }

  // One top-level call. Returns false once a check has failed.
  bool Step() {
    if (!failure_.empty()) return false;
    RandomOp(/*depth=*/0);
    CheckObservable();
    return failure_.empty();
  }

  // Runs or drops every task still held, then checks that every flight has
  // ended, every future is ready, and nothing is left in the map.
  bool Finish() {
    while (failure_.empty() && !pending_.empty()) {
      const size_t i = pending_.size() - 1;
      if (choose_(2) == 0) {
        RunTask(i);
      } else {
        DropTask(i);
      }
      CheckObservable();
    }
    if (!failure_.empty()) return false;
    Check(current_.empty(), "flights remain with no execution left");
    for (const auto& [future, id] : futures_) {
      Check(flights_[id].done, "a flight whose tasks all ended is not done");
    }
    CheckObservable();
    return failure_.empty();
  }

  // Empty while every check has passed; else what failed, and the calls
  // that led there.
  const std::string& failure() const { return failure_; }
  size_t steps() const { return steps_; }

 private:
  static constexpr int kKeys = 4;
  static constexpr int64_t kMaxAge = 5;  // nanoseconds of the FakeClock
  static constexpr int kMaxDepth = 2;    // nesting of calls inside loaders
  static constexpr size_t kMaxTrace = 48;

  // What a call, or a future, ends with.
  struct Outcome {
    enum Kind {
      kValue,
      kLoaderError,
      kCancelled,
      kClosed,
      kExecutorError,
      kRecursive,
      kTimeout,
      kOther
    } kind = kOther;
    int64_t id = 0;  // kValue, kLoaderError: the loader that produced it
    bool operator==(const Outcome& o) const {
      return kind == o.kind &&
             (kind != kValue && kind != kLoaderError ? true : id == o.id);
    }
  };

  struct LoaderError {
    int64_t id;
  };
  struct ExecutorError : std::runtime_error {
    ExecutorError() : std::runtime_error("ShareModel: the executor threw") {}
  };

  struct Flight {
    int key = 0;
    bool in_map = true;
    bool done = false;
    bool cancelled = false;
    int running = 0;
    int credits = 0;
    std::optional<Outcome> first_error;
    Outcome outcome;
    Clock::time_point started{};
  };

  // A task the executor holds: its flight (and loader), or none for a task
  // already abandoned by a keep-then-throw.
  struct Pending {
    Task task;
    int flight;  // -1: spent
    int64_t loader;
    bool fails;
  };

  enum class ExecMode {
    kQueue,
    kInline,
    kDrop,
    kRefuse,
    kRunThenThrow,
    kKeepThenThrow
  };

  struct ModelExecutor {
    ShareModel* model;
    void Schedule(Task task) { model->Schedule(std::move(task)); }
  };

  // --- Checks. ---------------------------------------------------------------

  void Check(bool ok, const std::string& what) {
    if (ok || !failure_.empty()) return;
    failure_ = what + "\nlast calls (oldest first):\n";
    for (const std::string& t : trace_) failure_ += "  " + t + "\n";
  }

  void Trace(int depth, const std::string& what) {
    trace_.push_back(std::string(2 * depth, ' ') + what);
    if (trace_.size() > kMaxTrace) trace_.pop_front();
  }

  static std::string Describe(const Outcome& o) {
    static constexpr const char* kNames[] = {
        "value",          "loader error",  "Cancelled",   "Closed",
        "executor error", "RecursiveCall", "WaitTimeout", "other"};
    std::string s = kNames[o.kind];
    if (o.kind == Outcome::kValue || o.kind == Outcome::kLoaderError) {
      s += " " + std::to_string(o.id);
    }
    return s;
  }

  void Expect(const Outcome& got, const Outcome& want,
              const std::string& call) {
    Check(got == want, call + ": got " + Describe(got) + ", the model says " +
                           Describe(want));
  }

  // Stats, InFlight and every future, against the model.
  void CheckObservable() {
    const ShareStats s = share_->Stats();
    Check(s.calls == stats_.calls, "Stats().calls");
    Check(s.executions == stats_.executions, "Stats().executions");
    Check(s.shared == stats_.shared, "Stats().shared");
    Check(s.extra_executions == stats_.extra_executions,
          "Stats().extra_executions");
    Check(s.failures == stats_.failures, "Stats().failures");
    Check(s.cancellations == stats_.cancellations, "Stats().cancellations");
    Check(s.timeouts == stats_.timeouts, "Stats().timeouts");
    Check(share_->InFlight() == current_.size(), "InFlight()");
    for (auto it = futures_.begin(); it != futures_.end();) {
      const Flight& f = flights_[it->second];
      const bool ready = it->first.wait_for(std::chrono::seconds(0)) ==
                         std::future_status::ready;
      Check(ready == f.done, "a DoAsync future is ready iff its flight ended");
      if (ready && f.done) {
        Expect(Observe([&] { return it->first.get(); }), f.outcome,
               "a DoAsync future of key " + std::to_string(f.key));
        it = futures_.erase(it);  // checked once, for good
      } else {
        ++it;
      }
    }
  }

  template <class F>
  static Outcome Observe(F&& call) {
    try {
      return {Outcome::kValue, call()};
    } catch (const LoaderError& e) {
      return {Outcome::kLoaderError, e.id};
    } catch (const Cancelled&) {
      return {Outcome::kCancelled};
    } catch (const WaitTimeout&) {
      return {Outcome::kTimeout};
    } catch (const RecursiveCall&) {
      return {Outcome::kRecursive};
    } catch (const Closed&) {
      return {Outcome::kClosed};
    } catch (const ExecutorError&) {
      return {Outcome::kExecutorError};
    } catch (...) {
      return {Outcome::kOther};
    }
  }

  // --- The model's steps. ----------------------------------------------------

  Flight* Current(int key) {
    auto it = current_.find(key);
    return it == current_.end() ? nullptr : &flights_[it->second];
  }
  int CurrentId(int key) const { return current_.at(key); }

  bool TooOld(const Flight& f) const {
    return config_.max_age &&
           now_ - f.started >= std::chrono::nanoseconds(kMaxAge);
  }

  bool Executing(int id) const {
    for (int e : executing_) {
      if (e == id) return true;
    }
    return false;
  }

  int NewFlight(int key) {
    Flight f;
    f.key = key;
    f.running = 1;
    f.started = now_;
    flights_.push_back(f);
    const int id = static_cast<int>(flights_.size()) - 1;
    current_[key] = id;
    ++stats_.executions;
    return id;
  }

  void Unmap(Flight& f) {
    if (!f.in_map) return;
    f.in_map = false;
    current_.erase(f.key);
  }

  void Complete(Flight& f, const Outcome& o) {
    f.done = true;
    f.outcome = o;
    Unmap(f);
  }

  // The end of one execution of flight `id`; what its caller gets
  // (std::nullopt: wait for the flight).
  std::optional<Outcome> Settle(int id, const Outcome& result) {
    Flight& f = flights_[id];
    const bool failed = result.kind != Outcome::kValue;
    if (failed) ++stats_.failures;
    --f.running;
    if (f.cancelled) return Outcome{Outcome::kCancelled};
    if (f.done) return std::nullopt;
    if (failed) {
      if (!f.first_error) f.first_error = result;
      if (f.running > 0) return std::nullopt;
      Complete(f, *f.first_error);
      return *f.first_error;
    }
    Complete(f, result);
    return result;
  }

  // What a caller waiting on flight `id` with a zero timeout gets.
  Outcome AwaitNow(int id) {
    const Flight& f = flights_[id];
    if (!f.done) {
      ++stats_.timeouts;
      return {Outcome::kTimeout};
    }
    if (f.outcome.kind == Outcome::kValue) ++stats_.shared;
    return f.outcome;
  }

  // --- Loaders. --------------------------------------------------------------

  // The body of every loader: checks that the model expected this
  // execution and its token, then makes nested calls, then returns or
  // throws as it was told.
  int64_t Load(int64_t loader, bool fails, std::stop_token stop, int depth) {
    const Expected e = std::exchange(expected_, Expected{});
    if (e.runs != nullptr) ++*e.runs;
    if (e.flight < 0) {
      Check(false, "loader " + std::to_string(loader) +
                       " ran, but the model expected no execution");
      throw LoaderError{loader};
    }
    const int id = e.flight;
    Check(stop.stop_requested() == flights_[id].cancelled,
          "a loader's stop token at its start");
    executing_.push_back(id);
    if (depth < kMaxDepth) {
      const uint32_t nested = choose_(3);
      for (uint32_t i = 0; i < nested && failure_.empty(); ++i) {
        RandomOp(depth + 1);
      }
    }
    executing_.pop_back();
    Check(stop.stop_requested() == flights_[id].cancelled,
          "a loader's stop token at its end");
    if (fails) throw LoaderError{loader};
    return loader;
  }

  auto MakeLoader(int64_t loader, bool fails, int depth) {
    return [this, loader, fails, depth](std::stop_token stop) {
      return Load(loader, fails, std::move(stop), depth);
    };
  }

  // --- Calls. ----------------------------------------------------------------

  void RandomOp(int depth) {
    ++steps_;
    const int key = static_cast<int>(choose_(kKeys));
    switch (choose_(12)) {
      case 0:
      case 1:
      case 2:
        return CallDo(key, depth);
      case 3:
      case 4:
        return CallDoAsync(key, depth);
      case 5:
        if (!pending_.empty()) return RunTask(choose_(pending_.size()));
        return CallDo(key, depth);
      case 6:
        if (!pending_.empty()) return DropTask(choose_(pending_.size()));
        return CallDoAsync(key, depth);
      case 7:
        return CallForget(key, depth);
      case 8:
        return CallAllowExtraExecution(key, depth);
      case 9:
        return choose_(4) == 0 ? CallCancelAll(depth) : CallCancel(key, depth);
      case 10:
        return AdvanceClock(depth);
      default:
        return CallDo(key, depth);
    }
  }

  void CallDo(int key, int depth) {
    const int64_t loader = ++loader_ids_;
    const bool fails = choose_(3) == 0;
    const std::string call = "Do(" + std::to_string(key) + ") loader " +
                             std::to_string(loader) + (fails ? " fails" : "");
    Trace(depth, call);
    ++stats_.calls;
    // The model's lookup.
    enum { kLead, kExtra, kWait, kRecursive } role;
    int id = -1;
    if (Flight* f = Current(key)) {
      const int cur = CurrentId(key);
      if (Executing(cur)) {
        role = kRecursive;
      } else if (TooOld(*f)) {
        f->in_map = false;
        current_.erase(key);
        role = kLead;
      } else if (f->credits > 0 || config_.extra_always) {
        role = kExtra;
        id = cur;
        if (f->credits > 0) --f->credits;
        ++f->running;
        ++stats_.executions;
        ++stats_.extra_executions;
      } else {
        role = kWait;
        id = cur;
      }
    } else {
      role = kLead;
    }
    if (role == kLead) id = NewFlight(key);
    // A call that may wait is made with a zero timeout; the others with a
    // timeout that must not matter.
    const bool may_wait = role == kWait || role == kExtra;
    const uint32_t timeout_kind = may_wait ? 0 : choose_(4);
    int runs = 0;
    expected_ = {(role == kLead || role == kExtra) ? id : -1, &runs};
    CallInfo info;
    const Outcome got = Observe([&] {
      auto load = MakeLoader(loader, fails, depth);
      switch (timeout_kind) {
        case 0:
          if (may_wait) {
            return share_->DoFor(key, std::chrono::nanoseconds(0), load, &info);
          }
          return share_->Do(key, load, &info);
        case 1:
          return share_->DoFor(key, std::chrono::nanoseconds::max(), load,
                               &info);
        case 2:
          return share_->DoFor(key, std::chrono::nanoseconds(0), load, &info);
        default:
          return share_->DoFor(key, std::chrono::hours(1), load, &info);
      }
    });
    const bool executed = role == kLead || role == kExtra;
    expected_ = Expected{};
    Check(runs == (executed ? 1 : 0),
          call + ": the loader ran " + std::to_string(runs) + " times");
    Outcome want;
    bool shared = false;
    switch (role) {
      case kRecursive:
        want = {Outcome::kRecursive};
        break;
      case kWait:
        want = AwaitNow(id);
        shared = want.kind == Outcome::kValue;
        break;
      case kLead:
      case kExtra: {
        const Outcome own = fails ? Outcome{Outcome::kLoaderError, loader}
                                  : Outcome{Outcome::kValue, loader};
        if (std::optional<Outcome> r = Settle(id, own)) {
          want = *r;
        } else {
          want = AwaitNow(id);
          shared = want.kind == Outcome::kValue;
        }
        break;
      }
    }
    Expect(got, want, call);
    if (got.kind == Outcome::kValue) {
      Check(info.executed == executed, call + ": CallInfo::executed");
      Check(info.shared == shared, call + ": CallInfo::shared");
    }
  }

  void Schedule(Task task) {
    switch (mode_) {
      case ExecMode::kQueue:
        pending_.push_back({std::move(task), scheduling_flight_,
                            scheduling_loader_, scheduling_fails_});
        return;
      case ExecMode::kInline:
        std::move(task)();
        return;
      case ExecMode::kDrop:
        return;  // `task` is destroyed unrun
      case ExecMode::kRefuse:
        throw ExecutorError();
      case ExecMode::kRunThenThrow:
        std::move(task)();
        throw ExecutorError();
      case ExecMode::kKeepThenThrow:
        pending_.push_back({std::move(task), -1, 0, false});
        throw ExecutorError();
    }
  }

  void CallDoAsync(int key, int depth) {
    const int64_t loader = ++loader_ids_;
    const bool fails = choose_(3) == 0;
    const ExecMode mode = static_cast<ExecMode>(choose_(6));
    static constexpr const char* kModes[] = {
        "queue",  "inline",         "drop",
        "refuse", "run-then-throw", "keep-then-throw"};
    const std::string call = "DoAsync(" + std::to_string(key) + ") loader " +
                             std::to_string(loader) + (fails ? " fails" : "") +
                             ", executor " + kModes[static_cast<int>(mode)];
    Trace(depth, call);
    ++stats_.calls;
    int id = -1;
    bool joins = false;
    if (Flight* f = Current(key); f != nullptr && !TooOld(*f)) {
      id = CurrentId(key);
      joins = true;
    } else {
      if (f != nullptr) {
        f->in_map = false;
        current_.erase(key);
      }
      id = NewFlight(key);
    }
    const bool runs = !joins && (mode == ExecMode::kInline ||
                                 mode == ExecMode::kRunThenThrow);
    int ran = 0;
    expected_ = {runs ? id : -1, &ran};
    const ExecMode saved_mode = mode_;
    mode_ = mode;
    scheduling_flight_ = id;
    scheduling_loader_ = loader;
    scheduling_fails_ = fails;
    ModelExecutor executor{this};
    std::shared_future<int64_t> future;
    const Outcome got = Observe([&] {
      future = share_->DoAsync(key, MakeLoader(loader, fails, depth), executor);
      return int64_t{0};
    });
    mode_ = saved_mode;
    expected_ = Expected{};
    Check(ran == (runs ? 1 : 0),
          call + ": the loader ran " + std::to_string(ran) + " times");
    Outcome want{Outcome::kValue, 0};  // returned a future
    if (!joins) {
      const Outcome own = fails ? Outcome{Outcome::kLoaderError, loader}
                                : Outcome{Outcome::kValue, loader};
      switch (mode) {
        case ExecMode::kQueue:
          break;
        case ExecMode::kInline:
          Settle(id, own);
          break;
        case ExecMode::kDrop:
          Settle(id, {Outcome::kClosed});
          break;
        case ExecMode::kRefuse:
        case ExecMode::kKeepThenThrow:
          Settle(id, {Outcome::kExecutorError});
          want = {Outcome::kExecutorError};
          break;
        case ExecMode::kRunThenThrow:
          Settle(id, own);
          want = {Outcome::kExecutorError};
          break;
      }
    }
    Expect(got, want, call);
    if (got.kind == Outcome::kValue && future.valid()) {
      futures_.emplace_back(std::move(future), id);
    }
  }

  void RunTask(size_t i) {
    Pending p = std::move(pending_[i]);
    pending_.erase(pending_.begin() + static_cast<ptrdiff_t>(i));
    const std::string call =
        p.flight < 0 ? std::string("run a spent task")
                     : "run the task of loader " + std::to_string(p.loader);
    Trace(0, call);
    int runs = 0;
    expected_ = {p.flight, &runs};
    std::move(p.task)();
    expected_ = Expected{};
    Check(runs == (p.flight < 0 ? 0 : 1),
          call + ": the loader ran " + std::to_string(runs) + " times");
    if (p.flight >= 0) {
      Settle(p.flight, p.fails ? Outcome{Outcome::kLoaderError, p.loader}
                               : Outcome{Outcome::kValue, p.loader});
    }
  }

  void DropTask(size_t i) {
    Pending p = std::move(pending_[i]);
    pending_.erase(pending_.begin() + static_cast<ptrdiff_t>(i));
    Trace(0, p.flight < 0
                 ? std::string("drop a spent task")
                 : "drop the task of loader " + std::to_string(p.loader));
    int runs = 0;
    expected_ = {-1, &runs};
    { Task dropped = std::move(p.task); }
    expected_ = Expected{};
    Check(runs == 0, "a dropped task ran its loader");
    if (p.flight >= 0) Settle(p.flight, {Outcome::kClosed});
  }

  void CallForget(int key, int depth) {
    const bool rerun = choose_(2) == 0;
    Trace(depth, "Forget(" + std::to_string(key) +
                     (rerun ? ", kRerunOnNextCall)" : ", kDetach)"));
    Flight* f = Current(key);
    const bool got = share_->Forget(
        key, rerun ? ForgetMode::kRerunOnNextCall : ForgetMode::kDetach);
    Check(got == (f != nullptr), "Forget's result");
    if (f == nullptr) return;
    if (rerun) {
      if (f->credits == 0) f->credits = 1;
    } else {
      f->in_map = false;
      current_.erase(key);
    }
  }

  void CallAllowExtraExecution(int key, int depth) {
    Trace(depth, "AllowExtraExecution(" + std::to_string(key) + ")");
    Flight* f = Current(key);
    Check(share_->AllowExtraExecution(key) == (f != nullptr),
          "AllowExtraExecution's result");
    if (f != nullptr) ++f->credits;
  }

  void CancelModel(Flight& f) {
    f.cancelled = true;
    ++stats_.cancellations;
    Complete(f, {Outcome::kCancelled});
  }

  void CallCancel(int key, int depth) {
    Trace(depth, "Cancel(" + std::to_string(key) + ")");
    Flight* f = Current(key);
    Check(share_->Cancel(key) == (f != nullptr), "Cancel's result");
    if (f != nullptr) CancelModel(*f);
  }

  void CallCancelAll(int depth) {
    Trace(depth, "CancelAll()");
    std::vector<int> ids;
    for (const auto& [key, id] : current_) ids.push_back(id);
    Check(share_->CancelAll() == ids.size(), "CancelAll's result");
    for (int id : ids) CancelModel(flights_[id]);
  }

  void AdvanceClock(int depth) {
    const auto d = std::chrono::nanoseconds(1 + choose_(kMaxAge + 1));
    Trace(depth, "advance the clock " + std::to_string(d.count()) + "ns");
    clock_.Advance(d);
    now_ += d;
  }

  const Chooser choose_;
  const Config config_;
  FakeClock clock_;
  std::unique_ptr<Share<int, int64_t>> share_;

  // The model.
  Clock::time_point now_;
  std::deque<Flight> flights_;  // every flight, by id (stable addresses)
  std::map<int, int> current_;  // key -> its current flight
  std::vector<int> executing_;  // flights whose loader runs, innermost last
  ShareStats stats_;
  // The execution the next loader to start is for (none: flight < 0), and
  // where it counts that it ran. Set by each call around the real call.
  struct Expected {
    int flight = -1;
    int* runs = nullptr;
  };
  Expected expected_;

  // The executor's state.
  ExecMode mode_ = ExecMode::kQueue;
  int scheduling_flight_ = -1;
  int64_t scheduling_loader_ = 0;
  bool scheduling_fails_ = false;
  std::vector<Pending> pending_;
  std::vector<std::pair<std::shared_future<int64_t>, int>> futures_;

  int64_t loader_ids_ = 0;
  size_t steps_ = 0;
  std::deque<std::string> trace_;
  std::string failure_;
};

}  // namespace herd::test

#endif  // HERD_TESTS_TESTING_SHARE_MODEL_H_
