#!/usr/bin/env bash
# scripts/hit_ratio.sh: rebuilds the hit-ratio benchmark (benchmarks/hit_ratio.cc)
# and rewrites its results: the table and the targets
# (benchmarks/results/hit_ratio.md), every figure (benchmarks/results/hit_ratio.json)
# and the plot (docs/hit_ratio.png); then the same traces through a real bounded
# LoadingCache, beside the policy alone (benchmarks/results/hit_ratio_cache.md,
# `hit_ratio --through-cache`). Deterministic: the traces come from a fixed
# seed, so a rerun rewrites the same numbers. About a minute with the build;
# the runs themselves take seconds.
#
#   scripts/hit_ratio.sh                 the committed results
#   scripts/hit_ratio.sh --seed=7        another seed (--keys, --accesses and
#                                        --seed pass through to both runs)
#
# Builds in build/cmake (g++, RelWithDebInfo), the tree scripts/test.sh uses.
# HERD_SKIP_BOOTSTRAP=1 skips scripts/bootstrap.sh (which installs gnuplot).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [[ "${HERD_SKIP_BOOTSTRAP:-}" != 1 ]]; then
  bash scripts/bootstrap.sh
fi

BUILD=$ROOT/build/cmake
generator=()
if [[ ! -f "$BUILD/CMakeCache.txt" ]] && command -v ninja >/dev/null; then
  generator=(-G Ninja)
fi
cmake -S "$ROOT" -B "$BUILD" "${generator[@]}" -DCMAKE_CXX_COMPILER=g++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHERD_SANITIZER= >/dev/null
cmake --build "$BUILD" --target hit_ratio --parallel "${HERD_JOBS:-2}"

mkdir -p benchmarks/results docs
"$BUILD/benchmarks/hit_ratio" --ablation \
  --md=benchmarks/results/hit_ratio.md \
  --json=benchmarks/results/hit_ratio.json \
  --plot=docs/hit_ratio.png "$@" >/dev/null
"$BUILD/benchmarks/hit_ratio" --through-cache \
  --md=benchmarks/results/hit_ratio_cache.md "$@" >/dev/null
echo "wrote benchmarks/results/hit_ratio.md, benchmarks/results/hit_ratio.json," \
  "docs/hit_ratio.png, benchmarks/results/hit_ratio_cache.md"
