// Copyright 2026 The herd Authors.
//
// herd/errors.h: the exceptions herd throws for its own refusals.
//
//   herd::Error            base of every herd exception (a std::runtime_error)
//   herd::Cancelled        the flight was cancelled (Share::Cancel, CancelAll)
//   herd::WaitTimeout      a caller's wait on someone else's flight timed out
//   herd::RecursiveCall    a loader asked its own Share for its own key
//   herd::Closed           a queue or pool no longer accepts work, or an
//                          executor destroyed a task unrun
//   herd::CircuitOpen      a circuit breaker refused the call
//   herd::DeadlineExceeded a loader ran past its deadline
//   herd::LimitExceeded    no concurrency permit came within the allowed wait
//
// Exceptions thrown by user loaders are never wrapped: every caller receives
// the loader's own exception object, type and payload intact. Invalid
// arguments (a rate outside [0, 1], a negative timeout, an empty loader) are
// reported with std::invalid_argument, as the standard library does.

#ifndef HERD_ERRORS_H_
#define HERD_ERRORS_H_

#include <stdexcept>
#include <string>

namespace herd {

// Base class of every exception herd itself throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The flight a caller was part of was cancelled before it produced a result.
class Cancelled : public Error {
 public:
  Cancelled() : Error("herd: flight cancelled") {}
  using Error::Error;
};

// A caller gave up waiting on another caller's flight; the flight goes on.
class WaitTimeout : public Error {
 public:
  WaitTimeout() : Error("herd: timed out waiting for a shared result") {}
  using Error::Error;
};

// A loader called back into the Share that is running it, for the same key,
// on the same thread. Waiting would deadlock, so the call fails instead.
class RecursiveCall : public Error {
 public:
  RecursiveCall() : Error("herd: recursive call for a key this thread is loading") {}
  using Error::Error;
};

// A queue or pool has been closed and accepts no more work (BoundedQueue
// ::Push, ThreadPool::Schedule), or an executor destroyed a task without
// running it (the task's callers get this: Share::DoAsync, LoadingCache's
// refreshes; see herd/executor.h).
class Closed : public Error {
 public:
  Closed() : Error("herd: closed") {}
  using Error::Error;
};

// A circuit breaker is open and refused the call without running it.
class CircuitOpen : public Error {
 public:
  CircuitOpen() : Error("herd: circuit open") {}
  using Error::Error;
};

// A loader did not finish before its deadline (herd::WithDeadline).
class DeadlineExceeded : public Error {
 public:
  DeadlineExceeded() : Error("herd: deadline exceeded") {}
  using Error::Error;
};

// No permit of a herd::ConcurrencyLimiter came within the allowed wait.
class LimitExceeded : public Error {
 public:
  LimitExceeded() : Error("herd: concurrency limit reached") {}
  using Error::Error;
};

}  // namespace herd

#endif  // HERD_ERRORS_H_
