// Package coreset subsamples a memory bank of patch features: the
// approximate greedy coreset of PatchCore
// (docs/method.md#41-approximate-greedy-coreset), the weighted variant
// SoftPatch builds from its noise discriminator's sampling weights
// (docs/method.md#55-weighted-coreset-and-the-first-pick-quirk), the plain
// greedy coreset, and uniform random subsampling ("PatchCore-random").
//
// # What is reproduced
//
// Greedy.Select computes what the published sampler (src/sampler.py,
// ApproximateGreedyCoresetSampler and WeightedGreedyCoresetSampler)
// computes:
//
//   - Features [N][D] are projected to Dim (128) dimensions with a random
//     linear map without bias, entries uniform in +-1/sqrt(D) (the default
//     initialisation of torch.nn.Linear(D, 128, bias=False)). As in the
//     reference, features that already have Dim columns are used as they are.
//   - S distinct random start points are drawn: S = 10 for PatchCore's
//     sampler; SoftPatch's WeightedGreedyCoresetSampler(percentage, device)
//     passes its projection dimension into the start-point slot, so S = 128
//     there (set Starts accordingly). S is clipped to N.
//   - The initial key of every point is its mean Euclidean distance (in the
//     projected space) to the start points.
//   - floor(Ratio*N) times (Python's int(N*ratio), float64): the point with
//     the largest key is selected (the first index on ties, as torch.argmax),
//     the distances of all points to it are computed, multiplied by the
//     point's sampling weight when weights are given, and each key becomes
//     min(key, distance). The selected point's own distance is 0, so its key
//     becomes 0.
//   - The indices are returned in selection order.
//   - Weighted quirk: the initial keys are not multiplied by the weights, so
//     an excluded point (weight 0) can win the very first selection; all
//     excluded points have key 0 afterwards. StrictExclusion multiplies the
//     initial keys by the weights too, so that no excluded point is selected
//     while an eligible one is left.
//
// Arithmetic: the reference computes the distances in float32 as
// sqrt(clamp(|a|^2 + |b|^2 - 2 a.b, 0)); this package computes them from the
// float32 projected coordinates as sqrt(sum (a_k - b_k)^2) in float64 (a
// fixed summation order), and keeps the keys in float64. The selections
// agree wherever the reference's float32 rounding does not reorder two keys
// that differ by less than its rounding error (the golden test checks index
// for index on a seeded set). Once every key is 0 (more picks than points
// that can still be selected) the selection is index 0, as argmax of an all
// zero vector; the reference's float32 noise makes its choice there
// arbitrary.
//
// # Speed
//
// The published loop passes over all N points for every selected point
// (N x picks x 128 operations). Select gives the identical selection while
// computing few of those distances. Before the second selection it takes
// the 8 leading principal directions V of the points (the covariance of an
// evenly spaced subsample of at most 16,384 points; V has orthonormal
// columns) and stores every point's coordinates z = V^T (x - mean), 32
// bytes a point. Since |z_i - z_c| <= |x_i - x_c|, a point whose prefix
// distance to the new centre c already exceeds its key cannot have its key
// lowered, and its distance is not computed. The comparison carries slack
// for the float32 rounding of z and of the prefix sum (bound.go), so a skip
// never hides a change that the full computation would make: the keys are
// equal, not approximately equal. On real patch features most of the
// variance lies in those 8 directions (96% on the generated wood class with
// the random-init backbone) and about 1% of the distances are computed per
// step. Each step is one fused pass (bound, distance when needed, min,
// argmax; dist.c: AVX-512 or AVX2 with FMA, or portable C, all
// bit-identical) split across compute.Threads() goroutines, which skips
// keys already 0 (selected points, excluded points, duplicates of selected
// points). When a step still computes more than half of the distances
// (data on which the bound does not prune, such as isotropic Gaussian
// noise), the remaining steps drop the bound.
package coreset
