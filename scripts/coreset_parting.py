#!/usr/bin/python3
"""Where and why softpatch's greedy coreset parts from the published one on replayed draws.

    /usr/bin/python3 scripts/coreset_parting.py [--full] [--reorder] DUMP_DIR OURS.model

DUMP_DIR is the reference driver's --dump_dir of a run with --dump_train_features (the
training patches, the coreset projection, the start points, the sampling weights and the
published selection order); OURS.model is `softpatch fit --draws` on that run's draws
(scripts/parity_draws.sh writes both; add --dump_train_features to its published command).
Replays the published selection up to the first step where the two orders part and prints,
for the two candidates of that step, their greedy distance in float64 (softpatch's
arithmetic) and in the published sampler's own float32 torch arithmetic, with how far
the float32 values are off. With --full it also runs the whole selection in float64 on the
published run's own projected features, which separates the two causes of differing picks:
its Jaccard overlap with the published bank is what the arithmetic alone changes, its overlap
with softpatch's what our features (equal to the published ones within float32 rounding) change.
With --reorder it runs the published selection itself, in its own float32 arithmetic, on the
same features with their 1024 channels in reverse order (the same sums, added in another
order): how much the published code disagrees with itself under float32 rounding alone.
Needs numpy and torch (Debian's python3-torch).
"""
import sys

import numpy as np

from draws_compare import dump_array, jaccard, model_indices  # beside this script


def load(dump, name):
    a = dump_array(dump, name)
    if a is None:
        sys.exit(f"{dump}: no {name} (run the driver with --dump_dir and --dump_train_features)")
    return a


def dist64(x, y):
    return np.sqrt(((x - y) ** 2).sum(-1))


def published_greedy(feats, w, starts, weight, steps=None, picks=0):
    """The published sampler in its own float32 torch arithmetic (torch.nn.Linear projection,
    |a|^2 + |b|^2 - 2ab): the projected features and the anchor distances after the picks
    in steps, or, with picks, the picks it selects itself."""
    import torch
    x = torch.nn.functional.linear(torch.from_numpy(feats), torch.from_numpy(w))

    def dist(b):
        aa = x.unsqueeze(1).bmm(x.unsqueeze(2)).reshape(-1, 1)
        bb = b.unsqueeze(1).bmm(b.unsqueeze(2)).reshape(1, -1)
        return (-2 * x.mm(b.T) + aa + bb).clamp(0, None).sqrt()

    a = torch.mean(dist(x[starts.tolist()]), axis=-1).reshape(-1, 1)
    wt = torch.from_numpy(weight).unsqueeze(-1)
    sel = []
    for j in range(picks or len(steps)):
        p = int(torch.argmax(a).item()) if picks else int(steps[j])
        sel.append(p)
        a = torch.min(torch.cat([a, dist(x[p:p + 1]) * wt], dim=-1), dim=1).values.reshape(-1, 1)
    if picks:
        return np.array(sel)
    return x.numpy(), a.reshape(-1).numpy()


def greedy64(x64, starts, weight, picks):
    """The published selection with distances in float64, as softpatch computes them."""
    xx = (x64 * x64).sum(-1)
    dist = lambda p: np.sqrt(np.maximum(xx + xx[p] - 2 * (x64 @ x64[p]), 0))
    a = np.mean([dist(s) for s in starts], axis=0)
    w = weight.astype(np.float64)
    sel = []
    for _ in range(picks):
        p = int(np.argmax(a))
        sel.append(p)
        a = np.minimum(a, dist(p) * w)
    return np.array(sel)


def main():
    flags = {a for a in sys.argv[1:] if a.startswith("--")}
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 2:
        sys.exit(__doc__)
    dump, model = args
    feats = load(dump, "train_features")
    w = load(dump, "proj_coreset")
    starts = load(dump, "coreset_start_points").reshape(-1)
    weight = load(dump, "sampling_weight").reshape(-1).astype(np.float32)
    pub = load(dump, "coreset_indices").reshape(-1)
    ours = model_indices(model)
    m = min(len(pub), len(ours))
    k = next((i for i in range(m) if pub[i] != ours[i]), None)
    if k is None:
        print(f"identical selection order over {m} picks")
        return
    x32, a32 = published_greedy(feats, w, starts, weight, pub[:k])
    x64 = x32.astype(np.float64)
    if "--reorder" in flags:
        r = published_greedy(np.ascontiguousarray(feats[:, ::-1]), np.ascontiguousarray(w[:, ::-1]), starts, weight,
                             picks=len(pub))
        j, d = jaccard(r, pub)
        print(f"published selection, channels reversed, vs published: Jaccard {j:.4f}, {d} picks differ")
    if "--full" in flags:
        g = greedy64(x64, starts, weight, len(pub))
        for name, other in (("published", pub), ("softpatch", ours)):
            j, d = jaccard(g, other)
            print(f"float64 selection on the published features vs {name}: Jaccard {j:.4f}, {d} picks differ")
    a64 = np.mean([dist64(x64, x64[s]) for s in starts], axis=0)
    for p in pub[:k]:
        a64 = np.minimum(a64, dist64(x64, x64[p]) * weight)
    a, b = pub[k], ours[k]
    err = max(abs(a32[i] - a64[i]) / a64[i] for i in (a, b))
    print(f"orders part at step {k} of {m}; {len(set(pub.tolist()) - set(ours.tolist()))} picks differ in all")
    print(f"  published pick {a}: float64 {a64[a]:.9g}, published float32 {a32[a]:.9g}")
    print(f"  softpatch pick {b}: float64 {a64[b]:.9g}, published float32 {a32[b]:.9g}")
    print(f"  argmax in float64 {int(np.argmax(a64))}, in the published float32 {int(np.argmax(a32))}")
    print(f"  the two differ by {abs(a64[a] - a64[b]) / a64[b]:.2g} relative in float64; the published float32 "
          f"distances are off by up to {err:.2g} relative")


if __name__ == "__main__":
    main()
