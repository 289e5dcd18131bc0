#!/usr/bin/python3
"""Golden fixtures for PaDiM (engine/embed.PaDiMSelect, engine/detector.PaDiM).

Run with Debian's /usr/bin/python3 (python3-torch, python3-scipy, numpy)
from this directory:

    /usr/bin/python3 gen_padim.py

Each case has random "layer1/2/3" outputs for training and test images and
follows the steps of the published PaDiM code (main.py of
xiahaifeng1995/PaDiM-Anomaly-Detection-Localization-master) with torch,
numpy and scipy:
  - layers concatenated on layer1's grid by its embedding_concat (F.unfold /
    F.fold: each deeper cell copied to an s x s block), then
    torch.index_select of the channels drawn by random.sample with
    random.seed(1024) (Python's order, not sorted);
  - per position: mean over the training images (torch.mean, float32),
    np.cov(rowvar=False) + 0.01 * I, np.linalg.inv;
  - per test image and position: scipy.spatial.distance.mahalanobis of the
    float32 feature and mean with the inverse.
    "dist" keeps the covariance and its inverse in float64 (the exact
    values); "dist_published" follows the published code's precision: it
    stores the covariances in a float32 array (torch.zeros(...).numpy()),
    so np.linalg.inv and the Mahalanobis products run in float32;
  - maps: F.interpolate(bilinear, align_corners=False) of the float64
    distances to the image size, scipy gaussian_filter(sigma=4); image
    score = max of the map (the published code min-max normalises the maps
    over the test set first, which changes no ranking).

Files: padim.json (cases: sizes, channels), padim_<case>_<array>.npy
(float32): train_l1..l3 and test_l1..l3 [n][C][H][W], embed_train
[N][positions][channels], mean [positions][channels], dist and
dist_published [M][positions], maps [M][size][size] and scores [M] (from
dist).
"""
import json
import random

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from scipy.spatial.distance import mahalanobis


def embedding_concat(x, y):
    # The published concatenation: y's cells are repeated over s x s blocks
    # of x's grid through unfold/fold.
    b, c1, h1, w1 = x.size()
    _, c2, h2, w2 = y.size()
    s = int(h1 / h2)
    x = F.unfold(x, kernel_size=s, dilation=1, stride=s).view(b, c1, -1, h2, w2)
    z = torch.zeros(b, c1 + c2, x.size(2), h2, w2)
    for i in range(x.size(2)):
        z[:, :, i, :, :] = torch.cat((x[:, :, i, :, :], y), 1)
    z = z.view(b, -1, h2 * w2)
    return F.fold(z, kernel_size=s, output_size=(h1, w1), stride=s)


def layers(rng, n, chans, grids, anomalous=()):
    # Correlated, non-negative activations: 3 latent maps mixed into every
    # layer's channels, plus noise; anomalous images get a bright block.
    out = []
    for c, g in zip(chans, grids):
        z = rng.standard_normal((n, 3, g, g))
        mix = rng.standard_normal((c, 3))
        a = np.einsum("nkhw,ck->nchw", z, mix) + 0.3 * rng.standard_normal((n, c, g, g))
        for i in anomalous:
            a[i, :, g // 4 : g // 2, g // 4 : g // 2] += 3.0
        out.append(np.maximum(a, 0).astype(np.float32) + 0.1)
    return out


def embed(ls, idx):
    e = torch.from_numpy(ls[0])
    for l in ls[1:]:
        e = embedding_concat(e, torch.from_numpy(l))
    return torch.index_select(e, 1, idx)


rng = np.random.default_rng(20261128)
cases = []
for name, n, m, chans, grids, keep, size in [
    ("full", 30, 6, (6, 8, 10), (8, 4, 2), 12, 32),  # more images than channels
    ("lowrank", 8, 4, (6, 8, 10), (8, 4, 2), 20, 32),  # fewer: the MVTec shape
]:
    random.seed(1024)
    idx = torch.tensor(random.sample(range(0, sum(chans)), keep))
    train = layers(rng, n, chans, grids)
    test = layers(rng, m, chans, grids, anomalous=(1, 3))
    et = embed(train, idx)  # (N, C, H, W)
    b, c, h, w = et.size()
    ev = et.view(b, c, h * w)
    mean = torch.mean(ev, dim=0).numpy()  # (C, P) float32
    cov = np.zeros((c, c, h * w))
    cov32 = torch.zeros(c, c, h * w).numpy()  # the published array
    eye = np.identity(c)
    for i in range(h * w):
        cov[:, :, i] = np.cov(ev[:, :, i].numpy(), rowvar=False) + 0.01 * eye
        cov32[:, :, i] = cov[:, :, i]
    es = embed(test, idx).view(m, c, h * w).numpy()
    dist = np.zeros((m, h * w))
    dist_published = np.zeros((m, h * w))
    for i in range(h * w):
        inv = np.linalg.inv(cov[:, :, i])
        dist[:, i] = [mahalanobis(s[:, i], mean[:, i], inv) for s in es]
        inv32 = np.linalg.inv(cov32[:, :, i])
        dist_published[:, i] = [mahalanobis(s[:, i], mean[:, i], inv32) for s in es]
    d = torch.tensor(dist.reshape(m, h, w)).unsqueeze(1)
    maps = F.interpolate(d, size=size, mode="bilinear", align_corners=False).squeeze(1).numpy()
    for i in range(m):
        maps[i] = gaussian_filter(maps[i], sigma=4)
    scores = maps.reshape(m, -1).max(axis=1)
    arrays = {
        "embed_train": ev.numpy().transpose(0, 2, 1),
        "mean": mean.T,
        "dist": dist,
        "dist_published": dist_published,
        "maps": maps,
        "scores": scores,
    }
    for k, a in enumerate(train):
        arrays[f"train_l{k + 1}"] = a
    for k, a in enumerate(test):
        arrays[f"test_l{k + 1}"] = a
    for key, a in arrays.items():
        np.save(f"padim_{name}_{key}.npy", np.ascontiguousarray(a, dtype=np.float32))
    cases.append({"name": name, "train": n, "test": m, "channels": idx.tolist(), "grid": h, "size": size})

with open("padim.json", "w") as f:
    json.dump({"cases": cases}, f, indent=1)
