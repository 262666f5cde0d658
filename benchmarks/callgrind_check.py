#!/usr/bin/env python3
# Copyright 2026 The herd Authors.
"""Instruction-count regression check for herd's single-threaded hot paths.

Runs each case of benchmarks/callgrind_driver.cc under
`valgrind --tool=callgrind`, collecting only inside the measured calls, and
divides its instructions by the number of calls. Its twin built with
-DHERD_CALLGRIND_COUNT_ALLOCATIONS, run without valgrind, counts heap
allocations per call. Instruction counts are exact and repeatable
on a noisy, shared machine, unlike times, so this is what CI compares:

  benchmarks/callgrind_check.py            # exit 1 if a checked case grew
                                           # more than the tolerance
  benchmarks/callgrind_check.py --update   # accept the current counts
  benchmarks/callgrind_check.py --json out.json   # also write what it measured

The baseline is benchmarks/callgrind_baseline.json. Cases named Share_*,
LoadingCache_* and TinyLfu_* are checked against it (instructions within the
tolerance, allocations not above it) and against the issues' targets; the
others (the textbook version, the hand-written cache, the floors) are
measured for the ratios and printed.
Counts depend on the compiler: the baseline records the one it came from, and
a different compiler is reported (the check still runs).

Needs g++ (or $CXX), pkg-config with Abseil, and valgrind
(scripts/bootstrap.sh installs them).
"""

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINE = os.path.join(ROOT, "benchmarks", "callgrind_baseline.json")
DRIVER_SRC = os.path.join(ROOT, "benchmarks", "callgrind_driver.cc")
CXXFLAGS = ["-std=c++20", "-O2", "-DNDEBUG"]

# The issues' instruction targets: Share's leader path (issue 3), and a
# LoadingCache hit against the mutex + flat_hash_map cache with
# steady_clock::now() (issue 14), clock read included.
TARGETS = {
    "Share_LeaderPath_Int64": {"max": 400, "max_ratio": 0.4,
                               "versus": "Textbook_LeaderPath_Int64"},
    "Share_LeaderPath_String": {"max_ratio": 0.4,
                                "versus": "Textbook_LeaderPath_String"},
    "LoadingCache_Hit_Int64": {"max_ratio": 1.0,
                               "versus": "Baseline_Hit_Int64"},
    "LoadingCache_BoundedHit_Int64": {"max_ratio": 1.2,
                                      "versus": "Baseline_Hit_Int64"},
}

# Cases held to the baseline file: herd's own code paths.
CHECKED_PREFIXES = ("Share_", "LoadingCache_", "TinyLfu_")


def compiler():
    return os.environ.get("CXX", "g++")


def compiler_version():
    out = subprocess.run([compiler(), "--version"], capture_output=True,
                         text=True, check=True).stdout
    return out.splitlines()[0].strip()


def build_drivers(build_dir):
    """Compiles the driver, and its allocation-counting twin; returns both
    paths."""
    os.makedirs(build_dir, exist_ok=True)
    pkg = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "absl_hash", "absl_raw_hash_set"],
        capture_output=True, text=True, check=True).stdout.split()
    include = ["-I" + os.path.join(ROOT, "include"), "-I" + ROOT]
    objects = []
    for f in sorted(os.listdir(os.path.join(ROOT, "lib"))):
        if f.endswith(".cc"):
            obj = os.path.join(build_dir, "callgrind_lib_" + f[:-3] + ".o")
            subprocess.run([compiler()] + CXXFLAGS + include +
                           ["-c", os.path.join(ROOT, "lib", f), "-o", obj],
                           check=True)
            objects.append(obj)
    outs = []
    for name, defines in (("callgrind_driver", []),
                          ("callgrind_driver_allocs",
                           ["-DHERD_CALLGRIND_COUNT_ALLOCATIONS"])):
        out = os.path.join(build_dir, name)
        cmd = ([compiler()] + CXXFLAGS + defines + include + [DRIVER_SRC] +
               objects + pkg + ["-pthread", "-o", out])
        print("building:", " ".join(cmd[:4]), "... -o", out, file=sys.stderr)
        subprocess.run(cmd, check=True)
        outs.append(out)
    return outs


def list_cases(driver):
    out = subprocess.run([driver, "--list"], capture_output=True, text=True,
                         check=True).stdout
    return out.split()


def instructions_per_call(driver, case, calls):
    with tempfile.TemporaryDirectory() as tmp:
        out_file = os.path.join(tmp, "callgrind.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--toggle-collect="
             "herd_callgrind_measured", "--callgrind-out-file=" + out_file,
             driver, case, str(calls)],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out_file) as f:
            text = f.read()
    m = re.search(r"^totals:\s+(\d+)", text, re.M) or re.search(
        r"^summary:\s+(\d+)", text, re.M)
    if not m:
        raise RuntimeError("no totals in callgrind output for " + case)
    return int(m.group(1)) / calls


def allocations_per_call(alloc_driver, case, calls):
    stdout = subprocess.run([alloc_driver, case, str(calls)], check=True,
                            capture_output=True, text=True).stdout
    m = re.search(r"allocations_per_call=([0-9.]+)", stdout)
    if not m:
        raise RuntimeError("the driver printed no allocation count")
    return float(m.group(1))


def measure(driver, alloc_driver, cases, calls):
    """Returns ({case: instructions/call}, {case: allocations/call})."""
    instructions, allocations = {}, {}
    for case in cases:
        ir = instructions_per_call(driver, case, calls)
        allocs = allocations_per_call(alloc_driver, case, calls)
        instructions[case] = round(ir, 1)
        allocations[case] = round(allocs, 3)
        print(f"  {case:<40} {ir:8.1f} instructions/call "
              f"{allocs:6.3f} allocations/call", file=sys.stderr)
    return instructions, allocations


def check(measured, allocations, baseline, tolerance):
    """Returns a list of failure messages."""
    failures = []
    base_allocs = baseline.get("allocations", {})
    for case, value in sorted(allocations.items()):
        if case.startswith(CHECKED_PREFIXES) and case in base_allocs and (
                value > base_allocs[case] + 0.001):
            failures.append(f"{case}: {value:.3f} allocations/call > "
                            f"baseline {base_allocs[case]:.3f}")
    base = baseline.get("cases", {})
    for case, value in sorted(measured.items()):
        if not case.startswith(CHECKED_PREFIXES):
            continue
        if case not in base:
            print(f"note: {case} has no baseline (run with --update)")
            continue
        limit = base[case] * (1 + tolerance)
        verdict = "ok" if value <= limit else "REGRESSION"
        print(f"{case:<40} {value:8.1f}  baseline {base[case]:8.1f}  "
              f"limit {limit:8.1f}  {verdict}")
        if value > limit:
            failures.append(f"{case}: {value:.1f} instructions/call > "
                            f"{limit:.1f} (baseline {base[case]:.1f} "
                            f"+{tolerance:.0%})")
        elif value < base[case] * (1 - tolerance):
            print(f"note: {case} improved by more than {tolerance:.0%}; "
                  "run with --update to lock it in")
    for case, target in TARGETS.items():
        if case not in measured:
            continue
        value = measured[case]
        if "max" in target and value > target["max"]:
            failures.append(f"{case}: {value:.1f} > target {target['max']}")
        versus = measured.get(target["versus"])
        if versus:
            ratio = value / versus
            ok = ratio <= target["max_ratio"]
            print(f"target {case}: {ratio:.2f}x {target['versus']} "
                  f"(<= {target['max_ratio']}x) {'ok' if ok else 'MISSED'}")
            if not ok:
                failures.append(f"{case}: {ratio:.2f}x {target['versus']} > "
                                f"{target['max_ratio']}x")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true",
                        help="write the measured counts as the new baseline")
    parser.add_argument("--json", help="also write the measurements here")
    parser.add_argument("--calls", type=int, default=20000,
                        help="measured calls per case (default 20000)")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="allowed growth (default: the baseline's, 0.10)")
    parser.add_argument("--drivers", nargs=2, metavar=("DRIVER", "ALLOCS"),
                        help="prebuilt callgrind_driver and "
                        "callgrind_driver_allocs")
    parser.add_argument("--build-dir",
                        default=os.path.join(ROOT, "build", "benchmarks"))
    parser.add_argument("cases", nargs="*", help="cases (default: all)")
    args = parser.parse_args()

    if shutil.which("valgrind") is None:
        sys.exit("valgrind not found: run scripts/bootstrap.sh "
                 "(or apt-get install valgrind)")
    driver, alloc_driver = args.drivers or build_drivers(args.build_dir)
    cases = args.cases or list_cases(driver)
    measured, allocations = measure(driver, alloc_driver, cases, args.calls)

    baseline = {}
    if os.path.exists(BASELINE):
        with open(BASELINE) as f:
            baseline = json.load(f)
    tolerance = (args.tolerance if args.tolerance is not None else
                 baseline.get("tolerance", 0.10))
    this_compiler = compiler_version()
    record = {
        "tool": "valgrind --tool=callgrind --toggle-collect="
                "herd_callgrind_measured",
        "unit": "instructions per call",
        "calls": args.calls,
        "compiler": this_compiler,
        "cxxflags": " ".join(CXXFLAGS),
        "machine": platform.machine(),
        "cases": measured,
        "allocations": allocations,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=2, sort_keys=True)
            f.write("\n")
    if args.update:
        record["tolerance"] = tolerance
        with open(BASELINE, "w") as f:
            json.dump(record, f, indent=2, sort_keys=True)
            f.write("\n")
        print(f"wrote {os.path.relpath(BASELINE, ROOT)}")
        return 0

    if baseline.get("compiler") and baseline["compiler"] != this_compiler:
        print(f"warning: baseline measured with {baseline['compiler']!r}, "
              f"this is {this_compiler!r}: counts may differ")
    failures = check(measured, allocations, baseline, tolerance)
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    print("\ncallgrind check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
