// Copyright 2026 The herd Authors.
//
// herd/internal/share_impl.h: the machinery behind herd/share.h. Included at
// the end of share.h; never include it directly.
//
//   herd::internal::CacheLineAllocator  whole cache lines per allocation
//   herd::internal::ShareCore           the flight map and its flights:
//                                       everything herd::Share does
//
// How a flight lives. A blocking leader's flight is a Flight in its Run()
// frame, and the map entry points at it (and through it at the leader's own
// key). The first second party moves it to a HeapFlight, which copies the
// key and holds the std::promise waiters block on; the map entry is
// repointed to it. DoAsync builds an AsyncFlight (a HeapFlight that also
// holds the loader) before registering anything, and ScheduleOnce runs or
// abandons its execution exactly once.
//
// Exception safety, step by step. Everything that can throw happens before
// the first change others can see: the Key's Hash runs before the lock; Eq
// runs during lookups, which change nothing; allocations and copies (the
// heap flight, its key, the loader, the stop state) come before the map is
// touched, or are undone by an erase, which cannot throw. The map is an
// absl::flat_hash_set of one pointer per entry, so constructing an entry
// cannot throw; what remains is growth. Abseil 20220623 sets a table's new
// capacity before allocating its new slots, so a failed growth corrupts the
// table. Herd therefore never lets an insert grow the table: before every
// insert, EnsureRoomLocked() checks that the table holds at most 25/32 of
// its capacity (and at least 31 slots); at that load an absl insert that
// runs out of free slots rehashes in place, without allocating, rather than
// growing. Past it, GrowLocked() builds a larger table with the
// bucket-count constructor (a constructor that throws leaves no object
// behind), copies the pointers in, and swaps. share_fault_test checks that
// no insert allocates, and fails every allocation of every call in turn.

#ifndef HERD_INTERNAL_SHARE_IMPL_H_
#define HERD_INTERNAL_SHARE_IMPL_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <future>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <random>
#include <stdexcept>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "herd/clock.h"
#include "herd/errors.h"
#include "herd/executor.h"
#include "herd/internal/invoke.h"
#include "herd/internal/mutex.h"
#include "herd/internal/shards.h"
#include "herd/internal/tasks.h"
#include "herd/internal/time.h"
#include "herd/share.h"

namespace herd::internal {

// Gives every allocation whole cache lines of its own, so that two shards'
// small tables never share a line that two threads on different shards
// would then both write.
template <class T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::size_t kLine = 64;

  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) noexcept {}

  static std::size_t Bytes(std::size_t n) {
    return (n * sizeof(T) + kLine - 1) / kLine * kLine;
  }
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new (Bytes(n), std::align_val_t{kLine}));
  }
  // Unsized: clang 14 declares sized deallocation only under
  // -fsized-deallocation.
  void deallocate(T* p, std::size_t) noexcept {
    ::operator delete (p, std::align_val_t{kLine});
  }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const noexcept {
    return true;
  }
};

template <class Key, class Value, class Hash, class Eq>
class ShareCore {
 public:
  using Deadline = std::optional<std::chrono::steady_clock::time_point>;

  explicit ShareCore(const ShareOptions& options);
  ~ShareCore();

  template <class Loader>
  Value Run(const Key& key, Loader& loader, Deadline deadline, CallInfo* info);
  template <class Loader, class Exec>
  std::shared_future<Value> RunAsync(const Key& key, Loader&& loader,
                                     Exec& executor);
  bool Forget(const Key& key, ForgetMode mode);
  bool AllowExtraExecution(const Key& key);
  bool Cancel(const Key& key);
  size_t CancelAll();
  size_t InFlight() const;
  ShareStats Stats() const;

  template <class Loader>
  static void CheckLoader(const Loader& loader);

 private:
  struct HeapFlight;

  // One flight. Members other than key and hash are guarded by the shard's
  // mu (moved_to is also read without it, by the RecursiveCall check, which
  // only compares it).
  struct Flight {
    Flight(const Key* k, size_t h, bool heap)
        : key(k), hash(h), on_heap(heap) {}

    const Key* key;     // the leader's argument, or a HeapFlight's own copy
    const size_t hash;  // Hash{}(*key)
    Clock::time_point started{};  // set only when max_flight_age is on
    int running = 0;              // executions not yet settled
    int extra_credits = 0;        // AllowExtraExecution, kRerunOnNextCall
    bool in_map = true;           // the key's current flight
    bool done = false;            // outcome decided
    bool cancelled = false;
    const bool on_heap;  // this is a HeapFlight
    std::stop_source stop{std::nostopstate};
    std::atomic<HeapFlight*> moved_to{nullptr};  // a stack flight's successor
  };

  struct HeapFlight : Flight {
    // Copies the key: may throw what Key's copy throws, or std::bad_alloc.
    HeapFlight(const Key& k, size_t h) : Flight(nullptr, h, true), own_key(k) {
      this->key = &own_key;
    }
    virtual ~HeapFlight() = default;

    const Key own_key;
    std::exception_ptr first_error;  // guarded by the shard's mu
    // The outcome. Whoever decides it (the execution that completes the
    // flight, or a cancel; `done` is set under the lock, so there is one)
    // sets the promise, outside the lock, with steps that cannot throw.
    std::promise<Value> promise;
    const std::shared_future<Value> future{promise.get_future().share()};
    // Parties that may still touch the flight outside the lock: running
    // executions, waiters until they have copied the future, a cancel being
    // finished. The last one to drop its reference deletes the flight.
    std::atomic<int> refs{0};
  };

  // A DoAsync flight: also owns the loader, until its execution ends.
  template <class Loader>
  struct AsyncFlight : HeapFlight {
    template <class L>
    AsyncFlight(const Key& k, size_t h, L&& l)
        : HeapFlight(k, h), loader(std::in_place, std::forward<L>(l)) {}
    std::optional<Loader> loader;
  };

  // The map holds one pointer per key. Entries are looked up by key (Probe)
  // or, to remove a flight, by the flight itself (Self), which compares
  // pointers only.
  struct Entry {
    mutable Flight* flight;  // repointed in place: same key, same hash
  };
  struct Probe {
    const Key* key;
    size_t hash;
  };
  struct Self {
    const Flight* flight;
  };
  struct EntryHash {
    using is_transparent = void;
    size_t operator()(const Entry& e) const noexcept { return e.flight->hash; }
    size_t operator()(const Probe& p) const noexcept { return p.hash; }
    size_t operator()(const Self& s) const noexcept { return s.flight->hash; }
  };
  struct EntryEq {
    using is_transparent = void;
    // Two entries of one table never share a flight.
    bool operator()(const Entry& a, const Entry& b) const noexcept {
      return a.flight == b.flight;
    }
    bool operator()(const Entry& a, const Probe& p) const {
      return Eq{}(*a.flight->key, *p.key);
    }
    bool operator()(const Probe& p, const Entry& a) const {
      return (*this)(a, p);
    }
    bool operator()(const Entry& a, const Self& s) const noexcept {
      return a.flight == s.flight;
    }
    bool operator()(const Self& s, const Entry& a) const noexcept {
      return a.flight == s.flight;
    }
  };
  using Map =
      absl::flat_hash_set<Entry, EntryHash, EntryEq, CacheLineAllocator<Entry>>;

  // The smallest table herd builds: larger than one absl probe group, so
  // that its inserts may rehash in place instead of growing.
  static constexpr size_t kMinCapacity = 31;

  struct alignas(64) Shard {
    Mutex mu;
    Map flights ABSL_GUARDED_BY(mu);
    // Inserts allowed while flights.size() < room; 0 until the first table.
    size_t room ABSL_GUARDED_BY(mu) = 0;
    // Counters below calls/executions are guarded by mu; the two updated
    // after a wait are atomic so that waking waiters take no lock.
    uint64_t calls ABSL_GUARDED_BY(mu) = 0;
    uint64_t executions ABSL_GUARDED_BY(mu) = 0;
    uint64_t extra_executions ABSL_GUARDED_BY(mu) = 0;
    uint64_t failures ABSL_GUARDED_BY(mu) = 0;
    uint64_t cancellations ABSL_GUARDED_BY(mu) = 0;
    std::atomic<uint64_t> shared{0};
    std::atomic<uint64_t> timeouts{0};
  };

  // One entry per execution running on this thread, innermost first, for
  // RecursiveCall detection.
  struct Frame {
    const Flight* flight;
    const Frame* prev;
  };
  static inline thread_local const Frame* frames_ = nullptr;

  // What a caller must do after its execution settled.
  struct Settlement {
    // kReturnOwn: return the value this execution produced. kReturnStored:
    // it was moved into the flight's promise; return a copy from the
    // future. kWait: another execution decides; wait for the flight.
    enum Kind {
      kReturnOwn,
      kReturnStored,
      kWait,
      kThrowCancelled,
      kThrow
    } kind;
    HeapFlight* wait_on;       // kReturnStored and kWait, with the caller's
                               // reference
    std::exception_ptr error;  // kThrow
  };

  // A DoAsync execution, as internal::ScheduleOnce runs it: Run() or
  // Abandon() settles the flight, exactly once. A body destroyed before
  // either (ScheduleOnce could not allocate its task) settles it with
  // std::bad_alloc.
  template <class Loader>
  class AsyncBody {
   public:
    AsyncBody(ShareCore* core, Shard* shard, AsyncFlight<Loader>* flight,
              std::stop_token stop) noexcept
        : core_(core), shard_(shard), flight_(flight), stop_(std::move(stop)) {}
    AsyncBody(AsyncBody&& other) noexcept
        : core_(other.core_),
          shard_(other.shard_),
          flight_(std::exchange(other.flight_, nullptr)),
          stop_(std::move(other.stop_)) {}
    AsyncBody& operator=(AsyncBody&&) = delete;
    ~AsyncBody() {
      if (flight_ != nullptr)
        Abandon(std::make_exception_ptr(std::bad_alloc()));
    }

    void Run() {
      AsyncFlight<Loader>* flight = std::exchange(flight_, nullptr);
      std::optional<Value> value;
      std::exception_ptr error;
      Invoke(flight, *flight->loader, std::move(stop_), &value, &error);
      flight->loader.reset();
      core_->FinishAsync(*shard_, flight, &value, error);
    }

    void Abandon(std::exception_ptr error) noexcept {
      AsyncFlight<Loader>* flight = std::exchange(flight_, nullptr);
      flight->loader.reset();
      std::optional<Value> none;
      core_->FinishAsync(*shard_, flight, &none, error);
    }

   private:
    ShareCore* const core_;
    Shard* const shard_;
    AsyncFlight<Loader>* flight_;  // with the execution's reference
    std::stop_token stop_;
  };

  Shard& ShardFor(size_t hash) const {
    return shards_[ShardIndex(hash, shard_mask_)];
  }

  // The time max_flight_age is measured with; read before the lock is
  // taken, so that a Clock (user code) never runs under it, and a Clock
  // that throws does so before anything is registered. Only read when
  // max_flight_age is on.
  Clock::time_point Now() const {
    return options_.max_flight_age > std::chrono::nanoseconds::zero()
               ? clock_.Now()
               : Clock::time_point{};
  }

  // Makes sure the next insert into `shard.flights` cannot allocate.
  // Throws: std::bad_alloc, with the table unchanged.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void EnsureRoomLocked(Shard& shard)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    if (ABSL_PREDICT_FALSE(shard.flights.size() >= shard.room)) {
      GrowLocked(shard);
    }
  }
  ABSL_ATTRIBUTE_NOINLINE static void GrowLocked(Shard& shard)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  template <class Loader>
  Value Execute(Shard& shard, Flight* flight, std::stop_token stop,
                Loader& loader, Deadline deadline, CallInfo* info);

  // Runs one execution of `flight` and returns its result or exception.
  template <class Loader>
  static void Invoke(const Flight* flight, Loader& loader, std::stop_token stop,
                     std::optional<Value>* value, std::exception_ptr* error);

  // Records the end of one execution of `flight` (a value in `*value`, or
  // `error`), completes the flight when that decides it, and says what the
  // execution's caller gets. Drops the execution's reference unless the
  // caller must wait. Throws nothing.
  ABSL_ATTRIBUTE_ALWAYS_INLINE inline Settlement Settle(
      Shard& shard, Flight* flight, std::optional<Value>* value,
      std::exception_ptr& error) ABSL_LOCKS_EXCLUDED(shard.mu);
  // Settle() for a heap flight: the part under the lock (returns whether
  // this execution decided the outcome), then the part after it.
  ABSL_ATTRIBUTE_NOINLINE static bool SettleHeapLocked(
      Shard& shard, HeapFlight* heap, const std::exception_ptr& error,
      Settlement* result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  ABSL_ATTRIBUTE_NOINLINE static void FinishHeapSettle(
      HeapFlight* heap, bool decided, std::optional<Value>* value,
      Settlement* result) noexcept;
  // Settles a DoAsync execution: nobody called it, so whatever it settles
  // to, the flight's future carries the outcome.
  void FinishAsync(Shard& shard, HeapFlight* flight,
                   std::optional<Value>* value, std::exception_ptr error);

  // Makes `flight` (new, not yet in the map) the key's flight with one
  // execution running, started at `now` (from Now()).
  static void StartLocked(Shard& shard, Flight* flight, Clock::time_point now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  // The heap flight behind `entry`, moving a stack flight to the heap first.
  // Throws: std::bad_alloc or what Key's copy throws, with nothing changed.
  static HeapFlight* ShareLocked(Shard& shard, const Entry& entry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  // DoAsync's join: the heap flight of `probe`'s current flight, or nullptr
  // when there is none or it is too old. Counts the call unless it returns
  // nullptr. Throws what Eq throws, and as ShareLocked().
  HeapFlight* JoinAsyncLocked(Shard& shard, const Probe& probe,
                              Clock::time_point now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  // The stop token for an execution of `flight` by a Loader; gives the
  // flight a stop state on first need. Throws: std::bad_alloc.
  template <class Loader>
  static std::stop_token TokenForLocked(Flight* flight);

  // Removes `flight` from the map if it is still its key's current flight.
  // A flight that was detached never touches its successor (Go issue 31420).
  ABSL_ATTRIBUTE_ALWAYS_INLINE static inline void UnmapLocked(Shard& shard,
                                                              Flight* flight)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  bool TooOldLocked(const Flight* flight, Clock::time_point now) const;
  bool SampleExtraExecution() const;

  static void Unref(HeapFlight* flight) noexcept {
    if (flight->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      delete flight;
    }
  }

  // Waits on heap flight `flight`'s future, consuming the caller's
  // reference, and returns a copy of its value or rethrows its exception.
  static Value Await(Shard& shard, HeapFlight* flight, Deadline deadline,
                     CallInfo* info);

  // Detaches `flight` from the map and marks it cancelled; what must then be
  // signalled outside the lock. Throws nothing.
  struct CancelWork {
    std::stop_source stop{std::nostopstate};
    HeapFlight* flight = nullptr;  // with a reference
  };
  static CancelWork CancelLocked(Shard& shard, Flight* flight) noexcept
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  void FinishCancel(CancelWork& work) const noexcept;

  const ShareOptions options_;
  const Clock& clock_;
  const size_t shard_mask_;
  const std::unique_ptr<Shard[]> shards_;
  // What cancelled flights carry, made once so that a cancel allocates
  // nothing after its point of no return.
  const std::exception_ptr cancelled_;
  // DoAsync tasks not yet destroyed; the destructor waits for none.
  TaskCounter tasks_;
};

// ---------------------------------------------------------------------------

template <class K, class V, class H, class E>
ShareCore<K, V, H, E>::ShareCore(const ShareOptions& options)
    : options_(options),
      clock_(options.clock != nullptr ? *options.clock : Clock::Steady()),
      shard_mask_(ShardCount(options.shards) - 1),
      shards_(new Shard[shard_mask_ + 1]),
      cancelled_(std::make_exception_ptr(Cancelled())) {
  if (!(options.extra_execution_rate >= 0.0 &&
        options.extra_execution_rate <= 1.0)) {  // false for NaN too
    throw std::invalid_argument(
        "herd::ShareOptions: extra_execution_rate must be in [0, 1]");
  }
  if (options.max_flight_age < std::chrono::nanoseconds::zero()) {
    throw std::invalid_argument(
        "herd::ShareOptions: max_flight_age must be >= 0");
  }
}

template <class K, class V, class H, class E>
ShareCore<K, V, H, E>::~ShareCore() {
  tasks_.WaitForZero();
}

template <class K, class V, class H, class E>
template <class Loader>
void ShareCore<K, V, H, E>::CheckLoader(const Loader& loader) {
  static_assert(IsLoader<Loader&>,
                "herd::Share: the loader must be invocable as Value() or "
                "Value(std::stop_token)");
  static_assert(std::is_convertible_v<LoaderResult<Loader&>, V>,
                "herd::Share: the loader must return the Share's Value");
  if (IsEmptyLoader(loader)) {
    throw std::invalid_argument("herd::Share: empty loader");
  }
}

template <class K, class V, class H, class E>
void ShareCore<K, V, H, E>::GrowLocked(Shard& shard) {
  const size_t size = shard.flights.size();
  // The bucket-count constructor either builds the whole table or throws
  // with nothing to destroy. Inserting pointers into a table this large
  // neither allocates nor throws.
  Map bigger(std::max<size_t>(kMinCapacity, 2 * (size + 1)));
  for (const Entry& e : shard.flights) bigger.insert(e);
  shard.flights.swap(bigger);
  // An absl insert finding no free slot rehashes in place, without
  // allocating, while size * 32 <= capacity * 25.
  shard.room = shard.flights.bucket_count() * 25 / 32 + 1;
}  // the old table is freed here

template <class K, class V, class H, class E>
bool ShareCore<K, V, H, E>::TooOldLocked(const Flight* flight,
                                         Clock::time_point now) const {
  return options_.max_flight_age > std::chrono::nanoseconds::zero() &&
         now - flight->started >= options_.max_flight_age;
}

template <class K, class V, class H, class E>
bool ShareCore<K, V, H, E>::SampleExtraExecution() const {
  const double p = options_.extra_execution_rate;
  if (p <= 0.0) return false;
  if (p >= 1.0) return true;
  thread_local std::minstd_rand gen{std::random_device{}()};
  return std::bernoulli_distribution(p)(gen);
}

template <class K, class V, class H, class E>
void ShareCore<K, V, H, E>::StartLocked(Shard& shard, Flight* flight,
                                        Clock::time_point now) {
  flight->running = 1;
  flight->started = now;
  ++shard.executions;
}

template <class K, class V, class H, class E>
auto ShareCore<K, V, H, E>::ShareLocked(Shard& shard, const Entry& entry)
    -> HeapFlight* {
  (void)shard;  // for the lock annotation
  Flight* flight = entry.flight;
  if (flight->on_heap) return static_cast<HeapFlight*>(flight);
  // `flight` is in the map, so it is neither done nor cancelled, and its
  // leader is its only execution. Everything that can throw comes first.
  auto heap = std::make_unique<HeapFlight>(*flight->key, flight->hash);
  heap->started = flight->started;
  heap->running = flight->running;
  heap->extra_credits = flight->extra_credits;
  heap->stop = flight->stop;  // shares the stop state the leader's token uses
  heap->refs.store(flight->running, std::memory_order_relaxed);  // leader's
  flight->moved_to.store(heap.get(), std::memory_order_relaxed);
  entry.flight = heap.get();
  return heap.release();
}

template <class K, class V, class H, class E>
auto ShareCore<K, V, H, E>::JoinAsyncLocked(Shard& shard, const Probe& probe,
                                            Clock::time_point now)
    -> HeapFlight* {
  ++shard.calls;  // also when the lookup or the move to the heap throws
  auto it = shard.flights.find(probe);
  if (it == shard.flights.end() || TooOldLocked(it->flight, now)) {
    --shard.calls;  // counted when it registers its flight instead
    return nullptr;
  }
  return ShareLocked(shard, *it);
}

template <class K, class V, class H, class E>
template <class Loader>
std::stop_token ShareCore<K, V, H, E>::TokenForLocked(Flight* flight) {
  if constexpr (std::is_invocable_v<Loader&, std::stop_token>) {
    // Only ever set while the lock is held and before any execution of the
    // flight holds a token from it.
    if (!flight->stop.stop_possible()) flight->stop = std::stop_source();
    return flight->stop.get_token();
  } else {
    return {};
  }
}

template <class K, class V, class H, class E>
void ShareCore<K, V, H, E>::UnmapLocked(Shard& shard, Flight* flight) {
  if (!flight->in_map) return;
  flight->in_map = false;
  // in_map: the entry of `flight`'s key points at `flight`.
  shard.flights.erase(shard.flights.find(Self{flight}));
}

template <class K, class V, class H, class E>
template <class Loader>
V ShareCore<K, V, H, E>::Run(const K& key, Loader& loader, Deadline deadline,
                             CallInfo* info) {
  CheckLoader(loader);
  const size_t hash = H{}(key);
  Shard& shard = ShardFor(hash);
  const Clock::time_point now = Now();
  Flight local(&key, hash,
               /*heap=*/false);   // the flight, if this call starts one
  Flight* flight = nullptr;       // the flight this call executes
  HeapFlight* wait_on = nullptr;  // or the one it waits on, with a reference
  std::stop_token stop;
  {
    MutexLock lock(&shard.mu);
    ++shard.calls;
    EnsureRoomLocked(shard);
    bool inserted = false;
    // Eq may throw during the lookup, which changes nothing; the entry,
    // one pointer, is built without throwing in a slot that exists.
    auto it =
        shard.flights.lazy_emplace(Probe{&key, hash}, [&](const auto& ctor) {
          inserted = true;
          ctor(Entry{&local});
        });
    if (!inserted) {
      const Flight* current = it->flight;
      for (const Frame* f = frames_; f != nullptr; f = f->prev) {
        if (f->flight == current ||
            f->flight->moved_to.load(std::memory_order_relaxed) == current) {
          throw RecursiveCall();
        }
      }
    }
    if (inserted || TooOldLocked(it->flight, now)) {
      try {
        stop = TokenForLocked<Loader>(&local);  // may allocate a stop state
      } catch (...) {
        if (inserted) shard.flights.erase(it);
        throw;
      }
      if (!inserted) {
        it->flight->in_map = false;  // its executions still complete it
        it->flight = &local;
      }
      StartLocked(shard, &local, now);
      flight = &local;
    } else {
      HeapFlight* current = ShareLocked(shard, *it);
      if (current->extra_credits > 0 || SampleExtraExecution()) {
        // Two executions: whichever settles second may wait on the other.
        stop = TokenForLocked<Loader>(current);
        if (current->extra_credits > 0) --current->extra_credits;
        flight = current;
        ++flight->running;
        ++shard.executions;
        ++shard.extra_executions;
      } else {
        wait_on = current;
      }
      current->refs.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (flight != nullptr) {
    return Execute(shard, flight, std::move(stop), loader, deadline, info);
  }
  return Await(shard, wait_on, deadline, info);
}

template <class K, class V, class H, class E>
template <class Loader>
V ShareCore<K, V, H, E>::Execute(Shard& shard, Flight* flight,
                                 std::stop_token stop, Loader& loader,
                                 Deadline deadline, CallInfo* info) {
  if (info != nullptr) info->executed = true;
  std::optional<V> value;
  std::exception_ptr error;
  Invoke(flight, loader, std::move(stop), &value, &error);
  Settlement s = Settle(shard, flight, &value, error);
  switch (s.kind) {
    case Settlement::kReturnOwn:
      return std::move(*value);
    case Settlement::kReturnStored: {
      const std::shared_future<V> future = s.wait_on->future;
      Unref(s.wait_on);
      return V(future.get());  // a copy that throws fails this call only
    }
    case Settlement::kThrowCancelled:
      std::rethrow_exception(cancelled_);
    case Settlement::kThrow:
      std::rethrow_exception(s.error);
    case Settlement::kWait:
      break;
  }
  return Await(shard, s.wait_on, deadline, info);
}

template <class K, class V, class H, class E>
template <class Loader>
void ShareCore<K, V, H, E>::Invoke(const Flight* flight, Loader& loader,
                                   std::stop_token stop,
                                   std::optional<V>* value,
                                   std::exception_ptr* error) {
  const Frame frame{flight, frames_};
  frames_ = &frame;
  try {
    value->emplace(InvokeLoader(loader, std::move(stop)));
  } catch (...) {
    *error = std::current_exception();
  }
  frames_ = frame.prev;
}

template <class K, class V, class H, class E>
auto ShareCore<K, V, H, E>::Settle(Shard& shard, Flight* flight,
                                   std::optional<V>* value,
                                   std::exception_ptr& error) -> Settlement {
  HeapFlight* heap;
  Settlement result{Settlement::kReturnOwn, nullptr, {}};
  bool decided;
  {
    MutexLock lock(&shard.mu);
    if (error) ++shard.failures;
    heap = flight->on_heap ? static_cast<HeapFlight*>(flight)
                           : flight->moved_to.load(std::memory_order_relaxed);
    if (heap == nullptr) {
      // A stack flight nobody joined (the common case, kept inline): it ends
      // with its only execution, and nobody else can see it any more.
      if (flight->cancelled) {
        result.kind = Settlement::kThrowCancelled;
      } else {
        UnmapLocked(shard, flight);
        if (error) {
          result.kind = Settlement::kThrow;
          result.error = std::move(error);
        }
      }
      return result;
    }
    decided = SettleHeapLocked(shard, heap, error, &result);
  }
  FinishHeapSettle(heap, decided, value, &result);
  return result;
}

template <class K, class V, class H, class E>
bool ShareCore<K, V, H, E>::SettleHeapLocked(Shard& shard, HeapFlight* heap,
                                             const std::exception_ptr& error,
                                             Settlement* result) {
  --heap->running;
  if (heap->cancelled) {
    result->kind = Settlement::kThrowCancelled;
    return false;
  }
  if (heap->done) {
    // Another execution won; this one's result is dropped.
    result->kind = Settlement::kWait;
    return false;
  }
  if (error) {
    if (!heap->first_error) heap->first_error = error;
    if (heap->running > 0) {
      // Another execution may still succeed: wait for the flight.
      result->kind = Settlement::kWait;
      return false;
    }
    result->kind = Settlement::kThrow;
    result->error = heap->first_error;
  }
  heap->done = true;
  UnmapLocked(shard, heap);
  return true;
}

template <class K, class V, class H, class E>
void ShareCore<K, V, H, E>::FinishHeapSettle(HeapFlight* heap, bool decided,
                                             std::optional<V>* value,
                                             Settlement* result) noexcept {
  if (decided) {
    // Outside the lock. Nobody else touches the promise: the decision was
    // taken once, under the lock, and its storage was allocated with it.
    if (result->kind == Settlement::kThrow) {
      heap->promise.set_exception(result->error);
    } else {
      // The value is moved in, not copied: a Value copy that throws must
      // fail only the caller whose copy it was (each caller, this one
      // included, copies from the future), never strand the waiters. A
      // move that throws leaves the promise unset; it then carries that
      // exception instead, where std::call_once recovers from a throw
      // (glibc's does; ThreadSanitizer's interceptor does not).
      try {
        heap->promise.set_value(std::move(**value));
      } catch (...) {
        heap->promise.set_exception(std::current_exception());
      }
      result->kind = Settlement::kReturnStored;
    }
  }
  if (result->kind == Settlement::kWait ||
      result->kind == Settlement::kReturnStored) {
    result->wait_on = heap;  // keeps this execution's reference
  } else {
    Unref(heap);
  }
}

template <class K, class V, class H, class E>
void ShareCore<K, V, H, E>::FinishAsync(Shard& shard, HeapFlight* flight,
                                        std::optional<V>* value,
                                        std::exception_ptr error) {
  Settlement s = Settle(shard, flight, value, error);
  if (s.wait_on != nullptr) Unref(s.wait_on);
}

template <class K, class V, class H, class E>
V ShareCore<K, V, H, E>::Await(Shard& shard, HeapFlight* flight,
                               Deadline deadline, CallInfo* info) {
  // This caller's own copy of the flight's future. `future` never changes
  // after construction, so copying it needs no lock.
  const std::shared_future<V> future = flight->future;
  Unref(flight);
  if (deadline.has_value() &&
      future.wait_until(*deadline) == std::future_status::timeout) {
    shard.timeouts.fetch_add(1, std::memory_order_relaxed);
    throw WaitTimeout();
  }
  V value(future.get());  // rethrows the flight's exception
  shard.shared.fetch_add(1, std::memory_order_relaxed);
  if (info != nullptr) info->shared = true;
  return value;
}

template <class K, class V, class H, class E>
template <class Loader, class Exec>
std::shared_future<V> ShareCore<K, V, H, E>::RunAsync(const K& key,
                                                      Loader&& loader,
                                                      Exec& executor) {
  CheckLoader(loader);
  using Stored = std::decay_t<Loader>;
  static_assert(std::is_nothrow_destructible_v<Stored>,
                "herd::Share::DoAsync: the loader's destructor must not throw");
  const Probe probe{&key, H{}(key)};
  Shard& shard = ShardFor(probe.hash);
  const Clock::time_point now = Now();
  {
    MutexLock lock(&shard.mu);
    if (HeapFlight* joined = JoinAsyncLocked(shard, probe, now)) {
      return joined->future;
    }
  }
  // Everything that can throw, before the flight is registered: the flight
  // with its copies of the key and the loader, its promise, its stop state.
  // (User code, so outside the lock.)
  auto owned = std::make_unique<AsyncFlight<Stored>>(
      key, probe.hash, std::forward<Loader>(loader));
  if constexpr (std::is_invocable_v<Stored&, std::stop_token>) {
    owned->stop = std::stop_source();
  }
  AsyncFlight<Stored>* flight = owned.get();
  std::stop_token stop;  // taken under the lock: once the flight is
                         // registered, a joiner may give it a stop state
  {
    MutexLock lock(&shard.mu);
    // Someone may have registered the key while the lock was released.
    if (HeapFlight* joined = JoinAsyncLocked(shard, probe, now)) {
      return joined->future;  // `owned` is dropped, outside the lock
    }
    EnsureRoomLocked(shard);
    ++shard.calls;
    auto it = shard.flights.find(probe);
    if (it != shard.flights.end()) {  // a flight too old to join
      it->flight->in_map = false;
      it->flight = flight;
    } else {
      shard.flights.insert(Entry{flight});
    }
    flight->refs.store(1, std::memory_order_relaxed);  // the execution's
    StartLocked(shard, flight, now);
    stop = flight->stop.get_token();
    owned.release();
  }
  std::shared_future<V> future = flight->future;  // const: no lock needed
  ScheduleOnce(executor, &tasks_,
               AsyncBody<Stored>(this, &shard, flight, std::move(stop)));
  return future;
}

template <class K, class V, class H, class E>
bool ShareCore<K, V, H, E>::Forget(const K& key, ForgetMode mode) {
  const Probe probe{&key, H{}(key)};
  Shard& shard = ShardFor(probe.hash);
  MutexLock lock(&shard.mu);
  auto it = shard.flights.find(probe);
  if (it == shard.flights.end()) return false;
  Flight* flight = it->flight;
  if (mode == ForgetMode::kDetach) {
    flight->in_map = false;
    shard.flights.erase(it);
  } else if (flight->extra_credits == 0) {
    flight->extra_credits = 1;
  }
  return true;
}

template <class K, class V, class H, class E>
bool ShareCore<K, V, H, E>::AllowExtraExecution(const K& key) {
  const Probe probe{&key, H{}(key)};
  Shard& shard = ShardFor(probe.hash);
  MutexLock lock(&shard.mu);
  auto it = shard.flights.find(probe);
  if (it == shard.flights.end()) return false;
  ++it->flight->extra_credits;
  return true;
}

template <class K, class V, class H, class E>
auto ShareCore<K, V, H, E>::CancelLocked(Shard& shard, Flight* flight) noexcept
    -> CancelWork {
  CancelWork work;
  flight->in_map = false;
  flight->done = true;
  flight->cancelled = true;
  ++shard.cancellations;
  work.stop = flight->stop;  // shares the stop state; outlives the flight
  // A flight in the map always has a running execution, which frees it (a
  // stack flight) or drops its reference (a heap flight) when it settles. A
  // stack flight has no waiters to tell.
  if (flight->on_heap) {
    HeapFlight* heap = static_cast<HeapFlight*>(flight);
    heap->refs.fetch_add(1, std::memory_order_relaxed);
    work.flight = heap;
  }
  return work;
}

template <class K, class V, class H, class E>
void ShareCore<K, V, H, E>::FinishCancel(CancelWork& work) const noexcept {
  // Outside the lock: request_stop runs the loader's stop_callbacks.
  if (work.flight != nullptr) {
    // `done` was set under the lock: nobody else sets the promise.
    work.flight->promise.set_exception(cancelled_);
    Unref(work.flight);
  }
  work.stop.request_stop();
}

template <class K, class V, class H, class E>
bool ShareCore<K, V, H, E>::Cancel(const K& key) {
  const Probe probe{&key, H{}(key)};
  Shard& shard = ShardFor(probe.hash);
  CancelWork work;
  {
    MutexLock lock(&shard.mu);
    auto it = shard.flights.find(probe);
    if (it == shard.flights.end()) return false;
    work = CancelLocked(shard, it->flight);
    shard.flights.erase(it);
  }
  FinishCancel(work);
  return true;
}

template <class K, class V, class H, class E>
size_t ShareCore<K, V, H, E>::CancelAll() {
  size_t cancelled = 0;
  std::vector<CancelWork> work;
  for (size_t i = 0; i <= shard_mask_; ++i) {
    Shard& shard = shards_[i];
    Map old;  // freed after the lock is released
    {
      MutexLock lock(&shard.mu);
      work.reserve(shard.flights.size());  // may throw: nothing changed yet
      for (const Entry& e : shard.flights) {
        work.push_back(CancelLocked(shard, e.flight));
      }
      // Not clear(): it may free the table, and the next insert would then
      // grow it inside absl. An empty table has no room until GrowLocked.
      shard.flights.swap(old);
      shard.room = 0;
    }
    for (CancelWork& w : work) FinishCancel(w);
    cancelled += work.size();
    work.clear();
  }
  return cancelled;
}

template <class K, class V, class H, class E>
size_t ShareCore<K, V, H, E>::InFlight() const {
  return SumOver<size_t>(shards_.get(), shard_mask_ + 1,
                         [](Shard& shard, size_t& n) {
                           MutexLock lock(&shard.mu);
                           n += shard.flights.size();
                         });
}

template <class K, class V, class H, class E>
ShareStats ShareCore<K, V, H, E>::Stats() const {
  return SumOver<ShareStats>(
      shards_.get(), shard_mask_ + 1, [](Shard& shard, ShareStats& s) {
        MutexLock lock(&shard.mu);
        s.calls += shard.calls;
        s.executions += shard.executions;
        s.extra_executions += shard.extra_executions;
        s.failures += shard.failures;
        s.cancellations += shard.cancellations;
        s.shared += shard.shared.load(std::memory_order_relaxed);
        s.timeouts += shard.timeouts.load(std::memory_order_relaxed);
      });
}

}  // namespace herd::internal

// --- herd::Share: each call is the core's. ---------------------------------

namespace herd {

template <class K, class V, class H, class E>
Share<K, V, H, E>::Share(ShareOptions options) : core_(options) {}

template <class K, class V, class H, class E>
Share<K, V, H, E>::~Share() = default;

template <class K, class V, class H, class E>
template <class Loader>
V Share<K, V, H, E>::Do(const K& key, Loader&& loader, CallInfo* info) {
  return core_.Run(key, loader, std::nullopt, info);
}

template <class K, class V, class H, class E>
template <class Rep, class Period, class Loader>
V Share<K, V, H, E>::DoFor(const K& key,
                           std::chrono::duration<Rep, Period> timeout,
                           Loader&& loader, CallInfo* info) {
  internal::CheckTimeout(timeout, "herd::Share::DoFor");
  return core_.Run(
      key, loader,
      internal::DeadlineAfter(std::chrono::steady_clock::now(), timeout), info);
}

template <class K, class V, class H, class E>
template <class Loader, Executor Exec>
std::shared_future<V> Share<K, V, H, E>::DoAsync(const K& key, Loader&& loader,
                                                 Exec& executor) {
  return core_.RunAsync(key, std::forward<Loader>(loader), executor);
}

template <class K, class V, class H, class E>
bool Share<K, V, H, E>::Forget(const K& key, ForgetMode mode) {
  return core_.Forget(key, mode);
}

template <class K, class V, class H, class E>
bool Share<K, V, H, E>::AllowExtraExecution(const K& key) {
  return core_.AllowExtraExecution(key);
}

template <class K, class V, class H, class E>
bool Share<K, V, H, E>::Cancel(const K& key) {
  return core_.Cancel(key);
}

template <class K, class V, class H, class E>
size_t Share<K, V, H, E>::CancelAll() {
  return core_.CancelAll();
}

template <class K, class V, class H, class E>
size_t Share<K, V, H, E>::InFlight() const {
  return core_.InFlight();
}

template <class K, class V, class H, class E>
ShareStats Share<K, V, H, E>::Stats() const {
  return core_.Stats();
}

}  // namespace herd

#endif  // HERD_INTERNAL_SHARE_IMPL_H_
