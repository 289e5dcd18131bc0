#!/usr/bin/python3
"""Compare one cell of the published code with softpatch's replay of its draws.

    /usr/bin/python3 scripts/draws_compare.py PUBLISHED.json OURS.json

PUBLISHED.json is the reference driver's result (run_reference.py --out), OURS.json the
cell of `softpatch eval --draws` on the draws scripts/published_draws.py wrote from that
run. Prints the bank sizes, the largest relative difference of the per-image scores
(matched by file), and both image and pixel AUROCs. Needs only Python.
"""
import json
import os
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        pub = json.load(f)
    with open(sys.argv[2]) as f:
        ours = json.load(f)
    theirs = {p["file"].replace(os.sep, "/"): p["score_raw"] for p in pub["per_image"]}
    worst, worst_file, n = 0.0, None, 0
    for p in ours["per_image"]:
        rel = p["file"]  # relative to the dataset root, as the published side's
        if rel not in theirs:
            continue
        a, b = theirs[rel], p["score"]
        d = abs(a - b) / max(abs(a), 1e-12)
        n += 1
        if d > worst:
            worst, worst_file = d, rel
    print(f"bank: published {pub['coreset_size']}, softpatch {ours['bank_size']}")
    print(f"per-image scores: {n} of {len(ours['per_image'])} matched, max relative difference {worst:.3g} ({worst_file})")
    print(f"image AUROC: published {pub['image_auroc']:.4f}, softpatch {ours['image_auroc']:.4f}")
    print(f"pixel AUROC: published {pub['pixel_auroc']:.4f}, softpatch {ours['pixel_auroc']:.4f}")
    replayed = ours.get("draws") or {}
    print(f"replayed: {', '.join(replayed.get('replayed', [])) or 'nothing'}")


if __name__ == "__main__":
    main()
