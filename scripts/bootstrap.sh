#!/usr/bin/env bash
# scripts/bootstrap.sh: installs what herd's builds and tools need, and only
# what is missing; quiet when everything is there; idempotent.
#   - Debian packages, with apt-get (as root, or through sudo);
#   - buildifier (scripts/test.sh lint), with npm: Debian does not package it;
#   - .bazelrc.debian, the settings Debian's Bazel 4.2.3 needs offline, which
#     .bazelrc try-imports: written when `bazel` is Debian's bazel-bootstrap.
#
#   scripts/bootstrap.sh          install what is missing
#   scripts/bootstrap.sh --check  list what is missing; exit 1 if anything is
#
# HERD_BAZEL_DEBIAN=1 writes .bazelrc.debian whatever `bazel` is;
# HERD_BAZEL_DEBIAN=0 removes it (a networked Bazel needs none of it).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

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

MOCK_REPOS=/usr/src/bazel-bootstrap/mock_repos

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == installed ]] || missing+=("$pkg")
done
need_buildifier=0
command -v buildifier >/dev/null 2>&1 || need_buildifier=1

# Is `bazel` Debian's bazel-bootstrap (or does HERD_BAZEL_DEBIAN say)?
want_debian_rc() {
  case "${HERD_BAZEL_DEBIAN:-}" in
    1) return 0 ;;
    0) return 1 ;;
  esac
  local bazel
  bazel=$(command -v bazel 2>/dev/null) || return 1
  [[ -d "$MOCK_REPOS" ]] && dpkg-query -S "$(readlink -f "$bazel")" 2>/dev/null |
    grep -q '^bazel-bootstrap'
}

if [[ "${1:-}" == --check ]]; then
  problems=()
  (( ${#missing[@]} )) && problems+=("${missing[@]}")
  (( need_buildifier )) && problems+=("buildifier (npm install -g @bazel/buildifier)")
  if (( ${#problems[@]} )); then
    echo "missing: ${problems[*]}"
    exit 1
  fi
  exit 0
fi

if (( ${#missing[@]} )); then
  if [[ $(id -u) -eq 0 ]]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "bootstrap.sh: need root or sudo to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "bootstrap.sh: installing ${missing[*]}"
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "bootstrap.sh: done"
fi

if (( need_buildifier )); then
  if ! command -v npm >/dev/null 2>&1; then
    echo "bootstrap.sh: buildifier needs npm (Node.js) to install" >&2
    exit 1
  fi
  echo "bootstrap.sh: installing buildifier (npm install -g @bazel/buildifier)"
  npm install -g --silent --no-fund --no-audit @bazel/buildifier >/dev/null
fi

# .bazelrc.debian: rewritten only when its content changes.
debian_rc=$ROOT/.bazelrc.debian
if want_debian_rc; then
  content="# Written by scripts/bootstrap.sh; not in git. Debian's bazel-bootstrap
# (Bazel 4.2.3) offline: the rule repositories Bazel asks for come from
# bazel-bootstrap-source, and @remote_coverage_tools is a stub (so
# \`bazel coverage\` is unavailable). Remove this file for a networked Bazel
# (or run HERD_BAZEL_DEBIAN=0 scripts/bootstrap.sh).
"
  for command in build fetch query; do
    for repo in rules_cc rules_java rules_proto platforms bazel_skylib \
      remote_java_tools_linux rules_pkg; do
      content+="$command --override_repository=$repo=$MOCK_REPOS/$repo"$'\n'
    done
    content+="$command --repo_env=HERD_BAZEL_OFFLINE=1"$'\n'
  done
  content+="# Debian's /etc/bazel/bazelrc turns on --sandbox_debug: 40 lines of
# sandbox log per action, and sandboxes left on disk.
build --nosandbox_debug
"
  if [[ ! -f "$debian_rc" || "$(cat "$debian_rc")"$'\n' != "$content" ]]; then
    printf '%s' "$content" >"$debian_rc"
    echo "bootstrap.sh: wrote .bazelrc.debian (Debian's Bazel, offline)"
  fi
elif [[ -f "$debian_rc" && "${HERD_BAZEL_DEBIAN:-}" == 0 ]]; then
  rm -f "$debian_rc"
  echo "bootstrap.sh: removed .bazelrc.debian"
fi
