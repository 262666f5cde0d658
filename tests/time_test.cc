// Copyright 2026 The herd Authors.
//
// Tests herd/internal/time.h: deadline arithmetic saturates at the ends of
// a clock's range, so that duration::max() means "no limit".

#include "herd/internal/time.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "gtest/gtest.h"

namespace herd::internal {
namespace {

using std::chrono::duration;
using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using Steady = std::chrono::steady_clock;

TEST(SaturatingCast, RoundsUp) {
  EXPECT_EQ(SaturatingCast<milliseconds>(microseconds(1)), milliseconds(1));
  EXPECT_EQ(SaturatingCast<milliseconds>(microseconds(1000)),
            milliseconds(1));
  EXPECT_EQ(SaturatingCast<milliseconds>(microseconds(0)), milliseconds(0));
  EXPECT_EQ(SaturatingCast<nanoseconds>(duration<double>(1.5e-9)),
            nanoseconds(2));
}

TEST(SaturatingCast, ClampsAtTheEndsOfTheRange) {
  EXPECT_EQ(SaturatingCast<nanoseconds>(hours::max()), nanoseconds::max());
  EXPECT_EQ(SaturatingCast<nanoseconds>(hours::min()), nanoseconds::min());
  EXPECT_EQ(SaturatingCast<nanoseconds>(seconds::max()), nanoseconds::max());
  EXPECT_EQ(SaturatingCast<nanoseconds>(nanoseconds::max()),
            nanoseconds::max());
  EXPECT_EQ(SaturatingCast<nanoseconds>(
                duration<double>(std::numeric_limits<double>::infinity())),
            nanoseconds::max());
  EXPECT_EQ(SaturatingCast<nanoseconds>(
                duration<double>(std::numeric_limits<double>::quiet_NaN())),
            nanoseconds::max());
}

TEST(SaturatingAdd, AddsWithinRange) {
  const Steady::time_point t(seconds(100));
  EXPECT_EQ(SaturatingAdd(t, seconds(5)), t + seconds(5));
  EXPECT_EQ(SaturatingAdd(t, nanoseconds(0)), t);
  EXPECT_EQ(SaturatingAdd(t, seconds(-5)), t - seconds(5));
}

TEST(SaturatingAdd, DurationMaxIsTheEndOfTime) {
  const Steady::time_point t(seconds(100));
  EXPECT_EQ(SaturatingAdd(t, nanoseconds::max()), Steady::time_point::max());
  EXPECT_EQ(SaturatingAdd(t, hours::max()), Steady::time_point::max());
  EXPECT_EQ(SaturatingAdd(t, milliseconds::max()), Steady::time_point::max());
  EXPECT_EQ(SaturatingAdd(t, hours::min()), Steady::time_point::min());
  EXPECT_EQ(SaturatingAdd(Steady::time_point::max(), nanoseconds(1)),
            Steady::time_point::max());
}

TEST(SaturatingAdd, ExactlyAtTheEdge) {
  const Steady::time_point t(seconds(100));
  const nanoseconds room = Steady::time_point::max() - t;
  EXPECT_EQ(SaturatingAdd(t, room - nanoseconds(1)),
            Steady::time_point::max() - nanoseconds(1));
  EXPECT_EQ(SaturatingAdd(t, room), Steady::time_point::max());
}

TEST(DeadlineAfter, NoneWhenBeyondTheClock) {
  const Steady::time_point t(seconds(100));
  EXPECT_EQ(DeadlineAfter(t, seconds(1)), t + seconds(1));
  EXPECT_FALSE(DeadlineAfter(t, nanoseconds::max()).has_value());
  EXPECT_FALSE(DeadlineAfter(t, hours::max()).has_value());
  EXPECT_EQ(DeadlineAfter(t, nanoseconds(0)), t);
}

TEST(CheckTimeout, RejectsNegativeAndNaN) {
  EXPECT_EQ(CheckTimeout(seconds(0), "f"), seconds(0));
  EXPECT_EQ(CheckTimeout(hours::max(), "f"), hours::max());
  EXPECT_THROW(CheckTimeout(nanoseconds(-1), "f"), std::invalid_argument);
  EXPECT_THROW(
      CheckTimeout(duration<double>(std::nan("")), "herd::Thing::Wait"),
      std::invalid_argument);
  try {
    CheckTimeout(seconds(-1), "herd::Thing::Wait");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("herd::Thing::Wait"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace herd::internal
