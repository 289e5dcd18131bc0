package detector

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/softpatch/softpatch/engine/coreset"
	"github.com/softpatch/softpatch/engine/denoise"
	"github.com/softpatch/softpatch/engine/knn"
)

func randFeats(r *rand.Rand, n int) []float32 {
	f := make([]float32, n)
	for i := range f {
		f[i] = float32(r.NormFloat64())
	}
	return f
}

// bruteGreedy is the approximate greedy coreset written out plainly
// (float64, docs/method.md#41-approximate-greedy-coreset): mean-distance
// initial keys over the start points, then repeated argmax (first index on
// ties) and min-update.
func bruteGreedy(x []float32, n, dim int, starts []int, picks int, w []float32, strict bool) []int {
	dist := func(a, b int) float64 {
		s := 0.0
		for c := 0; c < dim; c++ {
			d := float64(x[a*dim+c]) - float64(x[b*dim+c])
			s += d * d
		}
		return math.Sqrt(s)
	}
	key := make([]float64, n)
	for i := range key {
		for _, s := range starts {
			key[i] += dist(i, s)
		}
		key[i] /= float64(len(starts))
		if strict {
			key[i] *= float64(w[i])
		}
	}
	var out []int
	for len(out) < picks {
		c := 0
		for i := range key {
			if key[i] > key[c] {
				c = i
			}
		}
		out = append(out, c)
		for i := range key {
			d := dist(i, c)
			if w != nil {
				d *= float64(w[i])
			}
			key[i] = min(key[i], d)
		}
	}
	return out
}

// bruteNearest returns the nearest bank entry of q and its squared distance
// in float64.
func bruteNearest(bank []float32, n, d int, q []float32) (int, float64) {
	best, bi := math.Inf(1), -1
	for j := 0; j < n; j++ {
		s := 0.0
		for c := 0; c < d; c++ {
			v := float64(q[c]) - float64(bank[j*d+c])
			s += v * v
		}
		if s < best {
			best, bi = s, j
		}
	}
	return bi, best
}

func checkScores(t *testing.T, m *Model, test []float32, nImages, positions int) []float32 {
	t.Helper()
	got := make([]float32, nImages*positions)
	if err := m.Score(got, test, nImages, positions); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		j, want := bruteNearest(m.Bank, m.N, m.D, test[i*m.D:(i+1)*m.D])
		if m.Weights != nil {
			want *= float64(m.Weights[j])
		}
		if math.Abs(float64(got[i])-want) > 1e-4*(1+want) {
			t.Fatalf("patch %d: score %v, brute force %v", i, got[i], want)
		}
	}
	return got
}

func TestPatchCore(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const nImg, pos, d = 4, 25, 16
	feats := randFeats(r, nImg*pos*d)
	cfg := Config{Coreset: 0.1, Seed: 7}
	m, err := Fit(cfg, feats, nImg, pos, d)
	if err != nil {
		t.Fatal(err)
	}
	n := nImg * pos
	proj := coreset.Project(nil, feats, n, d, coreset.NewProjection(d, 128, cfg.Seed), 128)
	want := bruteGreedy(proj, n, 128, coreset.DrawStartPoints(n, coreset.PatchCoreStarts, cfg.Seed), n/10, nil, false)
	if !slices.Equal(m.Indices, want) {
		t.Fatalf("indices %v, brute force %v", m.Indices, want)
	}
	if m.N != 10 || m.D != d || m.Weights != nil {
		t.Fatalf("N=%d D=%d weights=%v", m.N, m.D, m.Weights)
	}
	for j, i := range m.Indices {
		if !slices.Equal(m.Bank[j*d:(j+1)*d], feats[i*d:(i+1)*d]) {
			t.Fatalf("bank entry %d is not training patch %d", j, i)
		}
	}
	test := randFeats(r, 3*pos*d)
	ps := checkScores(t, m, test, 3, pos)
	// A training patch in the bank scores 0.
	z := make([]float32, 1)
	if err := m.Score(z, m.Bank[:d], 1, 1); err != nil || z[0] > 1e-5 {
		t.Fatalf("bank entry scores %v (%v)", z[0], err)
	}
	img := ImageScores(ps, 3, pos)
	for i, v := range img {
		if v != slices.Max(ps[i*pos:(i+1)*pos]) {
			t.Fatalf("image %d: %v", i, v)
		}
	}
}

func TestPatchCoreRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const nImg, pos, d = 5, 30, 8
	feats := randFeats(r, nImg*pos*d)
	m, err := Fit(Config{Random: true, Coreset: 0.1, Seed: 9}, feats, nImg, pos, d)
	if err != nil {
		t.Fatal(err)
	}
	g := coreset.Greedy{Ratio: 0.1}
	if m.N != g.Picks(nImg*pos) || m.N != 15 {
		t.Fatalf("bank size %d, coreset size %d", m.N, g.Picks(nImg*pos))
	}
	if !slices.Equal(m.Indices, coreset.Random(nImg*pos, 15, 9)) {
		t.Fatalf("indices %v", m.Indices)
	}
	s := slices.Clone(m.Indices)
	slices.Sort(s)
	if len(slices.Compact(s)) != 15 {
		t.Fatal("repeated indices")
	}
	checkScores(t, m, randFeats(r, 2*pos*d), 2, pos)
}

// plantedFeats returns inlier features around a per-position centre and
// two far outlier patches, image 3 at position 1 and image 7 at position 2.
func plantedFeats(r *rand.Rand, nImg, pos, d int) ([]float32, []int) {
	f := make([]float32, nImg*pos*d)
	centre := randFeats(r, pos*d)
	for i := 0; i < nImg; i++ {
		for p := 0; p < pos; p++ {
			for c := 0; c < d; c++ {
				f[(i*pos+p)*d+c] = 5*centre[p*d+c] + 0.3*float32(r.NormFloat64())
			}
		}
	}
	out := []int{3*pos + 1, 7*pos + 2}
	for _, o := range out {
		for c := 0; c < d; c++ {
			f[o*d+c] += 40
		}
	}
	return f, out
}

// TestSoftPatchExcludes checks that the planted outliers get sampling
// weight 0 and, with the published quirk, can only enter the bank as the
// very first selection (they have the largest initial keys, so one of
// them does); with StrictExclusion none does. It also checks the
// discriminator scores, threshold and soft weights against a recomputation.
func TestSoftPatchExcludes(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const nImg, pos, d = 20, 4, 8
	feats, planted := plantedFeats(r, nImg, pos, d)
	for _, method := range []denoise.Discriminator{denoise.Nearest, denoise.Gaussian, denoise.LOF} {
		for _, strict := range []bool{false, true} {
			cfg := Config{Coreset: 0.25, Threshold: 0.15, Discriminator: method,
				LOFK: 5, SoftWeight: true, StrictExclusion: strict, Seed: 11}
			m, err := Fit(cfg, feats, nImg, pos, d)
			if err != nil {
				t.Fatal(err)
			}
			n := nImg * pos
			proj := coreset.Project(nil, feats, n, d, coreset.NewProjection(d, 128, m.DiscriminatorSeed), 128)
			scores, err := denoise.Scores(method, proj, nImg, pos, 128, 5)
			if err != nil {
				t.Fatal(err)
			}
			q := float32(Quantile(scores, 0.85))
			if float64(q) != m.ScoreThreshold {
				t.Fatalf("%s: threshold %v, want %v", method, m.ScoreThreshold, q)
			}
			w := make([]float32, n)
			excl := 0
			for i, s := range scores {
				if s > q {
					excl++
				} else {
					w[i] = 1
				}
			}
			if excl != m.Excluded || excl != 12 {
				t.Fatalf("%s: excluded %d, want %d (12)", method, m.Excluded, excl)
			}
			for _, o := range planted {
				if w[o] != 0 {
					t.Fatalf("%s: planted outlier %d not excluded (score %v, q %v)", method, o, scores[o], q)
				}
			}
			if m.N != n/4 {
				t.Fatalf("bank size %d", m.N)
			}
			for j, i := range m.Indices {
				if w[i] == 0 && (strict || j > 0) {
					t.Fatalf("%s strict=%v: excluded patch %d selected at %d", method, strict, i, j)
				}
				if m.Weights[j] != max(scores[i], 0) {
					t.Fatalf("soft weight %d: %v, want %v", j, m.Weights[j], scores[i])
				}
			}
			if !strict && !slices.Contains(planted, m.Indices[0]) {
				t.Fatalf("%s: first pick %d, expected a planted outlier (the quirk)", method, m.Indices[0])
			}
			// The selection equals the brute-force weighted greedy.
			cproj := coreset.Project(nil, feats, n, d, coreset.NewProjection(d, 128, m.CoresetSeed), 128)
			starts := coreset.DrawStartPoints(n, coreset.SoftPatchStarts, m.CoresetSeed)
			want := bruteGreedy(cproj, n, 128, starts, n/4, w, strict)
			if !slices.Equal(m.Indices, want) {
				t.Fatalf("%s: indices %v, brute force %v", method, m.Indices, want)
			}
		}
	}
}

// TestSoftWeights checks that soft weights multiply the squared distance
// by the nearest entry's weight, and that turning them off keeps the
// filtered bank.
func TestSoftWeights(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const nImg, pos, d = 12, 6, 16
	feats, _ := plantedFeats(r, nImg, pos, d)
	cfg := Config{Coreset: 0.2, Threshold: 0.15, Discriminator: denoise.LOF, LOFK: 5, SoftWeight: true, Seed: 3}
	on, err := Fit(cfg, feats, nImg, pos, d)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SoftWeight = false
	off, err := Fit(cfg, feats, nImg, pos, d)
	if err != nil {
		t.Fatal(err)
	}
	if off.Weights != nil || !slices.Equal(on.Indices, off.Indices) || !slices.Equal(on.Bank, off.Bank) {
		t.Fatal("soft weights changed the bank")
	}
	test := randFeats(r, 2*pos*d)
	for i := range test {
		test[i] = feats[i] + 0.5*test[i]
	}
	son := checkScores(t, on, test, 2, pos)
	soff := checkScores(t, off, test, 2, pos)
	for i := range son {
		j, _ := bruteNearest(on.Bank, on.N, d, test[i*d:(i+1)*d])
		if son[i] != soff[i]*on.Weights[j] {
			t.Fatalf("patch %d: %v != %v * %v", i, son[i], soff[i], on.Weights[j])
		}
	}
}

func TestFitErrors(t *testing.T) {
	f := make([]float32, 2*3*4)
	for _, c := range []struct {
		cfg        Config
		n, p, d, l int
	}{
		{Config{Random: true, Coreset: 0.1, Discriminator: denoise.LOF}, 2, 3, 4, 24},
		{Config{Coreset: 0}, 2, 3, 4, 24},
		{Config{Coreset: 1}, 2, 3, 4, 24},
		{Config{Coreset: 0.5}, 2, 3, 5, 24},
		{Config{Coreset: 0.5, Threshold: 1, Discriminator: denoise.LOF}, 2, 3, 4, 24},
		{Config{Coreset: 0.5, Threshold: 0.1, Discriminator: denoise.LOF}, 1, 6, 4, 24},
	} {
		if _, err := Fit(c.cfg, f[:c.l], c.n, c.p, c.d); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	m, err := Fit(Config{Coreset: 0.5}, randFeats(rand.New(rand.NewPCG(1, 1)), 24), 2, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Score(make([]float32, 6), make([]float32, 23), 2, 3); err == nil {
		t.Error("short features: no error")
	}
	if err := m.Score(make([]float32, 5), make([]float32, 24), 2, 3); err == nil {
		t.Error("short dst: no error")
	}
}

// BenchmarkMap is one anomaly map at 224 px from a 28x28 patch grid
// (bilinear upsampling and the sigma-4 Gaussian).
func BenchmarkMap(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	patch := randFeats(r, 28*28)
	dst := make([]float32, 224*224)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Map(dst, patch, 28, 28, 224)
	}
}

// countingSearcher is a Searcher on the CPU index that counts its calls.
type countingSearcher struct {
	ix    *knn.Index
	calls int
}

func (s *countingSearcher) Search1(dist []float32, idx []int32, q []float32, nq int, budget int64) error {
	s.calls++
	return s.ix.Search(dist, idx, q, nq, 1, int(budget))
}

// TestUseSearcher checks that Score goes through a Searcher set by
// UseSearcher (a GPU's, in the binary) and applies the soft weights to its
// results as to the CPU index's.
func TestUseSearcher(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	const nImg, pos, dim = 5, 9, 16
	m, err := Fit(Config{Coreset: 0.3, Threshold: 0.15, Discriminator: denoise.LOF, LOFK: 3, SoftWeight: true, Seed: 1},
		randFeats(r, nImg*pos*dim), nImg, pos, dim)
	if err != nil {
		t.Fatal(err)
	}
	test := randFeats(r, 2*pos*dim)
	want := make([]float32, 2*pos)
	if err := m.Score(want, test, 2, pos); err != nil {
		t.Fatal(err)
	}
	s := &countingSearcher{ix: knn.NewIndex(m.Bank, m.N, m.D)}
	m.UseSearcher(s)
	got := make([]float32, 2*pos)
	if err := m.Score(got, test, 2, pos); err != nil {
		t.Fatal(err)
	}
	if s.calls != 1 || !slices.Equal(got, want) {
		t.Errorf("searcher called %d times; scores %v, want %v", s.calls, got, want)
	}
}
