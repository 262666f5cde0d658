// Copyright 2026 The herd Authors.
//
// herd-stampede's output (table, verdict, JSON, plot) and its Main().

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "lab/database.h"
#include "lab/stampede_lab.h"
#include "nlohmann/json.hpp"

namespace herd::lab {
namespace {

std::string Format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string Format(const char* fmt, ...) {
  char buf[512];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, args);
  va_end(args);
  return buf;
}

// 12us, 3.40ms, 212.3ms, 2.01s.
std::string Latency(Millis d) {
  const double ms = d.count();
  if (ms < 0.001) return "<1us";
  if (ms < 1) return Format("%.0fus", ms * 1000);
  if (ms < 10) return Format("%.2fms", ms);
  if (ms < 1000) return Format("%.1fms", ms);
  return Format("%.2fs", ms / 1000);
}

std::string Ratio(double r) {
  if (r >= 100) return Format("%.0f", r);
  return Format("%.2f", r);
}

const StrategyResult* Find(const Report& report, Strategy s) {
  for (const StrategyResult& r : report.results) {
    if (r.strategy == s) return &r;
  }
  return nullptr;
}

// Is `name` an executable on $PATH?
bool OnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t colon = dirs.find(':', start);
    if (colon == std::string::npos) colon = dirs.size();
    std::string dir = dirs.substr(start, colon - start);
    if (dir.empty()) dir = ".";
    if (access((dir + "/" + name).c_str(), X_OK) == 0) return true;
    start = colon + 1;
  }
  return false;
}

}  // namespace

void PrintTable(const Report& report, std::FILE* out) {
  const Config& c = report.config;
  const bool stalls = c.stall_every > 0;
  std::fprintf(out, "\n%d workers, %d keys (Zipf %.2g), TTL %s, ", c.workers,
               c.keys, c.skew, Latency(c.ttl).c_str());
  if (c.requests > 0) {
    std::fprintf(out, "%llu requests",
                 static_cast<unsigned long long>(c.requests));
  } else {
    std::fprintf(out, "%.1f s", c.duration.count() / 1000);
  }
  std::fprintf(out, " per strategy, think %s", Latency(c.think).c_str());
  if (stalls) {
    std::fprintf(out, "; 1 query in %llu stalls for %s",
                 static_cast<unsigned long long>(c.stall_every),
                 Latency(c.stall).c_str());
  }
  std::fprintf(out, "\n\n");
  std::fprintf(out, "%-14s %9s %8s %9s %8s %8s %8s %8s %8s %8s %7s", "strategy",
               "requests", "queries", "refreshes", "expiries", "q/expiry",
               "req/s", "p50", "p99", "max", "errors");
  if (stalls) std::fprintf(out, " %6s %6s", "stalls", "stuck");
  std::fprintf(out, "\n");
  for (const StrategyResult& r : report.results) {
    const std::string name =
        std::string(StrategyName(r.strategy)) + (r.interrupted ? "*" : "");
    std::fprintf(out, "%-14s %9llu %8llu %9s %8llu %8s %8.0f %8s %8s %8s %7llu",
                 name.c_str(), static_cast<unsigned long long>(r.requests),
                 static_cast<unsigned long long>(r.queries),
                 r.refreshes > 0 ? std::to_string(r.refreshes).c_str() : "-",
                 static_cast<unsigned long long>(r.expiries),
                 r.expiries > 0 ? Ratio(r.QueriesPerExpiry()).c_str() : "-",
                 r.Throughput(), Latency(r.p50).c_str(), Latency(r.p99).c_str(),
                 Latency(r.max).c_str(),
                 static_cast<unsigned long long>(r.errors));
    if (stalls) {
      std::fprintf(out, " %6llu %6llu",
                   static_cast<unsigned long long>(r.stalls),
                   static_cast<unsigned long long>(r.stuck));
    }
    std::fprintf(out, "\n");
  }
  if (report.interrupted) {
    std::fprintf(out, "* interrupted: figures cover the part that ran\n");
  }
  bool refreshes = false;
  for (const StrategyResult& r : report.results) refreshes |= r.refreshes > 0;
  std::fprintf(out,
               "\nq/expiry: database queries run for misses, per lapse of a "
               "key's cached value that a request found\n");
  if (refreshes) {
    std::fprintf(out,
                 "refreshes: queries run ahead of expiry, off the request "
                 "path (an expiry that finds one in flight waits for it, so "
                 "q/expiry can be below 1)\n");
  }
  if (stalls) {
    std::fprintf(out,
                 "stalls: queries that blocked; stuck: requests that took "
                 "at least half a stall (%s)\n",
                 Latency(c.stall / 2).c_str());
  }
  const std::string verdict = Verdict(report);
  if (!verdict.empty()) std::fprintf(out, "\n%s", verdict.c_str());
  std::fflush(out);
}

std::string Verdict(const Report& report) {
  std::string v;
  const StrategyResult* none = Find(report, Strategy::kNone);
  const StrategyResult* share = Find(report, Strategy::kShare);
  if (none != nullptr && share != nullptr && none->expiries > 0 &&
      share->expiries > 0 && share->QueriesPerExpiry() > 0) {
    const double a = none->QueriesPerExpiry();
    const double b = share->QueriesPerExpiry();
    v += Format(
        "verdict: share: %s queries per expiry vs none: %s -- %.0fx fewer "
        "database queries per expiry;\n"
        "         throughput %.0f vs %.0f requests/s, p99 %s vs %s\n",
        Ratio(b).c_str(), Ratio(a).c_str(), a / b, share->Throughput(),
        none->Throughput(), Latency(share->p99).c_str(),
        Latency(none->p99).c_str());
  }
  if (report.config.stall_every > 0) {
    std::string stuck;
    for (const StrategyResult& r : report.results) {
      if (!stuck.empty()) stuck += ", ";
      stuck += Format("%s %llu", std::string(StrategyName(r.strategy)).c_str(),
                      static_cast<unsigned long long>(r.stuck));
    }
    v += "stalls: requests held " + Latency(report.config.stall / 2) +
         " or more: " + stuck + "\n";
    v += "  (under lock and share a stalled query holds every caller of its "
         "key; share-guarded bounds\n"
         "   the wait with DoFor + Forget(kRerunOnNextCall), max_flight_age "
         "and WithDeadline)\n";
  }
  return v;
}

std::string ToJson(const Report& report) {
  using Json = nlohmann::ordered_json;  // keys in the order written here
  const Config& c = report.config;
  const Calibration& cal = report.calibration;
  Json j;
  j["config"] = {
      {"workers", c.workers},
      {"keys", c.keys},
      {"skew", c.skew},
      {"ttl_ms", c.ttl.count()},
      {"duration_ms", c.duration.count()},
      {"requests", c.requests},
      {"think_ms", c.think.count()},
      {"query_ms", c.query_ms},
      {"seed", c.seed},
      {"extra_rate", c.extra_rate},
      {"refresh_after", c.refresh_after},
      {"beta", c.beta},
      {"stall_every", c.stall_every},
      {"stall_ms", c.stall.count()},
  };
  j["database"] = {
      {"path", cal.db_path},
      {"rows", cal.rows},
      {"built", cal.built},
      {"scan_rows", cal.scan_rows},
      {"query_ms", cal.query_time.count()},
      {"wait_ms", cal.wait.count()},
      {"max_flight_age_ms", cal.max_flight_age.count()},
      {"deadline_ms", cal.deadline.count()},
  };
  Json strategies = Json::array();
  for (const StrategyResult& r : report.results) {
    strategies.push_back({
        {"strategy", StrategyName(r.strategy)},
        {"requests", r.requests},
        {"queries", r.queries},
        {"refreshes", r.refreshes},
        {"expiries", r.expiries},
        {"queries_per_expiry", r.QueriesPerExpiry()},
        {"throughput", r.Throughput()},
        {"p50_ms", r.p50.count()},
        {"p99_ms", r.p99.count()},
        {"max_ms", r.max.count()},
        {"errors", r.errors},
        {"stalls", r.stalls},
        {"stuck", r.stuck},
        {"elapsed_ms", r.elapsed.count()},
        {"interrupted", r.interrupted},
    });
  }
  j["strategies"] = std::move(strategies);
  j["interrupted"] = report.interrupted;
  // A path need not be UTF-8: bytes that are not are written as U+FFFD
  // rather than throwing.
  return j.dump(2, ' ', /*ensure_ascii=*/false,
                Json::error_handler_t::replace) +
         "\n";
}

std::string Plot(const Report& report, const std::string& path) {
  if (!OnPath("gnuplot")) {
    return "gnuplot not found (apt-get install gnuplot-nox); no plot drawn";
  }
  const bool svg =
      path.size() > 4 && path.compare(path.size() - 4, 4, ".svg") == 0;
  std::string script;
  script += "$data << EOD\n";
  for (const StrategyResult& r : report.results) {
    script += Format("\"%s\" %llu %.6f \"%s\"\n",
                     std::string(StrategyName(r.strategy)).c_str(),
                     static_cast<unsigned long long>(r.queries), r.p99.count(),
                     Latency(r.p99).c_str());
  }
  script += "EOD\n";
  if (svg) {
    script += "set terminal svg size 900,640 noenhanced font 'sans,11'\n";
  } else {
    script +=
        "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) { set terminal "
        "pngcairo size 900,640 noenhanced font 'sans,10' } else { set "
        "terminal png size 900,640 noenhanced }\n";
  }
  std::string quoted;
  for (char ch : path) {
    if (ch == '\'') quoted += '\'';  // gnuplot doubles quotes in '...'
    quoted += ch;
  }
  script += "set output '" + quoted + "'\n";
  const Config& c = report.config;
  script += Format(
      "set multiplot layout 2,1 title 'herd-stampede: %d workers, %d keys, "
      "TTL %s, query %s'\n",
      c.workers, c.keys, Latency(c.ttl).c_str(),
      Latency(report.calibration.query_time).c_str());
  script +=
      "set style fill solid 0.85 border -1\n"
      "set boxwidth 0.6\n"
      "set grid ytics\n"
      "set yrange [0:*]\n"
      "set offsets 0, 0, graph 0.12, 0\n"
      "set lmargin 11\n" +
      Format("set xrange [-0.6:%zu.6]\n", report.results.size() - 1) +
      "set ylabel 'database queries'\n"
      "plot $data using 0:2:xtic(1) with boxes lc rgb '#4477aa' notitle, "
      "'' using 0:2:2 with labels offset 0,0.7 notitle\n"
      "set ylabel 'p99 latency (ms)'\n"
      "plot $data using 0:3:xtic(1) with boxes lc rgb '#cc6677' notitle, "
      "'' using 0:3:4 with labels offset 0,0.7 notitle\n"
      "unset multiplot\n";
  std::FILE* gp = popen("gnuplot", "w");
  if (gp == nullptr) return "cannot run gnuplot";
  std::fputs(script.c_str(), gp);
  const int status = pclose(gp);
  if (status != 0)
    return "gnuplot failed (status " + std::to_string(status) + ")";
  return "";
}

int Main(const std::vector<std::string>& args, const std::atomic<bool>* stop,
         bool stderr_is_terminal, std::FILE* out, std::FILE* err) {
  const ParsedFlags flags = ParseFlags(args);
  if (!flags.error.empty()) {
    std::fprintf(err, "herd-stampede: %s\n", flags.error.c_str());
    return 2;
  }
  if (flags.help) {
    std::fputs(Usage().c_str(), out);
    return 0;
  }
  const Config& config = flags.config;
  RunHooks hooks;
  hooks.stop = stop;
  hooks.log = config.json_stdout ? err : out;
  const bool bar = config.progress && stderr_is_terminal;
  if (bar) {
    hooks.on_progress = [&config, err](const Progress& p) {
      constexpr int kWidth = 24;
      const int filled = static_cast<int>(p.fraction * kWidth + 0.5);
      std::string cells(static_cast<size_t>(filled), '#');
      cells.resize(kWidth, '.');
      std::fprintf(err,
                   "\r[%zu/%zu] %-14s [%s] %3.0f%%  %llu requests  %llu "
                   "queries\033[K",
                   p.index + 1, config.strategies.size(),
                   std::string(StrategyName(p.strategy)).c_str(), cells.c_str(),
                   p.fraction * 100,
                   static_cast<unsigned long long>(p.requests),
                   static_cast<unsigned long long>(p.queries));
      std::fflush(err);
    };
  }

  Report report;
  try {
    report = RunLab(config, hooks);
  } catch (const QueryStopped&) {
    // Ctrl-C while the database was being calibrated: nothing measured yet.
    std::fprintf(hooks.log, "\n");
    std::fprintf(err, "herd-stampede: interrupted\n");
    return 130;
  } catch (const std::exception& e) {
    std::fprintf(hooks.log, "\n");
    std::fprintf(err, "herd-stampede: %s\n", e.what());
    return stop != nullptr && stop->load() ? 130 : 1;
  }
  if (bar) std::fprintf(err, "\r\033[K");

  if (config.json_stdout) {
    std::fputs(ToJson(report).c_str(), out);
  } else {
    PrintTable(report, out);
  }
  int status = report.interrupted ? 130 : 0;
  if (!config.json_path.empty()) {
    std::FILE* f = std::fopen(config.json_path.c_str(), "w");
    bool written = f != nullptr && std::fputs(ToJson(report).c_str(), f) >= 0;
    if (f != nullptr) written = std::fclose(f) == 0 && written;
    if (!written) {
      std::fprintf(err, "herd-stampede: cannot write --json file '%s'\n",
                   config.json_path.c_str());
      status = 1;
    }
  }
  if (!config.plot_path.empty() && !report.results.empty()) {
    const std::string why = Plot(report, config.plot_path);
    if (why.empty()) {
      std::fprintf(hooks.log, "plot: %s\n", config.plot_path.c_str());
    } else {
      std::fprintf(err, "herd-stampede: --plot: %s\n", why.c_str());
    }
  }
  return status;
}

}  // namespace herd::lab
