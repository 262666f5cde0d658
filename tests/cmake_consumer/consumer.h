// Copyright 2026 The herd Authors.
//
// What every consumer program shares: Check() records a failed expectation,
// Finish() prints "<program>: ok" or what failed and returns the exit
// status. Only the standard library: each program links one herd target.

#ifndef HERD_TESTS_CMAKE_CONSUMER_CONSUMER_H_
#define HERD_TESTS_CMAKE_CONSUMER_CONSUMER_H_

#include <cstdio>

namespace consumer {

inline int& Failures() {
  static int failures = 0;
  return failures;
}

inline void Check(bool ok, const char* what) {
  if (!ok) {
    std::printf("FAILED: %s\n", what);
    ++Failures();
  }
}

inline int Finish(const char* program) {
  if (Failures() != 0) {
    std::printf("%s: FAILED\n", program);
    return 1;
  }
  std::printf("%s: ok\n", program);
  return 0;
}

}  // namespace consumer

#endif  // HERD_TESTS_CMAKE_CONSUMER_CONSUMER_H_
