// Copyright 2026 The herd Authors.
//
// benchmarks/hit_ratio/traces.h: the synthetic access traces of the
// hit-ratio benchmark, generated from a seed.
//
//   Rng                 splitmix64: the only source of randomness
//   ZipfSampler         ranks 0..n-1 with P(r) proportional to (r + 1)^-s
//   Trace               a sequence of dense key ids, with its description
//   ZipfTrace           Zipf(s) over n keys
//   ZipfScanTrace       Zipf(s), each access a one-pass cold key with
//                       probability `scan_share`
//   LoopTrace           a cyclic loop, cold keys mixed in
//   ShiftTrace          Zipf(s) whose hot set moves halfway through
//   SlideTrace          Zipf(s) whose hot set slides all the time
//
// Every generator is deterministic: the same arguments give the same trace
// on every platform whose libm computes std::pow the same way (the Zipf
// table is built with it; everything else is integer arithmetic or exact
// double arithmetic). std::*_distribution are avoided for that reason.
//
// Keys are dense: a trace's keys are 0..distinct-1, numbered in order of
// first access, so a simulator can index its entries by key.

#ifndef HERD_BENCHMARKS_HIT_RATIO_TRACES_H_
#define HERD_BENCHMARKS_HIT_RATIO_TRACES_H_

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace herd::hit_ratio {

// splitmix64 (Steele, Lea, Flood; public domain).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1), 53 bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform in [0, n), n >= 1 (Lemire's multiply-shift; the bias is
  // below 2^-32 for the n used here).
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }

 private:
  uint64_t state_;
};

// Draws ranks 0..n-1, rank r with probability (r + 1)^-s / H(n, s), by
// inverting the cumulative distribution (a binary search in a table).
class ZipfSampler {
 public:
  ZipfSampler(uint32_t n, double s) : cumulative_(n) {
    double sum = 0;
    for (uint32_t r = 0; r < n; ++r) {
      sum += std::pow(static_cast<double>(r) + 1, -s);
      cumulative_[r] = sum;
    }
  }
  uint32_t Sample(Rng& rng) const {
    const double u = rng.Uniform() * cumulative_.back();
    const auto it = std::upper_bound(cumulative_.begin(), cumulative_.end(), u);
    return static_cast<uint32_t>(
        std::min<size_t>(it - cumulative_.begin(), cumulative_.size() - 1));
  }
  // P(rank r).
  double Probability(uint32_t r) const {
    const double below = r == 0 ? 0 : cumulative_[r - 1];
    return (cumulative_[r] - below) / cumulative_.back();
  }

 private:
  std::vector<double> cumulative_;
};

struct Trace {
  std::string name;         // short, for tables: "zipf-0.9"
  std::string description;  // one line
  std::vector<uint32_t> keys;
  uint32_t distinct = 0;  // keys are 0..distinct-1
};

// Renumbers `raw` keys 0, 1, 2, ... in order of first access.
inline void Densify(const std::vector<uint64_t>& raw, Trace& trace) {
  std::vector<std::pair<uint64_t, uint32_t>> sorted;  // (raw key, position)
  sorted.reserve(raw.size());
  for (uint32_t i = 0; i < raw.size(); ++i) sorted.emplace_back(raw[i], i);
  std::sort(sorted.begin(), sorted.end());
  // first[i]: the position of the first access of raw[i]'s key.
  std::vector<uint32_t> first(raw.size());
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i;
    while (j < sorted.size() && sorted[j].first == sorted[i].first) {
      first[sorted[j].second] = sorted[i].second;
      ++j;
    }
    i = j;
  }
  std::vector<uint32_t> id(raw.size(), UINT32_MAX);
  trace.keys.resize(raw.size());
  uint32_t next = 0;
  for (uint32_t i = 0; i < raw.size(); ++i) {
    if (first[i] == i) id[i] = next++;
    trace.keys[i] = id[first[i]];
  }
  trace.distinct = next;
}

// A random permutation of 0..n-1 (Fisher-Yates).
inline std::vector<uint32_t> Permutation(uint32_t n, Rng& rng) {
  std::vector<uint32_t> p(n);
  for (uint32_t i = 0; i < n; ++i) p[i] = i;
  for (uint32_t i = n; i > 1; --i) std::swap(p[i - 1], p[rng.Below(i)]);
  return p;
}

inline std::string Decimal(double x) {
  std::string s = std::to_string(x);
  s.erase(s.find_last_not_of('0') + 1);
  if (s.back() == '.') s.pop_back();
  return s;
}

// `accesses` draws from Zipf(s) over `n` keys; rank r is key perm[r] for a
// random permutation, so that popularity and key order are unrelated.
inline Trace ZipfTrace(uint32_t n, size_t accesses, double s, uint64_t seed) {
  Rng rng(seed);
  const ZipfSampler zipf(n, s);
  const std::vector<uint32_t> key_of_rank = Permutation(n, rng);
  std::vector<uint64_t> raw(accesses);
  for (uint64_t& k : raw) k = key_of_rank[zipf.Sample(rng)];
  Trace t;
  t.name = "zipf-" + Decimal(s);
  t.description = "Zipf(" + Decimal(s) + ") over " + std::to_string(n) + " keys";
  Densify(raw, t);
  return t;
}

// As ZipfTrace, but each access is, with probability `scan_share`, the next
// key of a one-pass scan: a key never seen before and never seen again.
inline Trace ZipfScanTrace(uint32_t n, size_t accesses, double s,
                           double scan_share, uint64_t seed) {
  Rng rng(seed);
  const ZipfSampler zipf(n, s);
  const std::vector<uint32_t> key_of_rank = Permutation(n, rng);
  std::vector<uint64_t> raw(accesses);
  uint64_t next_cold = n;
  for (uint64_t& k : raw) {
    k = rng.Uniform() < scan_share ? next_cold++ : key_of_rank[zipf.Sample(rng)];
  }
  Trace t;
  t.name = "zipf-" + Decimal(s) + "+scan";
  t.description = "Zipf(" + Decimal(s) + ") over " + std::to_string(n) +
                  " keys; " + Decimal(scan_share * 100) +
                  "% of accesses scan cold keys once each";
  Densify(raw, t);
  return t;
}

// A loop: keys 0..loop-1 in order, again and again; each access is instead,
// with probability `cold_share`, a cold key seen once. Cold keys are added
// until the trace has `distinct` keys in all (REQUIRES: distinct > loop),
// and the loop runs until then.
inline Trace LoopTrace(uint32_t distinct, uint32_t loop, double cold_share,
                       uint64_t seed) {
  Rng rng(seed);
  std::vector<uint64_t> raw;
  uint64_t cold = 0;
  uint64_t position = 0;
  const uint64_t colds = distinct - loop;
  while (cold < colds || position < loop) {
    if (cold < colds && rng.Uniform() < cold_share) {
      raw.push_back(loop + cold++);
    } else {
      raw.push_back(position++ % loop);
    }
  }
  Trace t;
  t.name = "loop";
  t.description = "a loop over " + std::to_string(loop) + " keys; " +
                  Decimal(cold_share * 100) + "% of accesses are cold keys seen once";
  Densify(raw, t);
  return t;
}

// Zipf(s) over n keys whose ranks are mapped to keys by one random
// permutation for the first half of the accesses and by another for the
// second: the hot set moves, all at once, halfway through.
inline Trace ShiftTrace(uint32_t n, size_t accesses, double s, uint64_t seed) {
  Rng rng(seed);
  const ZipfSampler zipf(n, s);
  const std::vector<uint32_t> before = Permutation(n, rng);
  const std::vector<uint32_t> after = Permutation(n, rng);
  std::vector<uint64_t> raw(accesses);
  for (size_t i = 0; i < accesses; ++i) {
    raw[i] = (i < accesses / 2 ? before : after)[zipf.Sample(rng)];
  }
  Trace t;
  t.name = "shift";
  t.description = "Zipf(" + Decimal(s) + ") over " + std::to_string(n) +
                  " keys; the hot set is reshuffled halfway through";
  Densify(raw, t);
  return t;
}

// Zipf(s) over a window of n keys that slides: access i draws rank r and
// reads key r + i / every, so the most popular key changes every `every`
// accesses and a key is popular only for a while. Recency pays here, and
// frequency misleads: the benchmark's extra, recency-biased trace.
inline Trace SlideTrace(uint32_t n, size_t accesses, double s, uint32_t every,
                        uint64_t seed) {
  Rng rng(seed);
  const ZipfSampler zipf(n, s);
  std::vector<uint64_t> raw(accesses);
  for (size_t i = 0; i < accesses; ++i) raw[i] = zipf.Sample(rng) + i / every;
  Trace t;
  t.name = "slide";
  t.description = "Zipf(" + Decimal(s) + ") over " + std::to_string(n) +
                  " keys that slide by one key every " + std::to_string(every) + " accesses";
  Densify(raw, t);
  return t;
}

}  // namespace herd::hit_ratio

#endif  // HERD_BENCHMARKS_HIT_RATIO_TRACES_H_
