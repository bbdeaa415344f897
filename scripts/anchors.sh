#!/usr/bin/env bash
# Runs the C floors (limits.c, ring.c) and the crate's table in the same session, so
# that ratios can be compared from one run (medians drift 2x between runs on a VM).
#
#   scripts/anchors.sh ANCHORS_DIR [N] [OUT_DIR]
#
# ANCHORS_DIR holds limits.c and ring.c (e.g. ../shared/anchors). N round trips per C
# method (default 20000). Prints the C figures, the crate's quick table, then the ratios
# of pipe and uds-stream (same cpu, p50) to the C floor of the same method, and of shm
# (cross cpu) to the C shm-spin floor. Writes everything under OUT_DIR (default a temp
# dir, removed at the end unless given).
set -euo pipefail
dir=${1:?usage: scripts/anchors.sh ANCHORS_DIR [N] [OUT_DIR]}
n=${2:-20000}
cd "$(dirname "$0")/.."
. scripts/floors-setup.sh "${3:-}"

echo "== limits.c, same cpu"; "$out/limits" "$n" 64 same | tee "$out/limits-same.txt"
echo "== limits.c, cpu0<->cpu1"; "$out/limits" "$n" 64 | tee "$out/limits-cross.txt"
echo "== ring.c"; { "$out/ring" 65536; "$out/ring" 4096; } | tee "$out/ring.txt"
echo "== ipc-audit table --quick"
"$bin" table --quick --format json > "$out/table.json"
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
same, cross = c_p50(f"{out}/limits-same.txt"), c_p50(f"{out}/limits-cross.txt")
t = json.load(open(f"{out}/table.json"))
rows = {r["method"]: r for r in t["rows"]}
print("| method | pin | crate p50 | C p50 | ratio | target |")
print("|---|---|---|---|---|---|")
def line(method, pin, cmethod, c, target):
    r = rows.get(method)
    p = r and (r["latency_ns"].get(pin) or {}).get("p50")
    if p and cmethod in c:
        print(f"| {method} | {pin} | {p} ns | {c[cmethod]} ns | {p / c[cmethod]:.2f}x | {target} |")
    else:
        print(f"| {method} | {pin} | n/a | {c.get(cmethod, 'n/a')} | n/a | {target} |")
line("pipe", "same_cpu", "pipe", same, "<= 1.15x")
line("uds-stream", "same_cpu", "uds-stream", same, "<= 1.15x")
line("shm", "cross_cpu", "shm-spin", cross, "<= 1.5x")
f = t["floor"]
for name, c, pin in [("shm-futex", same, "same_cpu"), ("shm-futex", cross, "cross_cpu"), ("shm-spin", cross, "cross_cpu")]:
    key = name.replace("-", "_")
    p = (f[key].get(pin) or {}).get("p50")
    if p and name in c:
        print(f"| crate floor {name} | {pin} | {p} ns | {c[name]} ns | {p / c[name]:.2f}x | (Rust vs C floor) |")
PY
