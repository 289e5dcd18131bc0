#!/usr/bin/env python3
"""Check that two results folders hold the same cells: every field of every
cell's result equal except the timings ("seconds"), the finishing time
("date") and the build ("commit"), and the same memory banks in 2-D and
overlay images. It is how a refactoring shows that it kept the numbers:
run one sweep before and one after (with separate feature caches), then

    python3 scripts/same_cells.py runs/before runs/after [--ignore KEY,KEY]

--ignore leaves out more top-level fields of the results, e.g. the
"decision" and "settings,settings_hash" that a new setting adds. It prints one line per difference (at most 20 per cell) and a summary;
the exit status is 1 when anything differs. Standard library only.
"""
import glob
import json
import os
import sys

IGNORED = {"seconds", "date", "commit"}


def cells(folder):
    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "results*.jsonl"))):
        with open(path) as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    out[rec["key"]] = rec
    return out


def diff(a, b, path, found):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if path == "result" and k in IGNORED:
                continue
            if k not in a or k not in b:
                found.append(f"{path}.{k}: only in {'after' if k in b else 'before'}")
                continue
            diff(a[k], b[k], f"{path}.{k}", found)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            found.append(f"{path}: {len(a)} entries before, {len(b)} after")
            return
        for i, (x, y) in enumerate(zip(a, b)):
            diff(x, y, f"{path}[{i}]", found)
    elif a != b:
        found.append(f"{path}: {a!r} before, {b!r} after")


def same_file(a, b):
    with open(a, "rb") as f, open(b, "rb") as g:
        return f.read() == g.read()


def main():
    args = sys.argv[1:]
    if len(args) == 4 and args[2] == "--ignore":
        IGNORED.update(args[3].split(","))
        args = args[:2]
    if len(args) != 2:
        sys.exit(__doc__)
    before, after = args
    ca, cb = cells(before), cells(after)
    problems = 0
    for key in sorted(set(ca) | set(cb)):
        if key not in ca or key not in cb:
            print(f"{key}: only {'after' if key in cb else 'before'}")
            problems += 1
            continue
        found = []
        diff(ca[key].get("cell"), cb[key].get("cell"), "cell", found)
        diff(ca[key]["result"], cb[key]["result"], "result", found)
        for line in found[:20]:
            print(f"{key}: {line}")
        problems += len(found)
    files = 0
    for a in sorted(glob.glob(os.path.join(before, "overlays", "*", "*"))):
        rel = os.path.relpath(a, before)
        b = os.path.join(after, rel)
        files += 1
        if not os.path.exists(b) or not same_file(a, b):
            print(f"{rel}: {'missing' if not os.path.exists(b) else 'differs'} after")
            problems += 1
    print(f"{len(ca)} cells before, {len(cb)} after; {files} overlay and bank files compared; {problems} differences")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
