package coreset

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/softpatch/softpatch/engine/compute"
)

// Defaults of the published samplers.
const (
	// DefaultDim is the projection dimension of the published samplers.
	DefaultDim = 128
	// PatchCoreStarts is the number of start points of PatchCore's
	// ApproximateGreedyCoresetSampler.
	PatchCoreStarts = 10
	// SoftPatchStarts is the number of start points SoftPatch's
	// WeightedGreedyCoresetSampler ends up with (its projection dimension,
	// passed positionally into the start-point slot).
	SoftPatchStarts = 128
)

// Greedy configures an approximate greedy coreset selection
// (docs/method.md#41-approximate-greedy-coreset and
// docs/method.md#55-weighted-coreset-and-the-first-pick-quirk). The zero
// values of Dim and Starts mean DefaultDim and PatchCoreStarts.
type Greedy struct {
	// Ratio is the fraction of points to select, 0 < Ratio < 1; the number
	// of selections is floor(Ratio*N).
	Ratio float64
	// Dim is the projection dimension (0: DefaultDim).
	Dim int
	// Starts is the number of random start points (0: PatchCoreStarts; use
	// SoftPatchStarts to reproduce SoftPatch). It is clipped to N.
	Starts int
	// Seed seeds the projection (NewProjection) and the start points
	// (StartPoints) when they are not injected.
	Seed uint64
	// Projection optionally injects the projection matrix, [D][Dim]
	// row-major (the transpose of torch.nn.Linear's weight). When nil, Select
	// draws NewProjection(D, Dim, Seed), or uses the features as they are if
	// D == Dim (as the reference does).
	Projection []float32
	// StartPoints optionally injects the start points (distinct indices in
	// [0, N)); when nil they are drawn from Seed (see DrawStartPoints).
	StartPoints []int
	// Weights optionally gives each point's sampling weight, 0 or 1
	// (docs/method.md#55-weighted-coreset-and-the-first-pick-quirk); nil
	// means all 1.
	Weights []float32
	// StrictExclusion also multiplies the initial keys by the weights, which
	// removes the published quirk that an excluded point can be selected
	// first.
	StrictExclusion bool
	// Full replaces the start points by all N points and the mean by the
	// Euclidean norm of the distance row, sqrt(sum_j d(i,j)^2): the initial
	// keys of the published (non-approximate) GreedyCoresetSampler. It costs
	// N^2 distances (but O(N) memory).
	Full bool
	// NoProjection selects on the features as given, without projecting
	// them (plain greedy); Projection must then be nil.
	NoProjection bool
	// Progress, when set, is called after every selection with the number
	// of selections made and the total, from one goroutine at a time.
	Progress func(done, total int)
	// Steps, when set, runs the selection loop instead of the CPU (a GPU
	// backend: cuda.Device.CoresetSteps): given the projected points x
	// [n][dim], the initial keys and the weights (nil: all 1), it returns
	// the picks selections, the first being the largest initial key, each
	// later one the largest key after the previous selection's distances
	// (times the weights in the first step only) were folded in, lowest
	// index on ties. Progress is not called then.
	Steps func(x []float32, dim int, init []float64, weights []float32, picks int) ([]int, error)
}

func (g Greedy) dim() int {
	if g.Dim > 0 {
		return g.Dim
	}
	return DefaultDim
}

// Picks returns the number of points a selection from n points makes:
// floor(Ratio*n), computed as Python's int(n * ratio).
func (g Greedy) Picks(n int) int { return int(float64(n) * g.Ratio) }

// NewProjection draws the [d][dim] projection matrix Select uses when none
// is injected: entries uniform in [-1/sqrt(d), 1/sqrt(d)), from a PCG
// generator seeded with (seed, 1). Callers that stream features can project
// them chunk by chunk with Project and call SelectProjected.
func NewProjection(d, dim int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	b := 1 / math.Sqrt(float64(d))
	p := make([]float32, d*dim)
	for i := range p {
		p[i] = float32((2*r.Float64() - 1) * b)
	}
	return p
}

// Project writes features [n][d] times proj [d][dim] into dst [n][dim]
// (float32 SGEMM, compute.Sgemm) and returns dst; a nil dst is allocated.
func Project(dst, features []float32, n, d int, proj []float32, dim int) []float32 {
	if len(features) != n*d || len(proj) != d*dim {
		panic(fmt.Sprintf("coreset.Project: len(features)=%d, len(proj)=%d for n=%d d=%d dim=%d", len(features), len(proj), n, d, dim))
	}
	if dst == nil {
		dst = make([]float32, n*dim)
	}
	compute.Sgemm(false, false, n, dim, d, 1, features, d, proj, dim, 0, dst[:n*dim], dim)
	return dst
}

// DrawStartPoints returns the s distinct start points (s clipped to n)
// Select draws when none are injected: the first s entries of a seeded
// Fisher-Yates shuffle of [0, n) with a PCG generator seeded with (seed, 2).
func DrawStartPoints(n, s int, seed uint64) []int {
	return shuffle(n, min(s, n), rand.New(rand.NewPCG(seed, 2)))
}

// Random returns picks distinct indices drawn uniformly from [0, n) without
// replacement, in draw order, seeded (PatchCore-random; the reference uses
// np.random.choice(n, picks, replace=False)). picks is clipped to [0, n].
func Random(n, picks int, seed uint64) []int {
	return shuffle(n, max(0, min(picks, n)), rand.New(rand.NewPCG(seed, 3)))
}

// shuffle returns the first k entries of a partial Fisher-Yates shuffle of
// [0, n), using O(k) memory.
func shuffle(n, k int, r *rand.Rand) []int {
	swapped := make(map[int]int, k)
	at := func(i int) int {
		if v, ok := swapped[i]; ok {
			return v
		}
		return i
	}
	out := make([]int, k)
	for i := 0; i < k; i++ {
		j := i + r.IntN(n-i)
		out[i] = at(j)
		swapped[j] = at(i)
	}
	return out
}

// Select projects features [n][d] (see Greedy.Projection) and returns the
// selected indices in selection order.
func (g Greedy) Select(features []float32, n, d int) ([]int, error) {
	if n < 0 || d <= 0 || len(features) != n*d {
		return nil, fmt.Errorf("coreset: %d features for n=%d d=%d", len(features), n, d)
	}
	dim := g.dim()
	switch {
	case g.NoProjection:
		if g.Projection != nil {
			return nil, errors.New("coreset: Projection given with NoProjection")
		}
		dim = d
	case g.Projection != nil:
		if len(g.Projection) != d*dim {
			return nil, fmt.Errorf("coreset: projection has %d entries, want %d x %d", len(g.Projection), d, dim)
		}
		features = Project(nil, features, n, d, g.Projection, dim)
	case d != dim:
		features = Project(nil, features, n, d, NewProjection(d, dim, g.Seed), dim)
	}
	return g.selectProjected(features, n, dim)
}

// SelectProjected selects from features that are already projected,
// proj [n][dim] (dim need not equal g.Dim); g.Projection is ignored.
// Select(f) equals SelectProjected(Project(f, NewProjection(d, Dim, Seed)))
// when the projection is not injected and d != Dim.
func (g Greedy) SelectProjected(proj []float32, n, dim int) ([]int, error) {
	if n < 0 || dim <= 0 || len(proj) != n*dim {
		return nil, fmt.Errorf("coreset: %d projected features for n=%d dim=%d", len(proj), n, dim)
	}
	return g.selectProjected(proj, n, dim)
}

func (g Greedy) selectProjected(x []float32, n, dim int) ([]int, error) {
	if !(g.Ratio > 0 && g.Ratio < 1) {
		return nil, fmt.Errorf("coreset: ratio %v not in (0, 1)", g.Ratio)
	}
	if g.Weights != nil {
		if len(g.Weights) != n {
			return nil, fmt.Errorf("coreset: %d weights for %d points", len(g.Weights), n)
		}
		for i, w := range g.Weights {
			if w != 0 && w != 1 {
				return nil, fmt.Errorf("coreset: weight %v of point %d is not 0 or 1", w, i)
			}
		}
	}
	picks := g.Picks(n)
	if n == 0 || picks == 0 {
		return []int{}, nil
	}
	var init []float64
	if g.Full {
		init = fullKeys(x, n, dim)
	} else {
		starts := g.StartPoints
		if starts == nil {
			s := g.Starts
			if s <= 0 {
				s = PatchCoreStarts
			}
			starts = DrawStartPoints(n, s, g.Seed)
		} else {
			seen := make(map[int]bool, len(starts))
			for _, s := range starts {
				if s < 0 || s >= n || seen[s] {
					return nil, fmt.Errorf("coreset: start point %d out of range or repeated (n=%d)", s, n)
				}
				seen[s] = true
			}
			if len(starts) == 0 {
				return nil, errors.New("coreset: empty StartPoints")
			}
		}
		init = meanKeys(x, n, dim, starts)
	}
	if g.StrictExclusion && g.Weights != nil {
		for i, w := range g.Weights {
			init[i] *= float64(w)
		}
	}
	if g.Steps != nil {
		return g.Steps(x, dim, init, g.Weights, picks)
	}
	return run(x, dim, init, g.Weights, picks, g.Progress), nil
}

// meanKeys returns each point's mean distance to the start points (the sum
// in start-point order, divided by their number).
func meanKeys(x []float32, n, dim int, starts []int) []float64 {
	keys := make([]float64, n)
	compute.ParallelFor(n, 256, func(lo, hi int) {
		buf := make([]float64, min(hi-lo, 4096))
		for b := lo; b < hi; b += len(buf) {
			m := min(len(buf), hi-b)
			for _, j := range starts {
				dists(x, dim, x[j*dim:(j+1)*dim], nil, b, buf[:m])
				for i, d := range buf[:m] {
					keys[b+i] += d
				}
			}
			for i := b; i < b+m; i++ {
				keys[i] /= float64(len(starts))
			}
		}
	})
	return keys
}

// fullKeys returns sqrt(sum_j d(i,j)^2) for every point (the initial keys
// of the published GreedyCoresetSampler, torch.norm of the distance rows).
func fullKeys(x []float32, n, dim int) []float64 {
	keys := make([]float64, n)
	compute.ParallelFor(n, 16, func(lo, hi int) {
		buf := make([]float64, n)
		for i := lo; i < hi; i++ {
			dists(x, dim, x[i*dim:(i+1)*dim], nil, 0, buf)
			s := 0.0
			for _, d := range buf {
				s += d * d
			}
			keys[i] = math.Sqrt(s)
		}
	})
	return keys
}

// run performs the selections from the initial keys; weights (nil or 0/1)
// multiply the distances before the min.
//
// The first selection takes a full pass (it applies the weights: excluded
// points get key 0 and are never touched again). Every later step is a
// bounded pass (see bound.go): a point's distance to the new centre is
// computed only when the lower bound from its principal coordinates does
// not prove it larger than the point's key, in which case the key could
// not change. If the steps of a window (fallbackWindow) still compute more
// than half of the distances on average (data on which the bound does not
// prune, such as isotropic noise), the remaining steps compute them all,
// without the bound.
func run(x []float32, dim int, init []float64, weights []float32, picks int, progress func(done, total int)) []int {
	if progress == nil {
		progress = func(int, int) {}
	}
	n := len(init)
	t := compute.Threads()
	out := make([]int, 0, picks)
	c := 0
	for i, k := range init {
		if k > init[c] {
			c = i
		}
	}
	out = append(out, c)
	progress(len(out), picks)
	keys := make([]float64, n)
	xc := x[c*dim : (c+1)*dim]
	compute.ParallelFor(n, 4096, func(lo, hi int) {
		dists(x, dim, xc, nil, lo, keys[lo:hi])
		for i := lo; i < hi; i++ {
			d := keys[i]
			if weights != nil {
				d *= float64(weights[i])
			}
			keys[i] = min(init[i], d)
		}
	})
	c = 0
	for i, k := range keys {
		if k > keys[c] {
			c = i
		}
	}
	bounded := forceMode != 2 && picks > 1
	var pr prefix
	if bounded {
		pr = principalPrefix(x, n, dim)
		bounded = pr.ok
	}
	bk := make([]float64, t)
	bi := make([]int, t)
	ev := make([]int, t)
	windowEvals, windowSteps := 0, 0
	for len(out) < picks {
		out = append(out, c)
		progress(len(out), picks)
		if len(out) == picks {
			break
		}
		xc := x[c*dim : (c+1)*dim]
		var zc []float32
		if bounded {
			zc = pr.centre(c)
		}
		var wg sync.WaitGroup
		for w := 0; w < t; w++ {
			lo, hi := w*n/t, (w+1)*n/t
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				if bounded {
					bk[w], bi[w], ev[w] = boundedStep(x, dim, xc, pr.z, zc, pr.eps, keys, lo, hi-lo)
				} else {
					bk[w], bi[w] = step(x, dim, xc, keys, lo, hi-lo)
				}
			}(w)
		}
		wg.Wait()
		c = bi[0]
		best := bk[0]
		evals := ev[0]
		for w := 1; w < t; w++ {
			if bk[w] > best {
				best, c = bk[w], bi[w]
			}
			evals += ev[w]
		}
		if bounded && forceMode == 0 {
			// Judged over windows of steps: the first steps, whose keys are
			// still large, often compute most distances even where the
			// bound prunes 99% later on.
			windowEvals += evals
			if windowSteps++; windowSteps == fallbackWindow {
				bounded = windowEvals <= fallbackWindow*n/2
				windowEvals, windowSteps = 0, 0
			}
		}
	}
	return out
}

// fallbackWindow is the number of selection steps over which run judges
// the bounded pass: when they computed more than half of all distances on
// average, the remaining steps compute them all without the bound.
const fallbackWindow = 32

// RunSteps is the CPU's selection loop that Greedy.Steps replaces: the
// picks selections from the projected points x [len(init)][dim], given the
// initial keys and the weights (nil: all 1).
func RunSteps(x []float32, dim int, init []float64, weights []float32, picks int) []int {
	return run(x, dim, init, weights, picks, nil)
}

// forceMode is for tests: 0 chooses between the bounded and the plain pass
// automatically, 1 always bounds, 2 never does.
var forceMode = 0
