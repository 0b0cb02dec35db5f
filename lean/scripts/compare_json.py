#!/usr/bin/env python3
"""Compare exported JSON files with the committed ones, as parsed values.

Usage: compare_json.py EXPORTED_DIR COMMITTED_DIR

Every `*.json` in EXPORTED_DIR must exist in COMMITTED_DIR and parse to an
equal value (key order and formatting do not matter; numbers compare as
numbers). Every file the exporter is expected to write (the seven seed
diodes and cases.json) must be present in EXPORTED_DIR. Exits 1 and names
each difference otherwise.
"""

import json
import sys
from pathlib import Path

EXPECTED = [
    "minimal.json",
    "printable16.json",
    "printable64.json",
    "json_start.json",
    "json_prefix.json",
    "json_depth.json",
    "hateless.json",
    "cases.json",
]


def first_difference(a, b, path="$"):
    """The JSON path of the first place where `a` and `b` differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a:
                return f"{path}.{key}: missing from the export"
            if key not in b:
                return f"{path}.{key}: not in the committed file"
            d = first_difference(a[key], b[key], f"{path}.{key}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} elements exported, {len(b)} committed"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    # bool is an int in Python: keep true distinct from 1.
    if type(a) is bool or type(b) is bool:
        same = type(a) is type(b) and a == b
    else:
        same = a == b and isinstance(a, (int, float)) == isinstance(b, (int, float))
    return None if same else f"{path}: exported {json.dumps(a)}, committed {json.dumps(b)}"


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    exported, committed = Path(argv[1]), Path(argv[2])
    problems = []
    names = sorted(p.name for p in exported.glob("*.json"))
    for name in EXPECTED:
        if name not in names:
            problems.append(f"{name}: not written by the exporter")
    for name in names:
        theirs = committed / name
        if not theirs.exists():
            problems.append(f"{name}: exported but not committed in {committed}")
            continue
        try:
            a = json.loads((exported / name).read_text())
            b = json.loads(theirs.read_text())
        except (ValueError, OSError) as e:
            problems.append(f"{name}: {e}")
            continue
        d = first_difference(a, b)
        if d:
            problems.append(f"{name}: {d}")
    for p in problems:
        print("MISMATCH " + p, file=sys.stderr)
    if problems:
        return 1
    print(f"Lean export matches {committed}: {len(names)} files equal as JSON values")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
