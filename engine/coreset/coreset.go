package coreset

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"

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

// Greedy configures an approximate greedy coreset selection (SOFTPATCH.md
// sections 4 and 5.5). The zero values of Dim and Starts mean DefaultDim and
// PatchCoreStarts.
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
	// (SOFTPATCH.md 5.5); nil means all 1.
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

// margin is the relative safety margin of the triangle-inequality skips;
// the float64 distances are exact to about 1e-14 relative.
const margin = 1 + 1e-9

// member is a point in a centre's cluster: its index, its distance a to the
// centre and its current key k (0 < k; k <= a after the first selection).
type member struct {
	idx  int32
	a, k float64
}

// cluster is the set of points assigned to one selected centre, with the
// maximum of a+k over the members (the skip bound) and the largest key with
// the smallest index holding it.
type cluster struct {
	centre  int
	members []member
	bound   float64
	best    float64
	bestIdx int32
}

// refresh recomputes the cluster's bound and best key.
func (c *cluster) refresh() {
	c.bound, c.best, c.bestIdx = 0, 0, math.MaxInt32
	for _, m := range c.members {
		if s := m.a + m.k; s > c.bound {
			c.bound = s
		}
		if m.k > c.best || (m.k == c.best && m.idx < c.bestIdx) {
			c.best, c.bestIdx = m.k, m.idx
		}
	}
}

// better reports whether key k at index i beats the current best (larger
// key, or the same key at a smaller index: torch.argmax's first index).
func better(k float64, i int32, bk float64, bi int32) bool {
	return k > bk || (k == bk && i < bi)
}

// worker holds one goroutine's buffers for a selection step.
type worker struct {
	cent   []int32   // centres of the worker's clusters
	dc     []float64 // their distances to the new centre
	cand   []int32   // points whose distance must be computed
	dv     []float64 // those distances
	moved  []member  // members that move to the new centre's cluster
	lo, hi int       // the worker's range of clusters
	evals  int       // distances computed for members
}

// step applies the new centre c to clusters[w.lo:w.hi].
func (w *worker) step(x []float32, dim int, xc []float32, clusters []*cluster) {
	cls := clusters[w.lo:w.hi]
	w.cent = w.cent[:0]
	for _, cl := range cls {
		w.cent = append(w.cent, int32(cl.centre))
	}
	w.dc = grow(w.dc, len(cls))
	dists(x, dim, xc, w.cent, 0, w.dc)
	w.cand = w.cand[:0]
	for ci, cl := range cls {
		dc := w.dc[ci]
		if dc >= cl.bound*margin {
			continue
		}
		for _, m := range cl.members {
			if dc < (m.a+m.k)*margin {
				w.cand = append(w.cand, m.idx)
			}
		}
	}
	w.evals += len(w.cand)
	w.dv = grow(w.dv, len(w.cand))
	dists(x, dim, xc, w.cand, 0, w.dv)
	w.moved = w.moved[:0]
	next := 0
	for ci, cl := range cls {
		dc := w.dc[ci]
		if dc >= cl.bound*margin {
			continue
		}
		keep := cl.members[:0]
		for _, m := range cl.members {
			if dc >= (m.a+m.k)*margin {
				keep = append(keep, m)
				continue
			}
			d := w.dv[next]
			next++
			if d < m.k {
				m.k = d
			}
			switch {
			case m.k == 0:
				// Key 0 for good (never increases): drop.
			case d < m.a:
				m.a = d
				w.moved = append(w.moved, m)
			default:
				keep = append(keep, m)
			}
		}
		cl.members = keep
		cl.refresh()
	}
}

func grow(b []float64, n int) []float64 {
	if cap(b) < n {
		return make([]float64, n, 2*n)
	}
	return b[:n]
}

// run performs the selections from the initial keys; weights (nil or 0/1)
// multiply the distances before the min.
func run(x []float32, dim int, init []float64, weights []float32, picks int, progress func(done, total int)) []int {
	if progress == nil {
		progress = func(int, int) {}
	}
	n := len(init)
	out := make([]int, 0, picks)
	// First selection: argmax of the initial keys, then a full pass.
	c := 0
	for i, k := range init {
		if k > init[c] {
			c = i
		}
	}
	out = append(out, c)
	progress(len(out), picks)
	xc := x[c*dim : (c+1)*dim]
	first := &cluster{centre: c}
	t := compute.Threads()
	parts := make([][]member, t)
	parallelIdx(n, 4096, t, func(w, lo, hi int) {
		buf := make([]float64, hi-lo)
		dists(x, dim, xc, nil, lo, buf)
		for i := lo; i < hi; i++ {
			d := buf[i-lo]
			wd := d
			if weights != nil {
				wd = d * float64(weights[i])
			}
			if k := min(init[i], wd); k > 0 {
				parts[w] = append(parts[w], member{int32(i), d, k})
			}
		}
	})
	for _, p := range parts {
		first.members = append(first.members, p...)
	}
	first.refresh()
	clusters := []*cluster{first}
	if len(first.members) == 0 {
		clusters = clusters[:0]
	}
	workers := make([]worker, t)
	for len(out) < picks {
		if denseSwitch(workers, n) {
			return dense(x, dim, n, clusters, out, picks, t, progress)
		}
		// Global argmax over the clusters' best keys.
		bk, bi := 0.0, int32(math.MaxInt32)
		for _, cl := range clusters {
			if better(cl.best, cl.bestIdx, bk, bi) {
				bk, bi = cl.best, cl.bestIdx
			}
		}
		if bk <= 0 {
			// Every key is 0: argmax is index 0, and nothing changes.
			out = append(out, 0)
			progress(len(out), picks)
			continue
		}
		c = int(bi)
		out = append(out, c)
		progress(len(out), picks)
		xc := x[c*dim : (c+1)*dim]
		nc := len(clusters)
		nw := 1
		if nc >= 64 {
			nw = t
		}
		var wg sync.WaitGroup
		for w := range workers {
			workers[w].evals = 0
		}
		for w := 0; w < nw; w++ {
			workers[w].lo, workers[w].hi = w*nc/nw, (w+1)*nc/nw
			if w == nw-1 {
				workers[w].step(x, dim, xc, clusters)
				continue
			}
			wg.Add(1)
			go func(w *worker) {
				defer wg.Done()
				w.step(x, dim, xc, clusters)
			}(&workers[w])
		}
		wg.Wait()
		// Drop empty clusters, add the new centre's.
		kept := clusters[:0]
		for _, cl := range clusters {
			if len(cl.members) > 0 {
				kept = append(kept, cl)
			}
		}
		clusters = kept
		ncl := &cluster{centre: c}
		for w := 0; w < nw; w++ {
			ncl.members = append(ncl.members, workers[w].moved...)
		}
		if len(ncl.members) > 0 {
			ncl.refresh()
			clusters = append(clusters, ncl)
		}
	}
	return out
}

// parallelIdx runs fn over chunks of [0, n) of the given size on t
// goroutines, passing the goroutine's number.
func parallelIdx(n, chunk, t int, fn func(w, lo, hi int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < t; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				lo := int(next.Add(int64(chunk))) - chunk
				if lo >= n {
					return
				}
				fn(w, lo, min(lo+chunk, n))
			}
		}(w)
	}
	wg.Wait()
}

// forceMode is for tests: 0 chooses the dense pass automatically, 1 never
// switches to it, 2 switches right after the first selection.
var forceMode = 0

// denseSwitch reports whether the last step computed the distances of more
// than half of all points: the bounds do not prune on such data (for
// example high-dimensional isotropic noise, where all distances are alike),
// and the streaming pass of dense is faster than the cluster bookkeeping.
func denseSwitch(workers []worker, n int) bool {
	switch forceMode {
	case 1:
		return false
	case 2:
		return true
	}
	e := 0
	for _, w := range workers {
		e += w.evals
	}
	return e > n/2
}

// dense finishes the selection with the published loop, one streaming pass
// over all points per selection (keys that are 0 stay 0 and are skipped),
// starting from the keys held by the clusters.
func dense(x []float32, dim, n int, clusters []*cluster, out []int, picks, t int, progress func(done, total int)) []int {
	keys := make([]float64, n)
	for _, cl := range clusters {
		for _, m := range cl.members {
			keys[m.idx] = m.k
		}
	}
	bk := make([]float64, t)
	bi := make([]int, t)
	// Argmax of the current keys.
	c := 0
	for i, k := range keys {
		if k > keys[c] {
			c = i
		}
	}
	for len(out) < picks {
		out = append(out, c)
		progress(len(out), picks)
		if len(out) == picks {
			break
		}
		xc := x[c*dim : (c+1)*dim]
		var wg sync.WaitGroup
		for w := 0; w < t; w++ {
			lo, hi := w*n/t, (w+1)*n/t
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				bk[w], bi[w] = step(x, dim, xc, keys, lo, hi-lo)
			}(w)
		}
		wg.Wait()
		c = bi[0]
		best := bk[0]
		for w := 1; w < t; w++ {
			if bk[w] > best {
				best, c = bk[w], bi[w]
			}
		}
	}
	return out
}
