#!/usr/bin/python3
"""Golden fixtures for experiments/metrics.go (run with Debian's /usr/bin/python3; needs
python3-numpy, python3-scipy, python3-sklearn):

    /usr/bin/python3 experiments/testdata/gen_metrics.py

writes experiments/testdata/metrics_golden.json. Scores are stored as integers k with a power-of-
two scale, score = float32(k) / float32(scale), so that Go and Python see bit-identical float32
values. Masks are strings of '0'/'1', one character per pixel, row-major.

References:
- AUROC: sklearn.metrics.roc_auc_score on the float32 scores.
- AP: sklearn.metrics.average_precision_score on the float32 scores (image and pixel level).
- F1-max: max of 2PR/(P+R) over sklearn.metrics.precision_recall_curve (0 where P+R = 0); the
  threshold is the lowest one reaching the exact (rational) maximum.
- AUPRO: the MVTec AD evaluation code's compute_pro + generic_util.trapezoid, re-written below
  with scipy.ndimage.label (3x3 structure of ones); fprs are kept in float64 (the original casts
  them to float32; that variant is stored too as aupro_mvtec_f32, for information).
"""
import json
import os
from bisect import bisect
from fractions import Fraction

import numpy as np
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics_golden.json")


def to_f32(k, scale):
    return np.asarray(k, dtype=np.float32) / np.float32(scale)


def f1max(labels, scores):
    p, r, t = precision_recall_curve(labels, scores)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    best = float(np.max(f1))
    # Exact argmax: thresholds t increase; F1 at t[i] is 2TP/(TP+FP+P).
    pos = int(np.sum(labels))
    exact = []
    for thr in t:
        sel = scores >= thr
        tp = int(np.sum(labels[sel]))
        fp = int(np.sum(sel)) - tp
        exact.append(Fraction(2 * tp, tp + fp + pos))
    m = max(exact)
    thr = float(t[exact.index(m)])  # first = lowest threshold
    return best, thr


def trapezoid(x, y, x_max):
    """generic_util.trapezoid of the MVTec AD evaluation code (all values finite here)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    correction = 0.0
    if x_max not in x:
        ins = bisect(x, x_max)
        assert 0 < ins < len(x)
        y_interp = y[ins - 1] + ((y[ins] - y[ins - 1]) * (x_max - x[ins - 1]) / (x[ins] - x[ins - 1]))
        correction = 0.5 * (y_interp + y[ins - 1]) * (x_max - x[ins - 1])
    mask = x <= x_max
    x = x[mask]
    y = y[mask]
    return np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction


def compute_pro(maps, masks, fpr_dtype):
    """compute_pro of the MVTec AD evaluation code: the (FPR, PRO) curve over all thresholds."""
    structure = np.ones((3, 3), dtype=int)
    num_ok = 0
    num_regions = 0
    fp_changes = np.zeros(maps.shape, dtype=np.uint32)
    pro_changes = np.zeros(maps.shape, dtype=np.float64)
    for i, gt in enumerate(masks):
        labeled, n = ndimage.label(gt, structure)
        num_regions += n
        ok = labeled == 0
        num_ok += int(np.sum(ok))
        fp_changes[i][ok] = 1
        for k in range(n):
            region = labeled == (k + 1)
            pro_changes[i][region] = 1.0 / np.sum(region)
    scores = maps.ravel()
    order = np.argsort(scores, kind="stable")[::-1]
    scores = scores[order]
    fps = np.cumsum(fp_changes.ravel()[order]).astype(np.float64)
    fprs = (fps / num_ok).astype(fpr_dtype)
    pros = np.cumsum(pro_changes.ravel()[order]) / num_regions
    keep = np.append(np.diff(scores) != 0, np.True_)
    fprs = np.clip(fprs[keep], None, 1.0)
    pros = np.clip(pros[keep], None, 1.0)
    return np.concatenate(([0.0], fprs, [1.0])), np.concatenate(([0.0], pros, [1.0]))


def aupro_bruteforce(maps, masks, limit):
    """Independent check of compute_pro: PRO and FPR evaluated directly at every threshold."""
    s8 = np.ones((3, 3), dtype=int)
    regions = []
    for i, gt in enumerate(masks):
        labeled, n = ndimage.label(gt, s8)
        regions += [(i, labeled == k + 1) for k in range(n)]
    ok = masks == 0
    xs, ys = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        pos = maps >= t
        xs.append(np.sum(pos & ok) / np.sum(ok))
        ys.append(np.mean([np.sum(pos[i] & r) / np.sum(r) for i, r in regions]))
    xs.append(1.0)
    ys.append(1.0)
    return float(trapezoid(xs, ys, limit) / limit)


def aupro(maps, masks, limit, fpr_dtype=np.float64):
    fprs, pros = compute_pro(maps, masks, fpr_dtype)
    return float(trapezoid(fprs, pros, limit) / limit)


def image_case(name, k, scale, labels):
    scores = to_f32(k, scale)
    labels = np.asarray(labels, dtype=bool)
    f1, thr = f1max(labels, scores)
    return {
        "name": name,
        "scale": scale,
        "k": [int(v) for v in k],
        "labels": [int(v) for v in labels],
        "auroc": float(roc_auc_score(labels, scores)),
        "ap": float(average_precision_score(labels, scores)),
        "f1max": f1,
        "f1_threshold": thr,
    }


def blob(h, w, cy, cx, ry, rx):
    yy, xx = np.mgrid[0:h, 0:w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def pixel_case(name, maps_k, scale, masks, diag_image=None):
    maps = to_f32(maps_k, scale)
    masks = np.asarray(masks, dtype=np.uint8)
    n, h, w = maps.shape
    s8 = np.ones((3, 3), dtype=int)
    regions = [int(ndimage.label(m, s8)[1]) for m in masks]
    regions4 = [int(ndimage.label(m)[1]) for m in masks]
    if diag_image is not None:
        assert regions4[diag_image] > regions[diag_image], (regions4, regions)
    labels = masks.ravel() != 0
    flat = maps.ravel()
    f1, thr = f1max(labels, flat)
    limits = [0.3, 0.05, 1.0]
    for lim in limits:
        a, b = aupro(maps, masks, lim), aupro_bruteforce(maps, masks, lim)
        assert abs(a - b) < 1e-12, (name, lim, a, b)
    return {
        "name": name,
        "h": h,
        "w": w,
        "scale": scale,
        "maps": [[int(v) for v in m.ravel()] for m in maps_k],
        "masks": ["".join("1" if v else "0" for v in m.ravel()) for m in masks],
        "regions": regions,
        "regions4": regions4,
        "pixel_auroc": float(roc_auc_score(labels, flat)),
        "pixel_ap": float(average_precision_score(labels, flat)),
        "pixel_f1max": f1,
        "pixel_f1_threshold": thr,
        "aupro": [[lim, aupro(maps, masks, lim)] for lim in limits],
        "aupro_mvtec_f32": aupro(maps, masks, 0.3, np.float32),
    }


def main():
    rng = np.random.default_rng(20240607)
    cases = []

    # Many ties: scores on a grid of 1/8 in [-1, 2], positives shifted up.
    n = 160
    lab = rng.random(n) < 0.4
    k = np.clip(np.round(rng.normal(0, 4, n) + 5 * lab), -8, 16).astype(int)
    cases.append(image_case("ties_grid8", k, 8, lab))
    # Heavy ties: four score values only.
    n = 120
    lab = rng.random(n) < 0.5
    k = np.clip(rng.integers(0, 3, n) + lab * rng.integers(0, 2, n), 0, 3)
    cases.append(image_case("four_values", k, 1, lab))
    # Nearly continuous scores (few ties), negatives included.
    n = 200
    lab = rng.random(n) < 0.3
    k = np.round((rng.normal(0, 1, n) + 1.2 * lab) * (1 << 18)).astype(int)
    cases.append(image_case("continuous", k, 1 << 20, lab))
    # All scores equal: AUROC 0.5.
    lab = np.array([1, 0, 0, 1, 0, 0, 0], dtype=bool)
    cases.append(image_case("all_tied", np.full(7, 3), 4, lab))
    # Perfect separation, and perfectly inverted.
    lab = np.array([0, 0, 0, 1, 1], dtype=bool)
    cases.append(image_case("perfect", [1, 2, 3, 4, 5], 2, lab))
    cases.append(image_case("inverted", [5, 4, 3, 2, 1], 2, lab))
    # Small MVTec-like test set: 40 good, 60 defective, scores rounded to 1/16.
    lab = np.array([0] * 40 + [1] * 60, dtype=bool)
    k = np.round((rng.gamma(2.0, 1.0, 100) + 1.5 * lab) * 16).astype(int)
    cases.append(image_case("mvtec_like", k, 16, lab))

    pixel_cases = []
    # Six 32x32 maps; image 0 is good, image 1 has two squares touching only at a corner (one
    # region with 8-connectivity, two with 4), image 2 several blobs incl. a single pixel,
    # image 3 an ellipse, image 4 an L shape on the border plus a diagonal line, image 5 random
    # blobs. Scores: smooth noise + bump at the defects, on a grid of 1/64 (ties).
    h = w = 32
    masks = np.zeros((6, h, w), dtype=bool)
    masks[1, 5:10, 5:10] = True
    masks[1, 10:14, 10:14] = True
    masks[1, 20:23, 25:30] = True
    masks[2][blob(h, w, 8, 8, 3, 4)] = True
    masks[2][blob(h, w, 22, 20, 4, 2)] = True
    masks[2, 28, 3] = True
    masks[2, 29, 4] = True  # diagonal neighbour of (28, 3)
    masks[2, 15, 30] = True
    masks[3][blob(h, w, 16, 16, 6, 10)] = True
    masks[4, 0:12, 0:3] = True
    masks[4, 9:12, 0:10] = True
    for d in range(8):
        masks[4, 18 + d, 14 + d] = True
    masks[5] = ndimage.gaussian_filter(rng.normal(size=(h, w)), 2.0) > 0.25
    noise = np.stack([ndimage.gaussian_filter(rng.normal(size=(h, w)), 1.5) for _ in range(6)])
    bump = np.stack([ndimage.gaussian_filter(m.astype(float), 1.0) for m in masks])
    maps_k = np.round((noise * 3 + bump * 2.5 + 1) * 64).astype(int)
    pixel_cases.append(pixel_case("blobs32", maps_k, 64, masks, diag_image=1))

    # Four 20x24 maps (non-square), nearly continuous scores, two good images.
    h, w = 20, 24
    masks = np.zeros((4, h, w), dtype=bool)
    masks[1] = ndimage.gaussian_filter(rng.normal(size=(h, w)), 1.5) > 0.3
    masks[3, 2:6, 18:23] = True
    masks[3, 6:9, 14:18] = True  # touches the first block diagonally at (5,18)-(6,17)
    masks[3, 15, 0] = True
    noise = rng.normal(size=(4, h, w))
    maps_k = np.round((noise + 1.5 * masks) * (1 << 16)).astype(int)
    pixel_cases.append(pixel_case("rect20x24", maps_k, 1 << 20, masks, diag_image=3))

    with open(OUT, "w") as f:
        json.dump({"image": cases, "pixel": pixel_cases}, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
