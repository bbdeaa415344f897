#!/usr/bin/env bash
# CI fuzz smoke run: every cargo-fuzz target for FUZZ_SECONDS (default 30) from the
# committed corpus; a crash fails the run. Installs cargo-fuzz (and nightly) if missing.
# The committed corpus is only read: new inputs go to a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECS=${FUZZ_SECONDS:-30}
# address (cargo-fuzz's default) also catches memory errors in unsafe code; none is
# faster to build and run.
SAN=${FUZZ_SANITIZER:-address}

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo +nightly fuzz build -O -s "$SAN"
status=0
for t in $(cargo +nightly fuzz list); do
    mkdir -p "$work/$t"
    echo "== fuzz $t for ${SECS}s"
    mapfile -t opts < <(./options.sh "$t")
    if cargo +nightly fuzz run -O -s "$SAN" "$t" "$work/$t" "corpus/$t" -- \
        -max_total_time="$SECS" -dict="dict/$t.dict" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 "${opts[@]}" > "$work/$t.log" 2>&1; then
        grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec' "$work/$t.log" |
            tr '\n' ' '
        echo
        echo "== $t: ok"
    else
        tail -n 60 "$work/$t.log"
        echo "== $t: FAILED (crash input under fuzz/artifacts/$t/;" \
            "reproduce with: cd fuzz && cargo +nightly fuzz run $t <file>)"
        status=1
    fi
done
exit $status
