// Package denoise holds SoftPatch's patch-level noise discriminators
// (SOFTPATCH.md section 5, step 3): for every patch position, an outlier
// score of each training image's patch feature within the group formed by
// the N images' features at that position.
//
// # Layout
//
// The input is the projected training features exactly as the caller holds
// them after the random projection: feats[(i*p+q)*d+c] is channel c of image
// i at position q, i.e. [N][P][D] row-major (image-major; the published code
// reshapes its features to (N, P, D) and permutes them to (P, N, D)). The
// output is w[i*p+q], the score of image i at position q, i.e. [N][P]
// row-major, which is the order of the published code's
// patch_weight.transpose(-1, -2).reshape(-1) that the threshold and the
// coreset sampler consume.
//
// # Methods
//
//   - Nearest: 1 + the sum of the two smallest entries of the image's row of
//     the group's Euclidean distance matrix, the first being the self-distance.
//     We compute distances in float64 from the differences, so the
//     self-distance is exactly 0 and the score is 1 + the distance to the
//     nearest other member (1 exactly when the image has a duplicate). The
//     published code forms the distances in float32 as
//     sqrt(|a|^2+|b|^2-2ab), whose cancellation error leaves non-zero
//     self- and duplicate distances (duplicates scored up to 1.016 instead
//     of 1 in the golden fixtures; see golden_test.go).
//   - Gaussian: 1 + the Mahalanobis distance sqrt(d^T S^-1 d) of the image's
//     vector from the group's mean, S the unbiased (N-1) covariance plus
//     0.01 I; float64 Cholesky here, float32 explicit inverse in the published
//     code (which differs by up to 7e-5 relative in the golden fixtures).
//   - LOF: scikit-learn's LocalOutlierFactor(n_neighbors=k, metric="l2")
//     .fit(X).negative_outlier_factor_, negated, in float64; see lof.go for
//     the exact semantics reproduced (self exclusion, k clipping, duplicates,
//     the 1e-10 in the density).
//   - LOFDense: the published lof_gpu: the same LOF written with dense
//     float32 matrices, float32 distances sqrt(|a|^2+|b|^2-2ab) + 1e-6 and no
//     1e-10; see lofdense.go for how it relates to LOF.
//
// All methods run per position, in parallel over positions on
// compute.Threads() goroutines; results do not depend on the number of
// goroutines.
package denoise

import (
	"fmt"
	"sync"

	"github.com/softpatch/softpatch/engine/compute"
)

// Method names a patch-level noise discriminator. The string values are the
// published code's weight_method names, except LOFDense (the published
// "lof_gpu", which here runs on the CPU).
type Method string

const (
	// Nearest scores 1 + the distance to the nearest other group member.
	Nearest Method = "nearest"
	// Gaussian scores 1 + the Mahalanobis distance to the group's Gaussian.
	Gaussian Method = "gaussian"
	// LOF scores the Local Outlier Factor exactly as scikit-learn computes it.
	LOF Method = "lof"
	// LOFDense scores the published dense float32 LOF (weight_method "lof_gpu").
	LOFDense Method = "lof_dense"
)

// DefaultK is the LOF neighbourhood size SoftPatch actually uses: the
// published command line defaults to 6 but passes it under a misspelled
// keyword, so the model's default of 5 is what runs (SOFTPATCH.md 5.3).
const DefaultK = 5

// Methods lists the valid methods in a fixed order.
var Methods = []Method{Nearest, Gaussian, LOF, LOFDense}

// ParseMethod returns the Method named s, accepting "lof_gpu" as an alias of
// LOFDense, or an error naming the valid methods.
func ParseMethod(s string) (Method, error) {
	switch Method(s) {
	case Nearest, Gaussian, LOF, LOFDense:
		return Method(s), nil
	case "lof_gpu":
		return LOFDense, nil
	}
	return "", fmt.Errorf("denoise: unknown method %q (want nearest, gaussian, lof or lof_dense)", s)
}

// Scores computes the outlier score of every (image, position) pair with
// the given method. feats is [n][p][d] row-major float32 (see the package
// comment); the result is [n][p] row-major float32. k is the LOF
// neighbourhood size (used by LOF and LOFDense, ignored otherwise; values
// above n-1 are clipped to n-1 as scikit-learn does). It returns an error
// for an unknown method, non-positive sizes, len(feats) != n*p*d, n < 2 (no
// group has another member) or, for the LOF methods, k < 1.
func Scores(method Method, feats []float32, n, p, d, k int) ([]float32, error) {
	if err := Check(method, feats, n, p, d, k); err != nil {
		return nil, err
	}
	out := make([]float32, n*p)
	if k > n-1 {
		k = n - 1
	}
	var newWorker func() func(x []float64, x32 []float32, dst []float32)
	switch method {
	case Nearest:
		newWorker = func() func([]float64, []float32, []float32) {
			ws := newDistWork(n)
			return func(x []float64, _ []float32, dst []float32) { nearestGroup(ws, x, n, d, dst) }
		}
	case Gaussian:
		newWorker = func() func([]float64, []float32, []float32) {
			ws := newGaussWork(n, d)
			return func(x []float64, _ []float32, dst []float32) { gaussianGroup(ws, x, n, d, dst) }
		}
	case LOF:
		newWorker = func() func([]float64, []float32, []float32) {
			ws := newLOFWork(n, k)
			return func(x []float64, _ []float32, dst []float32) { lofGroup(ws, x, n, d, k, dst) }
		}
	case LOFDense:
		newWorker = func() func([]float64, []float32, []float32) {
			ws := newDenseWork(n, k)
			return func(_ []float64, x []float32, dst []float32) { lofDenseGroup(ws, x, n, d, k, dst) }
		}
	}
	forPositions(feats, n, p, d, method != LOFDense, newWorker, out)
	return out, nil
}

// Check returns the error Scores returns for these arguments, if any: for
// other backends that compute the same scores.
func Check(method Method, feats []float32, n, p, d, k int) error {
	switch method {
	case Nearest, Gaussian, LOF, LOFDense:
	default:
		return fmt.Errorf("denoise: unknown method %q (want nearest, gaussian, lof or lof_dense)", method)
	}
	if n <= 0 || p <= 0 || d <= 0 {
		return fmt.Errorf("denoise: invalid shape n=%d p=%d d=%d (all must be positive)", n, p, d)
	}
	if n*p*d/d/p != n {
		return fmt.Errorf("denoise: shape n=%d p=%d d=%d overflows", n, p, d)
	}
	if len(feats) != n*p*d {
		return fmt.Errorf("denoise: len(feats)=%d, want n*p*d=%d*%d*%d=%d", len(feats), n, p, d, n*p*d)
	}
	if n < 2 {
		return fmt.Errorf("denoise: %s needs at least 2 images per position, got n=%d", method, n)
	}
	if (method == LOF || method == LOFDense) && k < 1 {
		return fmt.Errorf("denoise: %s needs k >= 1, got k=%d", method, k)
	}
	return nil
}

// forPositions runs one worker per goroutine over the positions. Each worker
// gathers a position's group into a contiguous [n][d] buffer (float64 when
// wide is set, else float32), scores it into an [n] buffer and scatters the
// scores to out[i*p+q].
func forPositions(feats []float32, n, p, d int, wide bool,
	newWorker func() func(x []float64, x32 []float32, dst []float32), out []float32) {
	workers := compute.Threads()
	if workers > p {
		workers = p
	}
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run := newWorker()
			var x64 []float64
			var x32 []float32
			if wide {
				x64 = make([]float64, n*d)
			} else {
				x32 = make([]float32, n*d)
			}
			dst := make([]float32, n)
			for {
				mu.Lock()
				q := next
				next++
				mu.Unlock()
				if q >= p {
					return
				}
				for i := range n {
					src := feats[(i*p+q)*d : (i*p+q+1)*d]
					if wide {
						row := x64[i*d : (i+1)*d]
						for c, v := range src {
							row[c] = float64(v)
						}
					} else {
						copy(x32[i*d:(i+1)*d], src)
					}
				}
				run(x64, x32, dst)
				for i, v := range dst {
					out[i*p+q] = v
				}
			}
		}()
	}
	wg.Wait()
}
