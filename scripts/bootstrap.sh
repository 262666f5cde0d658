#!/usr/bin/env bash
# scripts/bootstrap.sh: installs the Debian packages herd's builds and tools
# need, and only those that are missing. Quiet when everything is there;
# idempotent. Runs apt-get as root, or through sudo.
#
#   scripts/bootstrap.sh          install what is missing
#   scripts/bootstrap.sh --check  list what is missing; exit 1 if anything is
set -euo pipefail

packages=(
  # Bazel 4.2.3 and the stand-ins for the rule repositories it would fetch.
  bazel-bootstrap bazel-bootstrap-source
  # Compilers and CMake.
  g++ clang libclang-rt-14-dev cmake ninja-build make pkg-config
  # Libraries: Abseil, GoogleTest/GMock, Google Benchmark; SQLite and
  # nlohmann-json (the lab).
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev libsqlite3-dev
  nlohmann-json3-dev
  # Tools: valgrind (callgrind counts), gnuplot (lab plots), Go (the
  # singleflight peer benchmark).
  valgrind gnuplot-nox golang-go golang-golang-x-sync-dev
)

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == installed ]] || missing+=("$pkg")
done

if [[ "${1:-}" == --check ]]; then
  if (( ${#missing[@]} )); then
    echo "missing: ${missing[*]}"
    exit 1
  fi
  exit 0
fi

(( ${#missing[@]} )) || exit 0

if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "bootstrap.sh: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi

echo "bootstrap.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "bootstrap.sh: done"
