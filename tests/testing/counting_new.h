// Copyright 2026 The herd Authors.
//
// tests/testing/counting_new.h: replaces the global operator new and delete
// with versions that count calls and can be told to fail, for tests and
// tools that count heap allocations or inject allocation failures
// (tests/share_alloc_test.cc, tests/share_fault_test.cc,
// benchmarks/callgrind_driver.cc).
//
//   herd::test::Allocations()          operator new calls since the process
//                                      began
//   herd::test::Deallocations()        operator delete calls on non-null
//                                      pointers
//   herd::test::FailNthAllocation(n)   the n-th operator new call from now
//                                      *on this thread* throws std::bad_alloc
//   herd::test::AllocationFailurePending()  true iff that failure has not
//                                      happened yet (and disarms it)
//
// This header *defines* the replacement functions, which the language does
// not allow to be inline: include it in exactly one source file of a
// program. AddressSanitizer keeps working under the replacement (the
// replacement allocates with malloc, which ASan intercepts). Clang's
// ThreadSanitizer runtime defines operator new itself, so a replacement
// would be a duplicate symbol: under TSan nothing is replaced,
// HERD_TEST_COUNTING_NEW is 0, the counters stay at zero and no failure is
// ever injected.

#ifndef HERD_TESTS_TESTING_COUNTING_NEW_H_
#define HERD_TESTS_TESTING_COUNTING_NEW_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>

#if defined(__SANITIZE_THREAD__)
#define HERD_TEST_COUNTING_NEW 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HERD_TEST_COUNTING_NEW 0
#endif
#endif
#ifndef HERD_TEST_COUNTING_NEW
#define HERD_TEST_COUNTING_NEW 1
#endif

namespace herd::test {

inline std::atomic<int64_t> g_allocations{0};
inline std::atomic<int64_t> g_deallocations{0};

inline int64_t Allocations() {
  return g_allocations.load(std::memory_order_relaxed);
}
inline int64_t Deallocations() {
  return g_deallocations.load(std::memory_order_relaxed);
}

// Allocations this thread may still make before one fails; 0: none fails.
inline thread_local int64_t t_allocations_before_failure = 0;

// Makes the n-th operator new call from now on this thread (n >= 1) throw
// std::bad_alloc. Other threads are not affected.
inline void FailNthAllocation(int64_t n) { t_allocations_before_failure = n; }

// Returns true iff the failure armed by FailNthAllocation has not happened
// (the code under test made fewer than n allocations), and disarms it.
inline bool AllocationFailurePending() {
  return std::exchange(t_allocations_before_failure, 0) > 0;
}

// Called by every replacement operator new: counts, then fails if armed.
inline void CountAllocation() {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (t_allocations_before_failure > 0 && --t_allocations_before_failure == 0) {
    throw std::bad_alloc();
  }
}

}  // namespace herd::test

#if HERD_TEST_COUNTING_NEW

void* operator new(std::size_t n) {
  herd::test::CountAllocation();
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
  herd::test::CountAllocation();
  const std::size_t align = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(align, (n + align - 1) / align * align)) {
    return p;
  }
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return operator new(n, a);
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return operator new(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return operator new(n, std::nothrow);
}
void operator delete(void* p) noexcept {
  if (p == nullptr) return;
  herd::test::g_deallocations.fetch_add(1, std::memory_order_relaxed);
  std::free(p);
}
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { operator delete(p); }
void operator delete(void* p, std::align_val_t) noexcept { operator delete(p); }
void operator delete[](void* p, std::align_val_t) noexcept {
  operator delete(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  operator delete(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  operator delete(p);
}

#endif  // HERD_TEST_COUNTING_NEW

#endif  // HERD_TESTS_TESTING_COUNTING_NEW_H_
