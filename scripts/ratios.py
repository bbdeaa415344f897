#!/usr/bin/env python3
"""Every performance target of issues #4 and #7, as ratios of paired runs.

Called by scripts/ratios.sh (which builds the C floors and the crate). On this VM a floor
changes regime within seconds (the spin floor jumps between ~80, 120-150 and 400-500 ns),
so one C run and one crate run a minute apart can differ 4x for nothing. Here each
target is measured in ROUNDS rounds, C and crate in turn:

    C0  X1  C1  X2  C2 ... Xk  Ck

and each crate run X_i is compared with the geometric mean of the two C runs around it
(which cancels a drift that is steady over the three runs). The summary gives the median
of those ratios, how many rounds met the target, and the ratios' range; every raw figure
is written to OUT/ratios.json.

usage: ratios.py OUT_DIR BIN ROUNDS COUNT [ONLY]

ONLY, if given, keeps the targets whose label contains it (for example "spin").
"""

import json
import math
import re
import statistics
import subprocess
import sys

if len(sys.argv) not in (5, 6) or not all(a.isdigit() and int(a) > 0 for a in sys.argv[3:5]):
    raise SystemExit(f"usage: ratios.py OUT_DIR BIN ROUNDS COUNT [ONLY] (ROUNDS, COUNT: "
                     f"positive integers), got {sys.argv[1:]}")
out, binary, rounds, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
only = sys.argv[5] if len(sys.argv) == 6 else ""


def run(args):
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()[-500:]}")
    return r.stdout


def c_latency(method, pin):
    args = [f"{out}/limits", str(count), "64"] + (["same"] if pin == "same" else [])
    for line in run(args).splitlines():
        m = re.match(r"(\S+)\s+p50\s+(\d+) ns", line)
        if m and m.group(1) == method:
            return int(m.group(2))
    raise SystemExit(f"limits.c printed no {method} line")


def c_throughput(size):
    m = re.search(r"ring ([\d.]+) GB/s", run([f"{out}/ring", str(size)]))
    if not m:
        raise SystemExit(f"ring.c {size}: no throughput line")
    return float(m.group(1)) * 1e9


def ok(v, what):
    if isinstance(v, dict) and "Ok" in v:
        return v["Ok"]
    raise SystemExit(f"{what}: {v}")


def crate_latency(transport, pin):
    b = json.loads(run([binary, "bench", transport, "--pin", pin, "--count", str(count),
                        "--format", "json"]))
    return ok(b["latency"], f"{transport} {pin}")["stats"]["p50_ns"]


def crate_throughput(size):
    n = max(1000, (1 << 30) // size)  # 1 GiB, or the bench's time budget
    b = json.loads(run([binary, "bench", "shm", "--pin", "cross", "--size", str(size),
                        "--count", str(n), "--format", "json"]))
    return ok(b["throughput"], f"shm stream {size}")[0]["bytes_per_s"]


# (label, C measurement, crate measurement, target, lower is better)
TARGETS = [
    ("#7 pipe round trip, same cpu, vs C pipe", lambda: c_latency("pipe", "same"),
     lambda: crate_latency("pipe", "same"), 1.15, True),
    ("#7 uds-stream round trip, same cpu, vs C uds-stream",
     lambda: c_latency("uds-stream", "same"), lambda: crate_latency("uds-stream", "same"),
     1.15, True),
    ("#4 #7 shm (spin) round trip, cross cpu, vs C shm-spin",
     lambda: c_latency("shm-spin", "cross"), lambda: crate_latency("shm", "cross"), 1.5, True),
    ("#4 shm-blocking round trip, same cpu, vs C shm-futex",
     lambda: c_latency("shm-futex", "same"), lambda: crate_latency("shm-blocking", "same"),
     1.2, True),
    ("#4 shm-blocking round trip, cross cpu, vs C shm-futex",
     lambda: c_latency("shm-futex", "cross"), lambda: crate_latency("shm-blocking", "cross"),
     1.2, True),
    ("#4 shm stream 64 KiB, cpu0 -> cpu1, vs ring.c", lambda: c_throughput(65536),
     lambda: crate_throughput(65536), 0.8, False),
    ("#4 shm stream 4 KiB, cpu0 -> cpu1, vs ring.c", lambda: c_throughput(4096),
     lambda: crate_throughput(4096), 0.8, False),
]


def fmt(x, lower):
    if not lower:
        return f"{x / 1e9:.1f} GB/s"
    return f"{x / 1000:.2f} µs" if x >= 1000 else f"{x} ns"


TARGETS = [t for t in TARGETS if only in t[0]]
if not TARGETS:
    raise SystemExit(f"no target's label contains {only!r}")
results = []
for i, (label, c, crate, target, lower) in enumerate(TARGETS, 1):
    print(f"[{i}/{len(TARGETS)}] {label}: {rounds} rounds", file=sys.stderr, flush=True)
    cs, xs, ratios = [c()], [], []
    for _ in range(rounds):
        xs.append(crate())
        cs.append(c())
        ratios.append(xs[-1] / math.sqrt(cs[-2] * cs[-1]))
    met = sum(r <= target if lower else r >= target for r in ratios)
    results.append({"target": label, "bound": target, "lower_is_better": lower, "c": cs,
                    "crate": xs, "ratios": ratios, "median_ratio": statistics.median(ratios),
                    "rounds_met": met})

json.dump(results, open(f"{out}/ratios.json", "w"), indent=1)
print("| target | crate, median | C, median | median ratio | rounds within the target |")
print("|---|---|---|---|---|")
for r in results:
    lower = r["lower_is_better"]
    sign = "<=" if lower else ">="
    print(f"| {r['target']} | {fmt(statistics.median_low(r['crate']), lower)} | "
          f"{fmt(statistics.median_low(r['c']), lower)} | {r['median_ratio']:.2f}x "
          f"({sign} {r['bound']}x) | {r['rounds_met']} of {len(r['ratios'])} "
          f"({min(r['ratios']):.2f}-{max(r['ratios']):.2f}x) |")
