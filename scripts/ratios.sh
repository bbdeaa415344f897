#!/usr/bin/env bash
# Every performance target of issues #4 and #7 (pipe and uds-stream same cpu against
# limits.c; shm spin cross cpu against limits.c's shm-spin; shm-blocking against its
# shm-futex, same and cross cpu; shm streams of 64 KiB and 4 KiB against ring.c), each
# from ROUNDS rounds of C and crate runs in turn, every crate run compared with the
# geometric mean of the two C runs around it. See scripts/ratios.py for why and how.
#
#   scripts/ratios.sh [ANCHORS_DIR] [ROUNDS] [N] [OUT_DIR] [ONLY]
#
# ANCHORS_DIR holds limits.c and ring.c (default ../shared/anchors); ROUNDS (default 7);
# N round trips per run (default 5000). Raw figures go to OUT_DIR/ratios.json (OUT_DIR
# default: a temp dir, removed at the end). ONLY keeps the targets whose label contains
# it (e.g. spin). About 1-2 minutes with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-../shared/anchors}
rounds=${2:-7}
n=${3:-5000}
for v in "$rounds" "$n"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "ratios.sh: ROUNDS and N must be positive integers, got '$v'" >&2; exit 2; }
done
. scripts/floors-setup.sh "${4:-}"
python3 scripts/ratios.py "$out" "$bin" "$rounds" "$n" ${5:+"$5"}
