#!/usr/bin/env bash
# scripts/test.sh: builds herd and runs every test. The README's test command.
#
#   scripts/test.sh              bootstrap, then the steps bazel cmake consumer
#   scripts/test.sh STEP...      bootstrap, then only these steps, in order
#   scripts/test.sh all          lint bazel cmake consumer asan tsan callgrind
#                                fuzz
#                                (what CI runs)
#
# Steps (each logs to build/logs/STEP.log; CMake trees are those of the
# CMakePresets.json presets, build/cmake, build/asan, build/tsan):
#   lint      buildifier --mode=check --lint=warn over every BUILD, .bzl,
#             WORKSPACE and MODULE.bazel file (MODULE.bazel is checked only
#             this way here: Debian's Bazel 4.2.3 does not read it)
#   bazel     bazel test //...: the primary build (g++), then `bazel shutdown`
#   cmake     CMake preset default (g++, RelWithDebInfo; preset ci under CI)
#             + ctest
#   consumer  cmake --install of build/cmake into build/install, then
#             tests/cmake_consumer built against it with find_package(herd),
#             one program per exported target; and tests/cmake_consumer/main.cc
#             built with `pkg-config --cflags --libs herd` (herd.pc)
#   asan      preset asan (g++) + ctest under AddressSanitizer, leak checking on
#   tsan      preset tsan (clang) + ctest under ThreadSanitizer: also the
#             clang build, -Wthread-safety as errors
#   callgrind instruction counts of Share's single-threaded paths against
#             benchmarks/callgrind_baseline.json: the performance regression
#             check (exact counts, not times, so it holds on a busy machine)
#   fuzz      clang + libFuzzer + ASan: fuzz/share_fuzzer for
#             HERD_FUZZ_SECONDS (default 60) from fuzz/corpus/share; what it
#             finds goes to build/fuzz/, the committed corpus is not changed
#
# Environment: CI=true turns warnings into errors (Bazel --config=ci, CMake
# preset ci / HERD_WERROR). HERD_JOBS sets the parallelism (default: all
# cores). A failed step does not stop the others (one run shows every
# failure); HERD_FAIL_FAST=1 stops at the first.
# HERD_SKIP_BOOTSTRAP=1 skips scripts/bootstrap.sh.
#
# Ends with one line, "summary: N passed, M failed", counting the tests that
# Bazel and ctest report (plus the consumer programs, lint and callgrind);
# exits 0 iff all passed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

JOBS=${HERD_JOBS:-$(nproc)}
BUILD=$ROOT/build
LOGS=$BUILD/logs

is_ci() { [[ "${CI:-}" == true || "${CI:-}" == 1 ]]; }
on_off() { if "$@"; then echo ON; else echo OFF; fi; }

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

# --- Steps. Each runs in a subshell with `set -e`, its output in its log.

step_bazel() {
  local flags=(--jobs="$JOBS" --keep_going)
  if is_ci; then flags+=(--config=ci); fi
  local rc=0
  bazel test "${flags[@]}" //... || rc=$?
  bazel shutdown || true
  return "$rc"
}

# cmake_preset PRESET [cmake -D options...]: configure and build the preset's
# tree (CMakePresets.json; Ninja, which bootstrap.sh installs).
cmake_preset() {
  local preset=$1
  shift
  cmake --preset "$preset" "$@"
  cmake --build --preset "$preset" --parallel "$JOBS"
}

ctest_preset() {
  ctest --preset "$1" --parallel "$JOBS"
}

# The preset of the cmake step (and the consumer's install tree, build/cmake).
main_preset() { if is_ci; then echo ci; else echo default; fi; }

step_cmake() {
  cmake_preset "$(main_preset)"
  ctest_preset "$(main_preset)"
}

step_consumer() {
  local preset
  preset=$(main_preset)
  if [[ ! -f "$BUILD/cmake/CMakeCache.txt" ]]; then
    cmake --preset "$preset"
  fi
  cmake --build "$BUILD/cmake" --parallel "$JOBS" --target herd_libraries
  rm -rf "$BUILD/install" "$BUILD/consumer"
  cmake --install "$BUILD/cmake" --prefix "$BUILD/install"

  # find_package(herd): one program per exported target, and herd::herd.
  cmake -S "$ROOT/tests/cmake_consumer" -B "$BUILD/consumer" \
    -DCMAKE_PREFIX_PATH="$BUILD/install" -DCMAKE_BUILD_TYPE=RelWithDebInfo
  cmake --build "$BUILD/consumer" --parallel "$JOBS"
  local failed=0 program
  for program in "$BUILD"/consumer/herd_consumer*; do
    [[ -x "$program" && -f "$program" ]] || continue
    "$program" || failed=1
  done

  # pkg-config: herd.pc from the same install, and the herd::herd program.
  local libdir
  libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$BUILD/cmake/CMakeCache.txt")
  local flags
  flags=$(PKG_CONFIG_PATH="$BUILD/install/${libdir:-lib}/pkgconfig" \
    pkg-config --cflags --libs herd)
  echo "pkg-config --cflags --libs herd: $flags"
  # shellcheck disable=SC2086  # $flags is a list of flags
  g++ -std=c++20 -O1 -DHERD_CONSUMER_NAME='"herd_pkg_config"' \
    "$ROOT/tests/cmake_consumer/main.cc" $flags -o "$BUILD/consumer/pkg_config"
  "$BUILD/consumer/pkg_config" || failed=1
  return "$failed"
}

step_asan() {
  # detect_leaks=1 is compiled into the tests (cmake/sanitizer_options.cc.in).
  cmake_preset asan -DHERD_WERROR="$(on_off is_ci)"
  ctest_preset asan
}

step_tsan() {
  # clang adds -Wthread-safety -Werror=thread-safety (CMakeLists.txt);
  # benchmarks and examples are built too, so all code gets the analysis.
  cmake_preset tsan -DHERD_WERROR="$(on_off is_ci)"
  ctest_preset tsan
}

# Every Starlark file of the repository: BUILD, .bzl, WORKSPACE, MODULE.bazel.
starlark_files() {
  find "$ROOT" \( -path "$ROOT/build" -o -path "$ROOT/.git" -o -name 'bazel-*' \) -prune \
    -o -type f \( -name BUILD -o -name '*.bazel' -o -name '*.bzl' \
    -o -name WORKSPACE -o -name 'WORKSPACE.*' \) -print | sort
}

step_lint() {
  if ! command -v buildifier >/dev/null; then
    echo "lint: buildifier is not installed (scripts/bootstrap.sh installs it)"
    return 1
  fi
  buildifier --version | head -n 1
  local files
  mapfile -t files < <(starlark_files)
  # Exit status 4: a file needs reformatting or has a lint warning; each is
  # listed. `buildifier --lint=fix FILE` fixes most.
  buildifier --mode=check --lint=warn "${files[@]}"
  echo "lint: ${#files[@]} files clean"
}

step_callgrind() {
  python3 "$ROOT/benchmarks/callgrind_check.py"
}

step_fuzz() {
  cmake_preset fuzz
  local corpus=$BUILD/fuzz/corpus/share
  mkdir -p "$corpus"
  # New inputs go to the first directory; the second only seeds the run.
  "$BUILD/fuzz/fuzz/share_fuzzer" -max_total_time="${HERD_FUZZ_SECONDS:-60}" \
    -timeout=30 -print_final_stats=1 -artifact_prefix="$BUILD/fuzz/" \
    "$corpus" "$ROOT/fuzz/corpus/share"
}

describe() {
  case "$1" in
    lint) echo "buildifier over BUILD, .bzl, WORKSPACE, MODULE.bazel" ;;
    callgrind) echo "instruction counts vs benchmarks/callgrind_baseline.json" ;;
    bazel) echo "bazel test //... (g++)" ;;
    cmake) echo "CMake preset $(main_preset) + ctest (g++, RelWithDebInfo)" ;;
    consumer) echo "cmake --install + find_package(herd) and pkg-config consumers" ;;
    asan) echo "CMake preset asan + ctest, AddressSanitizer + leak checking (g++)" ;;
    tsan) echo "CMake preset tsan + ctest, ThreadSanitizer (clang, -Wthread-safety)" ;;
    fuzz) echo "libFuzzer: fuzz/share_fuzzer for ${HERD_FUZZ_SECONDS:-60} s (clang, ASan)" ;;
  esac
}

# count STEP LOG: prints "passed failed" from the step's runner output.
count() {
  local step=$1 log=$2 line
  case "$step" in
    bazel)
      # "Executed 3 out of 12 tests: 11 tests pass and 1 fails locally."
      line=$(grep -E '^Executed [0-9]+ out of [0-9]+ tests?:' "$log" | tail -n 1 || true)
      if [[ -n "$line" ]]; then
        local total pass
        total=$(sed -E 's/^Executed [0-9]+ out of ([0-9]+) tests?:.*/\1/' <<<"$line")
        pass=$(grep -oE '[0-9]+ tests? pass' <<<"$line" | grep -oE '^[0-9]+' || echo 0)
        echo "$pass $((total - pass))"
        return
      fi
      ;;
    consumer)
      # One line per program: "herd_consumer_core: ok", "herd_pkg_config: ok"...
      local ok bad
      ok=$(grep -cE '^herd_(consumer[a-z_]*|pkg_config): ok$' "$log" || true)
      bad=$(grep -cE '^herd_(consumer[a-z_]*|pkg_config): FAILED$' "$log" || true)
      echo "$ok $bad"
      return
      ;;
    lint)
      if grep -qE '^lint: [0-9]+ files clean$' "$log"; then echo "1 0"; else echo "0 1"; fi
      return
      ;;
    callgrind)
      if grep -q '^callgrind check passed$' "$log"; then echo "1 0"; else echo "0 1"; fi
      return
      ;;
    fuzz)
      # libFuzzer's last line on a clean run: "Done 123456 runs in 60 second(s)"
      if grep -qE '^Done [0-9]+ runs in [0-9]+ second' "$log"; then echo "1 0"; else echo "0 1"; fi
      return
      ;;
    *)
      # "100% tests passed, 0 tests failed out of 218"
      line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)
      if [[ -n "$line" ]]; then
        local failed total
        failed=$(sed -E 's/.*tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
        total=$(sed -E 's/.*tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
        echo "$((total - failed)) $failed"
        return
      fi
      ;;
  esac
  echo "0 0"  # the runner never reported (a build failed)
}

# --- Main.

if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
  usage
  exit 0
fi

steps=()
for arg in "${@:-default}"; do
  case "$arg" in
    default) steps+=(bazel cmake consumer) ;;
    all) steps+=(lint bazel cmake consumer asan tsan callgrind fuzz) ;;
    lint | bazel | cmake | consumer | asan | tsan | callgrind | fuzz) steps+=("$arg") ;;
    *)
      echo "test.sh: unknown step '$arg'" >&2
      usage >&2
      exit 2
      ;;
  esac
done

if [[ "${HERD_SKIP_BOOTSTRAP:-}" != 1 ]]; then
  bash "$ROOT/scripts/bootstrap.sh"
fi

mkdir -p "$LOGS"
results=()
total_passed=0
total_failed=0
overall=0
started=$SECONDS

for step in "${steps[@]}"; do
  log=$LOGS/$step.log
  echo
  echo "==== test.sh: $step: $(describe "$step")"
  t0=$SECONDS
  set +e
  (set -e; "step_$step") 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  elapsed=$((SECONDS - t0))
  read -r passed failed < <(count "$step" "$log")
  if ((rc != 0)); then
    result=FAIL
    overall=1
    # A failure the runner did not count (a build error) counts as one.
    ((failed > 0)) || failed=1
  else
    result=PASS
  fi
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  results+=("$(printf '%-9s %-5s %6d passed %4d failed %4dm%02ds  %s' \
    "$step" "$result" "$passed" "$failed" $((elapsed / 60)) $((elapsed % 60)) \
    "${log#"$ROOT"/}")")
  if ((rc != 0)) && [[ "${HERD_FAIL_FAST:-}" == 1 ]]; then
    break
  fi
done

elapsed=$((SECONDS - started))
echo
echo "==== test.sh summary ($((elapsed / 60))m$(printf '%02d' $((elapsed % 60)))s, $JOBS jobs)"
printf '%s\n' "${results[@]}"
if ((${#results[@]} < ${#steps[@]})); then
  echo "not run after the failure: ${steps[*]:${#results[@]}}"
fi
echo "summary: $total_passed passed, $total_failed failed"
exit "$overall"
