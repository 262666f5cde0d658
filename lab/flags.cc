// Copyright 2026 The herd Authors.
//
// herd-stampede's flags: --name=value or --name value, each checked against
// its range, with a one-line error that names the flag and the range.

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "lab/stampede_lab.h"

namespace herd::lab {
namespace {

std::string DefaultDbPath() {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  if (dir.back() != '/') dir += '/';
  return dir + "herd-stampede.db";
}

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

// Each parser returns an error message, or "" after storing the value.
using Setter = std::function<std::string(const std::string& flag,
                                         const std::string& value)>;

Setter Int(int64_t lo, int64_t hi, std::function<void(int64_t)> set) {
  return [=](const std::string& flag, const std::string& value) {
    int64_t v = 0;
    const char* end = value.data() + value.size();
    auto [p, ec] = std::from_chars(value.data(), end, v);
    if (value.empty() || ec != std::errc() || p != end || v < lo || v > hi) {
      return flag + " must be an integer in [" + std::to_string(lo) + ", " +
             std::to_string(hi) + "], got '" + value + "'";
    }
    set(v);
    return std::string();
  };
}

// A real number in [lo, hi] (or (lo, hi) with open ends).
Setter Real(double lo, double hi, bool open, std::function<void(double)> set) {
  return [=](const std::string& flag, const std::string& value) {
    char* end = nullptr;
    const double v = value.empty() ? NAN : std::strtod(value.c_str(), &end);
    const bool in_range = open ? (v > lo && v < hi) : (v >= lo && v <= hi);
    if (value.empty() || end != value.c_str() + value.size() ||
        !std::isfinite(v) || !in_range) {
      return flag + " must be a number in " + (open ? "(" : "[") + Num(lo) +
             ", " + Num(hi) + (open ? ")" : "]") + ", got '" + value + "'";
    }
    set(v);
    return std::string();
  };
}

Setter Ms(double lo, double hi, Millis* out) {
  return Real(lo, hi, false, [out](double v) { *out = Millis(v); });
}

std::string StrategyList() {
  std::string names;
  for (Strategy s : AllStrategies()) {
    if (!names.empty()) names += ",";
    names += StrategyName(s);
  }
  return names;
}

struct Flag {
  Setter set;
  bool takes_value = true;
};

}  // namespace

std::string Usage() {
  Config d;
  return "usage: herd-stampede [flags]\n"
         "\n"
         "A cache-stampede lab on a real SQLite database: a pool of request\n"
         "workers reads Zipf-distributed keys through a short-TTL cache, once\n"
         "per strategy, and prints database queries per expiry, throughput\n"
         "and latency for each.\n"
         "\n"
         "Database:\n"
         "  --db=PATH              the SQLite file, built on first use and\n"
         "                         reused (default $TMPDIR or /tmp/"
         "herd-stampede.db)\n"
         "  --rows=N               orders in the table [1000, 20000000] "
         "(250000)\n"
         "  --query-ms=MS          target time of one query, calibrated on "
         "this\n"
         "                         machine [0.1, 10000] (20)\n"
         "Workload (per strategy):\n"
         "  --workers=N            request workers [1, 1024] (64)\n"
         "  --keys=N               distinct keys [1, 100000] (16)\n"
         "  --skew=S               Zipf exponent, 0 is uniform [0, 5] (1.1)\n"
         "  --ttl-ms=MS            cache TTL [1, 3600000] (1000)\n"
         "  --duration-ms=MS       run time of each strategy [100, 3600000] "
         "(4000)\n"
         "  --requests=N           requests per strategy instead of a "
         "duration\n"
         "                         [0, 1e12] (0: use --duration-ms)\n"
         "  --think-ms=MS          mean pause between a worker's requests\n"
         "                         [0, 60000] (1)\n"
         "  --seed=N               random seed [0, 2^62] (1)\n"
         "  --cold-start           start each strategy with an empty cache (a\n"
         "                         restart) instead of a warm one\n"
         "  --strategies=LIST      comma-separated, run in this order\n"
         "                         (" +
         StrategyList() +
         ")\n"
         "Strategy knobs (0: derived from the calibrated query time):\n"
         "  --extra-rate=P         share-sampled: extra_execution_rate [0, 1] "
         "(0.05)\n"
         "  --wait-ms=MS           share-guarded: DoFor wait, then "
         "Forget(kRerun)\n"
         "                         [0, 600000] (0: 10 queries)\n"
         "  --max-flight-age-ms=MS share-guarded: max_flight_age [0, 600000]\n"
         "                         (0: 20 queries)\n"
         "  --deadline-ms=MS       share-guarded: WithDeadline on the query\n"
         "                         [0, 600000] (0: 40 queries)\n"
         "  --refresh-after=F      cache-refresh: refresh_after as a fraction "
         "of\n"
         "                         the TTL (0, 1) (0.5)\n"
         "  --beta=B               early: XFetch early_refresh_beta [0, 100] "
         "(1)\n"
         "Fault injection:\n"
         "  --stall-every=N        one query in N blocks [0, 1e12] (0: off)\n"
         "  --stall-ms=MS          ...for this long [1, 600000] (10000)\n"
         "Output:\n"
         "  --json                 JSON on stdout instead of the table\n"
         "  --json=FILE            JSON to FILE as well as the table\n"
         "  --plot=FILE            queries and p99 per strategy, .png or .svg\n"
         "                         (needs gnuplot: apt-get install "
         "gnuplot-nox)\n"
         "  --no-progress          no progress bar on stderr\n"
         "  --help                 this text\n"
         "\n"
         "Exit status: 0, 1 on a runtime error, 2 on a bad flag, 130 when\n"
         "interrupted (Ctrl-C prints what was measured).\n";
}

ParsedFlags ParseFlags(const std::vector<std::string>& args) {
  ParsedFlags r;
  Config& c = r.config;
  c.db_path = DefaultDbPath();

  std::map<std::string, Flag, std::less<>> flags;
  flags["--db"] = {[&c](const std::string& flag, const std::string& v) {
    if (v.empty()) return flag + " must be a file path, got ''";
    c.db_path = v;
    return std::string();
  }};
  flags["--rows"] = {Int(1000, 20000000, [&c](int64_t v) { c.rows = v; })};
  flags["--query-ms"] = {
      Real(0.1, 10000, false, [&c](double v) { c.query_ms = v; })};
  flags["--workers"] = {
      Int(1, 1024, [&c](int64_t v) { c.workers = static_cast<int>(v); })};
  flags["--keys"] = {
      Int(1, 100000, [&c](int64_t v) { c.keys = static_cast<int>(v); })};
  flags["--skew"] = {Real(0, 5, false, [&c](double v) { c.skew = v; })};
  flags["--ttl-ms"] = {Ms(1, 3600000, &c.ttl)};
  flags["--duration-ms"] = {Ms(100, 3600000, &c.duration)};
  flags["--requests"] = {Int(0, 1000000000000, [&c](int64_t v) {
    c.requests = static_cast<uint64_t>(v);
  })};
  flags["--think-ms"] = {Ms(0, 60000, &c.think)};
  flags["--seed"] = {Int(0, int64_t{1} << 62, [&c](int64_t v) {
    c.seed = static_cast<uint64_t>(v);
  })};
  flags["--strategies"] = {[&c](const std::string& flag, const std::string& v) {
    std::vector<Strategy> list;
    std::string_view rest = v;
    while (true) {
      const size_t comma = rest.find(',');
      const std::string_view name = rest.substr(0, comma);
      std::optional<Strategy> s = ParseStrategy(name);
      if (!s.has_value()) {
        return flag + " must be a comma-separated list of " + StrategyList() +
               ", got '" + std::string(name) + "'";
      }
      list.push_back(*s);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    c.strategies = std::move(list);
    return std::string();
  }};
  flags["--extra-rate"] = {
      Real(0, 1, false, [&c](double v) { c.extra_rate = v; })};
  flags["--wait-ms"] = {Ms(0, 600000, &c.wait)};
  flags["--max-flight-age-ms"] = {Ms(0, 600000, &c.max_flight_age)};
  flags["--deadline-ms"] = {Ms(0, 600000, &c.deadline)};
  flags["--refresh-after"] = {
      Real(0, 1, true, [&c](double v) { c.refresh_after = v; })};
  flags["--beta"] = {Real(0, 100, false, [&c](double v) { c.beta = v; })};
  flags["--stall-every"] = {Int(0, 1000000000000, [&c](int64_t v) {
    c.stall_every = static_cast<uint64_t>(v);
  })};
  flags["--stall-ms"] = {Ms(1, 600000, &c.stall)};
  flags["--plot"] = {[&c](const std::string& flag, const std::string& v) {
    auto ends_with = [&v](std::string_view suffix) {
      return v.size() > suffix.size() &&
             v.compare(v.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (!ends_with(".png") && !ends_with(".svg")) {
      return flag + " must be a file name ending in .png or .svg, got '" + v +
             "'";
    }
    c.plot_path = v;
    return std::string();
  }};
  flags["--no-progress"] = {[&c](const std::string&, const std::string&) {
                              c.progress = false;
                              return std::string();
                            },
                            /*takes_value=*/false};
  flags["--cold-start"] = {[&c](const std::string&, const std::string&) {
                             c.cold_start = true;
                             return std::string();
                           },
                           /*takes_value=*/false};
  flags["--help"] = {[&r](const std::string&, const std::string&) {
                       r.help = true;
                       return std::string();
                     },
                     /*takes_value=*/false};

  for (size_t i = 0; i < args.size() && r.error.empty(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h") {
      r.help = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0 || arg.size() == 2) {
      r.error = "unexpected argument '" + arg + "' (flags are --name=value)";
      break;
    }
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    const bool inline_value = eq != std::string::npos;
    std::string value = inline_value ? arg.substr(eq + 1) : "";
    if (name == "--json") {
      // Takes its value only inline: `--json out.json` would be ambiguous.
      if (!inline_value) {
        c.json_stdout = true;
      } else if (value.empty()) {
        r.error = "--json=FILE needs a file name (or use --json alone)";
      } else {
        c.json_path = value;
      }
      continue;
    }
    auto it = flags.find(name);
    if (it == flags.end()) {
      r.error = "unknown flag " + name + " (see --help)";
      break;
    }
    if (!it->second.takes_value) {
      if (inline_value) r.error = name + " takes no value";
      if (r.error.empty()) r.error = it->second.set(name, "");
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= args.size()) {
        r.error = name + " needs a value";
        break;
      }
      value = args[++i];
    }
    r.error = it->second.set(name, value);
  }
  return r;
}

}  // namespace herd::lab
