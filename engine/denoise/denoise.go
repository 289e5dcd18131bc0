// Package denoise holds SoftPatch's patch-level noise discriminators
// (docs/method.md#53-noise-discriminators): for every patch position, an
// outlier score of each training image's patch feature within the group
// formed by the N images' features at that position.
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
// # Discriminators
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
// All discriminators run per position, in parallel over positions on
// compute.Threads() goroutines; results do not depend on the number of
// goroutines.
package denoise

import (
	"fmt"
	"strings"
	"sync"

	"github.com/softpatch/softpatch/engine/compute"
)

// DefaultK is the LOF neighbourhood size SoftPatch actually uses: the
// published command line defaults to 6 but passes it under a misspelled
// keyword, so the model's default of 5 is what runs
// (docs/method.md#53-noise-discriminators).
const DefaultK = 5

// Discriminator is a patch-level noise discriminator: one of Nearest,
// Gaussian, LOF and LOFDense (Discriminators lists them). It is comparable,
// and it encodes as its name (MarshalText). The zero value is no
// discriminator; its methods report an error where they need one.
type Discriminator struct{ s *spec }

// spec is a registered discriminator: its name, what it needs, and the
// per-position scoring it runs.
type spec struct {
	name string
	// published is the published code's weight_method for it.
	published string
	// summary describes it in one line, for help texts.
	summary string
	// usesK is set when it takes the LOF neighbourhood size.
	usesK bool
	// wide is set when it reads a group's features in float64 (all but
	// LOFDense, which keeps the published float32 arithmetic).
	wide bool
	// inPaper is set for the discriminators of the paper's tables.
	inPaper bool
	// newWorker returns a scorer of one position's group ([n][d] features,
	// in x64 when wide, else x32) into dst [n], with its own scratch.
	newWorker func(n, d, k int) func(x64 []float64, x32 []float32, dst []float32)
}

// The discriminators, in the order Discriminators lists them.
var (
	// Nearest scores 1 + the distance to the nearest other group member.
	Nearest = register(&spec{name: "nearest", published: "nearest", inPaper: true, wide: true,
		summary: "1 + the distance to the nearest other image at the position",
		newWorker: func(n, d, _ int) func([]float64, []float32, []float32) {
			ws := newDistWork(n)
			return func(x []float64, _ []float32, dst []float32) { nearestGroup(ws, x, n, d, dst) }
		}})
	// Gaussian scores 1 + the Mahalanobis distance to the group's Gaussian.
	Gaussian = register(&spec{name: "gaussian", published: "gaussian", inPaper: true, wide: true,
		summary: "1 + the Mahalanobis distance to the position's Gaussian",
		newWorker: func(n, d, _ int) func([]float64, []float32, []float32) {
			ws := newGaussWork(n, d)
			return func(x []float64, _ []float32, dst []float32) { gaussianGroup(ws, x, n, d, dst) }
		}})
	// LOF scores the Local Outlier Factor exactly as scikit-learn computes it.
	LOF = register(&spec{name: "lof", published: "lof", inPaper: true, wide: true, usesK: true,
		summary: "the local outlier factor within the position (scikit-learn's)",
		newWorker: func(n, d, k int) func([]float64, []float32, []float32) {
			ws := newLOFWork(n, k)
			return func(x []float64, _ []float32, dst []float32) { lofGroup(ws, x, n, d, k, dst) }
		}})
	// LOFDense scores the published dense float32 LOF (weight_method
	// "lof_gpu").
	LOFDense = register(&spec{name: "lof_dense", published: "lof_gpu", usesK: true,
		summary: "the published dense float32 LOF (its lof_gpu)",
		newWorker: func(n, d, k int) func([]float64, []float32, []float32) {
			ws := newDenseWork(n, k)
			return func(_ []float64, x []float32, dst []float32) { lofDenseGroup(ws, x, n, d, k, dst) }
		}})
)

// registry holds the discriminators in registration order.
var registry []Discriminator

func register(s *spec) Discriminator {
	d := Discriminator{s}
	registry = append(registry, d)
	return d
}

// Discriminators lists the discriminators in a fixed order.
func Discriminators() []Discriminator { return append([]Discriminator(nil), registry...) }

// Names lists the discriminators' names in that order.
func Names() []string {
	var ns []string
	for _, d := range registry {
		ns = append(ns, d.s.name)
	}
	return ns
}

// Parse returns the discriminator named s, accepting the published name
// "lof_gpu" for LOFDense, or an error naming the valid ones.
func Parse(s string) (Discriminator, error) {
	for _, d := range registry {
		if s == d.s.name || s == d.s.published {
			return d, nil
		}
	}
	return Discriminator{}, fmt.Errorf("denoise: unknown discriminator %q (want %s)", s, strings.Join(Names(), ", "))
}

// Name is the discriminator's name ("" for the zero value).
func (d Discriminator) Name() string {
	if d.s == nil {
		return ""
	}
	return d.s.name
}

// String is Name.
func (d Discriminator) String() string { return d.Name() }

// IsZero reports whether d is the zero value (no discriminator).
func (d Discriminator) IsZero() bool { return d.s == nil }

// Summary describes the discriminator in one line.
func (d Discriminator) Summary() string {
	if d.s == nil {
		return ""
	}
	return d.s.summary
}

// InPaper reports whether the paper's tables use the discriminator
// (nearest, gaussian and lof; not lof_dense).
func (d Discriminator) InPaper() bool { return d.s != nil && d.s.inPaper }

// MarshalText encodes the discriminator as its name.
func (d Discriminator) MarshalText() ([]byte, error) { return []byte(d.Name()), nil }

// UnmarshalText decodes a name written by MarshalText ("" is the zero
// value).
func (d *Discriminator) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*d = Discriminator{}
		return nil
	}
	p, err := Parse(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// Scores computes the outlier score of every (image, position) pair with
// the discriminator d. feats is [n][p][d] row-major float32 (see the
// package comment); the result is [n][p] row-major float32. k is the LOF
// neighbourhood size (used by LOF and LOFDense, ignored otherwise; values
// above n-1 are clipped to n-1 as scikit-learn does). It returns an error
// for the zero discriminator, non-positive sizes, len(feats) != n*p*d,
// n < 2 (no group has another member) or, for the LOF methods, k < 1.
func Scores(disc Discriminator, feats []float32, n, p, d, k int) ([]float32, error) {
	if err := Check(disc, feats, n, p, d, k); err != nil {
		return nil, err
	}
	out := make([]float32, n*p)
	k = min(k, n-1)
	forPositions(feats, n, p, d, disc.s.wide, func() func([]float64, []float32, []float32) { return disc.s.newWorker(n, d, k) }, out)
	return out, nil
}

// Check returns the error Scores returns for these arguments, if any: for
// other backends that compute the same scores.
func Check(disc Discriminator, feats []float32, n, p, d, k int) error {
	if disc.s == nil {
		return fmt.Errorf("denoise: no discriminator (want %s)", strings.Join(Names(), ", "))
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
		return fmt.Errorf("denoise: %s needs at least 2 images per position, got n=%d", disc, n)
	}
	if disc.s.usesK && k < 1 {
		return fmt.Errorf("denoise: %s needs k >= 1, got k=%d", disc, k)
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
