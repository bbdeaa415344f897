#!/usr/bin/env bash
# Loom models of the shared-memory ring and Miri over its unit tests.
#
# loom: tests/loom.rs, built with --cfg loom in target/loom (so that flipping RUSTFLAGS
#       does not rebuild the normal target dir); LOOM_MAX_PREEMPTIONS defaults to 3.
# Miri: the ring core's unit tests over a heap buffer (`shm::` in the library), on
#       nightly; the miri component is installed when missing.
#
# Which loom model catches the weakening of each ordering: .ci/loom-weaken.sh (slow,
# not run here), results recorded in its header.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== loom (LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-3})"
RUSTFLAGS="--cfg loom" \
  LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}" \
  CARGO_TARGET_DIR="${LOOM_TARGET_DIR:-target/loom}" \
  cargo test --release --test loom

echo "== miri"
if ! cargo +nightly miri --version >/dev/null 2>&1; then
  rustup component add --toolchain nightly miri rust-src
fi
# -Zmiri-disable-isolation: none needed; the tests under shm:: touch no files or clocks
# except the timeout test, which Miri's virtual clock serves.
# Weak-memory emulation is on (Miri's default) since ring v3: the header words live in a
# lane of their own, so no bytes are written atomically in one lap and plainly in
# another (ring v2's mix, which made Miri's store-buffer emulation panic with nightly
# 2026-05-19 and had to be switched off).
MIRIFLAGS="${MIRIFLAGS:-}" \
  CARGO_TARGET_DIR="${MIRI_TARGET_DIR:-target/miri}" \
  cargo +nightly miri test --lib shm::
