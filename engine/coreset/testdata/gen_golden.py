#!/usr/bin/python3
"""Golden fixtures for engine/coreset, made with the published sampler.

Run with Debian's /usr/bin/python3 (python3-torch, numpy, tqdm) from this
directory; it imports the published code itself (not a transcription) from
the SoftPatch checkout, default /tmp/softpatch-ref/src, or $SOFTPATCH_REF:

    /usr/bin/python3 gen_golden.py [/path/to/softpatch/src]

It writes, all little-endian:
  features.i8          2000 x 64 int8; feature = value / 16 (exact in float32)
  patchcore_proj.f32   [64][128] float32, the transposed weight of the
                       torch.nn.Linear(64, 128, bias=False) the sampler drew
  softpatch_proj.f32   the same for the weighted sampler's run
  golden.json          n, d, ratio, the start points np.random.choice drew,
                       the sampling weights, and the selected indices

Cases:
  patchcore: ApproximateGreedyCoresetSampler(0.1, cpu), as PatchCore builds
             it (10 start points).
  softpatch: WeightedGreedyCoresetSampler(0.1, cpu), built as softpatch.py
             builds it (two positional arguments, so 128 start points), with
             set_sampling_weight(torch.where(score > q, 0, 1)) for the 15%
             points farthest from the data mean (weights int64, as in the
             published code). The outliers excluded this way are the points
             with the largest initial keys, so the first selection shows the
             quirk of docs/method.md#55-weighted-coreset-and-the-first-pick-quirk
             (an excluded point is selected first).
"""
import json
import os
import sys

import numpy as np
import torch

REF = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SOFTPATCH_REF", "/tmp/softpatch-ref/src")
sys.path.insert(0, REF)
import sampler  # noqa: E402  (the published src/sampler.py)

N, D, RATIO = 2000, 64, 0.1
torch.set_num_threads(1)

# Structured data: 12 clusters with different spreads plus uniform outliers,
# quantised to multiples of 1/16 so that int8 storage is exact.
rng = np.random.RandomState(7)
centres = rng.normal(0, 2.0, size=(12, D))
labels = rng.randint(0, 12, size=N)
spread = rng.uniform(0.3, 1.2, size=12)[labels][:, None]
x = centres[labels] + rng.normal(0, 1, size=(N, D)) * spread
out = rng.choice(N, 100, replace=False)
x[out] = rng.uniform(-7, 7, size=(100, D))
q = np.clip(np.round(x * 16), -127, 127).astype(np.int8)
features = q.astype(np.float32) / 16

# Capture what the sampler draws: every torch.nn.Linear it builds and every
# np.random.choice call, without changing either.
linears = []
_Linear = torch.nn.Linear


class RecordingLinear(_Linear):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        linears.append(self)


torch.nn.Linear = RecordingLinear
choices = []
_choice = np.random.choice


def recording_choice(*a, **k):
    r = _choice(*a, **k)
    choices.append(np.array(r).tolist())
    return r


sampler.np.random.choice = recording_choice


def run(s, seed):
    linears.clear()
    choices.clear()
    torch.manual_seed(seed)
    np.random.seed(seed)
    _, idx = s.run(features.copy())
    assert len(linears) == 1 and len(choices) == 1
    w = linears[0].weight.detach().numpy()  # [128][D]
    return np.ascontiguousarray(w.T.astype(np.float32)), choices[0], [int(i) for i in idx]


pc = sampler.ApproximateGreedyCoresetSampler(RATIO, torch.device("cpu"))
pc_proj, pc_starts, pc_idx = run(pc, 1)

# As softpatch.py line 85: WeightedGreedyCoresetSampler(percentage, device).
sp = sampler.WeightedGreedyCoresetSampler(RATIO, torch.device("cpu"))
assert sp.number_of_starting_points == 128
score = torch.from_numpy(np.linalg.norm(features - features.mean(0), axis=1))
thr = torch.quantile(score, 1 - 0.15)
weight = torch.where(score > thr, 0, 1)
sp.set_sampling_weight(weight)
sp_proj, sp_starts, sp_idx = run(sp, 2)

here = os.path.dirname(os.path.abspath(__file__))
q.tofile(os.path.join(here, "features.i8"))
pc_proj.astype("<f4").tofile(os.path.join(here, "patchcore_proj.f32"))
sp_proj.astype("<f4").tofile(os.path.join(here, "softpatch_proj.f32"))
with open(os.path.join(here, "golden.json"), "w") as f:
    json.dump({
        "n": N, "d": D, "dim": 128, "ratio": RATIO, "scale": 16,
        "patchcore": {"starts": pc_starts, "indices": pc_idx},
        "softpatch": {"starts": sp_starts, "weights": weight.tolist(), "indices": sp_idx},
    }, f, separators=(",", ":"))
print("patchcore: %d picks, first %s" % (len(pc_idx), pc_idx[:5]))
print("softpatch: %d picks, first %s, weight of first pick %d, excluded picks %d" % (
    len(sp_idx), sp_idx[:5], int(weight[sp_idx[0]]), sum(int(weight[i]) == 0 for i in sp_idx)))
