package knn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// clustered returns n rows of dimension d drawn around centres that vary
// mostly in a few directions (as real patch features do): a low-rank
// signal with a decaying spectrum plus small isotropic noise, shifted by a
// common offset.
func clustered(r *rand.Rand, n, d, centres int) []float32 {
	const rank = 12
	dirs := make([]float64, rank*d)
	for i := range dirs {
		dirs[i] = r.NormFloat64() / math.Sqrt(float64(d))
	}
	cs := make([]float64, centres*rank)
	for i := range cs {
		cs[i] = r.NormFloat64() * 6 / float64(1+i%rank)
	}
	x := make([]float32, n*d)
	for i := range n {
		c := cs[r.IntN(centres)*rank:]
		for j := range d {
			v := 3 + 0.05*r.NormFloat64()
			for t := range rank {
				v += (c[t] + 0.3*r.NormFloat64()/float64(1+t)) * dirs[t*d+j] * math.Sqrt(float64(d))
			}
			x[i*d+j] = float32(v)
		}
	}
	return x
}

// searchBoth runs the brute force and the pruned search (mode Pruned) on
// the same data and fails unless every distance and index is identical,
// bit for bit. It returns the pruned index's Stats.
func searchBoth(t *testing.T, bank, queries []float32, n, nq, d, k int) Stats {
	t.Helper()
	want := NewIndex(bank, n, d)
	wd, wi := make([]float32, nq*k), make([]int32, nq*k)
	if err := want.Search(wd, wi, queries, nq, k, 0); err != nil {
		t.Fatal(err)
	}
	ix := prunedIndex(t, bank, n, d, Pruned)
	gd, gi := make([]float32, nq*k), make([]int32, nq*k)
	if err := ix.Search(gd, gi, queries, nq, k, 0); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for i := range wd {
		if math.Float32bits(wd[i]) != math.Float32bits(gd[i]) || wi[i] != gi[i] {
			if bad++; bad <= 5 {
				t.Errorf("query %d rank %d: pruned (%d, %v), brute force (%d, %v)", i/k, i%k, gi[i], gd[i], wi[i], wd[i])
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d results differ (n=%d nq=%d d=%d k=%d)", bad, len(wd), n, nq, d, k)
	}
	return ix.Stats()
}

func TestPrunedMatchesBruteClustered(t *testing.T) {
	for _, c := range []struct{ n, nq, d, k int }{
		{3000, 300, 96, 1},
		{3000, 300, 96, 4},
		{2500, 200, 77, 1}, // dims not a multiple of 8 or of the GEMM's blocks
		{1500, 130, 300, 2},
	} {
		r := rand.New(rand.NewPCG(uint64(c.n), uint64(c.d)))
		bank := clustered(r, c.n+c.nq, c.d, 40)
		st := searchBoth(t, bank[:c.n*c.d], bank[c.n*c.d:], c.n, c.nq, c.d, c.k)
		frac := float64(st.Computed) / float64(st.Pairs)
		t.Logf("n=%d nq=%d d=%d k=%d: %.3f of the distances computed", c.n, c.nq, c.d, c.k, frac)
		if frac > 0.5 {
			t.Errorf("n=%d d=%d k=%d: %.3f of the distances computed, want pruning on clustered data", c.n, c.d, c.k, frac)
		}
	}
}

func TestPrunedMatchesBruteIsotropic(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	n, nq, d := 2100, 150, 64
	bank := randData(r, (n+nq)*d)
	for _, k := range []int{1, 3} {
		searchBoth(t, bank[:n*d], bank[n*d:], n, nq, d, k)
	}
}

// Duplicated bank rows and queries equal to bank rows: ties at 0 and
// elsewhere must resolve to the lower index, as the brute force does.
func TestPrunedTies(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	n, d := 1200, 40
	base := clustered(r, n/3, d, 10)
	bank := make([]float32, 0, n*d)
	for range 3 {
		bank = append(bank, base...)
	}
	nq := 100
	queries := make([]float32, nq*d)
	for i := range nq {
		copy(queries[i*d:(i+1)*d], bank[(i*7%n)*d:])
	}
	for _, k := range []int{1, 2, 5} {
		searchBoth(t, bank, queries, n, nq, d, k)
	}
}

// Banks smaller than the principal directions, than the candidates and
// than k.
func TestPrunedTinyBanks(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	d := 70
	for _, n := range []int{1, 2, 3, 9} {
		bank := clustered(r, n+20, d, 3)
		for _, k := range []int{1, 4, 12} {
			searchBoth(t, bank[:n*d], bank[n*d:], n, 20, d, k)
		}
	}
}

// Queries with NaN, infinite or huge values go to the brute force, which
// keeps its semantics for them; the others are still pruned.
func TestPrunedNonFiniteQueries(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	n, nq, d := 2000, 64, 48
	bank := clustered(r, n+nq, d, 20)
	queries := bank[n*d:]
	queries[3*d+5] = float32(math.NaN())
	queries[10*d] = float32(math.Inf(1))
	queries[20*d+1] = 3e30
	queries[30*d+2] = -1e20
	for _, k := range []int{1, 2} {
		searchBoth(t, bank[:n*d], queries, n, nq, d, k)
	}
}

// A bank with a non-finite or huge value has no principal coordinates:
// the index keeps the brute force.
func TestPrincipalRejectsNonFinite(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	n, d := 100, 16
	for _, v := range []float32{float32(math.NaN()), float32(math.Inf(-1)), 1e16} {
		bank := randData(r, n*d)
		bank[37] = v
		if _, err := NewPrincipal(bank, n, d); err == nil {
			t.Errorf("value %v: NewPrincipal gave no error", v)
		}
	}
}

// The bound the pruning rests on: for random pairs, the coarse and fine
// principal bounds never exceed the squared distance (float64 check).
func TestPrincipalBound(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	n, d := 1500, 90
	x := clustered(r, n, d, 30)
	pr := mustPrincipal(t, x, n, d)
	if err := pr.Check(n, d); err != nil {
		t.Fatal(err)
	}
	p := pr.P
	for range 2000 {
		a, b := r.IntN(n), r.IntN(n)
		var dd, fine, coarse float64
		for j := range d {
			e := float64(x[a*d+j]) - float64(x[b*d+j])
			dd += e * e
		}
		for k := range p {
			e := float64(pr.Coords[a*p+k]) - float64(pr.Coords[b*p+k])
			fine += e * e
			if k < CoarseDims {
				coarse += e * e
			}
		}
		e := float64(pr.Resid[2*a+1]) - float64(pr.Resid[2*b+1])
		fine += e * e
		e = float64(pr.Resid[2*a]) - float64(pr.Resid[2*b])
		coarse += e * e
		if slack := 1e-5 * (1 + dd); fine > dd+slack || coarse > dd+slack {
			t.Fatalf("rows %d, %d: bounds %v (fine), %v (coarse) above the squared distance %v", a, b, fine, coarse, dd)
		}
	}
}

// Principal coordinates that do not fit the bank are refused.
func TestPrincipalCheck(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	n, d := 300, 20
	x := clustered(r, n, d, 5)
	pr := mustPrincipal(t, x, n, d)
	ix := NewIndex(x, n, d)
	if err := ix.UsePrincipal(pr, Pruned); err != nil {
		t.Fatal(err)
	}
	if err := NewIndex(x, n-1, d).UsePrincipal(pr, Pruned); err == nil {
		t.Error("principal coordinates of 300 rows accepted for 299")
	}
	bad := *pr
	bad.Basis = append([]float64(nil), pr.Basis...)
	bad.Basis[3] += 0.01
	if err := ix.UsePrincipal(&bad, Pruned); err == nil {
		t.Error("a basis that is not orthonormal was accepted")
	}
}

// Auto leaves banks below minPruneBank to the brute force and gives up
// pruning on isotropic data, computing (nearly) every distance once.
func TestAutoFallsBack(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	n, d := 4096, 256
	bank := randData(r, n*d)
	nq := 4 * chunkQueries
	queries := randData(r, nq*d)
	ix := prunedIndex(t, bank, n, d, Auto)
	dist, idx := make([]float32, nq), make([]int32, nq)
	if err := ix.Search(dist, idx, queries, nq, 1, 0); err != nil {
		t.Fatal(err)
	}
	st := ix.Stats()
	if ix.skip.Load() == 0 || st.Computed > st.Pairs*11/10 {
		t.Errorf("isotropic data: skip %d, computed %d of %d pairs; want the brute force after the first chunk", ix.skip.Load(), st.Computed, st.Pairs)
	}
	small := prunedIndex(t, bank, minPruneBank-1, d, Auto)
	if err := small.Search(dist, idx, queries, 10, 1, 0); err != nil {
		t.Fatal(err)
	}
	if st := small.Stats(); st.Computed != st.Pairs {
		t.Errorf("bank below %d rows: computed %d of %d pairs, want the brute force", minPruneBank, st.Computed, st.Pairs)
	}
}

// The portable C bound kernels keep every row that matters too (they
// round the bounds differently from the AVX2 ones).
func TestPrunedPortableKernels(t *testing.T) {
	defer func(k int) { pruneKernel = k }(pruneKernel)
	pruneKernel = 0
	r := rand.New(rand.NewPCG(23, 24))
	n, nq, d := 2000, 90, 50
	bank := clustered(r, n+nq, d, 25)
	for _, k := range []int{1, 3} {
		searchBoth(t, bank[:n*d], bank[n*d:], n, nq, d, k)
	}
}

// Data near float32's smallest numbers: rounding errors are absolute
// there, and the slack's absolute part keeps the results identical.
func TestPrunedSubnormal(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	n, nq, d := 2000, 100, 40
	x := clustered(r, n+nq, d, 30)
	for i := range x {
		x[i] *= 1e-22
	}
	for _, k := range []int{1, 3} {
		searchBoth(t, x[:n*d], x[n*d:], n, nq, d, k)
	}
}

// top1 and topK fold the pruned search's gathered rows (explicit,
// increasing row ids) exactly as the brute force's consecutive rows:
// negatives clamped to 0, ties to the lower index, NaN skipped.
func TestFoldRowIDs(t *testing.T) {
	r := rand.New(rand.NewPCG(27, 28))
	const rows = 300
	norms := make([]float32, rows)
	ids := make([]int32, rows)
	row := make([]float32, rows)
	for i := range rows {
		v := float32(r.IntN(7)) - 3 // many ties and negatives
		if i%50 == 7 {
			v = float32(math.NaN())
		}
		row[i] = v
		norms[i] = float32(r.IntN(3))
		ids[i] = int32(100 + 3*i)
	}
	for _, k := range []int{1, 2, 6} {
		wd, wi := make([]float32, k), make([]int32, k)
		gd, gi := make([]float32, k), make([]int32, k)
		for j := range k {
			wd[j], wi[j], gd[j], gi[j] = math.MaxFloat32, -1, math.MaxFloat32, -1
		}
		if k == 1 {
			top1(row, 1.5, norms, 0, nil, &wd[0], &wi[0])
			top1(row, 1.5, norms, 0, ids, &gd[0], &gi[0])
		} else {
			topK(row, 1.5, norms, 0, nil, wd, wi)
			topK(row, 1.5, norms, 0, ids, gd, gi)
		}
		for j := range k {
			if math.Float32bits(wd[j]) != math.Float32bits(gd[j]) || wi[j] < 0 || ids[wi[j]] != gi[j] {
				t.Errorf("k=%d rank %d: with ids (%d, %v), consecutive (%d, %v)", k, j, gi[j], gd[j], wi[j], wd[j])
			}
		}
	}
}

// A basis slightly off orthonormal, or coordinates that do not belong to
// the bank, are refused: either would break the bound.
func TestPrincipalRejectsInconsistent(t *testing.T) {
	r := rand.New(rand.NewPCG(29, 30))
	n, d := 640, 30
	x := clustered(r, n, d, 8)
	pr := mustPrincipal(t, x, n, d)
	off := *pr
	off.Basis = append([]float64(nil), pr.Basis...)
	off.Basis[5] += 1e-10
	if err := off.Check(n, d); err == nil {
		t.Error("a basis 1e-10 off orthonormal passed Check")
	}
	moved := *pr
	moved.Coords = append([]float32(nil), pr.Coords...)
	moved.Coords[10*pr.P+2] += 0.5 // row 10 is one of the rows UsePrincipal computes again
	ix := NewIndex(x, n, d)
	if err := ix.UsePrincipal(&moved, Pruned); err == nil {
		t.Error("coordinates that do not belong to the bank were accepted")
	}
}

// mustPrincipal is NewPrincipal, failing tb on an error.
func mustPrincipal(tb testing.TB, x []float32, n, d int) *Principal {
	tb.Helper()
	pr, err := NewPrincipal(x, n, d)
	if err != nil {
		tb.Fatal(err)
	}
	return pr
}

// prunedIndex returns an index over the first n rows of x with their
// principal coordinates, searching in mode.
func prunedIndex(tb testing.TB, x []float32, n, d int, mode Mode) *Index {
	tb.Helper()
	ix := NewIndex(x, n, d)
	if err := ix.UsePrincipal(mustPrincipal(tb, x, n, d), mode); err != nil {
		tb.Fatal(err)
	}
	return ix
}
