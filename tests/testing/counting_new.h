// Copyright 2026 The herd Authors.
//
// tests/testing/counting_new.h: replaces the global operator new and delete
// with versions that count calls, for tests and tools that count heap
// allocations (tests/share_alloc_test.cc, benchmarks/callgrind_driver.cc).
//
//   herd::test::Allocations()     operator new calls since the process began
//   herd::test::Deallocations()   operator delete calls on non-null pointers
//   herd::test::FailNthAllocation(n)  the n-th operator new from now, on
//                                 this thread, throws std::bad_alloc (once);
//                                 0 disarms. Returns false iff nothing is
//                                 replaced (under a sanitizer)
//   herd::test::AllocationFailureArmed()  true iff that allocation has not
//                                 happened yet
//
// This header *defines* the replacement functions, which the language does
// not allow to be inline: include it in exactly one source file of a
// program. The sanitizers replace operator new and delete themselves (a
// second replacement would defeat their checks, or be a duplicate symbol),
// so under ASan or TSan nothing is replaced, HERD_TEST_COUNTING_NEW is 0 and
// the counters stay at zero.

#ifndef HERD_TESTS_TESTING_COUNTING_NEW_H_
#define HERD_TESTS_TESTING_COUNTING_NEW_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HERD_TEST_COUNTING_NEW 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
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

// Allocations on this thread until one fails; 0: none will.
inline thread_local int64_t t_fail_countdown = 0;

inline bool FailNthAllocation(int64_t n) {
  t_fail_countdown = n;
  return HERD_TEST_COUNTING_NEW != 0;
}
inline bool AllocationFailureArmed() { return t_fail_countdown > 0; }

}  // namespace herd::test

#if HERD_TEST_COUNTING_NEW

void* operator new(std::size_t n) {
  if (herd::test::t_fail_countdown > 0 && --herd::test::t_fail_countdown == 0) {
    throw std::bad_alloc();
  }
  herd::test::g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
  if (herd::test::t_fail_countdown > 0 && --herd::test::t_fail_countdown == 0) {
    throw std::bad_alloc();
  }
  herd::test::g_allocations.fetch_add(1, std::memory_order_relaxed);
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
