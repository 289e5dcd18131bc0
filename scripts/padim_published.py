#!/usr/bin/python3
"""Times the published PaDiM's fit and test steps (main.py of
xiahaifeng1995/PaDiM-Anomaly-Detection-Localization-master, as
engine/detector/testdata/gen_padim.py reproduces them) on seeded random
features of a given size, for scripts/padim_compare.sh.

Fit, per position: np.cov(rowvar=False) + 0.01 * I into the published
float32 array (torch.zeros(C, C, H*W).numpy()). Test, per position:
np.linalg.inv of that covariance, then scipy's mahalanobis for every test
image. The positions are independent and cost the same, so SAMPLE positions
are timed and the totals extrapolated linearly to POSITIONS; the JSON says
so.

    /usr/bin/python3 scripts/padim_published.py [--train 220] [--test 80]
        [--channels 550] [--positions 3136] [--sample 128] [--threads 2]
"""
import argparse
import json
import os
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--train", type=int, default=220)
ap.add_argument("--test", type=int, default=80)
ap.add_argument("--channels", type=int, default=550)
ap.add_argument("--positions", type=int, default=3136)
ap.add_argument("--sample", type=int, default=128)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(a.threads))
import numpy as np  # noqa: E402  (after the thread count is set)
import torch  # noqa: E402
from scipy.spatial.distance import mahalanobis  # noqa: E402

torch.set_num_threads(a.threads)
rng = np.random.default_rng(1)
s, c = min(a.sample, a.positions), a.channels
train = torch.from_numpy(rng.standard_normal((a.train, c, s)).astype(np.float32))
test = rng.standard_normal((a.test, c, s)).astype(np.float32)

t0 = time.perf_counter()
mean = torch.mean(train, dim=0).numpy()
cov = torch.zeros(c, c, s).numpy()
ident = np.identity(c)
for i in range(s):
    cov[:, :, i] = np.cov(train[:, :, i].numpy(), rowvar=False) + 0.01 * ident
fit = time.perf_counter() - t0

t0 = time.perf_counter()
total = 0.0
for i in range(s):
    inv = np.linalg.inv(cov[:, :, i])
    total += sum(mahalanobis(x[:, i], mean[:, i], inv) for x in test)
score = time.perf_counter() - t0

k = a.positions / s
json.dump({"side": "published PaDiM steps", "train": a.train, "test": a.test, "channels": c, "positions": a.positions,
           "positions_timed": s, "threads": a.threads, "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
           "fit_seconds": fit * k, "score_seconds": score * k, "extrapolated_from_seconds": [fit, score]}, sys.stdout)
print()
