// Copyright 2026 The herd Authors.
//
// tests/conformance/conformance.h: what the conformance tests share beyond
// tests/testing/ (Gate, HeldLoad, RecordingClock, the scripted executors),
// which they also use. Like those, built only on herd's public headers and
// the standard library, as a user who reads include/herd/*.h and nothing
// else would write them.
//
//   kHang              how long a handshake may take before it is a hang
//   Await(done)        yields until done() holds; fails the test (and
//                      returns false) after kHang
//   Payload            an exception type whose payload a test can check
//   ObjectOf(e)        the address of the Payload an exception_ptr holds

#ifndef HERD_TESTS_CONFORMANCE_CONFORMANCE_H_
#define HERD_TESTS_CONFORMANCE_CONFORMANCE_H_

#include <chrono>
#include <exception>
#include <stdexcept>
#include <thread>

#include "gtest/gtest.h"

namespace herd::conformance {

// Far above any legitimate wait (they are all immediate once the other side
// acts), so it bounds a broken run without ever deciding a correct one.
inline constexpr std::chrono::seconds kHang{60};

// Blocks until `done()` holds, for conditions the code under test makes
// true by itself (a counter reaching N) and no handshake can announce.
// Returns false, with a test failure, if that takes longer than kHang.
template <class Pred>
[[nodiscard]] bool Await(Pred done) {
  const auto give_up = std::chrono::steady_clock::now() + kHang;
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) {
      ADD_FAILURE() << "condition not reached within " << kHang.count() << " s";
      return false;
    }
    std::this_thread::yield();
  }
  return true;
}

// An exception whose payload says which call threw it.
struct Payload : std::runtime_error {
  explicit Payload(int v) : std::runtime_error("payload"), value(v) {}
  int value;
};

// The address of the Payload `e` holds, or nullptr: a test compares it
// with the address of what it caught to check "the same object".
inline const void* ObjectOf(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const Payload& p) {
    return &p;
  } catch (...) {
    return nullptr;
  }
}

}  // namespace herd::conformance

#endif  // HERD_TESTS_CONFORMANCE_CONFORMANCE_H_
