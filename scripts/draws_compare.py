#!/usr/bin/python3
"""Compare one cell of the published code with softpatch's replay of its draws.

    /usr/bin/python3 scripts/draws_compare.py PUBLISHED.json OURS.json [DUMP_DIR OURS.model]

PUBLISHED.json is the reference driver's result (run_reference.py --out), OURS.json the
cell of `softpatch eval --draws` on the draws scripts/published_draws.py wrote from that
run. Prints the bank sizes, the patches the noise discriminator excluded, the largest
relative difference of the per-image scores (matched by file), and both image and pixel
AUROCs. With DUMP_DIR (the driver's
--dump_dir) and OURS.model (`softpatch fit --draws` on the same draws), it also compares
the two banks' selected training patches (index image*positions + position, both in the
published training order): their Jaccard overlap, how many picks differ, and the first
step at which the selection orders part. Needs numpy only.
"""
import json
import os
import struct
import sys

import numpy as np

MODEL_MAGIC = b"SOFTPATCH-MODEL\n"  # engine/detector/save.go


def model_indices(path):
    """The selected patch indices of a memory-bank model file, in selection order."""
    with open(path, "rb") as f:
        if f.read(len(MODEL_MAGIC)) != MODEL_MAGIC:
            sys.exit(f"{path}: not a softpatch memory-bank model (bad magic)")
        _version, hlen = struct.unpack("<II", f.read(8))
        h = json.loads(f.read(hlen))
        n, d = h["n"], h["d"]
        f.seek(4 * n * d + (4 * n if h["has_weights"] else 0), os.SEEK_CUR)
        idx = np.frombuffer(f.read(4 * n), dtype="<i4")
    if len(idx) != n:
        sys.exit(f"{path}: truncated: {len(idx)} of {n} indices")
    return idx.astype(np.int64)


def dump_array(dump, name):
    """Array name of a reference driver's --dump_dir (raw little-endian values described by
    its index.json), or None when the run did not dump it."""
    with open(os.path.join(dump, "index.json")) as f:
        meta = json.load(f)["arrays"].get(name)
    if meta is None:
        return None
    dtype = {"float32": "<f4", "int64": "<i8"}[meta["dtype"]]
    return np.fromfile(os.path.join(dump, meta["file"]), dtype=dtype).reshape(meta["shape"])


def jaccard(a, b):
    """The Jaccard overlap of two index arrays as sets, and how many of a's are not in b."""
    a, b = set(a.tolist()), set(b.tolist())
    return len(a & b) / max(len(a | b), 1), len(a - b)


def compare_banks(dump, model):
    a, b = dump_array(dump, "coreset_indices"), model_indices(model)
    if a is None:
        sys.exit(f"{dump}: no coreset_indices in index.json")
    a = a.reshape(-1)
    jac, only_a = jaccard(a, b)
    _, only_b = jaccard(b, a)
    m = min(len(a), len(b))
    part = next((i for i in range(m) if a[i] != b[i]), None)
    print(f"bank indices: Jaccard {jac:.4f}; {only_a} published picks not in softpatch's, "
          f"{only_b} softpatch picks not in the published; selection order "
          + ("identical" if part is None and len(a) == len(b) else f"parts at step {part if part is not None else m} of {m}"))


def main():
    if len(sys.argv) not in (3, 5):
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
    if "excluded_patches" in ours:
        print(f"patches excluded by the discriminator: published {pub['n_patches_flagged_noise']}, "
              f"softpatch {ours['excluded_patches']}")
    if len(sys.argv) == 5:
        compare_banks(sys.argv[3], sys.argv[4])
    print(f"per-image scores: {n} of {len(ours['per_image'])} matched, max relative difference {worst:.3g} ({worst_file})")
    print(f"image AUROC: published {pub['image_auroc']:.4f}, softpatch {ours['image_auroc']:.4f}, "
          f"difference {abs(pub['image_auroc'] - ours['image_auroc']):.4f}")
    print(f"pixel AUROC: published {pub['pixel_auroc']:.4f}, softpatch {ours['pixel_auroc']:.4f}, "
          f"difference {abs(pub['pixel_auroc'] - ours['pixel_auroc']):.4f}")
    replayed = ours.get("draws") or {}
    print(f"replayed: {', '.join(replayed.get('replayed', [])) or 'nothing'}")


if __name__ == "__main__":
    main()
