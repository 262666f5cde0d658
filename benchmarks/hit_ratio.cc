// Copyright 2026 The herd Authors.
//
// hit_ratio: herd's eviction policy (W-TinyLFU, herd/internal/tinylfu.h)
// beside exact LRU and Belady's clairvoyant optimum, on synthetic traces
// generated from a fixed seed (benchmarks/hit_ratio/traces.h).
//
//   scripts/hit_ratio.sh     builds this, runs it, writes the table
//                            (benchmarks/results/hit_ratio.md), the JSON
//                            (benchmarks/results/hit_ratio.json) and the
//                            plot (docs/hit_ratio.png)
//   hit_ratio [--keys=N] [--accesses=N] [--seed=N] [--md=FILE]
//             [--json=FILE] [--plot=FILE.png] [--ablation]
//   hit_ratio --through-cache [--keys=N] [--accesses=N] [--seed=N]
//             [--md=FILE]
//
// Each trace runs at cache sizes of 0.1%, 1% and 10% of its distinct keys.
// Deterministic: the same flags print the same table.
//
// --through-cache replays the same traces through a real bounded
// herd::LoadingCache (max_entries = the size, one Get per access, one
// thread) instead of driving the policy directly, and prints the policy
// alone beside it: the difference is what the cache's read path costs the
// policy (it records only a sample of the reads; see
// docs/loading_cache.md). scripts/hit_ratio.sh writes it to
// benchmarks/results/hit_ratio_cache.md.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "benchmarks/hit_ratio/simulate.h"
#include "benchmarks/hit_ratio/traces.h"
#include "herd/internal/lru_policy.h"
#include "herd/internal/tinylfu.h"
#include "herd/loading_cache.h"

namespace herd::hit_ratio {
namespace {

struct Flags {
  uint32_t keys = 100'000;
  size_t accesses = 300'000;
  uint64_t seed = 20260101;
  std::string md;
  std::string json;
  std::string plot;
  bool ablation = false;
  bool through_cache = false;
};

struct Policy {
  std::string name;  // column heading
  std::string what;  // one line for the notes
  std::function<uint64_t(const Trace&, uint64_t)> hits;
};

struct Row {
  std::string trace;
  std::string description;
  double fraction = 0;
  uint64_t capacity = 0;
  size_t accesses = 0;
  uint32_t distinct = 0;
  std::vector<double> ratio;  // per policy, in the order of the policies
};

constexpr double kFractions[] = {0.001, 0.01, 0.1};
constexpr const char* kFractionNames[] = {"0.1%", "1%", "10%"};

std::string Format(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string Format(const char* format, ...) {
  char buffer[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buffer, sizeof buffer, format, args);
  va_end(args);
  return buffer;
}

// The cache's hasher: KeyHash, the hash the simulations give the policy
// (absl::Hash is salted per process, and the figures must repeat).
struct CacheKeyHash {
  size_t operator()(uint32_t key) const { return static_cast<size_t>(KeyHash(key)); }
};

// Replays `trace` through a bounded herd::LoadingCache of `capacity`
// entries: one Get() per access on this thread, the loader returning the
// key. Returns the cache's count of hits.
uint64_t CacheHits(const Trace& trace, uint64_t capacity, uint64_t seed) {
  LoadingCache<uint32_t, uint32_t, CacheKeyHash> cache(
      {.max_entries = capacity, .seed = seed}, [](uint32_t key) { return key; });
  for (uint32_t key : trace.keys) {
    if (cache.Get(key) != key) std::abort();
  }
  const CacheStats stats = cache.Stats();
  if (stats.hits + stats.misses != trace.keys.size()) std::abort();
  return stats.hits;
}

template <class P>
std::function<uint64_t(const Trace&, uint64_t)> Simulated(
    std::function<std::unique_ptr<P>(uint64_t)> make) {
  return [make](const Trace& t, uint64_t capacity) {
    return PolicyHits(t, capacity, make);
  };
}

std::vector<Policy> Policies(const Flags& flags) {
  std::vector<Policy> p;
  const uint64_t seed = flags.seed;
  p.push_back({"LRU", "exact LRU (herd::internal::LruPolicy)",
               Simulated<internal::LruPolicy>([](uint64_t c) {
                 return std::make_unique<internal::LruPolicy>(c);
               })});
  p.push_back({"herd", "herd::internal::TinyLfu, default options",
               Simulated<internal::TinyLfu>([seed](uint64_t c) {
                 return std::make_unique<internal::TinyLfu>(c, seed);
               })});
  if (flags.ablation) {
    auto variant = [&p, seed](std::string name, std::string what,
                              internal::TinyLfuOptions options) {
      p.push_back({std::move(name), std::move(what),
                   Simulated<internal::TinyLfu>([seed, options](uint64_t c) {
                     return std::make_unique<internal::TinyLfu>(c, seed, options);
                   })});
    };
    internal::TinyLfuOptions plain;
    plain.adapt_window = false;
    plain.sketch.conservative = false;
    plain.max_sample_factor = plain.min_sample_factor = 10;
    variant("W-TinyLFU", "plain W-TinyLFU: 1% window, sketch ages every 10 per entry "
            "and raises all four counters", plain);
    internal::TinyLfuOptions fixed;
    fixed.adapt_window = false;
    variant("no-climb", "herd without hill climbing (window fixed at 1%)", fixed);
    internal::TinyLfuOptions short_memory;
    short_memory.max_sample_factor = short_memory.min_sample_factor = 10;
    variant("mem-10", "herd, sketch ages every 10 per entry whatever the window", short_memory);
    internal::TinyLfuOptions all_counters;
    all_counters.sketch.conservative = false;
    variant("no-cu", "herd, sketch raises all four counters", all_counters);
    internal::TinyLfuOptions doorkeeper;
    doorkeeper.sketch.doorkeeper = true;
    variant("+dk", "herd with a doorkeeper", doorkeeper);
    p.push_back({"top-keys", "the most popular keys of the whole trace, known in hindsight, "
                 "always cached (a frequency-only ideal; not an upper bound)",
                 [](const Trace& t, uint64_t c) { return TopKeysHits(t, c); }});
  }
  p.push_back({"Belady", "Belady's MIN with bypass: the offline optimum",
               [](const Trace& t, uint64_t c) { return BeladyHits(t, c); }});
  return p;
}

size_t IndexOf(const std::vector<Policy>& policies, std::string_view name) {
  for (size_t i = 0; i < policies.size(); ++i) {
    if (policies[i].name == name) return i;
  }
  std::abort();
}

void Run(const Trace& trace, size_t size_index, const std::vector<Policy>& policies,
         std::vector<Row>& rows) {
  Row row;
  row.trace = trace.name;
  row.description = trace.description;
  row.fraction = kFractions[size_index];
  row.capacity = static_cast<uint64_t>(std::llround(trace.distinct * row.fraction));
  row.accesses = trace.keys.size();
  row.distinct = trace.distinct;
  for (const Policy& p : policies) {
    row.ratio.push_back(static_cast<double>(p.hits(trace, row.capacity)) /
                        static_cast<double>(trace.keys.size()));
  }
  std::fprintf(stderr, "  %-15s %5s %6llu entries:", row.trace.c_str(),
               kFractionNames[size_index], static_cast<unsigned long long>(row.capacity));
  for (size_t i = 0; i < policies.size(); ++i) {
    std::fprintf(stderr, " %s %.4f", policies[i].name.c_str(), row.ratio[i]);
  }
  std::fprintf(stderr, "\n");
  rows.push_back(std::move(row));
}

// The fraction of the LRU-to-Belady gap that `policy` closes.
double GapClosed(const Row& row, size_t lru, size_t policy, size_t belady) {
  const double gap = row.ratio[belady] - row.ratio[lru];
  return gap <= 0 ? NAN : (row.ratio[policy] - row.ratio[lru]) / gap;
}

const char* SizeName(double fraction) {
  for (size_t i = 0; i < 3; ++i) {
    if (fraction == kFractions[i]) return kFractionNames[i];
  }
  return "?";
}

const Row& Find(const std::vector<Row>& rows, std::string_view trace, double fraction) {
  for (const Row& r : rows) {
    if (r.trace == trace && r.fraction == fraction) return r;
  }
  std::abort();
}

struct Target {
  std::string what;
  std::string measured;
  bool met;
};

std::vector<Target> Targets(const std::vector<Row>& rows, const std::vector<Policy>& policies) {
  const size_t lru = IndexOf(policies, "LRU");
  const size_t herd = IndexOf(policies, "herd");
  const size_t belady = IndexOf(policies, "Belady");
  std::vector<Target> targets;
  {
    const Row* worst = &rows.front();
    for (const Row& r : rows) {
      if (r.ratio[herd] - r.ratio[lru] < worst->ratio[herd] - worst->ratio[lru]) worst = &r;
    }
    const double margin = worst->ratio[herd] - worst->ratio[lru];
    targets.push_back({"at least LRU's hit ratio on every trace and size",
                       Format("smallest margin %+.4f (%s at %s: %.4f vs %.4f)", margin,
                              worst->trace.c_str(), SizeName(worst->fraction),
                              worst->ratio[herd], worst->ratio[lru]),
                       margin >= 0});
  }
  {
    const Row& r = Find(rows, "zipf-0.9", 0.01);
    const double closed = GapClosed(r, lru, herd, belady);
    targets.push_back({"Zipf 0.9 at 1%: closes at least 60% of the LRU-Belady gap",
                       Format("%.1f%% (LRU %.4f, herd %.4f, Belady %.4f)", 100 * closed,
                              r.ratio[lru], r.ratio[herd], r.ratio[belady]),
                       closed >= 0.6});
  }
  {
    const Row& r = Find(rows, "zipf-0.9+scan", 0.01);
    const double x = r.ratio[herd] / r.ratio[lru];
    targets.push_back({"Zipf 0.9 + 20% scan at 1%: at least 1.4x LRU",
                       Format("%.2fx (LRU %.4f, herd %.4f)", x, r.ratio[lru], r.ratio[herd]),
                       x >= 1.4});
  }
  return targets;
}

// A markdown table of `rows` with a column for each policy named in
// `columns` (all of them if empty), herd's in bold, then herd / LRU and the
// share of the LRU-Belady gap that herd closes.
std::string Table(const std::vector<Row>& rows, const std::vector<Policy>& policies,
                  const std::vector<std::string>& columns = {}) {
  const size_t lru = IndexOf(policies, "LRU");
  const size_t herd = IndexOf(policies, "herd");
  const size_t belady = IndexOf(policies, "Belady");
  std::vector<size_t> shown;
  for (size_t i = 0; i < policies.size(); ++i) {
    if (columns.empty() ||
        std::find(columns.begin(), columns.end(), policies[i].name) != columns.end()) {
      shown.push_back(i);
    }
  }
  std::string md;
  md += "| trace | cache | entries |";
  for (size_t i : shown) md += " " + policies[i].name + " |";
  md += " herd / LRU | gap closed |\n|---|---:|---:|";
  for (size_t i = 0; i < shown.size(); ++i) md += "---:|";
  md += "---:|---:|\n";
  for (const Row& r : rows) {
    md += Format("| %s | %s | %llu |", r.trace.c_str(), SizeName(r.fraction),
                 static_cast<unsigned long long>(r.capacity));
    for (size_t i : shown) {
      md += i == herd ? Format(" **%.4f** |", r.ratio[i]) : Format(" %.4f |", r.ratio[i]);
    }
    const double closed = GapClosed(r, lru, herd, belady);
    md += r.ratio[lru] > 0 ? Format(" %.2fx |", r.ratio[herd] / r.ratio[lru])
                           : std::string(" – |");
    md += std::isnan(closed) ? std::string(" – |\n") : Format(" %.0f%% |\n", 100 * closed);
  }
  return md;
}

std::string Markdown(const std::vector<Row>& rows, const std::vector<Policy>& policies,
                     const std::vector<Row>& extra_rows,
                     const std::vector<Policy>& extra_policies, const Flags& flags) {
  std::string md = Table(rows, policies, {"LRU", "herd", "Belady"});
  md += "\nTargets:\n\n";
  for (const Target& t : Targets(rows, policies)) {
    md += Format("- %s %s: %s\n", t.met ? "**met**" : "**missed**", t.what.c_str(),
                 t.measured.c_str());
  }
  md += "\nTraces (seed " + std::to_string(flags.seed) + "; keys renumbered densely):\n\n";
  std::string seen;
  for (const Row& r : rows) {
    if (seen.find("|" + r.trace + "|") != std::string::npos) continue;
    seen += "|" + r.trace + "|";
    if (r.trace == "loop") {
      md += Format("- `loop`: a loop 1.1x the cache's size (so one per size), with 20%% of "
                   "accesses cold keys seen once, up to %u distinct keys in all; "
                   "%zu to %zu accesses\n",
                   r.distinct, Find(rows, "loop", 0.1).accesses,
                   Find(rows, "loop", 0.001).accesses);
    } else {
      md += Format("- `%s`: %s; %zu accesses, %u distinct keys\n", r.trace.c_str(),
                   r.description.c_str(), r.accesses, r.distinct);
    }
  }
  md += "\nPolicies:\n\n";
  for (const Policy& p : policies) md += "- " + p.name + ": " + p.what + "\n";
  if (flags.ablation) {
    md += "\nVariants of herd's policy on the same traces (`--ablation`), to show what "
          "each departure from plain W-TinyLFU buys:\n\n";
    md += Table(rows, policies);
  }
  if (!extra_rows.empty()) {
    const Row& r = extra_rows.front();
    md += "\nBeyond the targets, a recency-biased trace (`" + r.trace + "`: " +
          r.description + Format("; %zu accesses, %u distinct keys", r.accesses, r.distinct) +
          "), where frequency misleads and hill climbing has to grow the window; "
          "`no-climb` is herd with the window fixed at 1%:\n\n";
    md += Table(extra_rows, extra_policies);
  }
  md += Format(
      "\n`gap closed` is (herd - LRU) / (Belady - LRU); `–` where LRU hits nothing. "
      "Every entry weighs 1; a miss adds the key (Add, then Evict), a hit calls "
      "RecordAccess. Written by `scripts/hit_ratio.sh`: `hit_ratio --keys=%u "
      "--accesses=%zu --seed=%llu%s`.\n",
      flags.keys, flags.accesses, static_cast<unsigned long long>(flags.seed),
      flags.ablation ? " --ablation" : "");
  return md;
}

// The JSON array of `rows`, indented for the document.
std::string JsonRows(const std::vector<Row>& rows, const std::vector<Policy>& policies) {
  std::string j = "[\n";
  for (size_t r = 0; r < rows.size(); ++r) {
    const Row& row = rows[r];
    j += Format(
        "    {\"trace\": \"%s\", \"size\": \"%s\", \"fraction\": %g, \"entries\": %llu, "
        "\"accesses\": %zu, \"distinct\": %u, \"hit_ratio\": {",
        row.trace.c_str(), SizeName(row.fraction), row.fraction,
        static_cast<unsigned long long>(row.capacity), row.accesses, row.distinct);
    for (size_t i = 0; i < policies.size(); ++i) {
      j += Format("%s\"%s\": %.6f", i == 0 ? "" : ", ", policies[i].name.c_str(),
                  row.ratio[i]);
    }
    j += r + 1 < rows.size() ? "}},\n" : "}}\n";
  }
  return j + "  ]";
}

std::string Json(const std::vector<Row>& rows, const std::vector<Policy>& policies,
                 const std::vector<Row>& extra_rows,
                 const std::vector<Policy>& extra_policies, const Flags& flags) {
  std::string j = "{\n";
  j += Format("  \"keys\": %u,\n  \"accesses\": %zu,\n  \"seed\": %llu,\n", flags.keys,
              flags.accesses, static_cast<unsigned long long>(flags.seed));
  j += "  \"rows\": " + JsonRows(rows, policies) + ",\n";
  j += "  \"recency_rows\": " + JsonRows(extra_rows, extra_policies) + ",\n";
  j += "  \"targets\": [\n";
  const std::vector<Target> targets = Targets(rows, policies);
  for (size_t t = 0; t < targets.size(); ++t) {
    j += Format("    {\"target\": \"%s\", \"measured\": \"%s\", \"met\": %s}%s\n",
                targets[t].what.c_str(), targets[t].measured.c_str(),
                targets[t].met ? "true" : "false", t + 1 < targets.size() ? "," : "");
  }
  j += "  ]\n}\n";
  return j;
}

// Draws one panel per trace: LRU, herd and Belady at each size.
std::string Plot(const std::vector<Row>& rows, const std::vector<Policy>& policies,
                 const std::string& path) {
  const size_t lru = IndexOf(policies, "LRU");
  const size_t herd = IndexOf(policies, "herd");
  const size_t belady = IndexOf(policies, "Belady");
  std::vector<std::string> traces;
  for (const Row& r : rows) {
    if (traces.empty() || traces.back() != r.trace) traces.push_back(r.trace);
  }
  std::string script;
  for (size_t t = 0; t < traces.size(); ++t) {
    script += Format("$d%zu << EOD\n", t);
    for (const Row& r : rows) {
      if (r.trace != traces[t]) continue;
      script += Format("\"%s\" %.6f %.6f %.6f\n", SizeName(r.fraction), r.ratio[lru],
                       r.ratio[herd], r.ratio[belady]);
    }
    script += "EOD\n";
  }
  std::string quoted;
  for (char ch : path) {
    if (ch == '\'') quoted += '\'';
    quoted += ch;
  }
  script +=
      "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) { set terminal pngcairo size "
      "1200,720 noenhanced font 'sans,10' } else { set terminal png size 1200,720 "
      "noenhanced }\n"
      "set output '" + quoted + "'\n"
      "set multiplot layout 2,3 title 'hit ratio by cache size (share of the trace''s "
      "distinct keys): LRU, herd (W-TinyLFU), Belady''s optimum'\n"
      "set style data histogram\n"
      "set style histogram clustered gap 1\n"
      "set style fill solid 0.85 border -1\n"
      "set boxwidth 0.9\n"
      "set grid ytics\n"
      "set yrange [0:1]\n"
      "set key top left\n";
  for (size_t t = 0; t < traces.size(); ++t) {
    script += Format("set title '%s'\n", traces[t].c_str());
    script += Format(
        "plot $d%zu using 2:xtic(1) title 'LRU' lc rgb '#bbbbbb', '' using 3 title "
        "'herd' lc rgb '#4477aa', '' using 4 title 'Belady' lc rgb '#228833'\n",
        t);
    if (t == 0) script += "unset key\n";
  }
  script += "unset multiplot\n";
  std::FILE* gp = popen("gnuplot", "w");
  if (gp == nullptr) return "cannot run gnuplot";
  std::fputs(script.c_str(), gp);
  const int status = pclose(gp);
  if (status != 0) return "gnuplot failed (status " + std::to_string(status) + ")";
  return "";
}

bool WriteFile(const std::string& path, const std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  return std::fclose(f) == 0 && ok;
}

int Usage() {
  std::fprintf(stderr,
               "usage: hit_ratio [--keys=N] [--accesses=N] [--seed=N] [--md=FILE] "
               "[--json=FILE] [--plot=FILE.png] [--ablation]\n"
               "       hit_ratio --through-cache [--keys=N] [--accesses=N] [--seed=N] "
               "[--md=FILE]\n");
  return 2;
}

// The traces of the table, in its order.
std::vector<Trace> Traces(const Flags& flags) {
  std::vector<Trace> traces;
  const uint64_t seed = flags.seed;
  traces.push_back(ZipfTrace(flags.keys, flags.accesses, 0.6, seed + 1));
  traces.push_back(ZipfTrace(flags.keys, flags.accesses, 0.9, seed + 2));
  traces.push_back(ZipfTrace(flags.keys, flags.accesses, 1.2, seed + 3));
  traces.push_back(ZipfScanTrace(flags.keys, flags.accesses, 0.9, 0.2, seed + 4));
  for (size_t s = 0; s < 3; ++s) {
    // The loop is 1.1x the cache, so each size has its own trace; the cold
    // keys make the cache the same share of its distinct keys as elsewhere.
    const auto cache = static_cast<uint32_t>(std::llround(flags.keys * kFractions[s]));
    const uint32_t loop = cache + (cache + 9) / 10;
    traces.push_back(LoopTrace(flags.keys, loop, 0.2, seed + 5 + s));
  }
  traces.push_back(ShiftTrace(flags.keys, flags.accesses, 0.9, seed + 8));
  return traces;
}

// The sizes each trace of Traces() runs at: all three, but one per loop.
std::vector<size_t> SizesOf(const std::vector<Trace>& traces, size_t t) {
  if (traces[t].name != "loop") return {0, 1, 2};
  size_t loops_before = 0;
  for (size_t i = 0; i < t; ++i) loops_before += traces[i].name == "loop";
  return {loops_before};
}

// --through-cache: LRU, the policy alone, the policy through the cache and
// Belady, on every trace and size.
int ThroughCache(const Flags& flags) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<Policy> policies = Policies(flags);  // LRU, herd, Belady
  policies.insert(policies.begin() + 2,
                  {"cache", "herd::LoadingCache, max_entries = the size, one Get() per access",
                   [seed = flags.seed](const Trace& t, uint64_t c) {
                     return CacheHits(t, c, seed);
                   }});
  const size_t lru = IndexOf(policies, "LRU");
  const size_t herd = IndexOf(policies, "herd");
  const size_t cache = IndexOf(policies, "cache");
  const size_t belady = IndexOf(policies, "Belady");
  const std::vector<Trace> traces = Traces(flags);
  std::vector<Row> rows;
  for (size_t t = 0; t < traces.size(); ++t) {
    for (size_t s : SizesOf(traces, t)) Run(traces[t], s, policies, rows);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "hit_ratio --through-cache: %.1f s\n", seconds);

  std::string md =
      "| trace | cache | entries | LRU | policy alone | through the cache | Belady | "
      "cache / LRU | gap closed | policy alone: gap closed |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const Row& r : rows) {
    const double closed = GapClosed(r, lru, cache, belady);
    const double closed_alone = GapClosed(r, lru, herd, belady);
    md += Format("| %s | %s | %llu | %.4f | %.4f | **%.4f** | %.4f |", r.trace.c_str(),
                 SizeName(r.fraction), static_cast<unsigned long long>(r.capacity),
                 r.ratio[lru], r.ratio[herd], r.ratio[cache], r.ratio[belady]);
    md += r.ratio[lru] > 0 ? Format(" %.3fx |", r.ratio[cache] / r.ratio[lru])
                           : std::string(" – |");
    md += std::isnan(closed) ? std::string(" – |") : Format(" %.1f%% |", 100 * closed);
    md += std::isnan(closed_alone) ? std::string(" – |\n")
                                   : Format(" %.1f%% |\n", 100 * closed_alone);
  }
  md += "\nTargets, through the cache:\n\n";
  {
    const Row& r = Find(rows, "zipf-0.9", 0.01);
    const double closed = GapClosed(r, lru, cache, belady);
    md += Format("- %s Zipf 0.9 at 1%%: closes at least 60%% of the LRU-Belady gap: %.1f%%\n",
                 closed >= 0.6 ? "**met**" : "**missed**", 100 * closed);
  }
  {
    const Row& r = Find(rows, "zipf-0.9+scan", 0.01);
    const double x = r.ratio[cache] / r.ratio[lru];
    md += Format("- %s Zipf 0.9 + 20%% scan at 1%%: at least 1.4x LRU: %.3fx\n",
                 x >= 1.4 ? "**met**" : "**missed**", x);
  }
  {
    const Row* worst = &rows.front();
    for (const Row& r : rows) {
      if (r.ratio[cache] - r.ratio[lru] < worst->ratio[cache] - worst->ratio[lru]) worst = &r;
    }
    const double margin = worst->ratio[cache] - worst->ratio[lru];
    md += Format("- %s at least LRU's hit ratio on every trace and size: smallest margin "
                 "%+.4f (%s at %s)\n",
                 margin >= 0 ? "**met**" : "**missed**", margin, worst->trace.c_str(),
                 SizeName(worst->fraction));
  }
  md += Format(
      "\n`through the cache` replays each trace through a bounded `herd::LoadingCache` "
      "(`max_entries` = the size, one `Get()` per access, on one thread, keys hashed as the "
      "simulation hashes them); `policy alone` drives `TinyLfu` directly, every hit a "
      "`RecordAccess()`, as in `hit_ratio.md`. `gap closed` is (cache - LRU) / (Belady - "
      "LRU). Written by `scripts/hit_ratio.sh`: `hit_ratio --through-cache --keys=%u "
      "--accesses=%zu --seed=%llu`.\n",
      flags.keys, flags.accesses, static_cast<unsigned long long>(flags.seed));
  std::fputs(md.c_str(), stdout);
  if (!flags.md.empty() && !WriteFile(flags.md, md)) {
    std::fprintf(stderr, "hit_ratio: cannot write %s\n", flags.md.c_str());
    return 1;
  }
  return 0;
}

int Main(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&](std::string_view name) -> const char* {
      return arg.substr(0, name.size()) == name ? argv[i] + name.size() : nullptr;
    };
    if (const char* v = value("--keys=")) {
      flags.keys = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
    } else if (const char* v = value("--accesses=")) {
      flags.accesses = std::strtoull(v, nullptr, 10);
    } else if (const char* v = value("--seed=")) {
      flags.seed = std::strtoull(v, nullptr, 10);
    } else if (const char* v = value("--md=")) {
      flags.md = v;
    } else if (const char* v = value("--json=")) {
      flags.json = v;
    } else if (const char* v = value("--plot=")) {
      flags.plot = v;
    } else if (arg == "--ablation") {
      flags.ablation = true;
    } else if (arg == "--through-cache") {
      flags.through_cache = true;
    } else {
      return Usage();
    }
  }
  if (flags.keys < 1000 || flags.accesses < flags.keys) return Usage();
  if (flags.through_cache) {
    if (flags.ablation || !flags.json.empty() || !flags.plot.empty()) return Usage();
    return ThroughCache(flags);
  }

  const auto start = std::chrono::steady_clock::now();
  const std::vector<Policy> policies = Policies(flags);
  std::vector<Row> rows;
  const uint64_t seed = flags.seed;
  {
    const std::vector<Trace> traces = Traces(flags);
    for (size_t t = 0; t < traces.size(); ++t) {
      for (size_t s : SizesOf(traces, t)) Run(traces[t], s, policies, rows);
    }
  }
  // Beyond the targets: LRU, herd with and without climbing, Belady.
  std::vector<Policy> extra_policies;
  Flags with_variants = flags;
  with_variants.ablation = true;
  for (const Policy& p : Policies(with_variants)) {
    if (p.name == "LRU" || p.name == "herd" || p.name == "no-climb" || p.name == "Belady") {
      extra_policies.push_back(p);
    }
  }
  std::vector<Row> extra_rows;
  {
    const Trace slide = SlideTrace(flags.keys, flags.accesses, 0.9, 4, seed + 9);
    for (size_t s = 0; s < 3; ++s) Run(slide, s, extra_policies, extra_rows);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::fprintf(stderr, "hit_ratio: %.1f s\n", seconds);
  const std::string md = Markdown(rows, policies, extra_rows, extra_policies, flags);
  std::fputs(md.c_str(), stdout);
  int status = 0;
  if (!flags.md.empty() && !WriteFile(flags.md, md)) {
    std::fprintf(stderr, "hit_ratio: cannot write %s\n", flags.md.c_str());
    status = 1;
  }
  if (!flags.json.empty() && !WriteFile(flags.json, Json(rows, policies, extra_rows, extra_policies, flags))) {
    std::fprintf(stderr, "hit_ratio: cannot write %s\n", flags.json.c_str());
    status = 1;
  }
  if (!flags.plot.empty()) {
    const std::string error = Plot(rows, policies, flags.plot);
    if (!error.empty()) {
      std::fprintf(stderr, "hit_ratio: %s\n", error.c_str());
      status = 1;
    }
  }
  return status;
}

}  // namespace
}  // namespace herd::hit_ratio

int main(int argc, char** argv) { return herd::hit_ratio::Main(argc, argv); }
