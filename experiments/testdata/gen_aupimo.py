#!/usr/bin/python3
"""Golden AUPIMO values for experiments/aupimo.go, from the reference numpy implementation.

    /usr/bin/python3 experiments/testdata/gen_aupimo.py ANOMALIB_SRC

ANOMALIB_SRC is the src/ folder of a checkout of openvinotoolkit/anomalib at commit 012e8e2c
(May 2024), which holds the numpy AUPIMO implementation by the metric's authors
(anomalib/metrics/per_image/pimo_numpy.py, binclf_curve_numpy.py, _validate.py). Only those
three modules are loaded, under a stand-in `anomalib` package (HAS_NUMBA = False: the pure
Python binary-classification curve), so neither anomalib's dependencies nor numba are needed:
Debian's python3-numpy runs it offline. It writes experiments/testdata/aupimo_golden.json.

The maps are not stored: both sides generate them from the case parameters with the same
integer recipe (maps() below; aupimo_test.go's pimoMaps), so the fixture stays small while the
normal images hold enough pixels to resolve shared FPRs of 1e-5. Image i's pixel p scores
s = 1/(2^24 - k) + inside * bump_i/2^24 in float32 operations (each correctly rounded, so both
sides get the same bits), with k = fmix32(seed*2654435761 + i*1000003 + p*7919) % 2^24: a
heavy tail, so that the top 1e-4 of the normal pixels spans a good part of the score range, as
real anomaly maps' tails do, and the reference's 300,000 evenly spaced thresholds resolve it; `inside` is 1 within image i's rectangle (its mask), 0 elsewhere and in normal images.
"""
import importlib.util
import json
import os
import sys
import types

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "aupimo_golden.json")
M32 = 0xFFFFFFFF


def fmix32(h):
    """MurmurHash3's 32-bit finaliser, on numpy uint64 arrays holding 32-bit values."""
    h = h & M32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    h ^= h >> 16
    return h


def maps(case):
    n, hh, ww, seed = case["n"], case["h"], case["w"], case["seed"]
    p = np.arange(hh * ww, dtype=np.uint64)
    out = np.zeros((n, hh, ww), dtype=np.float32)
    masks = np.zeros((n, hh, ww), dtype=np.int32)
    for i in range(n):
        key = (np.uint64(seed) * np.uint64(2654435761) + np.uint64(i * 1000003) + p * np.uint64(7919)) & np.uint64(M32)
        k = (fmix32(key) % np.uint64(1 << 24)).astype(np.int64).reshape(hh, ww)
        s = np.float32(1) / (np.int64(1 << 24) - k).astype(np.float32)
        for (j, y0, y1, x0, x1, bump) in case["defects"]:
            if j == i:
                masks[i, y0:y1, x0:x1] = 1
                s[y0:y1, x0:x1] += np.float32(bump) / np.float32(1 << 24)
        out[i] = s
    return out, masks


def load_reference(src):
    base = os.path.join(src, "anomalib", "metrics", "per_image")
    pkg = types.ModuleType("anomalib")
    pkg.HAS_NUMBA = False
    pkg.__path__ = []
    sys.modules["anomalib"] = pkg
    metrics = types.ModuleType("anomalib.metrics")
    metrics.__path__ = []
    sys.modules["anomalib.metrics"] = metrics
    per_image = types.ModuleType("anomalib.metrics.per_image")
    per_image.__path__ = [base]
    sys.modules["anomalib.metrics.per_image"] = per_image
    for name in ("_validate", "binclf_curve_numpy", "pimo_numpy"):
        full = "anomalib.metrics.per_image." + name
        spec = importlib.util.spec_from_file_location(full, os.path.join(base, name + ".py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[full] = mod
        spec.loader.exec_module(mod)
        setattr(per_image, name, mod)
    return sys.modules["anomalib.metrics.per_image.pimo_numpy"]


CASES = [
    # 12 images of 256 x 256 (8 normal: 524,288 normal pixels), the reference's defaults.
    {"name": "default_bounds", "n": 12, "h": 256, "w": 256, "seed": 1, "fpr_bounds": [1e-5, 1e-4],
     "threshs": 300000,
     "defects": [[8, 40, 90, 30, 100, 33554], [9, 0, 20, 0, 256, 13422], [10, 100, 101, 100, 110, 167772],
                 [11, 200, 256, 180, 256, 1677]]},
    # 6 images of 48 x 40 (4 normal), wider bounds, fewer thresholds.
    {"name": "wide_bounds", "n": 6, "h": 48, "w": 40, "seed": 7, "fpr_bounds": [1e-3, 1e-1],
     "threshs": 5000,
     "defects": [[1, 5, 20, 5, 15, 335], [4, 30, 48, 0, 40, 168]]},
]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    pimo = load_reference(sys.argv[1])
    out = []
    for case in CASES:
        m, k = maps(case)
        _, shared, _, classes, aucs, points = pimo.aupimo_scores(
            m, k, num_threshs=case["threshs"], binclf_algorithm="python", fpr_bounds=tuple(case["fpr_bounds"]))
        aucs = [None if c == 0 else float(a) for a, c in zip(aucs, classes)]
        out.append(dict(case, aupimo=aucs, points=int(points), shared_fpr_max=float(shared.max())))
        print(case["name"], aucs, points)
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
