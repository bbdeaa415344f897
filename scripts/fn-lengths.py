#!/usr/bin/env python3
"""Lists the functions under the given folders (default: src) longer than a limit.

Usage: scripts/fn-lengths.py [--limit N] [PATH ...]

A function runs from its `fn` line to the line of the brace that closes its body, both
included; braces inside strings, chars and comments are skipped. Exits 1 when any
function is over the limit (default 80), so CI can run it.
"""
import re
import sys
from pathlib import Path

FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+\"C\"\s+)?fn\s+(\w+)")


def strip(line, state):
    """Returns `line` without comments and string contents; `state` carries block comments."""
    out = []
    i = 0
    while i < len(line):
        if state["block"]:
            j = line.find("*/", i)
            if j < 0:
                return "".join(out)
            state["block"] = False
            i = j + 2
            continue
        c = line[i]
        if line.startswith("//", i):
            break
        if line.startswith("/*", i):
            state["block"] = True
            i += 2
            continue
        if c == '"':
            i += 1
            while i < len(line) and line[i] != '"':
                i += 2 if line[i] == "\\" else 1
            i += 1
            continue
        if c == "'" and re.match(r"'(\\.|[^\\'])'", line[i:]):
            i += len(re.match(r"'(\\.|[^\\'])'", line[i:]).group(0))
            continue
        out.append(c)
        i += 1
    return "".join(out)


def functions(path):
    lines = path.read_text().splitlines()
    state = {"block": False}
    code = [strip(l, state) for l in lines]
    for start, line in enumerate(code):
        m = FN.match(line)
        if not m:
            continue
        depth = 0
        opened = False
        for end in range(start, len(code)):
            for ch in code[end]:
                if ch == "{":
                    depth += 1
                    opened = True
                elif ch == "}":
                    depth -= 1
                elif ch == ";" and not opened and depth == 0:
                    break
            else:
                if opened and depth == 0:
                    yield m.group(7), start + 1, end - start + 1
                    break
                continue
            break


def main():
    args = sys.argv[1:]
    limit = 80
    if args[:1] == ["--limit"]:
        limit = int(args[1])
        args = args[2:]
    roots = [Path(a) for a in (args or ["src"])]
    over = []
    for root in roots:
        files = [root] if root.is_file() else sorted(root.rglob("*.rs"))
        for f in files:
            for name, line, n in functions(f):
                if n > limit:
                    over.append((n, f"{f}:{line}", name))
    for n, where, name in sorted(over, reverse=True):
        print(f"{n:5} {where} {name}")
    print(f"{len(over)} functions over {limit} lines", file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
