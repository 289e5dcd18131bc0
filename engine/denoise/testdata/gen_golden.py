#!/usr/bin/python3
"""Golden fixtures for engine/denoise (SoftPatch's patch-level noise discriminators).

Run with Debian's interpreter (python3-numpy, python3-torch, python3-sklearn):

    /usr/bin/python3 engine/denoise/testdata/gen_golden.py

It writes engine/denoise/testdata/golden.json. Each case holds float32 features
laid out [N][P][D] (image-major, exactly as the Go caller passes them) and, per
method, the scores [N][P] computed by the reference libraries:

  nearest        the published _compute_nearest_distance (+1), run in float64
  nearest32      the same in float32 (what the published code computes)
  gaussian       numpy float64: mean, unbiased covariance + 0.01 I, explicit
                 inverse, sqrt(d^T S^-1 d) + 1 (the published formula)
  gaussian32     the published torch float32 code (MultiVariateGaussian + inv)
  lof_k<k>       sklearn LocalOutlierFactor(n_neighbors=k, metric='l2') on the
                 float64 copy of the features, -negative_outlier_factor_
  lof32_k<k>     the same on the float32 features (what the published code does)
  lofgpu_k<k>    the published _compute_lof_gpu in torch float32 on the CPU
                 (only where k + 1 <= N; the published code would raise otherwise)

The three transcribed functions below are copied from the published SoftPatch
code (src/softpatch.py, src/multi_variate_gaussian.py) with only `self`
removed, so that this script needs nothing but the three libraries.
"""

import json
import os
import warnings

import numpy as np
import torch
from sklearn.neighbors import LocalOutlierFactor


# --- transcribed from src/softpatch.py -------------------------------------

def _compute_nearest_distance(embedding):
    patch, batch, _ = embedding.shape
    x_x = (embedding ** 2).sum(dim=-1, keepdim=True).expand(patch, batch, batch)
    dist_mat = (x_x + x_x.transpose(-1, -2) - 2 * embedding.matmul(embedding.transpose(-1, -2))).abs() ** 0.5
    nearest_distance = torch.topk(dist_mat, dim=-1, largest=False, k=2)[0].sum(dim=-1)
    return nearest_distance


def _compute_lof_gpu(k, embedding):
    patch, batch, _ = embedding.shape
    x_x = (embedding ** 2).sum(dim=-1, keepdim=True).expand(patch, batch, batch)
    dist_mat = (x_x + x_x.transpose(-1, -2) - 2 * embedding.matmul(embedding.transpose(-1, -2))).abs() ** 0.5 + 1e-6
    top_k_distance_mat, top_k_index = torch.topk(dist_mat, dim=-1, largest=False, k=k + 1)
    top_k_distance_mat, top_k_index = top_k_distance_mat[:, :, 1:], top_k_index[:, :, 1:]
    k_distance_value_mat = top_k_distance_mat[:, :, -1]
    reach_dist_mat = torch.max(dist_mat, k_distance_value_mat.unsqueeze(2).expand(patch, batch, batch)
                               .transpose(-1, -2))
    top_k_index_hot = torch.zeros(size=dist_mat.shape, device=top_k_index.device).scatter_(-1, top_k_index, 1)
    lrd_mat = k / (top_k_index_hot * reach_dist_mat).sum(dim=-1)
    lof_mat = ((lrd_mat.unsqueeze(2).expand(patch, batch, batch).transpose(-1, -2) * top_k_index_hot).sum(
        dim=-1) / k) / lrd_mat
    return lof_mat


def _gaussian_torch32(embedding):
    """MultiVariateGaussian.forward + _compute_distance_with_gaussian (float32)."""
    patch, _, channel = embedding.shape
    embedding_vectors = embedding.permute(1, 2, 0)
    mean = torch.mean(embedding_vectors, dim=0)
    covariance = torch.zeros(size=(channel, channel, patch))
    identity = torch.eye(channel)
    for i in range(patch):
        obs = embedding_vectors[:, :, i]
        avg = torch.mean(obs, 0)
        obs_m = obs.sub(avg.expand_as(obs))
        cov = torch.mm(obs_m.t(), obs_m) / (obs.shape[0] - 1)
        covariance[:, :, i] = cov.squeeze() + 0.01 * identity
    inv_covariance = torch.linalg.inv(covariance.permute(2, 0, 1))
    emb = embedding.permute(1, 2, 0)
    delta = (emb - mean).permute(2, 0, 1)
    distances = (torch.matmul(delta, inv_covariance) * delta).sum(2)
    return torch.sqrt(distances)


# --- float64 references ------------------------------------------------------

def gaussian64(pnd):
    """[P][N][D] float64 -> [P][N] Mahalanobis + 1 with the published formula."""
    out = np.zeros(pnd.shape[:2])
    for p in range(pnd.shape[0]):
        x = pnd[p]
        m = x.mean(axis=0)
        xc = x - m
        cov = xc.T @ xc / (x.shape[0] - 1) + 0.01 * np.eye(x.shape[1])
        inv = np.linalg.inv(cov)
        out[p] = np.sqrt(((xc @ inv) * xc).sum(axis=1)) + 1
    return out


def lof_sklearn(pnd, k):
    out = np.zeros(pnd.shape[:2], dtype=np.float64)
    for p in range(pnd.shape[0]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = LocalOutlierFactor(n_neighbors=int(k), metric="l2").fit(pnd[p])
        out[p] = -clf.negative_outlier_factor_
    return out


# --- cases -------------------------------------------------------------------

def make_case(rng, n, p, d, dup_plan):
    x = (rng.standard_normal((n, p, d)) * 2.0 + rng.standard_normal((1, p, d))).astype(np.float32)
    # A few outliers per position.
    for pos in range(p):
        i = rng.integers(n)
        x[i, pos] += np.float32(4.0) * rng.standard_normal(d).astype(np.float32)
    clean = []
    for pos in range(p):
        plan = dup_plan.get(pos)
        if plan is None:
            clean.append(pos)
            continue
        kind, arg = plan
        if kind == "copies":  # rows arg[1:] become exact copies of row arg[0]
            for j in arg[1:]:
                x[j, pos] = x[arg[0], pos]
        elif kind == "distinct":  # only `arg` distinct points, each repeated
            for i in range(n):
                x[i, pos] = x[i % arg, pos]
    return x, clean


def run_case(name, x, ks, clean):
    n, p, d = x.shape
    pnd32 = torch.from_numpy(np.ascontiguousarray(x.transpose(1, 0, 2)))  # [P][N][D]
    pnd64 = pnd32.double()
    res = {
        "name": name, "n": n, "p": p, "d": d, "ks": ks, "clean_positions": clean,
        "feats": [float("%.9g" % v) for v in x.reshape(-1)],  # round-trips float32
    }

    def nd(a):  # [P][N] -> flat [N][P]
        a = np.asarray(a, dtype=np.float64)
        return [float("%.10g" % v) for v in a.T.reshape(-1)]

    res["nearest"] = nd((_compute_nearest_distance(pnd64) + 1).numpy())
    res["nearest32"] = nd((_compute_nearest_distance(pnd32) + 1).numpy())
    res["gaussian"] = nd(gaussian64(pnd64.numpy()))
    res["gaussian32"] = nd((_gaussian_torch32(pnd32) + 1).numpy())
    for k in ks:
        res["lof_k%d" % k] = nd(lof_sklearn(pnd64.numpy(), k))
        res["lof32_k%d" % k] = nd(lof_sklearn(pnd32.numpy(), k))
        if k + 1 <= n:
            res["lofgpu_k%d" % k] = nd(_compute_lof_gpu(k, pnd32).numpy())
    return res


def main():
    torch.set_num_threads(1)
    rng = np.random.default_rng(20221128)
    cases = []
    # Small groups, D <= 15: sklearn uses a KD-tree (exact differences).
    x, clean = make_case(rng, 12, 6, 8, {
        1: ("copies", [2, 7]),                      # one duplicate pair
        2: ("copies", [0, 3, 4, 6, 8, 9, 11]),      # 7 copies: more than k + 1
        3: ("distinct", 3),                         # 3 distinct points, k >= 3
        4: ("copies", [5, 1, 10]),                  # 3 copies
    })
    cases.append(run_case("small", x, [5, 1, 3, 11, 20], clean))
    # Fewer images than k + 1: sklearn clips k to n - 1.
    x, clean = make_case(rng, 5, 3, 8, {2: ("copies", [0, 4])})
    cases.append(run_case("tiny", x, [5, 4, 2], clean))
    # D > 15: sklearn's brute-force path (the one SoftPatch's 128-d features take).
    x, clean = make_case(rng, 40, 4, 32, {
        1: ("copies", [3, 17]),
        2: ("copies", [5, 6, 7, 8, 9, 10, 11]),
        3: ("distinct", 4),
    })
    cases.append(run_case("brute", x, [5, 2], clean))
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.json")
    with open(out, "w") as f:
        json.dump({"cases": cases}, f, separators=(",", ":"))
    print("wrote", out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
