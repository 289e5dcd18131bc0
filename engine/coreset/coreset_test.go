package coreset

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/softpatch/softpatch/internal/numtest"
)

// brute is the published loop transcribed literally: one pass over all
// points per selection, key = min(key, weight * distance), argmax with the
// first index on ties. It is what run must equal exactly.
func brute(x []float32, dim int, init []float64, weights []float32, picks int) []int {
	n := len(init)
	key := slices.Clone(init)
	out := make([]int, 0, picks)
	for len(out) < picks {
		c := 0
		for i := range key {
			if key[i] > key[c] {
				c = i
			}
		}
		out = append(out, c)
		xc := x[c*dim : (c+1)*dim]
		for i := 0; i < n; i++ {
			d := dist(x[i*dim:(i+1)*dim], xc)
			if weights != nil {
				d *= float64(weights[i])
			}
			key[i] = min(key[i], d)
		}
	}
	return out
}

func randFeatures(r *rand.Rand, n, d, clusters int, dup bool) []float32 {
	cs := make([]float64, clusters*d)
	for i := range cs {
		cs[i] = r.NormFloat64() * 3
	}
	x := make([]float32, n*d)
	for i := 0; i < n; i++ {
		c := r.IntN(clusters)
		s := 0.2 + r.Float64()
		for j := 0; j < d; j++ {
			x[i*d+j] = float32(cs[c*d+j] + r.NormFloat64()*s)
		}
	}
	if dup { // exact duplicates and a coarse grid make ties
		for i := 0; i < n/10; i++ {
			copy(x[r.IntN(n)*d:][:d], x[r.IntN(n)*d:][:d])
		}
		for i := 0; i < n/10; i++ {
			k := r.IntN(n)
			for j := 0; j < d; j++ {
				x[k*d+j] = float32(math.Round(float64(x[k*d+j])))
			}
		}
	}
	return x
}

// TestRunEqualsBrute checks the pruned, parallel selection against the
// literal loop on data with clusters, duplicates and ties, with and without
// weights, strict or not, up to every point selected and beyond.
func TestRunEqualsBrute(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 24; trial++ {
		n := 50 + r.IntN(1500)
		dim := []int{1, 3, 8, 17, 128}[trial%5]
		x := randFeatures(r, n, dim, 1+r.IntN(20), trial%3 == 0)
		if trial%7 == 6 { // a large common offset: the bound's rounding slack matters
			for i := range x {
				x[i] += 1000
			}
		}
		var w []float32
		if trial%2 == 1 {
			w = make([]float32, n)
			for i := range w {
				if r.Float64() < 0.8 {
					w[i] = 1
				}
			}
		}
		strict := trial%4 == 3
		picks := []int{n / 10, n / 2, n + 5}[trial%3]
		starts := DrawStartPoints(n, 1+r.IntN(130), uint64(trial))
		init := meanKeys(x, n, dim, starts)
		if strict {
			for i := range init {
				init[i] *= float64(w[i])
			}
		}
		want := brute(x, dim, init, w, picks)
		for mode := 0; mode < 3; mode++ {
			forceMode = mode
			calls := 0
			got := run(x, dim, init, w, picks, func(done, total int) {
				calls++
				if done != calls || total != picks {
					t.Fatalf("progress(%d, %d) at call %d of %d", done, total, calls, picks)
				}
			})
			forceMode = 0
			if calls != picks {
				t.Fatalf("progress called %d times for %d picks", calls, picks)
			}
			if !slices.Equal(got, want) {
				i := 0
				for got[i] == want[i] {
					i++
				}
				t.Fatalf("trial %d (n=%d dim=%d picks=%d weighted=%v strict=%v): first difference at pick %d: %d vs %d",
					trial, n, dim, picks, w != nil, strict, i, got[i], want[i])
			}
		}
	}
}

// TestKernels checks that every distance kernel computes the bits of dist.
func TestKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	top := kernel
	defer func() { kernel = top }()
	for _, dim := range []int{1, 5, 8, 13, 128, 131} {
		x := randFeatures(r, 50, dim, 3, false)
		for k := 0; k <= int(top); k++ {
			kernel = _Ctype_int(k)
			out := make([]float64, 50)
			dists(x, dim, x[:dim], nil, 0, out)
			for i := range out {
				if want := dist(x[i*dim:(i+1)*dim], x[:dim]); out[i] != want {
					t.Fatalf("kernel %d dim %d row %d: %v vs %v", k, dim, i, out[i], want)
				}
			}
		}
	}
}

// TestFullAndPlain checks the Full (GreedyCoresetSampler) keys and the
// unprojected path against the literal loop.
func TestFullAndPlain(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	n, d := 300, 5
	x := randFeatures(r, n, d, 4, false)
	g := Greedy{Ratio: 0.2, Full: true, NoProjection: true}
	got, err := g.Select(x, n, d)
	if err != nil {
		t.Fatal(err)
	}
	init := make([]float64, n)
	for i := range init {
		s := 0.0
		for j := 0; j < n; j++ {
			dd := dist(x[i*d:(i+1)*d], x[j*d:(j+1)*d])
			s += dd * dd
		}
		init[i] = math.Sqrt(s)
	}
	if want := brute(x, d, init, nil, 60); !slices.Equal(got, want) {
		t.Fatalf("full: %v vs %v", got, want)
	}
}

// TestSelectProjectedMatchesSelect checks that streaming callers get the
// same selection from their own projections, and the seeded draws.
func TestSelectProjectedMatchesSelect(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	n, d := 700, 40
	x := randFeatures(r, n, d, 6, false)
	g := Greedy{Ratio: 0.1, Seed: 9, Starts: SoftPatchStarts}
	a, err := g.Select(x, n, d)
	if err != nil {
		t.Fatal(err)
	}
	p := Project(nil, x, n, d, NewProjection(d, DefaultDim, 9), DefaultDim)
	b, err := g.SelectProjected(p, n, DefaultDim)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, b) || len(a) != 70 {
		t.Fatalf("Select %v vs SelectProjected %v", a, b)
	}
	pr := NewProjection(1024, 128, 1)
	bound := float32(1 / math.Sqrt(1024))
	lo, hi := float32(1), float32(-1)
	for _, v := range pr {
		lo, hi = min(lo, v), max(hi, v)
	}
	if lo < -bound || hi > bound || lo > -0.99*bound || hi < 0.99*bound {
		t.Errorf("projection range [%v, %v], want +-%v", lo, hi, bound)
	}
	for _, s := range [][]int{DrawStartPoints(1000, 128, 3), Random(1000, 1000, 4), Random(50, 10, 5)} {
		seen := map[int]bool{}
		for _, i := range s {
			if seen[i] || i < 0 {
				t.Fatalf("repeated or negative index in %v", s)
			}
			seen[i] = true
		}
	}
	if !slices.Equal(Random(100, 10, 7), Random(100, 10, 7)) || slices.Equal(Random(100, 10, 7), Random(100, 10, 8)) {
		t.Error("Random is not seeded")
	}
	if len(DrawStartPoints(5, 10, 1)) != 5 {
		t.Error("start points not clipped to n")
	}
}

// TestErrors checks argument validation.
func TestErrors(t *testing.T) {
	x := make([]float32, 20)
	for _, g := range []Greedy{
		{Ratio: 0}, {Ratio: 1}, {Ratio: 0.5, Weights: []float32{1}},
		{Ratio: 0.5, Weights: []float32{0.5, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{Ratio: 0.5, StartPoints: []int{1, 1}}, {Ratio: 0.5, StartPoints: []int{10}},
		{Ratio: 0.5, Projection: []float32{1}},
	} {
		if _, err := g.Select(x, 10, 2); err == nil {
			t.Errorf("%+v: no error", g)
		}
	}
	if _, err := (Greedy{Ratio: 0.5}).Select(x, 3, 2); err == nil {
		t.Error("length mismatch: no error")
	}
}

type goldenCase struct {
	Starts  []int     `json:"starts"`
	Weights []float32 `json:"weights"`
	Indices []int     `json:"indices"`
}

// TestGolden compares index for index with the published sampler run by
// testdata/gen_golden.py, given the projection and start points it drew:
// PatchCore's ApproximateGreedyCoresetSampler (10 start points) and
// SoftPatch's WeightedGreedyCoresetSampler (128 start points, 15% of the
// weights 0, whose first selection is an excluded point).
func TestGolden(t *testing.T) {
	var g struct {
		N, D, Dim int
		Ratio     float64
		Scale     float32
		PatchCore goldenCase `json:"patchcore"`
		SoftPatch goldenCase `json:"softpatch"`
	}
	b, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	q, err := os.ReadFile("testdata/features.i8")
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, len(q))
	for i, v := range q {
		x[i] = float32(int8(v)) / g.Scale
	}
	for _, c := range []struct {
		name string
		gc   goldenCase
		proj string
	}{{"patchcore", g.PatchCore, "patchcore_proj.f32"}, {"softpatch", g.SoftPatch, "softpatch_proj.f32"}} {
		sel := Greedy{Ratio: g.Ratio, Dim: g.Dim, Projection: numtest.ReadFloat32File(t, filepath.Join("testdata", c.proj)), StartPoints: c.gc.Starts, Weights: c.gc.Weights}
		got, err := sel.Select(x, g.N, g.D)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, c.gc.Indices) {
			t.Errorf("%s: got %v\nwant %v", c.name, got, c.gc.Indices)
		}
		if c.gc.Weights != nil {
			if c.gc.Weights[got[0]] != 0 {
				t.Errorf("%s: the golden set should show the first-pick quirk", c.name)
			}
			sel.StrictExclusion = true
			strict, err := sel.Select(x, g.N, g.D)
			if err != nil {
				t.Fatal(err)
			}
			for _, i := range strict {
				if c.gc.Weights[i] == 0 {
					t.Errorf("%s strict: excluded point %d selected", c.name, i)
				}
			}
		}
	}
}

// TestBoundPrunes checks that on data whose variance lies in a few
// directions (as real patch features' does) the bounded pass computes few
// distances, and that its keys equal the plain pass's.
func TestBoundPrunes(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	const n, dim = 4000, 64
	x := make([]float32, n*dim)
	for i := 0; i < n; i++ {
		a, b := r.NormFloat64()*10, r.NormFloat64()*5
		for j := 0; j < dim; j++ {
			x[i*dim+j] = float32(a*math.Sin(float64(j)) + b*math.Cos(float64(3*j)) + 0.05*r.NormFloat64())
		}
	}
	pr := principalPrefix(x, n, dim)
	top := kernel
	defer func() { kernel = top }()
	for kern := 0; kern <= int(top); kern++ {
		kernel = _Ctype_int(kern)
		keys := make([]float64, n)
		for i := range keys {
			keys[i] = math.Inf(1)
		}
		plain := slices.Clone(keys)
		evals := 0
		rs := rand.New(rand.NewPCG(11, 12))
		for s := 0; s < 200; s++ {
			c := rs.IntN(n)
			xc := x[c*dim : (c+1)*dim]
			lo := s % 13 // unaligned ranges too
			bk, bi, ev := boundedStep(x, dim, xc, pr.z, pr.centre(c), pr.eps, keys, lo, n-lo)
			pk, pi := step(x, dim, xc, plain, lo, n-lo)
			if bk != pk || bi != pi {
				t.Fatalf("kernel %d step %d: best %v at %d, plain pass %v at %d", kern, s, bk, bi, pk, pi)
			}
			if s >= 100 {
				evals += ev
			}
		}
		if !slices.Equal(keys, plain) {
			t.Fatalf("kernel %d: bounded keys differ from the plain pass's", kern)
		}
		if evals > 100*n/10 {
			t.Errorf("kernel %d: bounded pass computed %d distances in 100 steps over %d points", kern, evals, n)
		}
	}
}

// TestRunNonFinite checks that features the bound cannot handle (a NaN, an
// infinity, values near the float32 range) give the plain pass's
// selection.
func TestRunNonFinite(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	const n, dim = 600, 16
	for _, bad := range []func(x []float32){
		func(x []float32) { x[5*dim+3] = float32(math.NaN()) },
		func(x []float32) { x[7*dim] = float32(math.Inf(1)) },
		func(x []float32) {
			for i := range x {
				x[i] *= 1e19
			}
		},
	} {
		x := randFeatures(r, n, dim, 4, false)
		bad(x)
		starts := DrawStartPoints(n, 10, 1)
		init := meanKeys(x, n, dim, starts)
		forceMode = 2
		want := run(x, dim, init, nil, 60, nil)
		forceMode = 0
		got := run(x, dim, init, nil, 60, nil)
		if !slices.Equal(got, want) {
			t.Errorf("bounded %v, plain %v", got[:8], want[:8])
		}
	}
}

// TestSteps checks the Steps hook: RunSteps as Steps gives the selection
// of the built-in loop, and Steps receives the initial keys and weights.
func TestSteps(t *testing.T) {
	r := rand.New(rand.NewPCG(51, 52))
	n, dim := 3000, 16
	x := make([]float32, n*dim)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	w := make([]float32, n)
	for i := range w {
		w[i] = float32(i % 2)
	}
	g := Greedy{Ratio: 0.05, Seed: 3, Weights: w}
	want, err := g.SelectProjected(x, n, dim)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	g.Steps = func(x []float32, dim int, init []float64, weights []float32, picks int) ([]int, error) {
		calls++
		if len(init) != n || len(weights) != n || picks != 150 {
			t.Errorf("Steps got %d keys, %d weights, %d picks", len(init), len(weights), picks)
		}
		return RunSteps(x, dim, init, weights, picks), nil
	}
	got, err := g.SelectProjected(x, n, dim)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 || !slices.Equal(got, want) {
		t.Errorf("Steps called %d times; selections differ", calls)
	}
}
