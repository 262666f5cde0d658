// Copyright 2026 The herd Authors.
//
// herd/internal/mutex.h: a std::mutex that clang's -Wthread-safety analysis
// understands.
//
// herd's components lock with std::mutex rather than absl::Mutex: the
// standard mutex is a plain futex with no deadlock detector on the hot path,
// and ThreadSanitizer sees it even when Abseil was built without
// -fsanitize=thread (as Debian's is). The wrapper only adds the capability
// annotations.

#ifndef HERD_INTERNAL_MUTEX_H_
#define HERD_INTERNAL_MUTEX_H_

#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"

namespace herd::internal {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  bool TryLock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) { return mu_.try_lock(); }

  // For std::condition_variable waits. The caller must hold the lock.
  std::mutex& native() { return mu_; }

 private:
  std::mutex mu_;
};

// RAII lock, as absl::MutexLock.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }

 private:
  Mutex* const mu_;
};

// Waits on `cv` with `mu` held (as it must be on entry and is on return).
// Lets annotated code use std::condition_variable without losing the
// analysis: the lock is never observably released to the caller.
inline void Wait(std::condition_variable& cv, Mutex& mu)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
  std::unique_lock<std::mutex> lock(mu.native(), std::adopt_lock);
  cv.wait(lock);
  lock.release();
}

template <class TimePoint>
std::cv_status WaitUntil(std::condition_variable& cv, Mutex& mu,
                         const TimePoint& deadline)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
  std::unique_lock<std::mutex> lock(mu.native(), std::adopt_lock);
  std::cv_status status = cv.wait_until(lock, deadline);
  lock.release();
  return status;
}

}  // namespace herd::internal

#endif  // HERD_INTERNAL_MUTEX_H_
