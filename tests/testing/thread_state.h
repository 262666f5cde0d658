// Copyright 2026 The herd Authors.
//
// tests/testing/thread_state.h: whether a thread is blocked, from Linux's
// /proc, for the waits no handshake can announce (a thread blocked inside
// a condition variable wait of the code under test).
//
//   ThisThreadId()            the calling thread's kernel id
//   AwaitAsleep(tid, done)    until thread `tid` sleeps in the kernel, or
//                             done() holds (it finished instead)

#ifndef HERD_TESTS_TESTING_THREAD_STATE_H_
#define HERD_TESTS_TESTING_THREAD_STATE_H_

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace herd::test {

inline pid_t ThisThreadId() {
  return static_cast<pid_t>(::syscall(SYS_gettid));
}

// The scheduler state of thread `tid` of this process ('R' running, 'S'
// asleep in an interruptible wait such as a futex, ...), or 0 if it is gone.
inline char ThreadState(pid_t tid) {
  std::ifstream stat("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return 0;
  // "tid (comm) S ...": the state follows the last ')'.
  const std::string::size_type paren = line.rfind(')');
  if (paren == std::string::npos || paren + 2 >= line.size()) return 0;
  return line[paren + 2];
}

// Blocks until thread `tid` is asleep ('S') or `done()` holds. Use it only
// where the thread's next kernel sleep is the wait under test.
template <class Done>
void AwaitAsleep(pid_t tid, Done done) {
  while (ThreadState(tid) != 'S' && !done()) std::this_thread::yield();
}

}  // namespace herd::test

#endif  // HERD_TESTS_TESTING_THREAD_STATE_H_
