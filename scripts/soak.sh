#!/usr/bin/env bash
# scripts/soak.sh: the seeded stress and model tests, and the fuzzer, run
# for minutes rather than CI's seconds. For people who want more than CI.
#
#   scripts/soak.sh [--minutes=M] [--seed=S] [--preset=P] [--no-fuzz]
#
#   --minutes=M  total time budget (default 10). It is split evenly over the
#                test cases below (and the fuzzer, which counts as one), and
#                every program is also killed at twice its share plus 2
#                minutes, so a hang ends the soak instead of stalling it.
#   --seed=S     replay: HERD_STRESS_SEED and HERD_MODEL_SEED for every
#                program (default: each program picks one and prints it).
#   --preset=P   CMakePresets.json preset to build the tests in: tsan
#                (default; clang, ThreadSanitizer), asan (g++,
#                AddressSanitizer + leak checking) or default (no sanitizer).
#   --no-fuzz    skip fuzz/share_fuzzer (preset fuzz: clang + libFuzzer).
#
# Runs tests/share_stress_test, tests/loading_cache_stress_test,
# tests/share_model_test and tests/guards_model_test with
# HERD_STRESS_SECONDS / HERD_MODEL_SECONDS set to each case's share, then
# the fuzzer from fuzz/corpus/share (new inputs go to build/fuzz/corpus).
# Each run's output is in build/logs/soak-NAME.log, and its seed line is
# printed here: set that seed with --seed to replay a failure.
# Exits 0 iff every program passed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

minutes=10
seed=
preset=tsan
fuzz=1
for arg in "$@"; do
  case "$arg" in
    --minutes=*) minutes=${arg#--minutes=} ;;
    --seed=*) seed=${arg#--seed=} ;;
    --preset=*) preset=${arg#--preset=} ;;
    --no-fuzz) fuzz=0 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "soak.sh: unknown argument '$arg' (see --help)" >&2
      exit 2
      ;;
  esac
done
if ! [[ "$minutes" =~ ^[1-9][0-9]*$ ]]; then
  echo "soak.sh: --minutes must be a whole number of minutes >= 1, got '$minutes'" >&2
  exit 2
fi
if [[ -n "$seed" ]] && ! [[ "$seed" =~ ^[0-9]+$ ]]; then
  echo "soak.sh: --seed must be a non-negative integer, got '$seed'" >&2
  exit 2
fi
case "$preset" in
  tsan | asan | default) ;;
  *)
    echo "soak.sh: --preset must be tsan, asan or default, got '$preset'" >&2
    exit 2
    ;;
esac

# name:test cases in it (each case runs for the share it is given).
programs=(share_stress_test:1 loading_cache_stress_test:3 share_model_test:1
  guards_model_test:6)
cases=$fuzz
for p in "${programs[@]}"; do cases=$((cases + ${p#*:})); done
share=$((minutes * 60 / cases))
((share >= 1)) || share=1

tree=$(python3 -c 'import json,sys
for p in json.load(open("CMakePresets.json"))["configurePresets"]:
    if p["name"] == sys.argv[1]:
        print(p.get("binaryDir", "").replace("${sourceDir}", sys.argv[2]))' \
  "$preset" "$ROOT")
[[ -n "$tree" ]] || tree=$ROOT/build/cmake
mkdir -p "$ROOT/build/logs"

echo "soak: ${minutes} min, ${share} s per case, preset $preset${seed:+, seed $seed}"
[[ -f "$tree/CMakeCache.txt" ]] || cmake --preset "$preset"
targets=()
for p in "${programs[@]}"; do targets+=("${p%%:*}"); done
cmake --build "$tree" --parallel "${HERD_JOBS:-$(nproc)}" --target "${targets[@]}"

failed=0
run() {  # run NAME LIMIT_SECONDS COMMAND...
  local name=$1 limit=$2 log=$ROOT/build/logs/soak-$1.log rc=0
  shift 2
  timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1 || rc=$?
  grep -hE '(HERD_[A-Z_]*SEED=|: seed [0-9]+$|^Done [0-9]+ runs)' "$log" | sed "s/^/  $name: /" || true
  if ((rc == 0)); then
    echo "PASS $name"
  else
    echo "FAIL $name (exit $rc; log ${log#"$ROOT"/})"
    failed=1
  fi
}

for p in "${programs[@]}"; do
  name=${p%%:*}
  n=${p#*:}
  run "$name" $((2 * n * share + 120)) env \
    HERD_STRESS_SECONDS="$share" HERD_MODEL_SECONDS="$share" \
    ${seed:+HERD_STRESS_SEED="$seed"} ${seed:+HERD_MODEL_SEED="$seed"} \
    "$(find "$tree/tests" -name "$name" -type f -perm -u+x | head -n 1)"
done

if ((fuzz)); then
  [[ -f "$ROOT/build/fuzz/CMakeCache.txt" ]] || cmake --preset fuzz
  cmake --build "$ROOT/build/fuzz" --parallel "${HERD_JOBS:-$(nproc)}" --target share_fuzzer
  mkdir -p "$ROOT/build/fuzz/corpus/share"
  run share_fuzzer $((2 * share + 120)) "$ROOT/build/fuzz/fuzz/share_fuzzer" \
    -max_total_time="$share" -timeout=30 -print_final_stats=1 \
    ${seed:+-seed="$seed"} -artifact_prefix="$ROOT/build/fuzz/" \
    "$ROOT/build/fuzz/corpus/share" "$ROOT/fuzz/corpus/share"
fi

exit "$failed"
