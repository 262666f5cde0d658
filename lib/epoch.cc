// Copyright 2026 The herd Authors.

#include "herd/internal/epoch.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace herd::internal {
namespace epoch_detail {

// Starts at 3 so that "retired at epoch - 2" never wraps below zero. On a
// cache line of its own: every reader loads it, only TryAdvance writes it.
alignas(64) std::atomic<uint64_t> global_epoch{3};

namespace {

std::mutex registry_mu;                       // serializes registration
std::atomic<EpochRecord*> registry{nullptr};  // every record, newest first
std::atomic<size_t> record_count{0};

// The first records come from here, so that registering one of the first
// kPooled threads alive at once never allocates (and never throws).
constexpr size_t kPooled = 256;
EpochRecord pool[kPooled];
size_t pool_used = 0;  // guarded by registry_mu

// Gives the thread's record back when the thread exits.
struct Releaser {
  ~Releaser() {
    EpochRecord* r = this_thread_record;
    if (r == nullptr) return;
    this_thread_record = nullptr;
    r->nesting = 0;
    r->state.store(0, std::memory_order_release);
    r->in_use.store(false, std::memory_order_release);
  }
};

}  // namespace

EpochRecord* RegisterThread() {
  EpochRecord* mine = nullptr;
  {
    std::lock_guard<std::mutex> lock(registry_mu);
    // The free record with the lowest index: threads alive at once then
    // hold the lowest indices, so that they pick distinct stripes.
    for (EpochRecord* r = registry.load(std::memory_order_acquire);
         r != nullptr; r = r->next) {
      if (!r->in_use.load(std::memory_order_acquire) &&
          (mine == nullptr || r->index < mine->index)) {
        mine = r;
      }
    }
    if (mine != nullptr) mine->in_use.store(true, std::memory_order_relaxed);
    if (mine == nullptr) {
      // May throw past the pool: nothing is registered yet.
      mine = pool_used < kPooled ? &pool[pool_used++] : new EpochRecord();
      mine->index = static_cast<uint32_t>(
          record_count.fetch_add(1, std::memory_order_relaxed));
      mine->in_use.store(true, std::memory_order_relaxed);
      mine->next = registry.load(std::memory_order_relaxed);
      registry.store(mine, std::memory_order_release);
    }
  }
  // Registers the thread-exit hook (the first use of this thread_local).
  static thread_local Releaser releaser;
  (void)releaser;
  this_thread_record = mine;
  return mine;
}

}  // namespace epoch_detail

uint64_t Epoch::TryAdvance() noexcept {
  using epoch_detail::global_epoch;
  uint64_t e = global_epoch.load(std::memory_order_seq_cst);
  for (const EpochRecord* r =
           epoch_detail::registry.load(std::memory_order_acquire);
       r != nullptr; r = r->next) {
    const uint64_t s = r->state.load(std::memory_order_seq_cst);
    if ((s & 1) != 0 && (s >> 1) != e) return e;  // a reader lags behind
  }
  // Fails only if another thread advanced first: e is then stale, and the
  // epoch has moved anyway.
  global_epoch.compare_exchange_strong(e, e + 1, std::memory_order_seq_cst);
  return global_epoch.load(std::memory_order_seq_cst);
}

size_t Epoch::Records() noexcept {
  return epoch_detail::record_count.load(std::memory_order_relaxed);
}

}  // namespace herd::internal
