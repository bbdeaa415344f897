#!/usr/bin/env python3
"""Prints which top-level modules of src/ name which others (`crate::X` outside
comments), and any import cycle between them. Exits 1 on a cycle.

Usage: scripts/module-map.py [SRC]   (default: src)
"""
import re
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "src")
mods = {p.stem if p.is_file() else p.name for p in root.iterdir()
        if (p.is_dir() or p.suffix == ".rs") and p.stem not in ("lib", "main")}
edges = {m: set() for m in mods}
for f in root.rglob("*.rs"):
    rel = f.relative_to(root).parts
    top = rel[0][:-3] if rel[0].endswith(".rs") else rel[0]
    if top not in mods:
        continue
    for line in f.read_text().splitlines():
        code = line.split("//")[0]
        for m in re.findall(r"crate::(\w+)", code):
            if m in mods and m != top:
                edges[top].add(m)


def cycle():
    state = {}

    def visit(m, path):
        state[m] = 1
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                return path + [m, n]
            if n not in state:
                c = visit(n, path + [m])
                if c:
                    return c
        state[m] = 2
        return None

    for m in sorted(mods):
        if m not in state:
            c = visit(m, [])
            if c:
                return c
    return None


for m in sorted(mods):
    print(f"{m:10} -> {', '.join(sorted(edges[m])) or '-'}")
c = cycle()
if c:
    print("cycle:", " -> ".join(c[c.index(c[-1]):]))
    sys.exit(1)
print("no cycle")
