// Copyright 2026 The herd Authors.

#include "herd/circuit_breaker.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace herd {

namespace {

const CircuitBreakerOptions& Validate(const CircuitBreakerOptions& o) {
  if (o.failure_threshold < 1) {
    throw std::invalid_argument(
        "herd::CircuitBreaker: failure_threshold must be >= 1");
  }
  if (o.window_size < 0) {
    throw std::invalid_argument(
        "herd::CircuitBreaker: window_size must be >= 0");
  }
  if (o.window_size > 0 && !(o.failure_ratio > 0.0 && o.failure_ratio <= 1.0)) {
    throw std::invalid_argument(
        "herd::CircuitBreaker: failure_ratio must be in (0, 1]");
  }
  if (o.open_duration <= Clock::duration::zero()) {
    throw std::invalid_argument(
        "herd::CircuitBreaker: open_duration must be > 0");
  }
  if (o.half_open_trials < 1) {
    throw std::invalid_argument(
        "herd::CircuitBreaker: half_open_trials must be >= 1");
  }
  return o;
}

}  // namespace

CircuitBreaker::CircuitBreaker(CircuitBreakerOptions options)
    : options_(Validate(options)),
      clock_(options_.clock != nullptr ? *options_.clock : Clock::Steady()),
      window_failure_threshold_(std::max(
          1, static_cast<int>(std::ceil(
                 options_.failure_ratio * options_.window_size - 1e-9)))) {
  internal::MutexLock lock(&mu_);
  window_.assign(options_.window_size, false);
  last_now_ = clock_.Now();
}

CircuitBreaker::CircuitBreaker() : CircuitBreaker(CircuitBreakerOptions()) {}

Clock::time_point CircuitBreaker::ReadClock() {
  last_now_ = clock_.Now();
  return last_now_;
}

bool CircuitBreaker::OpenPeriodOver(Clock::time_point now) const {
  // opened_at_ <= now: it was read from the same monotonic clock (or is
  // an earlier reading, last_now_), so the difference cannot overflow.
  return state_ == State::kOpen && now - opened_at_ >= options_.open_duration;
}

std::optional<CircuitBreaker::Ticket> CircuitBreaker::TryAdmit() {
  internal::MutexLock lock(&mu_);
  // Reading the clock is the only step that can throw, and it comes first.
  if (state_ == State::kOpen) Refresh(ReadClock());
  switch (state_) {
    case State::kClosed:
      return Ticket(generation_, /*trial=*/false);
    case State::kHalfOpen:
      if (trials_admitted_ < options_.half_open_trials) {
        ++trials_admitted_;
        return Ticket(generation_, /*trial=*/true);
      }
      break;
    case State::kOpen:
      break;
  }
  ++rejected_;
  return std::nullopt;
}

void CircuitBreaker::Record(const Ticket& ticket, bool failed) noexcept {
  internal::MutexLock lock(&mu_);
  if (ticket.generation_ != generation_) return;  // admitted in another state
  if (ticket.trial_) {
    // state_ is kHalfOpen: a generation is only ever one state.
    if (failed) {
      Open(NowOrLast());
    } else if (++trials_succeeded_ == options_.half_open_trials) {
      Close();
    }
    return;
  }
  if (RecordClosed(failed)) Open(NowOrLast());
}

bool CircuitBreaker::RecordClosed(bool failed) {
  if (options_.window_size == 0) {
    consecutive_failures_ = failed ? consecutive_failures_ + 1 : 0;
    return consecutive_failures_ >= options_.failure_threshold;
  }
  const int n = options_.window_size;
  if (window_count_ == n) {
    window_failures_ -= window_[window_next_] ? 1 : 0;
  } else {
    ++window_count_;
  }
  window_[window_next_] = failed;
  window_failures_ += failed ? 1 : 0;
  window_next_ = (window_next_ + 1) % n;
  return window_count_ == n && window_failures_ >= window_failure_threshold_;
}

Clock::time_point CircuitBreaker::NowOrLast() noexcept {
  try {
    return ReadClock();
  } catch (...) {
    return last_now_;  // see the header: opens as of the last reading
  }
}

void CircuitBreaker::Refresh(Clock::time_point now) {
  if (OpenPeriodOver(now)) {
    state_ = State::kHalfOpen;
    ++generation_;
    trials_admitted_ = 0;
    trials_succeeded_ = 0;
  }
}

void CircuitBreaker::Open(Clock::time_point now) {
  state_ = State::kOpen;
  ++generation_;
  opened_at_ = now;
}

void CircuitBreaker::Close() {
  state_ = State::kClosed;
  ++generation_;
  consecutive_failures_ = 0;
  window_.assign(options_.window_size, false);
  window_next_ = 0;
  window_count_ = 0;
  window_failures_ = 0;
}

bool CircuitBreaker::IsFailure(const std::exception_ptr& e) const {
  if (options_.is_failure) return options_.is_failure(e);
  try {
    std::rethrow_exception(e);
  } catch (const Cancelled&) {
    return false;  // the caller gave up; the dependency did not fail
  } catch (...) {
    return true;
  }
}

CircuitBreaker::State CircuitBreaker::state() const {
  internal::MutexLock lock(&mu_);
  if (state_ == State::kOpen && OpenPeriodOver(clock_.Now())) {
    return State::kHalfOpen;
  }
  return state_;
}

std::int64_t CircuitBreaker::rejected() const {
  internal::MutexLock lock(&mu_);
  return rejected_;
}

std::string_view ToString(CircuitBreaker::State state) {
  switch (state) {
    case CircuitBreaker::State::kClosed:
      return "closed";
    case CircuitBreaker::State::kOpen:
      return "open";
    case CircuitBreaker::State::kHalfOpen:
      return "half-open";
  }
  return "unknown";
}

}  // namespace herd
