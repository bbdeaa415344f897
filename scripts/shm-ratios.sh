#!/usr/bin/env bash
# The shm transport's three ratios, each from one run (medians drift up to 2x between
# runs on a shared VM, so only ratios within a run mean anything):
#
#   1. spin: `shm` (spin, then futex) round trip of 64 bytes cpu0<->cpu1, p50, against
#      the shm-spin floor measured by the crate in the same `bench` run, and against
#      limits.c's shm-spin just before (target <= 1.5x);
#   2. blocking: `shm-blocking` (sleeps at once) round trip, same cpu and cross cpu,
#      against the crate's shm-futex floor of the same run and limits.c's (target
#      <= 1.2x);
#   3. throughput: `shm` streaming 64 KiB and 4 KiB messages cpu0 -> cpu1, against
#      ring.c run just before and just after (target >= 0.8x).
#
#   scripts/shm-ratios.sh [ANCHORS_DIR] [N] [OUT_DIR]
#
# ANCHORS_DIR holds limits.c and ring.c (default ../shared/anchors). N round trips
# (default 20000). Raw outputs go to OUT_DIR (default a temp dir, removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-../shared/anchors}
n=${2:-20000}
. scripts/floors-setup.sh "${3:-}"

echo "== 1. spin, cross cpu"
"$out/limits" "$n" 64 | tee "$out/limits-cross.txt"
"$bin" bench shm --pin cross --count "$n" --format json > "$out/spin-cross.json"
echo "== 2. blocking, same cpu and cross cpu"
"$out/limits" "$n" 64 same | tee "$out/limits-same.txt"
"$bin" bench shm-blocking --pin same --count "$n" --format json > "$out/block-same.json"
"$bin" bench shm-blocking --pin cross --count "$n" --format json > "$out/block-cross.json"
echo "== 3. throughput cpu0 -> cpu1"
for size in 65536 4096; do
  count=$(( (1 << 30) / size ))   # 1 GiB, or 10 s, whichever comes first
  "$out/ring" "$size" | tee "$out/ring-$size-before.txt"
  "$bin" bench shm --pin cross --size "$size" --count "$count" --format json \
    > "$out/stream-$size.json"
  "$out/ring" "$size" | tee "$out/ring-$size-after.txt"
done

python3 - "$out" <<'PY'
import json, re, sys
out = sys.argv[1]

def c_p50(path):
    d = {}
    for line in open(path):
        m = re.match(r"(\S+)\s+p50\s+(\d+) ns", line)
        if m:
            d[m.group(1)] = int(m.group(2))
    return d

def ok(v, what):
    if isinstance(v, dict) and "Ok" in v:
        return v["Ok"]
    raise SystemExit(f"{what}: {v}")

def bench(name):
    b = json.load(open(f"{out}/{name}.json"))
    lat = ok(b["latency"], f"{name} latency")
    floors = {}
    for f in b["floors"]:
        f = ok(f, f"{name} floor")
        floors[f["kind"]] = f["stats"]["p50_ns"]
    thr = ok(b["throughput"], f"{name} stream") if b.get("throughput") else None
    return lat, floors, thr

def ns(x):
    return f"{x / 1000:.2f} µs" if x >= 1000 else f"{x} ns"

rows = []
cross, same = c_p50(f"{out}/limits-cross.txt"), c_p50(f"{out}/limits-same.txt")
lat, fl, _ = bench("spin-cross")
p = lat["stats"]["p50_ns"]
rows.append(("shm (spin, then futex) 64 B", "cross", ns(p), f"crate shm-spin {ns(fl['shm-spin'])}",
             p / fl["shm-spin"], f"C shm-spin {ns(cross['shm-spin'])}", p / cross["shm-spin"], "<= 1.5x"))
for name, pin, c in [("block-same", "same", same), ("block-cross", "cross", cross)]:
    lat, fl, _ = bench(name)
    p = lat["stats"]["p50_ns"]
    rows.append(("shm-blocking 64 B", pin, ns(p), f"crate shm-futex {ns(fl['shm-futex'])}",
                 p / fl["shm-futex"], f"C shm-futex {ns(c['shm-futex'])}", p / c["shm-futex"], "<= 1.2x"))
print()
print("| what | pin | p50 | floor (crate, same run) | ratio | floor (C, just before) | ratio | target |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.2f}x | {r[5]} | {r[6]:.2f}x | {r[7]} |")
print()
print("| stream cpu0 -> cpu1 | shm | ring.c before | ring.c after | ratio (to the better ring.c) | target |")
print("|---|---|---|---|---|---|")
for size in (65536, 4096):
    _, _, thr = bench(f"stream-{size}")
    gbs = thr[0]["bytes_per_s"] / 1e9
    rings = []
    for when in ("before", "after"):
        m = re.search(r"ring ([\d.]+) GB/s", open(f"{out}/ring-{size}-{when}.txt").read())
        rings.append(float(m.group(1)))
    best = max(rings)
    print(f"| {size // 1024} KiB | {gbs:.2f} GB/s ({thr[0]['received']} msgs, "
          f"{thr[0]['allocs_per_msg'] or 0:.2f} allocs/msg) | {rings[0]:.1f} GB/s | {rings[1]:.1f} GB/s | "
          f"{gbs / best:.2f}x | >= 0.8x |")
PY
