#!/usr/bin/env python3
# Copyright 2026 The herd Authors.
"""Runs herd::Share's benchmarks beside the textbook C++ version and Go's
singleflight, and writes the results.

  benchmarks/run.py                  # about 8 minutes on 2 cores
  benchmarks/run.py --max-load 1     # first wait for a quiet machine
  benchmarks/run.py --quick          # one short round: a smoke test

Steps: scripts/bootstrap.sh (when present) installs the tools; the C++
benchmark (benchmarks/share_benchmark.cc) and the Go peer (benchmarks/go)
are built, then run alternately `--rounds` times so that a change in the
machine's load falls on both; benchmarks/callgrind_check.py counts
instructions of the single-threaded cases; tests/share_alloc_test.cc counts
allocations. Each figure is the median over the rounds.

Writes:
  benchmarks/results/share.json   every figure, the targets, the machine
  benchmarks/results/share_raw.json   each round's raw figures
  benchmarks/results/table.md     the table the README shows
  docs/benchmarks.png             the plot the README shows

Times on a shared machine are noisy: compare ratios from one run, and run it
when `uptime` shows a low load. Regressions are caught by
callgrind_check.py, which compares instruction counts, not times.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build", "benchmarks")
RESULTS = os.path.join(ROOT, "benchmarks", "results")
CXXFLAGS = ["-std=c++20", "-O2", "-DNDEBUG"]
GO_ENV = {
    # Debian's golang-golang-x-sync-dev, through go.mod's replace: never
    # download anything.
    "GOFLAGS": "-mod=mod",
    "GOPROXY": "off",
    "GONOSUMDB": "*",
    "GOTOOLCHAIN": "local",
    "GO111MODULE": "on",
}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def run(cmd, **kwargs):
    return subprocess.run(cmd, check=True, **kwargs)


def output(cmd, **kwargs):
    try:
        return subprocess.run(cmd, capture_output=True, text=True,
                              check=True, **kwargs).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


# --- Tools and builds. --------------------------------------------------------

def bootstrap():
    script = os.path.join(ROOT, "scripts", "bootstrap.sh")
    if os.path.exists(script):
        log("running scripts/bootstrap.sh")
        run(["bash", script], cwd=ROOT)
    missing = [t for t in ("g++", "pkg-config", "go", "valgrind", "gnuplot")
               if shutil.which(t) is None]
    if missing:
        sys.exit("missing tools: " + ", ".join(missing) +
                 " (apt-get install golang-go golang-golang-x-sync-dev "
                 "valgrind gnuplot-nox libbenchmark-dev)")


def pkg_config(*packages):
    return output(["pkg-config", "--cflags", "--libs", *packages]).split()


def lib_sources():
    lib = os.path.join(ROOT, "lib")
    return sorted(os.path.join(lib, f) for f in os.listdir(lib)
                  if f.endswith(".cc"))


def build_cpp():
    os.makedirs(BUILD, exist_ok=True)
    binary = os.path.join(BUILD, "share_benchmark")
    log("building", os.path.relpath(binary, ROOT))
    run(["g++", *CXXFLAGS, "-I" + os.path.join(ROOT, "include"), "-I" + ROOT,
         os.path.join(ROOT, "benchmarks", "share_benchmark.cc"),
         *lib_sources(),
         *pkg_config("benchmark", "absl_hash", "absl_raw_hash_set"),
         "-lbenchmark_main", "-pthread", "-o", binary])
    return binary


def build_alloc_test():
    binary = os.path.join(BUILD, "share_alloc_test")
    log("building", os.path.relpath(binary, ROOT))
    run(["g++", "-std=c++20", "-O2", "-I" + os.path.join(ROOT, "include"),
         "-I" + ROOT, os.path.join(ROOT, "tests", "share_alloc_test.cc"),
         *lib_sources(),
         *pkg_config("gtest_main", "absl_hash", "absl_raw_hash_set"),
         "-pthread", "-o", binary])
    return binary


def go_env():
    env = dict(os.environ)
    env.update(GO_ENV)
    env.setdefault("GOCACHE", os.path.join(BUILD, "gocache"))
    env.setdefault("GOPATH", os.path.join(BUILD, "gopath"))
    return env


def build_go():
    binary = os.path.join(BUILD, "go_peer")
    log("building", os.path.relpath(binary, ROOT))
    run(["go", "build", "-o", binary, "."],
        cwd=os.path.join(ROOT, "benchmarks", "go"), env=go_env())
    return binary


# --- Runs. ------------------------------------------------------------------

def run_cpp(binary, quick):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        cmd = [binary, "--benchmark_out=" + out,
               "--benchmark_out_format=json",
               "--benchmark_enable_random_interleaving=true",
               "--benchmark_min_time=" + ("0.1" if quick else "0.5")]
        run(cmd, stdout=subprocess.DEVNULL)
        with open(out) as f:
            data = json.load(f)
    results = {}
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate":
            continue
        results[b["name"]] = b
    return data["context"], results


def run_go(binary, quick):
    out = output([binary, "-stampede_rounds", "20" if quick else "60"],
                 env=go_env())
    data = json.loads(out)
    return data, {r["name"]: r for r in data["results"]}


def median_of(runs, name, key):
    """Median of a field (or counter) of benchmark `name` over runs."""
    values = []
    for r in runs:
        entry = r.get(name)
        if entry is None:
            continue
        value = entry.get(key)
        if value is None:
            value = entry.get("counters", {}).get(key)
        if value is not None:
            values.append(float(value))
    return statistics.median(values) if values else None


# --- Machine. ---------------------------------------------------------------

def machine_info():
    lscpu = output(["lscpu"])

    def field(name):
        m = re.search(r"^" + name + r":\s*(.+)$", lscpu, re.M)
        return m.group(1).strip() if m else None

    absl = None
    config = "/usr/include/absl/base/config.h"
    if os.path.exists(config):
        with open(config) as f:
            m = re.search(r"#define ABSL_LTS_RELEASE_VERSION (\d+)", f.read())
            absl = m.group(1) if m else None
    return {
        "cpu": field("Model name"),
        "cpus": os.cpu_count(),
        "hypervisor": field("Hypervisor vendor"),
        "kernel": platform.release(),
        "os": output(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "cxx": output(["g++", "--version"]).splitlines()[0],
        "cxxflags": " ".join(CXXFLAGS),
        "glibc": (output(["ldd", "--version"]).splitlines() or [""])[0],
        "abseil": absl,
        "google_benchmark": output(["dpkg-query", "-W", "-f",
                                    "${Version}", "libbenchmark-dev"]),
        "go": output(["go", "version"]),
        "golang_x_sync": output(["dpkg-query", "-W", "-f", "${Version}",
                                 "golang-golang-x-sync-dev"]),
        "valgrind": output(["valgrind", "--version"]),
        "gnuplot": output(["gnuplot", "--version"]),
    }


# --- Summary, targets, table. -----------------------------------------------

def ratio(a, b):
    """a / b, or None when either is missing (or b is zero)."""
    return a / b if a is not None and b else None


def summarize(cpp, go, callgrind):
    """Returns (figures, targets)."""
    def c(name, key="real_time"):
        return median_of(cpp, name, key)

    def g(name, key="ns_per_op"):
        return median_of(go, name, key)

    def rate(name):
        return c(name, "items_per_second")

    f = {"leader_path_ns": {}, "leader_path_instructions": {},
         "hot_key": {}, "distinct_keys": {}, "stampede": {},
         "extra_execution_rate": [], "floors_ns": {}}
    for keys in ("Int64", "String"):
        f["leader_path_ns"][keys] = {
            "herd": c(f"BM_Share_LeaderPath_{keys}"),
            "textbook": c(f"BM_Textbook_LeaderPath_{keys}"),
            "no_coalescing": c(f"BM_NoCoalescing_LeaderPath_{keys}"),
            # singleflight keys are strings: Go's int64 figure formats one.
            "go": g(f"Go_LeaderPath_{keys}"),
            "go_allocs_per_call": g(f"Go_LeaderPath_{keys}", "allocs_per_op"),
            "go_bytes_per_call": g(f"Go_LeaderPath_{keys}", "bytes_per_op"),
        }
        cg = callgrind.get("cases", {})
        allocs = callgrind.get("allocations", {})
        f["leader_path_instructions"][keys] = {
            "herd": cg.get(f"Share_LeaderPath_{keys}"),
            "textbook": cg.get(f"Textbook_LeaderPath_{keys}"),
            "herd_allocations": allocs.get(f"Share_LeaderPath_{keys}"),
            "textbook_allocations": allocs.get(
                f"Textbook_LeaderPath_{keys}"),
        }
    for floor in ("MutexLockUnlock", "FlatHashMapInsertErase_Int64",
                  "PromiseSharedFuture"):
        f["floors_ns"][floor] = c(f"BM_Floor_{floor}")
    for t in (1, 2):
        f["hot_key"][t] = {
            "herd": rate(f"BM_Share_HotKey/real_time/threads:{t}"),
            "textbook": rate(f"BM_Textbook_HotKey/real_time/threads:{t}"),
            "no_coalescing": rate(
                f"BM_NoCoalescing_HotKey/real_time/threads:{t}"),
            "go": g(f"Go_HotKey/threads:{t}", "calls_per_second"),
            "herd_exec_fraction": c(f"BM_Share_HotKey/real_time/threads:{t}",
                                    "exec_fraction"),
            "textbook_exec_fraction": c(
                f"BM_Textbook_HotKey/real_time/threads:{t}", "exec_fraction"),
            "go_exec_fraction": g(f"Go_HotKey/threads:{t}", "exec_fraction"),
        }
        f["distinct_keys"][t] = {
            "herd": rate(f"BM_Share_DistinctKeys/real_time/threads:{t}"),
            "textbook": rate(
                f"BM_Textbook_DistinctKeys/real_time/threads:{t}"),
            "no_coalescing": rate(
                f"BM_NoCoalescing_DistinctKeys/real_time/threads:{t}"),
        }
    def scaling(impl, case="DistinctKeys"):
        """Per-round 2-thread/1-thread ratios: wall clock, and CPU-normalized
        (2 x CPU time per call at 1 thread / at 2 threads), which a busy
        machine taking one of the two CPUs away does not change."""
        one = f"BM_{impl}_{case}/real_time/threads:1"
        two = f"BM_{impl}_{case}/real_time/threads:2"
        wall, cpu, both = [], [], []
        for r in cpp:
            if one in r and two in r:
                w = r[two]["items_per_second"] / r[one]["items_per_second"]
                wall.append(w)
                cpu.append(2 * r[one]["cpu_time"] / r[two]["cpu_time"])
                # cpu_time is CPU per call summed over the threads: about
                # twice real_time when both threads ran all along.
                if r[two]["cpu_time"] >= 1.8 * r[two]["real_time"]:
                    both.append(w)

        def med(v):
            return statistics.median(v) if v else None
        return {"wall": med(wall), "wall_rounds": wall,
                "wall_two_cpu_rounds": med(both),
                "two_cpu_rounds": len(both),
                "cpu_normalized": med(cpu), "cpu_normalized_rounds": cpu}
    f["distinct_keys_scaling"] = {
        impl: scaling(name) for impl, name in (
            ("herd", "Share"), ("textbook", "Textbook"),
            ("no_coalescing", "NoCoalescing"))}
    # What the machine allows: a lock on one of 16 lines shared by the two
    # threads (what any shared flight table costs at least), and on lines of
    # each thread's own.
    f["distinct_keys_scaling"]["floor_shared_line"] = scaling(
        "Floor", "SharedLineLock")
    f["distinct_keys_scaling"]["floor_disjoint_lines"] = scaling(
        "Floor", "DisjointLineLock")
    for n in (8, 64, 256):
        def wake(name):
            return c(f"{name}/{n}/iterations:60/manual_time", "wake_p50_us")

        def execs(name):
            return c(f"{name}/{n}/iterations:60/manual_time", "executions")
        f["stampede"][n] = {
            "herd_wake_p50_us": wake("BM_Share_Stampede"),
            "textbook_wake_p50_us": wake("BM_Textbook_Stampede"),
            "go_wake_p50_us": g(f"Go_Stampede/{n}", "wake_p50_us"),
            "notify_all_wake_p50_us": wake("BM_Floor_NotifyAll"),
            "atomic_notify_all_wake_p50_us": wake("BM_Floor_AtomicNotifyAll"),
            "herd_executions": execs("BM_Share_Stampede"),
            "textbook_executions": execs("BM_Textbook_Stampede"),
            "go_executions": g(f"Go_Stampede/{n}", "executions"),
        }
    for permille in (0, 10, 50, 100, 250, 500, 1000):
        name = (f"BM_Share_ExtraExecutionRate/{permille}/iterations:100/"
                "manual_time")
        f["extra_execution_rate"].append({
            "p": permille / 1000, "executions": c(name, "executions"),
            "expected": c(name, "expected")})

    targets = []

    def target(what, value, limit, better="lower", note=""):
        ok = None if value is None else (
            value <= limit if better == "lower" else value >= limit)
        targets.append({"target": what, "value": value, "limit": limit,
                        "met": ok, "note": note})

    lp = f["leader_path_ns"]
    ins = f["leader_path_instructions"]
    for keys in ("Int64", "String"):
        target(f"leader path {keys}: time vs textbook",
               ratio(lp[keys]["herd"], lp[keys]["textbook"]), 0.3)
        target(f"leader path {keys}: time vs Go (string keys)",
               ratio(lp[keys]["herd"], lp["String"]["go"]), 0.7)
        target(f"leader path {keys}: instructions vs textbook",
               ratio(ins[keys]["herd"], ins[keys]["textbook"]), 0.4)
    target("leader path Int64: instructions per call",
           ins["Int64"]["herd"], 400)
    for n in (8, 64, 256):
        target(f"stampede {n}: executions per flight",
               f["stampede"][n]["herd_executions"], 1.0)
    for n in (64, 256):
        s = f["stampede"][n]
        target(f"stampede {n}: wake p50 vs notify_all",
               ratio(s["herd_wake_p50_us"], s["notify_all_wake_p50_us"]),
               1.15)
    target("hot key, 2 threads: calls/s vs textbook",
           ratio(f["hot_key"][2]["herd"], f["hot_key"][2]["textbook"]), 1.0,
           "higher")
    target("distinct keys, 2 threads: calls/s vs textbook",
           ratio(f["distinct_keys"][2]["herd"],
                 f["distinct_keys"][2]["textbook"]), 1.0, "higher")
    sc = f["distinct_keys_scaling"]["herd"]
    floor = f["distinct_keys_scaling"]["floor_shared_line"]
    target("distinct keys: 2 threads vs 1 thread, in rounds where both "
           "threads had a CPU", sc["wall_two_cpu_rounds"], 1.6, "higher",
           f"{sc['two_cpu_rounds']} of {len(sc['wall_rounds'])} rounds, "
           f"{fmt(sc['wall'], 2, 'x')} over all; the floor, one lock on a "
           f"shared line per call, scaled {fmt(floor['wall'], 2, 'x')}")
    target("distinct keys: 2 threads vs 1 thread, CPU-normalized",
           sc["cpu_normalized"], 1.6, "higher")
    return f, targets


def fmt(value, digits=0, unit=""):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}{unit}"


def table_md(f, targets, machine, alloc_test):
    lp, ins = f["leader_path_ns"], f["leader_path_instructions"]
    rows = []
    rows.append("| Case | herd | textbook C++ | Go singleflight | herd ÷ "
                "textbook | herd ÷ Go |")
    rows.append("|---|---:|---:|---:|---:|---:|")
    go_str = lp["String"]["go"]
    for keys in ("Int64", "String"):
        h, t = lp[keys]["herd"], lp[keys]["textbook"]
        rows.append(f"| Leader path, {keys.lower()} keys (ns/call) | "
                    f"{fmt(h, 1)} | {fmt(t, 1)} | {fmt(go_str, 1)} | "
                    f"{fmt(ratio(h, t), 2, 'x')} | "
                    f"{fmt(ratio(h, go_str), 2, 'x')} |")
    for keys in ("Int64", "String"):
        h, t = ins[keys]["herd"], ins[keys]["textbook"]
        rows.append(f"| Leader path, {keys.lower()} keys (instructions/call) "
                    f"| {fmt(h)} | {fmt(t)} | – | "
                    f"{fmt(ratio(h, t), 2, 'x')} | – |")
    rows.append("| Leader path allocations/call | "
                f"{fmt(ins['Int64']['herd_allocations'])} | "
                f"{fmt(ins['Int64']['textbook_allocations'])} | "
                f"{fmt(lp['String']['go_allocs_per_call'])} "
                f"({fmt(lp['String']['go_bytes_per_call'])} B) | – | – |")
    for t in (1, 2):
        hk = f["hot_key"][t]
        h, tb, go = hk["herd"], hk["textbook"], hk["go"]
        rows.append(
            f"| Hot key, {t} thread{'s' if t > 1 else ''} (M calls/s; "
            f"fraction executed) | {fmt(h and h / 1e6, 2)} "
            f"({fmt(hk['herd_exec_fraction'], 2)}) | "
            f"{fmt(tb and tb / 1e6, 2)} ({fmt(hk['textbook_exec_fraction'], 2)})"
            f" | {fmt(go and go / 1e6, 2)} ({fmt(hk['go_exec_fraction'], 2)}) "
            f"| {fmt(ratio(h, tb), 2, 'x')} | "
            f"{fmt(ratio(h, go), 2, 'x')} |")
    for n in (8, 64, 256):
        s = f["stampede"][n]
        h, tb, go = (s["herd_wake_p50_us"], s["textbook_wake_p50_us"],
                     s["go_wake_p50_us"])
        rows.append(
            f"| Stampede, {n} threads: set → last waiter (µs, p50; "
            f"executions) | {fmt(h)} ({fmt(s['herd_executions'], 2)}) | "
            f"{fmt(tb)} ({fmt(s['textbook_executions'], 2)}) | "
            f"{fmt(go)} ({fmt(s['go_executions'], 2)}) | "
            f"{fmt(ratio(h, tb), 2, 'x')} | "
            f"{fmt(ratio(h, go), 2, 'x')} |")
    for t in (1, 2):
        d = f["distinct_keys"][t]
        h, tb = d["herd"], d["textbook"]
        rows.append(f"| Distinct keys, {t} thread{'s' if t > 1 else ''} "
                    f"(M calls/s) | {fmt(h and h / 1e6, 2)} | "
                    f"{fmt(tb and tb / 1e6, 2)} | – | "
                    f"{fmt(ratio(h, tb), 2, 'x')} | – |")
    sc = f["distinct_keys_scaling"]
    rows.append(
        "| Distinct keys, 2 threads ÷ 1 thread (wall clock, all rounds) | "
        f"{fmt(sc['herd']['wall'], 2, 'x')} | "
        f"{fmt(sc['textbook']['wall'], 2, 'x')} | – | – | – |")

    scaling_rows = [
        "| 2 threads ÷ 1 thread, each call… | wall clock | CPU-normalized |",
        "|---|---:|---:|"]
    for label, key in (
            ("herd: distinct keys", "herd"),
            ("floor: locks one of 16 cache lines shared by both threads",
             "floor_shared_line"),
            ("floor: locks one of 16 lines of its own thread",
             "floor_disjoint_lines"),
            ("no coalescing: calls the loader", "no_coalescing")):
        v = sc[key]
        scaling_rows.append(f"| {label} | {fmt(v['wall'], 2, 'x')} | "
                            f"{fmt(v['cpu_normalized'], 2, 'x')} |")

    floors = ["| Stampede floor: N threads woken by one call | 8 | 64 | 256 |",
              "|---|---:|---:|---:|"]
    for label, key in (("`condition_variable::notify_all` (µs, p50)",
                        "notify_all_wake_p50_us"),
                       ("`std::atomic::notify_all` (µs, p50)",
                        "atomic_notify_all_wake_p50_us"),
                       ("herd ÷ `notify_all`", None)):
        cells = []
        for n in (8, 64, 256):
            s = f["stampede"][n]
            if key:
                cells.append(fmt(s[key]))
            else:
                h, fl = s["herd_wake_p50_us"], s["notify_all_wake_p50_us"]
                cells.append(fmt(ratio(h, fl), 2, "x"))
        floors.append(f"| {label} | " + " | ".join(cells) + " |")

    extra = ["| extra_execution_rate p | " + " | ".join(
        f"{e['p']:g}" for e in f["extra_execution_rate"]) + " |",
        "|---|" + "---:|" * len(f["extra_execution_rate"]),
        "| executions per flight (8 callers) | " + " | ".join(
            fmt(e["executions"], 2) for e in f["extra_execution_rate"]) + " |",
        "| expected, 1 + 7p | " + " | ".join(
            fmt(e["expected"], 2) for e in f["extra_execution_rate"]) + " |"]

    tgt = ["| Target | Measured | Limit | Met |", "|---|---:|---:|:---:|"]
    for t in targets:
        met = {True: "yes", False: "**no**", None: "–"}[t["met"]]
        note = f" ({t['note']})" if t["note"] else ""
        tgt.append(f"| {t['target']}{note} | {fmt(t['value'], 2)} | "
                   f"{t['limit']:g} | {met} |")
    tgt.append(f"| allocations per leader call, none retained "
               f"(tests/share_alloc_test.cc) | "
               f"{fmt(ins['Int64']['herd_allocations'])} | 1 | "
               f"{'yes' if alloc_test else '**no**'} |")

    m = machine
    return "\n".join([
        f"Measured {m['date']} on {m['cpu']}, {m['cpus']} vCPUs"
        f"{' (' + m['hypervisor'] + ' guest)' if m.get('hypervisor') else ''}"
        f", Linux {m['kernel']}, {m['cxx']} {m['cxxflags']}, {m['go']}; "
        f"load average {m['load_before']} before, {m['load_after']} after. "
        f"Median of {m['rounds']} rounds; instructions from callgrind.",
        "", *rows, "", *floors, "", *scaling_rows, "", *extra, "", *tgt,
        ""])


# --- Plot. ------------------------------------------------------------------

GNUPLOT = r"""
set terminal pngcairo size 1200,900 font "sans,10"
set output '{out}'
set datafile missing "NaN"
set multiplot layout 2,2 title "{title}" font ",12"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top left

set title "Leader path: the only caller of its key (ns per call)"
set yrange [0:*]
plot '{d}/leader.dat' using 2:xtic(1) title "herd" lc rgb "#1b9e77", \
     '' using 3 title "textbook C++" lc rgb "#d95f02", \
     '' using 4 title "Go singleflight" lc rgb "#7570b3"

set title "Stampede: value set → last waiter returns (µs, p50)"
set style data linespoints
set logscale x 2
set logscale y 10
set yrange [*:*]
set xtics (8, 64, 256)
set xrange [6:340]
set xlabel "threads"
set key top left
plot '{d}/stampede.dat' using 1:2 title "herd" lw 2 pt 7 lc rgb "#1b9e77", \
     '' using 1:3 title "textbook C++" lw 2 pt 5 lc rgb "#d95f02", \
     '' using 1:4 title "Go (goroutines)" lw 2 pt 9 lc rgb "#7570b3", \
     '' using 1:5 title "notify\\_all floor" lw 2 dt 2 pt 1 lc rgb "black"
unset logscale x
unset logscale y
set xrange [*:*]
set yrange [0:*]
unset xlabel
set xtics autofreq

set title "Throughput (million calls per second)"
set style data histograms
plot '{d}/throughput.dat' using 2:xtic(1) title "herd" lc rgb "#1b9e77", \
     '' using 3 title "textbook C++" lc rgb "#d95f02", \
     '' using 4 title "Go singleflight" lc rgb "#7570b3"

set title "extra\\_execution\\_rate: executions per flight, 8 callers"
set style data linespoints
set xlabel "p"
set yrange [0:9]
plot '{d}/extra.dat' using 1:2 title "measured" lw 2 pt 7 lc rgb "#1b9e77", \
     '' using 1:3 title "1 + 7p" dt 2 lc rgb "black"
unset multiplot
"""


def plot(f, machine, out):
    def n(v):
        return "NaN" if v is None else f"{v:.6g}"

    with tempfile.TemporaryDirectory() as d:
        lp = f["leader_path_ns"]
        with open(os.path.join(d, "leader.dat"), "w") as w:
            for keys in ("Int64", "String"):
                w.write(f'"{keys.lower()} keys" {n(lp[keys]["herd"])} '
                        f'{n(lp[keys]["textbook"])} {n(lp["String"]["go"])}\n')
        with open(os.path.join(d, "stampede.dat"), "w") as w:
            for k in (8, 64, 256):
                s = f["stampede"][k]
                w.write(f'{k} {n(s["herd_wake_p50_us"])} '
                        f'{n(s["textbook_wake_p50_us"])} '
                        f'{n(s["go_wake_p50_us"])} '
                        f'{n(s["notify_all_wake_p50_us"])}\n')
        with open(os.path.join(d, "throughput.dat"), "w") as w:
            for t in (1, 2):
                h = f["hot_key"][t]
                w.write(f'"hot key, {t}T" {n(h["herd"] and h["herd"] / 1e6)} '
                        f'{n(h["textbook"] and h["textbook"] / 1e6)} '
                        f'{n(h["go"] and h["go"] / 1e6)}\n')
            for t in (1, 2):
                h = f["distinct_keys"][t]
                w.write(f'"distinct, {t}T" {n(h["herd"] and h["herd"] / 1e6)} '
                        f'{n(h["textbook"] and h["textbook"] / 1e6)} NaN\n')
        with open(os.path.join(d, "extra.dat"), "w") as w:
            for e in f["extra_execution_rate"]:
                w.write(f'{e["p"]} {n(e["executions"])} {n(e["expected"])}\n')
        title = (f"herd::Share vs textbook C++ vs Go singleflight\\n"
                 f"{machine['cpu']}, {machine['cpus']} vCPUs, "
                 f"g++ {machine['cxx'].split(')')[-1].strip()}, "
                 f"{machine['go'].replace('go version ', '')}, "
                 f"{machine['date']}")
        title = title.replace('"', "'").replace("@", "\\@")
        script = GNUPLOT.format(out=out, d=d, title=title)
        run(["gnuplot"], input=script, text=True)


# --- Main. ------------------------------------------------------------------

# Fields of Google Benchmark's JSON that say nothing the name does not.
DROPPED_FIELDS = ("family_index", "per_family_instance_index", "run_name",
                  "run_type", "repetitions", "repetition_index",
                  "aggregate_name", "aggregate_unit")


def trimmed(raw):
    return {"cpp": [{name: {k: v for k, v in b.items()
                            if k not in DROPPED_FIELDS}
                     for name, b in run.items()} for run in raw["cpp"]],
            "go": raw["go"]}


def write_outputs(measured, args):
    """Summarizes what was measured into share.json, table.md and the
    plot."""
    machine, callgrind = measured["machine"], measured["callgrind"]
    cpp_runs, go_runs = measured["raw"]["cpp"], measured["raw"]["go"]
    alloc_ok = measured["alloc_test_passed"]
    figures, targets = summarize(cpp_runs, go_runs, callgrind)
    os.makedirs(args.results, exist_ok=True)
    with open(os.path.join(args.results, "share.json"), "w") as fh:
        json.dump({"machine": machine, "figures": figures,
                   "targets": targets, "callgrind": callgrind,
                   "alloc_test_passed": alloc_ok},
                  fh, indent=1, sort_keys=True)
        fh.write("\n")
    # Every run's figures, compact: what --from-raw reads.
    with open(os.path.join(args.results, "share_raw.json"), "w") as fh:
        json.dump(dict(measured, raw=trimmed(measured["raw"])), fh,
                  sort_keys=True, separators=(",", ":"))
        fh.write("\n")
    table = table_md(figures, targets, machine, alloc_ok)
    with open(os.path.join(args.results, "table.md"), "w") as fh:
        fh.write(table)
    os.makedirs(os.path.dirname(args.plot), exist_ok=True)
    plot(figures, machine, args.plot)
    print(table)
    log("wrote", os.path.relpath(os.path.join(args.results, "share.json"),
                                 ROOT), os.path.relpath(
        os.path.join(args.results, "table.md"), ROOT),
        os.path.relpath(args.plot, ROOT))
    return 0 if callgrind["check_passed"] and alloc_ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one short round (a smoke test)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--plot", default=os.path.join(ROOT, "docs",
                                                       "benchmarks.png"))
    parser.add_argument("--results", default=RESULTS)
    parser.add_argument("--max-load", type=float,
                        help="first wait (up to --wait minutes) until the "
                        "1-minute load average is below this")
    parser.add_argument("--wait", type=float, default=30)
    parser.add_argument("--from-raw", metavar="RAW_JSON",
                        help="measure nothing: rewrite the outputs from "
                        "benchmarks/results/share_raw.json (or "
                        "build/benchmarks/measured.json)")
    args = parser.parse_args()
    if args.from_raw:
        with open(args.from_raw) as fh:
            return write_outputs(json.load(fh), args)
    rounds = 1 if args.quick else args.rounds

    bootstrap()
    cpp_bin, go_bin = build_cpp(), build_go()
    alloc_bin = build_alloc_test()

    if args.max_load is not None:
        deadline = time.time() + 60 * args.wait
        while os.getloadavg()[0] >= args.max_load and time.time() < deadline:
            log(f"load {os.getloadavg()[0]:.2f} >= {args.max_load}: waiting")
            time.sleep(15)
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    cpp_runs, go_runs, context, go_info = [], [], None, None
    for i in range(rounds):
        log(f"round {i + 1}/{rounds}: C++")
        context, results = run_cpp(cpp_bin, args.quick)
        cpp_runs.append(results)
        log(f"round {i + 1}/{rounds}: Go")
        go_info, results = run_go(go_bin, args.quick)
        go_runs.append(results)
    load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())

    log("callgrind")
    callgrind_json = os.path.join(BUILD, "callgrind.json")
    check = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks",
                                      "callgrind_check.py"),
         "--json", callgrind_json], capture_output=True, text=True)
    with open(callgrind_json) as fh:
        callgrind = json.load(fh)
    callgrind["check_passed"] = check.returncode == 0
    callgrind["check_output"] = check.stdout

    log("allocation test")
    alloc = subprocess.run([alloc_bin], capture_output=True, text=True)

    machine = machine_info()
    machine.update({
        "date": datetime.date.today().isoformat(),
        "load_before": load_before, "load_after": load_after,
        "rounds": rounds,
        "benchmark_context": {k: context.get(k) for k in (
            "host_name", "num_cpus", "mhz_per_cpu", "library_build_type")},
        "go_gomaxprocs": go_info.get("gomaxprocs"),
    })
    measured = {"machine": machine, "callgrind": callgrind,
                "alloc_test_passed": alloc.returncode == 0,
                "raw": {"cpp": cpp_runs, "go": go_runs}}
    # Kept first, so that a failure below loses no measurement.
    with open(os.path.join(BUILD, "measured.json"), "w") as fh:
        json.dump(measured, fh)
    return write_outputs(measured, args)


if __name__ == "__main__":
    sys.exit(main())
