#!/usr/bin/env python3
"""Each method's round trip against its own floor, in paired rounds (issue #20).

    python3 scripts/floor-ratios.py BIN [ROUNDS] [N] [METHOD...]

BIN is the release binary (target/release/ipc-audit). Every round runs
`BIN bench METHOD --pin P --count N --format json` for each method and pinning: the
bench measures the method's own floor (its kernel object with the least code) before
and after the transport, and keeps the lower p50. Each round's ratio is the
transport's p50 over that floor's p50; the median of the rounds is printed, with the
range. ROUNDS defaults to 5, N to 5000; the methods default to every one with a floor.
"""
import json
import statistics
import subprocess
import sys

OWN = {
    "pipe": ("raw-pipe", "raw-pipe"),
    "fifo": ("raw-fifo", "raw-fifo"),
    "uds-stream": ("raw-uds-stream", "raw-uds-stream"),
    "uds-dgram": ("raw-uds-dgram", "raw-uds-dgram"),
    "uds-seqpacket": ("raw-uds-seqpacket", "raw-uds-seqpacket"),
    "tcp": ("raw-tcp", "raw-tcp"),
    "udp": ("raw-udp", "raw-udp"),
    "posix-mq": ("raw-posix-mq", "raw-posix-mq"),
    "sysv-mq": ("raw-sysv-mq", "raw-sysv-mq"),
    "semaphore": ("raw-semaphore", "raw-semaphore"),
    "file": ("raw-file", "raw-file"),
    "signal": ("raw-signal", "raw-signal"),
    "shm": ("shm-futex", "shm-two-line"),
    "shm-spinning": ("shm-futex", "shm-two-line"),
}


def one(binary, method, pin, n):
    out = subprocess.run(
        [binary, "bench", method, "--pin", pin, "--count", str(n), "--format", "json"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{method} {pin}: {out.stderr.strip()[-300:]}")
    v = json.loads(out.stdout)
    want = OWN[method][0 if pin == "same" else 1]
    floor = [f["Ok"] for f in v["floors"] if "Ok" in f and f["Ok"]["kind"] == want]
    if not floor or "Ok" not in v["latency"]:
        raise RuntimeError(f"{method} {pin}: no {want} floor or no latency in {v}")
    t = v["latency"]["Ok"]["stats"]["p50_ns"]
    f = floor[0]["stats"]["p50_ns"]
    return t, f


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
    methods = sys.argv[4:] or [m for m in OWN if m != "shm-spinning"]
    bad = [m for m in methods if m not in OWN]
    if bad or rounds < 1 or n < 10:
        sys.exit(f"floor-ratios: unknown method {bad} or bad ROUNDS/N (known: {sorted(OWN)})")
    ratios = {(m, p): [] for m in methods for p in ("same", "cross")}
    raw = {k: [] for k in ratios}
    for r in range(rounds):
        for m in methods:
            for p in ("same", "cross"):
                t, f = one(binary, m, p, n)
                ratios[(m, p)].append(t / f)
                raw[(m, p)].append((t, f))
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    print(f"{'method':15} {'pin':6} {'p50 ns':>8} {'floor':>8} {'median x':>9} {'range':>13}  floor")
    for (m, p), v in ratios.items():
        t = statistics.median(x for x, _ in raw[(m, p)])
        f = statistics.median(y for _, y in raw[(m, p)])
        own = OWN[m][0 if p == "same" else 1]
        print(f"{m:15} {p:6} {t:8.0f} {f:8.0f} {statistics.median(v):8.2f}x "
              f"{min(v):5.2f}-{max(v):5.2f}x  {own}")


if __name__ == "__main__":
    main()
