// Copyright 2026 The herd Authors.
//
// third_party/tsan.supp: the false positives it exists for stay suppressed.
// Under ThreadSanitizer (CMake preset tsan, Bazel --config=tsan) a report
// fails the test program; in other builds this only checks what each
// thread caught.
//
// The pattern is herd's own: several callers catch one exception that a
// loader threw (Share and LoadingCache hand every waiter the same
// std::exception_ptr), read it, and the last one to let go destroys it
// inside uninstrumented libstdc++. With clang 14 the report for a
// std::runtime_error, whose message libstdc++ frees with operator delete,
// has `operator delete` as its top frame; `called_from_lib:libstdc++.so`
// covers it, without hiding the deletes herd's own code makes. (Every herd
// exception is a std::runtime_error. An exception type whose own, inline
// destructor frees memory, such as a struct with a std::string member, is
// destroyed by instrumented code and still draws a false report: see
// third_party/tsan.supp.)

#include <cstring>
#include <exception>
#include <latch>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace {

constexpr int kThreads = 3;
constexpr int kRounds = 100;

// Rethrows copies of one exception_ptr on kThreads threads at once; returns
// the length of the message each caught.
template <class E>
std::vector<size_t> CatchOnEveryThread(const std::string& message) {
  std::exception_ptr error = std::make_exception_ptr(E(message));
  std::vector<size_t> lengths(kThreads, 0);
  std::latch go(1);
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([copy = error, &lengths, &go, i]() mutable {
        go.wait();
        try {
          std::rethrow_exception(copy);
        } catch (const std::exception& e) {
          lengths[i] = std::strlen(e.what());
        }
        copy = nullptr;  // the last one destroys the exception, in libstdc++
      });
    }
    error = nullptr;
    go.count_down();
  }
  return lengths;
}

std::string Message(int round) {
  return "the loader failed, and this message is long enough for the heap: " +
         std::to_string(round);
}

TEST(TsanSuppressions, RuntimeErrorSharedByThreads) {
  for (int round = 0; round < kRounds; ++round) {
    const std::string message = Message(round);
    EXPECT_EQ(CatchOnEveryThread<std::runtime_error>(message),
              std::vector<size_t>(kThreads, message.size()));
  }
}

}  // namespace
