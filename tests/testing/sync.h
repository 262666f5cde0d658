// Copyright 2026 The herd Authors.
//
// tests/testing/sync.h: ordering helpers for herd's concurrency tests.
//
//   Gate                a door that loaders wait behind until the test opens it
//   AwaitCondition(f)   yields until f() holds
//   AwaitCalls(s, n)    until a Share has counted n calls (joined or started)

#ifndef HERD_TESTS_TESTING_SYNC_H_
#define HERD_TESTS_TESTING_SYNC_H_

#include <cstdint>
#include <future>
#include <thread>

namespace herd::test {

// Any number of threads Wait() until the test calls Open() (once). Built on
// std::promise rather than absl::Notification: Debian's Abseil is not built
// for ThreadSanitizer, which would then report the hand-over as a race.
class Gate {
 public:
  Gate() : opened_(promise_.get_future().share()) {}
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;

  void Open() { promise_.set_value(); }
  void Wait() const { opened_.wait(); }

 private:
  std::promise<void> promise_;
  std::shared_future<void> opened_;
};

// Blocks until `done()` holds. Only for conditions that the code under test
// makes true by itself (a counter reaching N) and that no handshake can
// announce, never as a timing guess.
template <class Pred>
void AwaitCondition(Pred done) {
  while (!done()) std::this_thread::yield();
}

// Until `share` (a herd::Share, or anything with Stats().calls) has counted
// `n` calls: Share counts a call once it has joined or started a flight.
template <class S>
void AwaitCalls(const S& share, uint64_t n) {
  AwaitCondition([&] { return share.Stats().calls >= n; });
}

}  // namespace herd::test

#endif  // HERD_TESTS_TESTING_SYNC_H_
