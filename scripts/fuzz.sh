#!/usr/bin/env bash
# Overnight fuzz campaign over every cargo-fuzz target (or those named), on all cores.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/fuzz.sh [options] [TARGET...]

Runs a fuzz campaign on the cargo-fuzz targets in fuzz/ (all of them when none is
named), one after the other, each on all cores, then minimises each corpus, writes a
coverage report, and copies every crash, timeout, leak and OOM input into one folder.

Options:
  -t, --time SECONDS     fuzzing time per target (default 3600; 8h over 6 targets: 4800)
  -j, --jobs N           parallel fuzzing processes, libFuzzer -fork=N (default: nproc)
      --mode fork|jobs   fork: one supervisor, N children sharing one corpus, keeps going
                         after crashes (default); jobs: libFuzzer -jobs=N -workers=N, each
                         process running for the whole time, stops a process on a crash
  -o, --out DIR          results folder (default fuzz/campaign-YYYYmmdd-HHMMSS)
      --no-cmin          skip `cargo fuzz cmin`
      --no-coverage      skip the coverage report
      --update-corpus    after cmin, add the new minimised inputs to the committed seed
                         corpus fuzz/corpus/<target>/ (review before committing: keep it
                         to a few dozen files per target)
      --sanitizer NAME   address (default, cargo-fuzz's), none (faster), memory, thread
      --no-trace-compares  build without comparison tracing: 2-3x the executions per
                         second, but libFuzzer no longer learns the values compared
                         (checksums, magic numbers) and relies on the dictionaries
  -h, --help             this text

Results in the output folder:
  crashes/<target>-<file>    every crashing input (reproduce with
                             `cargo +nightly fuzz run <target> <file>`)
  logs/<target>.log          libFuzzer's output (exec/s, coverage, new units)
  coverage/<target>.txt      llvm-cov line coverage of the crate's sources
  coverage/all.txt           the same for all the targets run, together
  summary.txt                one line per target: runs, exec/s, crashes, src/frame.rs lines

The working corpus lives in fuzz/corpus-run/<target>/ (not committed); it starts from
the committed seeds and grows from one campaign to the next.
Needs: nightly (`rustup toolchain install nightly`), cargo-fuzz
(`cargo install cargo-fuzz --locked`) and, for coverage,
`rustup component add --toolchain nightly llvm-tools-preview`.
Exit code: 0 when no crash was found, 1 when some were (see crashes/), 2 on bad usage.
USAGE
}

TIME=3600
JOBS=$(nproc)
MODE=fork
OUT=
CMIN=1
COVERAGE=1
UPDATE=0
SANITIZER=address
BUILD=()
TARGETS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        -t|--time) TIME=$2; shift 2 ;;
        -j|--jobs) JOBS=$2; shift 2 ;;
        --mode) MODE=$2; shift 2 ;;
        -o|--out) OUT=$2; shift 2 ;;
        --no-cmin) CMIN=0; shift ;;
        --no-coverage) COVERAGE=0; shift ;;
        --update-corpus) UPDATE=1; shift ;;
        --sanitizer) SANITIZER=$2; shift 2 ;;
        --no-trace-compares) BUILD+=(--no-trace-compares); shift ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) TARGETS+=("$1"); shift ;;
    esac
done
[[ "$TIME" =~ ^[0-9]+$ && "$JOBS" =~ ^[1-9][0-9]*$ ]] || {
    echo "fuzz.sh: --time and --jobs take positive integers (got '$TIME', '$JOBS')" >&2
    exit 2
}
[[ "$MODE" == fork || "$MODE" == jobs ]] || {
    echo "fuzz.sh: --mode is fork or jobs (got '$MODE')" >&2
    exit 2
}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FUZZ="$ROOT/fuzz"
OUT=${OUT:-$FUZZ/campaign-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/crashes" "$OUT/logs" "$OUT/coverage"
OUT=$(cd "$OUT" && pwd)
cd "$FUZZ"

command -v cargo-fuzz >/dev/null || {
    echo "fuzz.sh: cargo-fuzz missing: cargo install cargo-fuzz --locked" >&2
    exit 2
}
mapfile -t ALL < <(cargo +nightly fuzz list)
if [[ ${#TARGETS[@]} -eq 0 ]]; then TARGETS=("${ALL[@]}"); fi
for t in "${TARGETS[@]}"; do
    printf '%s\n' "${ALL[@]}" | grep -qx "$t" || {
        echo "fuzz.sh: unknown target '$t'; targets: ${ALL[*]}" >&2
        exit 2
    }
done

echo "campaign: ${TARGETS[*]}; ${TIME}s each on $JOBS processes ($MODE); results in $OUT"
cargo +nightly fuzz build -O -s "$SANITIZER" "${BUILD[@]}"

TRIPLE=$(rustc +nightly -vV | sed -n 's/^host: //p')
LLVM_BIN="$(rustc +nightly --print sysroot)/lib/rustlib/$TRIPLE/bin"
# Report the crate's own sources only.
IGNORE='/\.cargo/|/\.rustup/|/rustc/|fuzz_targets'
COVERED=()
: > "$OUT/summary.txt"
found=0
for t in "${TARGETS[@]}"; do
    run="corpus-run/$t"
    mkdir -p "$run" "artifacts/$t"
    log="$OUT/logs/$t.log"
    if [[ "$MODE" == fork ]]; then
        par=(-fork="$JOBS" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    else
        par=(-jobs="$JOBS" -workers="$JOBS")
    fi
    echo "== $t: fuzzing for ${TIME}s"
    # libFuzzer writes new inputs into the first corpus folder only: the committed seeds
    # (second folder) are read, never changed.
    # Per-target flags (fuzz/options/<target>.options, e.g. max_len) come last.
    mapfile -t opts < <("$FUZZ/options.sh" "$t")
    (cd "$FUZZ" && cargo +nightly fuzz run -O -s "$SANITIZER" "${BUILD[@]}" "$t" "$run" "corpus/$t" -- \
        -max_total_time="$TIME" -dict="dict/$t.dict" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 "${par[@]}" "${opts[@]}") > "$log" 2>&1 || true
    # -jobs mode writes one log per process in the current folder.
    for f in fuzz-*.log; do [[ -e "$f" ]] && { cat "$f" >> "$log"; rm -f "$f"; }; done

    # Before cmin and coverage append to the log. Fork mode prints "#N: ... exec/s: E"
    # lines; the others "#N ... exec/s: E".
    runs=$( (grep -o '^#[0-9]*' "$log" || true) | tr -d '#' | sort -n | tail -1)
    eps=$( (grep -o 'exec/s: [0-9]*' "$log" || true) | tail -1 | awk '{print $2}')

    n=0
    for a in artifacts/"$t"/*; do
        [[ -f "$a" ]] || continue
        cp "$a" "$OUT/crashes/$t-$(basename "$a")"
        n=$((n + 1))
    done
    [[ $n -gt 0 ]] && found=1

    if [[ $CMIN -eq 1 ]]; then
        echo "== $t: minimising the corpus"
        cargo +nightly fuzz cmin -O -s "$SANITIZER" "${BUILD[@]}" "$t" "$run" -- -dict="dict/$t.dict" \
            >> "$log" 2>&1 || echo "cmin failed, see $log"
        if [[ $UPDATE -eq 1 ]]; then
            cp -n "$run"/* "corpus/$t/" 2>/dev/null || true
        fi
    fi

    cov="-"
    if [[ $COVERAGE -eq 1 ]]; then
        echo "== $t: coverage"
        if cargo +nightly fuzz coverage "$t" "$run" "corpus/$t" >> "$log" 2>&1; then
            bin="target/$TRIPLE/coverage/$TRIPLE/release/$t"
            prof="coverage/$t/coverage.profdata"
            "$LLVM_BIN/llvm-cov" report "$bin" -instr-profile="$prof" \
                -ignore-filename-regex="$IGNORE" \
                > "$OUT/coverage/$t.txt" 2>>"$log" || true
            "$LLVM_BIN/llvm-cov" show "$bin" -instr-profile="$prof" -format=html \
                -ignore-filename-regex="$IGNORE" \
                -output-dir="$OUT/coverage/$t-html" 2>>"$log" || true
            COVERED+=("$t")
            cov=$( (awk '$1 ~ /(^|\/)frame\.rs$/ {print $10}' "$OUT/coverage/$t.txt" || true) | head -1)
        else
            echo "coverage failed, see $log"
        fi
    fi

    printf '%-28s runs %-12s last exec/s %-10s crashes %-4s src/frame.rs lines %s\n' \
        "$t" "${runs:-?}" "${eps:-?}" "$n" "${cov:--}" | tee -a "$OUT/summary.txt"
done

# The targets together: merge their profiles and report over all their binaries.
if [[ ${#COVERED[@]} -gt 1 ]]; then
    profs=() objs=()
    for t in "${COVERED[@]}"; do
        profs+=("coverage/$t/coverage.profdata")
        objs+=(-object "target/$TRIPLE/coverage/$TRIPLE/release/$t")
    done
    if "$LLVM_BIN/llvm-profdata" merge -sparse "${profs[@]}" -o "$OUT/coverage/all.profdata" &&
        "$LLVM_BIN/llvm-cov" report "${objs[@]:1}" -instr-profile="$OUT/coverage/all.profdata" \
            -ignore-filename-regex="$IGNORE" > "$OUT/coverage/all.txt"; then
        all=$(awk '$1 ~ /(^|\/)frame\.rs$/ {print $10}' "$OUT/coverage/all.txt" | head -1)
        echo "all targets together: src/frame.rs lines ${all:--}" | tee -a "$OUT/summary.txt"
    fi
fi

echo "results: $OUT (summary.txt, crashes/, logs/, coverage/)"
exit $found
