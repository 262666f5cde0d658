// Copyright 2026 The herd Authors.
//
// herd-stampede's flags, on absl/flags. Each flag is an ABSL_FLAG whose
// default is Config's; kFlags below gives it a place in --help and its
// accepted values. absl parses each value (CommandLineFlag::ParseFrom) and
// ParseFlags checks the range, so that a bad flag gets one line that names
// the flag and its range, and Main() exits 2. (absl::ParseCommandLine is not
// used: it prints a multi-line report and exits 1, and it cannot be called
// twice in one process, as the tests do.)
//
// To add a flag: a Config member with its default, an ABSL_FLAG below that
// takes the default from Config{}, an entry in kFlags, and a line in
// ParseFlags that copies it into the Config. On the command line an
// underscore in a name may be written as a dash, and --help shows dashes.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"  // FindCommandLineFlag
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "lab/stampede_lab.h"

namespace {
const herd::lab::Config kDefault;
}  // namespace

// Database.
ABSL_FLAG(std::string, db, "",
          "the SQLite file, built on first use and reused (default: "
          "herd-stampede.db in $TMPDIR, or in /tmp)");
ABSL_FLAG(int64_t, rows, kDefault.rows, "orders in the table");
ABSL_FLAG(double, query_ms, kDefault.query_ms,
          "target time of one query, calibrated on this machine");
// Workload (per strategy).
ABSL_FLAG(int32_t, workers, kDefault.workers, "request workers");
ABSL_FLAG(int32_t, keys, kDefault.keys, "distinct keys");
ABSL_FLAG(double, skew, kDefault.skew, "Zipf exponent, 0 is uniform");
ABSL_FLAG(double, ttl_ms, kDefault.ttl.count(), "cache TTL");
ABSL_FLAG(double, duration_ms, kDefault.duration.count(),
          "run time of each strategy");
ABSL_FLAG(int64_t, requests, static_cast<int64_t>(kDefault.requests),
          "requests per strategy instead of a duration (0: use "
          "--duration-ms)");
ABSL_FLAG(double, think_ms, kDefault.think.count(),
          "mean pause between a worker's requests");
ABSL_FLAG(int64_t, seed, static_cast<int64_t>(kDefault.seed), "random seed");
ABSL_FLAG(int32_t, processes, kDefault.processes,
          "processes, each running the workload with --workers threads and a "
          "cache of its own, over the one database");
ABSL_FLAG(bool, cold_start, kDefault.cold_start,
          "start each strategy with an empty cache (a restart) instead of a "
          "warm one");
ABSL_FLAG(std::vector<std::string>, strategies, {},
          "the strategies to run, comma-separated, in this order; by default "
          "all of");
// Strategy knobs.
ABSL_FLAG(double, extra_rate, kDefault.extra_rate,
          "share-sampled: extra_execution_rate");
ABSL_FLAG(double, wait_ms, kDefault.wait.count(),
          "share-guarded: DoFor wait, then Forget(kRerunOnNextCall); "
          "cache-refresh, early: soft_timeout and fail_safe_backoff "
          "(0: 10 queries)");
ABSL_FLAG(double, max_flight_age_ms, kDefault.max_flight_age.count(),
          "share-guarded, cache-refresh, early: max_flight_age "
          "(0: 20 queries)");
ABSL_FLAG(double, deadline_ms, kDefault.deadline.count(),
          "share-guarded: WithDeadline on the query; cache-refresh, early: "
          "hard_timeout (0: 40 queries)");
ABSL_FLAG(double, refresh_after, kDefault.refresh_after,
          "cache-refresh: refresh_after as a fraction of the TTL");
ABSL_FLAG(double, beta, kDefault.beta, "early: XFetch early_refresh_beta");
// Redis.
ABSL_FLAG(std::string, redis, kDefault.redis,
          "the Redis server that fleet, local and redis-lock share, as "
          "HOST:PORT (default: a redis-server the lab starts on 127.0.0.1, "
          "if installed)");
// Fault injection.
ABSL_FLAG(int64_t, stall_every, static_cast<int64_t>(kDefault.stall_every),
          "one query in N blocks (0: off)");
ABSL_FLAG(double, stall_ms, kDefault.stall.count(), "...for this long");
// Output.
ABSL_FLAG(std::string, json, "",
          "JSON to FILE as well as the table; --json alone (or --json=-): "
          "JSON on stdout instead of the table");
ABSL_FLAG(std::string, plot, "",
          "queries and p99 per strategy, .png or .svg (needs gnuplot: "
          "apt-get install gnuplot-nox)");
ABSL_FLAG(bool, no_progress, !kDefault.progress,
          "no progress bar on stderr");

namespace herd::lab {
namespace {

std::string DefaultDbPath() {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  if (dir.back() != '/') dir += '/';
  return dir + "herd-stampede.db";
}

std::string StrategyList() {
  std::vector<std::string> names;  // Debian's absl::string_view is not std's
  for (Strategy s : AllStrategies()) names.emplace_back(StrategyName(s));
  return absl::StrJoin(names, ",");
}

// The handle ParseFrom() needs (GetFlagReflectionHandle's is const).
template <class T>
absl::CommandLineFlag* Handle(const absl::Flag<T>& f) {
  return absl::FindCommandLineFlag(absl::GetFlagReflectionHandle(f).Name());
}

// One of the lab's flags: what --help shows and what a value must be.
struct LabFlag {
  absl::CommandLineFlag* flag;
  std::string metavar;  // --name=METAVAR in --help; empty for a bool
  std::string range;    // "[1, 1024]" in --help; may be empty
  std::string expected;  // "an integer in [1, 1024]", for errors
  // True iff the flag's current value is acceptable.
  std::function<bool()> valid = [] { return true; };
};

template <class T>
LabFlag Int(const absl::Flag<T>& f, std::string metavar, int64_t lo,
            int64_t hi) {
  std::string range = absl::StrCat("[", lo, ", ", hi, "]");
  return {Handle(f), std::move(metavar), range,
          "an integer in " + range, [&f, lo, hi] {
            const int64_t v = absl::GetFlag(f);
            return v >= lo && v <= hi;
          }};
}

// A finite number in [lo, hi], or in (lo, hi) when `open`.
LabFlag Real(const absl::Flag<double>& f, std::string metavar, double lo,
             double hi, bool open = false) {
  // %.10g: 3600000, not StrCat's 3.6e+06.
  std::string range = absl::StrFormat("%s%.10g, %.10g%s", open ? "(" : "[",
                                      lo, hi, open ? ")" : "]");
  return {Handle(f), std::move(metavar), range,
          "a number in " + range, [&f, lo, hi, open] {
            const double v = absl::GetFlag(f);
            return std::isfinite(v) && (open ? v > lo && v < hi
                                             : v >= lo && v <= hi);
          }};
}

LabFlag Bool(const absl::Flag<bool>& f) {
  return {Handle(f), "", "", "true or false"};
}

struct Group {
  const char* title;
  std::vector<LabFlag> flags;
};

// Every flag, in --help's order.
const std::vector<Group>& Flags() {
  static const auto* const kFlags = new std::vector<Group>{
      {"Database",
       {
           {Handle(FLAGS_db), "PATH", "",
            "a file path",
            [] { return !absl::GetFlag(FLAGS_db).empty(); }},
           Int(FLAGS_rows, "N", 1000, 20000000),
           Real(FLAGS_query_ms, "MS", 0.1, 10000),
       }},
      {"Workload (per strategy)",
       {
           Int(FLAGS_workers, "N", 1, 1024),
           Int(FLAGS_processes, "P", 1, 64),
           Int(FLAGS_keys, "N", 1, 100000),
           Real(FLAGS_skew, "S", 0, 5),
           Real(FLAGS_ttl_ms, "MS", 1, 3600000),
           Real(FLAGS_duration_ms, "MS", 100, 3600000),
           Int(FLAGS_requests, "N", 0, 1000000000000),
           Real(FLAGS_think_ms, "MS", 0, 60000),
           Int(FLAGS_seed, "N", 0, int64_t{1} << 62),
           Bool(FLAGS_cold_start),
           {Handle(FLAGS_strategies), "LIST",
            "(" + absl::StrReplaceAll(StrategyList(), {{",", ", "}}) + ")",
            "a comma-separated list of " + StrategyList(),
            [] {
              const std::vector<std::string> list =
                  absl::GetFlag(FLAGS_strategies);
              for (const std::string& name : list) {
                if (!ParseStrategy(name).has_value()) return false;
              }
              return !list.empty();
            }},
       }},
      {"Strategy knobs (0: derived from the calibrated query time)",
       {
           Real(FLAGS_extra_rate, "P", 0, 1),
           Real(FLAGS_wait_ms, "MS", 0, 600000),
           Real(FLAGS_max_flight_age_ms, "MS", 0, 600000),
           Real(FLAGS_deadline_ms, "MS", 0, 600000),
           Real(FLAGS_refresh_after, "F", 0, 1, /*open=*/true),
           Real(FLAGS_beta, "B", 0, 100),
       }},
      {"Redis (fleet, local, redis-lock)",
       {
           {Handle(FLAGS_redis), "HOST:PORT", "",
            "HOST:PORT with a port in [1, 65535]",
            [] {
              const std::string v = absl::GetFlag(FLAGS_redis);
              const size_t colon = v.rfind(':');
              int port = 0;
              return colon != std::string::npos && colon > 0 &&
                     absl::SimpleAtoi(v.substr(colon + 1), &port) &&
                     port >= 1 && port <= 65535;
            }},
       }},
      {"Fault injection",
       {
           Int(FLAGS_stall_every, "N", 0, 1000000000000),
           Real(FLAGS_stall_ms, "MS", 1, 600000),
       }},
      {"Output",
       {
           {Handle(FLAGS_json), "FILE", "",
            "a file name (or --json alone for stdout)",
            [] { return !absl::GetFlag(FLAGS_json).empty(); }},
           {Handle(FLAGS_plot), "FILE", "",
            "a file name ending in .png or .svg",
            [] {
              const std::string v = absl::GetFlag(FLAGS_plot);
              return (absl::EndsWith(v, ".png") || absl::EndsWith(v, ".svg")) &&
                     v.size() > 4;
            }},
           Bool(FLAGS_no_progress),
       }},
  };
  return *kFlags;
}

// "--query-ms" for the flag query_ms.
std::string Dashed(const absl::CommandLineFlag& flag) {
  return "--" + absl::StrReplaceAll(flag.Name(), {{"_", "-"}});
}

const LabFlag* Find(std::string_view dashed_name) {
  for (const Group& group : Flags()) {
    for (const LabFlag& f : group.flags) {
      if (Dashed(*f.flag) == dashed_name) return &f;
    }
  }
  return nullptr;
}

// `text` broken into lines of at most `width` columns, every line after the
// first indented by `indent` spaces.
std::string Wrap(std::string_view text, size_t indent, size_t width) {
  std::string out;
  size_t column = 0;
  while (!text.empty()) {
    const size_t space = text.find(' ');
    const std::string_view word = text.substr(0, space);
    text = space == std::string_view::npos ? "" : text.substr(space + 1);
    if (column > 0 && column + 1 + word.size() > width) {
      out += "\n" + std::string(indent, ' ');
      column = 0;
    } else if (column > 0) {
      out += ' ';
      ++column;
    }
    out += word;
    column += word.size();
  }
  return out;
}

}  // namespace

std::string Usage() {
  constexpr size_t kIndent = 25;
  std::string usage =
      "usage: herd-stampede [flags]\n"
      "\n"
      "A cache-stampede lab on a real SQLite database: a pool of request\n"
      "workers reads Zipf-distributed keys through a short-TTL cache, once\n"
      "per strategy, and prints database queries per expiry, throughput\n"
      "and latency for each.\n";
  for (const Group& group : Flags()) {
    absl::StrAppend(&usage, "\n", group.title, ":\n");
    for (const LabFlag& f : group.flags) {
      std::string name = "  " + Dashed(*f.flag);
      if (!f.metavar.empty()) absl::StrAppend(&name, "=", f.metavar);
      name.resize(std::max(name.size() + 1, kIndent), ' ');
      std::string help = f.flag->Help();
      if (!f.range.empty()) absl::StrAppend(&help, " ", f.range);
      const std::string def = f.flag->DefaultValue();
      if (f.metavar.empty() || def.empty()) {
        // Booleans are off, strings empty, by default.
      } else {
        absl::StrAppend(&help, " (default ", def, ")");
      }
      absl::StrAppend(&usage, name, Wrap(help, kIndent, 79 - kIndent), "\n");
    }
  }
  usage +=
      "  --help                 this text\n"
      "\n"
      "Exit status: 0, 1 on a runtime error, 2 on a bad flag, 130 when\n"
      "interrupted (Ctrl-C prints what was measured).\n";
  return usage;
}

ParsedFlags ParseFlags(const std::vector<std::string>& args) {
  // Each call starts from the defaults. (Not absl::FlagSaver: Debian's
  // Abseil logs every value it restores to stderr.)
  for (const Group& group : Flags()) {
    for (const LabFlag& f : group.flags) {
      std::string error;
      if (!f.flag->ParseFrom(f.flag->DefaultValue(), &error)) std::abort();
    }
  }
  ParsedFlags r;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help") {
      r.help = true;
      continue;
    }
    if (!absl::StartsWith(arg, "--") || arg.size() == 2) {
      r.error = "unexpected argument '" + arg + "' (flags are --name=value)";
      return r;
    }
    const size_t eq = arg.find('=');
    const std::string name =
        absl::StrReplaceAll(arg.substr(0, eq), {{"_", "-"}});
    const LabFlag* f = Find(name);
    if (f == nullptr) {
      r.error = "unknown flag " + name + " (see --help)";
      return r;
    }
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (f->flag->IsOfType<bool>()) {
      value = "true";
    } else if (name == "--json") {
      // `--json out.json` would be ambiguous: alone, it means stdout.
      value = "-";
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      r.error = name + " needs a value";
      return r;
    }
    std::string ignored;  // absl's own message does not say the range
    if (!f->flag->ParseFrom(value, &ignored) || !f->valid()) {
      r.error = name + " must be " + f->expected + ", got '" + value + "'";
      return r;
    }
  }

  Config& c = r.config;
  c.db_path = absl::GetFlag(FLAGS_db);
  if (c.db_path.empty()) c.db_path = DefaultDbPath();
  c.rows = absl::GetFlag(FLAGS_rows);
  c.query_ms = absl::GetFlag(FLAGS_query_ms);
  c.workers = absl::GetFlag(FLAGS_workers);
  c.processes = absl::GetFlag(FLAGS_processes);
  c.redis = absl::GetFlag(FLAGS_redis);
  c.keys = absl::GetFlag(FLAGS_keys);
  c.skew = absl::GetFlag(FLAGS_skew);
  c.ttl = Millis(absl::GetFlag(FLAGS_ttl_ms));
  c.duration = Millis(absl::GetFlag(FLAGS_duration_ms));
  c.requests = static_cast<uint64_t>(absl::GetFlag(FLAGS_requests));
  c.think = Millis(absl::GetFlag(FLAGS_think_ms));
  c.seed = static_cast<uint64_t>(absl::GetFlag(FLAGS_seed));
  c.cold_start = absl::GetFlag(FLAGS_cold_start);
  const std::vector<std::string> strategies = absl::GetFlag(FLAGS_strategies);
  if (!strategies.empty()) {
    c.strategies.clear();
    for (const std::string& name : strategies) {
      c.strategies.push_back(*ParseStrategy(name));
    }
  }
  c.extra_rate = absl::GetFlag(FLAGS_extra_rate);
  c.wait = Millis(absl::GetFlag(FLAGS_wait_ms));
  c.max_flight_age = Millis(absl::GetFlag(FLAGS_max_flight_age_ms));
  c.deadline = Millis(absl::GetFlag(FLAGS_deadline_ms));
  c.refresh_after = absl::GetFlag(FLAGS_refresh_after);
  c.beta = absl::GetFlag(FLAGS_beta);
  c.stall_every = static_cast<uint64_t>(absl::GetFlag(FLAGS_stall_every));
  c.stall = Millis(absl::GetFlag(FLAGS_stall_ms));
  const std::string json = absl::GetFlag(FLAGS_json);
  c.json_stdout = json == "-";
  if (!c.json_stdout) c.json_path = json;
  c.plot_path = absl::GetFlag(FLAGS_plot);
  c.progress = !absl::GetFlag(FLAGS_no_progress);
  return r;
}

}  // namespace herd::lab
