// Copyright 2026 The herd Authors.
//
// benchmarks/baselines/textbook_singleflight.h: the request coalescing a C++
// programmer writes by hand, as the baseline herd's benchmarks compare with.
//
//   herd_bench::TextbookSingleflight<Key, Value>  one std::mutex, one
//       std::unordered_map<Key, std::shared_future<Value>>, one std::promise
//       per call that finds no flight
//
// Example:
//
//   herd_bench::TextbookSingleflight<int64_t, User> users;
//   User u = users.Do(id, [&] { return db.LoadUser(id); });
//
// The first caller of a key creates a std::promise, publishes its
// shared_future in the map, runs the loader outside the lock, fulfils the
// promise and erases the key. Callers that find the key copy the
// shared_future and block in get(). It is correct, and it is what herd must
// beat: every call that runs the loader pays for the promise's shared state
// (two allocations, std::call_once) even when nobody else asks for the key.
//
// Thread safety: Do() may be called concurrently from any thread.

#ifndef HERD_BENCHMARKS_BASELINES_TEXTBOOK_SINGLEFLIGHT_H_
#define HERD_BENCHMARKS_BASELINES_TEXTBOOK_SINGLEFLIGHT_H_

#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace herd_bench {

template <class Key, class Value, class Hash = std::hash<Key>>
class TextbookSingleflight {
 public:
  // Returns the value of `key`'s flight, running `loader` on this thread when
  // no flight is in progress. Sets *executed to whether this call ran it.
  // Throws: whatever the loader threw.
  template <class Loader>
  Value Do(const Key& key, Loader&& loader, bool* executed = nullptr) {
    std::unique_lock<std::mutex> lock(mu_);
    ++calls_;
    if (auto it = flights_.find(key); it != flights_.end()) {
      std::shared_future<Value> future = it->second;
      lock.unlock();
      if (executed != nullptr) *executed = false;
      return future.get();
    }
    std::promise<Value> promise;
    std::shared_future<Value> future = promise.get_future().share();
    flights_.emplace(key, future);
    lock.unlock();

    if (executed != nullptr) *executed = true;
    try {
      promise.set_value(std::forward<Loader>(loader)());
    } catch (...) {
      promise.set_exception(std::current_exception());
    }
    lock.lock();
    flights_.erase(key);
    lock.unlock();
    return future.get();
  }

  // Calls that have found or started a flight: instrumentation, so that a
  // benchmark knows when every caller of a stampede waits (herd's
  // Stats().calls is the same count).
  int64_t calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  mutable std::mutex mu_;  // protects everything below
  std::unordered_map<Key, std::shared_future<Value>, Hash> flights_;
  int64_t calls_ = 0;
};

}  // namespace herd_bench

#endif  // HERD_BENCHMARKS_BASELINES_TEXTBOOK_SINGLEFLIGHT_H_
