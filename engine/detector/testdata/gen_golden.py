#!/usr/bin/python3
"""Golden fixtures for engine/detector, made with the reference libraries.

Run with Debian's /usr/bin/python3 (python3-torch, python3-scipy, numpy)
from this directory:

    /usr/bin/python3 gen_golden.py

Anomaly maps: each case's float32 patch scores go through the published
RescaleSegmentor.convert_to_segmentation (src/common.py) steps verbatim:
torch F.interpolate(bilinear, align_corners=False) to size x size, then
scipy.ndimage.gaussian_filter(sigma=4) on the float32 numpy array.
Files map_<name>.f32 hold the gh*gw inputs followed by the size*size
outputs (little-endian float32); golden.json lists the shapes.

Quantiles: torch.quantile(float32 tensor, q) for the listed values and
q's, stored in golden.json (values and results as float32 written exactly
through Python floats).
"""
import json

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

rng = np.random.default_rng(20261128)
out = {"maps": [], "quantiles": []}


def segment(scores, size):
    # convert_to_segmentation of src/common.py, for one image
    t = torch.from_numpy(scores[None])  # (1, gh, gw)
    t = t.unsqueeze(1)
    t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    t = t.squeeze(1)
    return ndimage.gaussian_filter(t.numpy()[0], sigma=4)


for name, gh, gw, size, scale in [
    ("28a", 28, 28, 224, 1.0),
    ("28b", 28, 28, 224, 40.0),
    ("7x5", 7, 5, 32, 3.0),
    ("3x2", 3, 2, 10, 1.0),  # map smaller than the filter radius (16)
    ("1x1", 1, 1, 5, 1.0),
]:
    s = (rng.random((gh, gw)) * scale).astype(np.float32)
    if name == "28b":
        s[10:14, 3:9] += 100  # a sharp anomaly
    m = segment(s, size)
    assert m.dtype == np.float32
    np.concatenate([s.ravel(), m.ravel()]).astype("<f4").tofile("map_%s.f32" % name)
    out["maps"].append({"name": name, "gh": gh, "gw": gw, "size": size})

qcases = [
    ("uniform1000", (rng.random(1000) * 10).astype(np.float32)),
    ("ties", rng.integers(0, 5, 997).astype(np.float32)),
    ("one", np.array([3.5], np.float32)),
    ("two", np.array([2.0, -1.0], np.float32)),
    ("lof", (1 + rng.exponential(0.2, 4096)).astype(np.float32)),
]
for name, v in qcases:
    qs = [0.0, 0.85, 0.5, 0.1, 0.333, 0.99, 1.0]
    res = [float(torch.quantile(torch.from_numpy(v), q)) for q in qs]
    out["quantiles"].append({"name": name, "values": [float(x) for x in v], "q": qs, "want": res})

with open("golden.json", "w") as f:
    json.dump(out, f)
