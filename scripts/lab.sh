#!/usr/bin/env bash
# scripts/lab.sh: the README's first command. Installs what is missing,
# builds the stampede lab with Bazel (optimised) and runs it: a real SQLite
# database under a stampede, one row per defence.
#
#   scripts/lab.sh                       the defaults (about half a minute)
#   scripts/lab.sh --stall-every=50 --stall-ms=3000   with a stalling database
#   scripts/lab.sh --help                every flag
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/bootstrap.sh
bazel build -c opt --noshow_progress --ui_event_filters=-info,-stdout \
  //lab:herd-stampede
exec bazel-bin/lab/herd-stampede "$@"
