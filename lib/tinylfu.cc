// Copyright 2026 The herd Authors.

#include "herd/internal/tinylfu.h"

#include <algorithm>
#include <cmath>
#include <new>
#include <string>
#include <utility>

namespace herd::internal {
namespace {

// Hill climbing, as Caffeine tunes it.
constexpr double kStepShare = 0.0625;       // first step: of max_weight
constexpr double kStepDecay = 0.98;         // per sample of weak evidence
constexpr double kRestartThreshold = 0.05;  // a jump in hit ratio ...
constexpr double kRestartErrors = 3;        // ... of at least 3 standard errors
constexpr double kNoiseErrors = 2;          // below: no evidence, halve the step
constexpr double kMinStepShare = 0.25;      // of the first step, on evidence

}  // namespace

TinyLfu::TinyLfu(uint64_t max_weight, uint64_t seed,
                 const TinyLfuOptions& options)
    : max_weight_(max_weight),
      options_(options),
      sketch_(seed, options.sketch),
      random_(MixHash(seed ^ 0x5851f42d4c957f2dULL) | 1) {
  assert(max_weight >= 1);
  // The window's share, rounded to the nearest weight, at least 1 (unless
  // the share is 0), at most everything.
  const double share = std::clamp(options_.initial_window, 0.0, 1.0);
  const long double window = std::round(static_cast<long double>(max_weight_) * share);
  SetShares(window >= static_cast<long double>(max_weight_)
                ? max_weight_
                : std::max<uint64_t>(static_cast<uint64_t>(window), share > 0 ? 1 : 0));
  step_ = -kStepShare * static_cast<double>(max_weight_);
  initial_window_max_ = window_max_;
  SetSketchMemory();
  sketch_.EnsureCapacity(
      std::min(max_weight_, std::max<uint64_t>(options_.initial_sketch_capacity, 1)));
}

HookList& TinyLfu::ListOf(uint8_t queue) noexcept {
  return const_cast<HookList&>(std::as_const(*this).ListOf(queue));
}

const HookList& TinyLfu::ListOf(uint8_t queue) const noexcept {
  switch (queue) {
    case kWindow:
      return window_;
    case kProbation:
      return probation_;
    case kProtected:
      return protected_;
    default:
      assert(queue == kOverweight);
      return overweight_;
  }
}

void TinyLfu::SetShares(uint64_t window_max) noexcept {
  window_max_ = window_max;
  const uint64_t main = max_weight_ - window_max_;
  const double share = std::clamp(options_.protected_share, 0.0, 1.0);
  protected_max_ = std::min(
      main, static_cast<uint64_t>(std::floor(static_cast<long double>(main) * share)));
}

void TinyLfu::PromoteFromProbation(PolicyHook* h) noexcept {
  if (h->weight > protected_max_) {
    probation_.MoveToBack(h);  // too heavy to protect
    return;
  }
  probation_.Erase(h);
  protected_.PushBack(h);
  h->queue = kProtected;
  DemoteProtectedExcess();
}

void TinyLfu::RecordMiss(uint64_t hash) noexcept {
  sketch_.Increment(hash);
  ++misses_in_sample_;
}

void TinyLfu::Add(PolicyHook* h) noexcept {
  assert(h->queue == kNone);
  sketch_.Increment(h->hash);
  ++misses_in_sample_;
  weight_ += h->weight;
  if (h->weight > max_weight_) {
    overweight_.PushBack(h);
    h->queue = kOverweight;
  } else {
    window_.PushBack(h);
    h->queue = kWindow;
  }
  GrowSketchIfNeeded();
}

void TinyLfu::Remove(PolicyHook* h) noexcept {
  assert(h->queue != kNone);
  Unlink(h);
}

void TinyLfu::Unlink(PolicyHook* h) noexcept {
  ListOf(h->queue).Erase(h);
  weight_ -= h->weight;
  h->queue = kNone;
}

void TinyLfu::Replace(PolicyHook* old, PolicyHook* h) noexcept {
  assert(old->queue != kNone && h->queue == kNone);
  ListOf(old->queue).Replace(old, h);
  h->queue = old->queue;
  old->queue = kNone;
}

void TinyLfu::UpdateWeight(PolicyHook* h, uint32_t weight) noexcept {
  assert(h->queue != kNone);
  const uint8_t queue = h->queue;
  HookList& list = ListOf(queue);
  weight_ = weight_ - h->weight + weight;
  if (weight > max_weight_) {
    if (queue == kOverweight) {
      list.Reweigh(h, weight);
    } else {
      list.Erase(h);
      h->weight = weight;
      overweight_.PushBack(h);
      h->queue = kOverweight;
    }
  } else if (queue == kOverweight) {
    list.Erase(h);
    h->weight = weight;
    window_.PushBack(h);
    h->queue = kWindow;
  } else {
    list.Reweigh(h, weight);
    if (queue == kProtected) DemoteProtectedExcess();
  }
}

void TinyLfu::DemoteProtectedExcess() noexcept {
  while (protected_.weight() > protected_max_) {
    PolicyHook* h = protected_.front();
    protected_.Erase(h);
    probation_.PushBack(h);
    h->queue = kProbation;
  }
}

bool TinyLfu::Admit(const PolicyHook* candidate,
                    const PolicyHook* victim) noexcept {
  const int candidate_frequency = sketch_.Frequency(candidate->hash);
  const int victim_frequency = sketch_.Frequency(victim->hash);
  if (candidate_frequency > victim_frequency) return true;
  // A warm candidate that lost may be an attacker's hash collision with a
  // hot victim: admit it now and then, so the victim does not stay forever.
  return candidate_frequency >= kWarmCandidate && (NextRandom() & 127) == 0;
}

uint64_t TinyLfu::NextRandom() noexcept {
  // xorshift64* (Vigna).
  random_ ^= random_ >> 12;
  random_ ^= random_ << 25;
  random_ ^= random_ >> 27;
  return random_ * 0x2545f4914f6cdd1dULL;
}

void TinyLfu::GrowSketchIfNeeded() noexcept {
  const uint64_t capacity = sketch_.capacity();
  if (size() <= capacity || capacity >= max_weight_) return;
  try {
    sketch_.EnsureCapacity(std::min(max_weight_, capacity * 2));
  } catch (const std::bad_alloc&) {
    // Keep the smaller sketch: estimates get coarser, nothing breaks.
  }
}

uint64_t TinyLfu::climb_sample() const noexcept {
  return std::max(options_.climb_sample_factor * sketch_.capacity(), options_.min_climb_sample);
}

void TinyLfu::Climb() noexcept {
  if (!options_.adapt_window || max_weight_ < 2) return;
  if (!climbing_) {
    if (weight_ <= max_weight_) return;
    // The first eviction: the cache is full, samples count from here.
    climbing_ = true;
    hits_in_sample_ = misses_in_sample_ = 0;
    return;
  }
  const uint64_t requests = hits_in_sample_ + misses_in_sample_;
  if (requests < climb_sample()) return;
  const double n = static_cast<double>(requests);
  const double hit_rate = static_cast<double>(hits_in_sample_) / n;
  const double change = hit_rate - previous_hit_rate_;
  const bool first = !have_previous_;
  previous_hit_rate_ = hit_rate;
  have_previous_ = true;
  hits_in_sample_ = misses_in_sample_ = 0;
  if (first) return;
  // The standard error of the difference of two samples' hit ratios.
  const double error = std::sqrt(
      (hit_rate * (1 - hit_rate) + (hit_rate - change) * (1 - hit_rate + change)) / n);
  const double full = kStepShare * static_cast<double>(max_weight_);
  // Better: keep going; worse: turn back.
  const double direction = (change >= 0) == (step_ >= 0) ? 1.0 : -1.0;
  double amount;
  if (std::abs(change) >= std::max(kRestartThreshold, kRestartErrors * error)) {
    amount = std::copysign(full, direction);
    step_ = amount;
  } else if (std::abs(change) >= kNoiseErrors * error) {
    amount = std::copysign(std::max(std::abs(step_), kMinStepShare * full), direction);
    step_ = kStepDecay * amount;
  } else {
    amount = 0;  // no evidence either way: hold, and take smaller steps
    step_ /= 2;
  }
  // The new window, truncated toward the old one and kept in [1, max - 1].
  const long double target =
      static_cast<long double>(window_max_) + std::trunc(amount);
  const uint64_t limit = max_weight_ - 1;
  const uint64_t next = target <= 1 ? 1
                        : target >= static_cast<long double>(limit)
                            ? limit
                            : static_cast<uint64_t>(target);
  if (next != window_max_) ResizeWindow(next);
}

void TinyLfu::SetSketchMemory() noexcept {
  const uint32_t low = std::max<uint32_t>(options_.min_sample_factor, 1);
  const uint32_t high = std::max(options_.max_sample_factor, low);
  // high * initial / current, rounded down, in [low, high].
  const uint64_t initial = std::max<uint64_t>(initial_window_max_, 1);
  const uint64_t current = std::max<uint64_t>(window_max_, 1);
  uint64_t factor = high;
  if (current > initial) {
    factor = static_cast<uint64_t>(static_cast<long double>(high) * initial / current);
  }
  sketch_.set_sample_factor(static_cast<uint32_t>(std::clamp<uint64_t>(factor, low, high)));
}

void TinyLfu::ResizeWindow(uint64_t target) noexcept {
  const uint64_t old = window_max_;
  SetShares(target);
  if (target > old) {
    // Fill the larger window with main's least recently used entries,
    // placed as the window's oldest.
    PolicyHook* anchor = window_.front();
    for (HookList* from : {&probation_, &protected_}) {
      while (!from->empty() &&
             window_.weight() + from->front()->weight <= window_max_) {
        PolicyHook* h = from->front();
        from->Erase(h);
        window_.InsertBefore(anchor, h);
        h->queue = kWindow;
      }
    }
  }
  // A smaller window is trimmed by Evict(): its excess joins probation.
  DemoteProtectedExcess();
  SetSketchMemory();
}

std::string TinyLfu::CheckInvariants() const {
  uint64_t total = 0;
  for (uint8_t queue : {kWindow, kProbation, kProtected, kOverweight}) {
    const HookList& list = ListOf(queue);
    const std::string name = "queue " + std::to_string(queue);
    size_t count = 0;
    uint64_t weight = 0;
    const PolicyHook* prev = nullptr;
    for (const PolicyHook* h = list.front(); h != nullptr; h = list.next(h)) {
      if (h->queue != queue) return name + ": a member is tagged " + std::to_string(h->queue);
      if (prev != nullptr && (prev->next != h || h->prev != prev)) {
        return name + ": broken links";
      }
      if ((queue == kOverweight) != (h->weight > max_weight_)) {
        return name + ": member of weight " + std::to_string(h->weight) +
               " against max " + std::to_string(max_weight_);
      }
      if (++count > list.size()) return name + ": more members than its count";
      weight += h->weight;
      prev = h;
    }
    if (prev != list.back()) return name + ": back() is not the last member";
    if (count != list.size()) return name + ": count " + std::to_string(list.size()) +
                                     " but " + std::to_string(count) + " members";
    if (weight != list.weight()) return name + ": weight " + std::to_string(list.weight()) +
                                        " but members weigh " + std::to_string(weight);
    total += weight;
  }
  if (total != weight_) {
    return "weight() " + std::to_string(weight_) + " but members weigh " + std::to_string(total);
  }
  if (protected_.weight() > protected_max_) {
    return "protected weighs " + std::to_string(protected_.weight()) + " over its share " +
           std::to_string(protected_max_);
  }
  if (window_max_ > max_weight_ || protected_max_ > max_weight_ - window_max_) {
    return "shares exceed max_weight()";
  }
  return "";
}

}  // namespace herd::internal
