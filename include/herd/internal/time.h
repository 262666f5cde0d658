// Copyright 2026 The herd Authors.
//
// herd/internal/time.h: deadline arithmetic that saturates instead of
// overflowing. Every herd call that turns a timeout into a deadline goes
// through these, so that duration::max() (and any timeout past the end of
// the clock's range) means "no limit", as it does to users of std::chrono.
//
//   herd::internal::SaturatingCast<To>(d)  d as To, rounded up, clamped
//   herd::internal::SaturatingAdd(t, d)    t + d, clamped to the clock's range
//   herd::internal::DeadlineAfter(t, d)    t + d, or nullopt when that lies
//                                          beyond the clock's range
//   herd::internal::CheckTimeout(d, who)   throws for negative or NaN timeouts
//
// Thread safety: stateless.

#ifndef HERD_INTERNAL_TIME_H_
#define HERD_INTERNAL_TIME_H_

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>

namespace herd::internal {

// `d` converted to the duration type To, rounded up (a timeout never becomes
// shorter), clamped to [To::min(), To::max()]. A NaN converts to To::max().
template <class To, class Rep, class Period>
constexpr To SaturatingCast(std::chrono::duration<Rep, Period> d) {
  // Compared in long double: its 64-bit mantissa holds every int64 tick
  // count exactly, and hours::max() fits its range.
  using Wide = std::chrono::duration<long double, typename To::period>;
  const Wide wide = std::chrono::duration_cast<Wide>(d);
  if (!(wide < Wide(To::max()))) return To::max();  // NaN too
  if (!(wide > Wide(To::min()))) return To::min();
  return std::chrono::ceil<To>(wide);
}

// t + d, clamped to the range of t's clock: a deadline `d` from `t` that the
// clock cannot represent is time_point::max() (or min() for a huge negative
// d). A NaN d gives max().
template <class Clock, class Dur, class Rep, class Period>
constexpr std::chrono::time_point<Clock, Dur> SaturatingAdd(
    std::chrono::time_point<Clock, Dur> t,
    std::chrono::duration<Rep, Period> d) {
  using TimePoint = std::chrono::time_point<Clock, Dur>;
  using Wide = std::chrono::duration<long double, typename Dur::period>;
  const Wide wide = std::chrono::duration_cast<Wide>(d);
  const Wide room_up = Wide(TimePoint::max().time_since_epoch()) -
                       Wide(t.time_since_epoch());
  const Wide room_down = Wide(TimePoint::min().time_since_epoch()) -
                         Wide(t.time_since_epoch());
  if (!(wide < room_up)) return TimePoint::max();  // NaN too
  if (!(wide > room_down)) return TimePoint::min();
  return t + std::chrono::ceil<Dur>(wide);
}

// t + d, or nullopt when the sum lies at or past the end of the clock's
// range: a wait with that "deadline" has no limit. REQUIRES: d is not
// negative (see CheckTimeout).
template <class Clock, class Dur, class Rep, class Period>
constexpr std::optional<std::chrono::time_point<Clock, Dur>> DeadlineAfter(
    std::chrono::time_point<Clock, Dur> t,
    std::chrono::duration<Rep, Period> d) {
  const auto deadline = SaturatingAdd(t, d);
  if (deadline == std::chrono::time_point<Clock, Dur>::max()) {
    return std::nullopt;
  }
  return deadline;
}

// Throws std::invalid_argument, naming `who`, if `d` is negative or NaN.
// Returns `d`.
template <class Rep, class Period>
std::chrono::duration<Rep, Period> CheckTimeout(
    std::chrono::duration<Rep, Period> d, const char* who) {
  if (!(d >= d.zero())) {  // false for NaN too
    throw std::invalid_argument(std::string(who) +
                                ": timeout must be >= 0 and not NaN");
  }
  return d;
}

}  // namespace herd::internal

#endif  // HERD_INTERNAL_TIME_H_
