#!/usr/bin/python3
"""Time the published ApproximateGreedyCoresetSampler on saved features.

Developer check, not CI. It imports the published src/sampler.py from a
SoftPatch checkout ($SOFTPATCH_REF, default /tmp/softpatch-ref/src) and runs
its selection loop on the features of FEATURES.npy ([images][positions][dim]
as `softpatch embed` writes them, or [n][dim]), the way PatchCore calls it
(10 start points) or SoftPatch (--starts 128). The published loop costs the
same for every pick (one pass over all points), so --max-picks times a
prefix and extrapolates linearly to floor(ratio * n) picks; the projection
and the initial keys are timed apart.

    /usr/bin/python3 scripts/coreset_published.py FEATURES.npy [--ratio 0.1] [--max-picks 2000] [--threads 2]

Prints one JSON line.
"""
import argparse
import functools
import json
import os
import sys
import time

import numpy as np
import torch

ap = argparse.ArgumentParser()
ap.add_argument("features")
ap.add_argument("--ratio", type=float, default=0.1)
ap.add_argument("--starts", type=int, default=10)
ap.add_argument("--max-picks", type=int, default=0, help="time only this many picks (0: all)")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--seed", type=int, default=0)
args = ap.parse_args()

sys.path.insert(0, os.environ.get("SOFTPATCH_REF", "/tmp/softpatch-ref/src"))
import sampler  # noqa: E402  (the published src/sampler.py)

# Its tqdm bar, silenced (disable=True: a plain iteration, same loop).
sampler.tqdm.tqdm = functools.partial(sampler.tqdm.tqdm, disable=True)

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
np.random.seed(args.seed)
x = np.load(args.features, mmap_mode="r")
x = torch.from_numpy(np.array(x.reshape(-1, x.shape[-1]), dtype=np.float32))
n = x.shape[0]
picks = int(n * args.ratio)
timed = picks if args.max_picks <= 0 else min(picks, args.max_picks)

s = sampler.ApproximateGreedyCoresetSampler(args.ratio, torch.device("cpu"), args.starts)
t0 = time.perf_counter()
with torch.no_grad():
    proj = s._reduce_features(x)
t1 = time.perf_counter()
# The published loop runs int(len * percentage) picks; run it on a
# percentage that gives `timed` picks and time it whole (initial keys
# included).
s.percentage = timed / n + 0.5 / n
with torch.no_grad():
    idx = s._compute_greedy_coreset_indices(proj)
t2 = time.perf_counter()
assert len(idx) == timed, (len(idx), timed)
per_pick = (t2 - t1) / timed
print(json.dumps({
    "implementation": "published ApproximateGreedyCoresetSampler (torch %s)" % torch.__version__,
    "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
    "n": n, "dim": int(x.shape[1]), "starts": args.starts, "threads": args.threads,
    "picks": picks, "picks_timed": timed,
    "project_seconds": t1 - t0, "select_seconds_timed": t2 - t1,
    "select_seconds": per_pick * picks,
    "extrapolated": timed < picks,
}))
