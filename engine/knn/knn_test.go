package knn

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/softpatch/softpatch/engine/compute"
)

// Tolerances of the comparisons with float64 brute force and with faiss.
// A returned distance must be within distTol relative of the reference
// distance of the returned index, plus normTol times |q|^2 + |m|^2 (the
// scale of float32 cancellation in |q|^2 + |m|^2 - 2 q.m: near-duplicates
// come out as a few 1e-7 of it instead of 0). A returned index must equal
// the reference's at its rank unless the two candidates are a near-tie:
// reference distances within distTol relative of each other, plus the same
// normTol term.
const (
	distTol = 1e-5
	normTol = 1e-6
)

// refSearch is brute force in float64: for each query, every bank index
// sorted by (distance, index), with the distances and squared norms.
type refResult struct {
	order []int     // bank indices by ascending distance, lower index first on ties
	d     []float64 // d[j]: squared distance to bank row j
	qn    float64
}

func refSearch(bank, queries []float32, nq, n, d int) (res []refResult, mnorm []float64) {
	mnorm = make([]float64, n)
	for j := range n {
		for _, v := range bank[j*d : (j+1)*d] {
			mnorm[j] += float64(v) * float64(v)
		}
	}
	res = make([]refResult, nq)
	for i := range nq {
		q := queries[i*d : (i+1)*d]
		r := refResult{order: make([]int, n), d: make([]float64, n)}
		for _, v := range q {
			r.qn += float64(v) * float64(v)
		}
		for j := range n {
			var s float64
			for t, v := range bank[j*d : (j+1)*d] {
				e := float64(q[t]) - float64(v)
				s += e * e
			}
			r.d[j] = s
			r.order[j] = j
		}
		slices.SortStableFunc(r.order, func(a, b int) int {
			if r.d[a] < r.d[b] {
				return -1
			}
			if r.d[a] > r.d[b] {
				return 1
			}
			return 0
		})
		res[i] = r
	}
	return res, mnorm
}

// checkAgainst compares Search's output with the float64 reference (see
// distTol) and returns how many ranks held a different index of a near-tie.
func checkAgainst(t *testing.T, name string, dist []float32, idx []int32, ref []refResult, mnorm []float64, n, k int) int {
	t.Helper()
	ties := 0
	for i, r := range ref {
		seen := map[int32]bool{}
		for p := range k {
			g, gd := idx[i*k+p], dist[i*k+p]
			if p >= n {
				if g != -1 || gd != math.MaxFloat32 {
					t.Fatalf("%s: query %d rank %d (k > n=%d): got (%v, %d), want (MaxFloat32, -1)", name, i, p, n, gd, g)
				}
				continue
			}
			if g < 0 || int(g) >= n || seen[g] {
				t.Fatalf("%s: query %d rank %d: invalid or repeated index %d", name, i, p, g)
			}
			seen[g] = true
			if gd < 0 || (p > 0 && gd < dist[i*k+p-1]) {
				t.Fatalf("%s: query %d rank %d: distance %v negative or below the previous rank", name, i, p, gd)
			}
			scale := normTol * (r.qn + mnorm[g])
			if e := math.Abs(float64(gd) - r.d[g]); e > distTol*r.d[g]+scale {
				t.Fatalf("%s: query %d rank %d index %d: distance %v, reference %v", name, i, p, g, gd, r.d[g])
			}
			w := r.order[p]
			if int(g) != w {
				scale = normTol * (r.qn + max(mnorm[g], mnorm[w]))
				if math.Abs(r.d[g]-r.d[w]) > distTol*max(r.d[g], r.d[w])+scale {
					t.Fatalf("%s: query %d rank %d: index %d (ref distance %v), want %d (%v)", name, i, p, g, r.d[g], w, r.d[w])
				}
				ties++
			}
		}
	}
	return ties
}

func randData(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// TestSearchRandom compares with float64 brute force on random data of odd
// sizes: a bank with duplicated rows, queries that are copies or
// near-copies of bank rows, k = 1 and 5, budgets from the default down to
// ones that force one-element blocks, and 1 to 3 threads.
func TestSearchRandom(t *testing.T) {
	defer compute.SetThreads(compute.Threads())
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sh := range []struct{ nq, n, d int }{{37, 211, 13}, {5, 1000, 64}, {64, 300, 129}, {1, 7, 3}} {
		bank := randData(rng, sh.n*sh.d)
		queries := randData(rng, sh.nq*sh.d)
		// Duplicates in the bank: rows n-5.. copy rows 0..4.
		copy(bank[(sh.n-5)*sh.d:], bank[:5*sh.d])
		// Queries 0, 1 copy bank rows 0 (duplicated) and 6; query 2 is a
		// near-copy of bank row 7.
		for qi, j := range []int{0, 6, 7} {
			if qi >= sh.nq {
				break
			}
			q := queries[qi*sh.d : (qi+1)*sh.d]
			copy(q, bank[j*sh.d:(j+1)*sh.d])
			if qi == 2 {
				for t := range q {
					q[t] += 1e-4 * float32(rng.NormFloat64())
				}
			}
		}
		ref, mnorm := refSearch(bank, queries, sh.nq, sh.n, sh.d)
		ix := NewIndex(bank, sh.n, sh.d)
		for _, k := range []int{1, 5} {
			for _, budget := range []int{0, 8, 4 * 7 * 14, 4 * 3000} {
				for _, threads := range []int{1, 3} {
					compute.SetThreads(threads)
					dist := make([]float32, sh.nq*k)
					idx := make([]int32, sh.nq*k)
					if err := ix.Search(dist, idx, queries, sh.nq, k, budget); err != nil {
						t.Fatal(err)
					}
					ties := checkAgainst(t, "random", dist, idx, ref, mnorm, sh.n, k)
					if ties > 0 {
						t.Logf("%v k=%d budget=%d threads=%d: %d near-tie rank swaps", sh, k, budget, threads, ties)
					}
				}
			}
		}
	}
}

// TestSearchExact uses small integers, for which every float32 operation is
// exact, so distances and tie order (lower index first) must match the
// reference exactly; the bank has many duplicated rows and k exceeds the
// number of distinct distances.
func TestSearchExact(t *testing.T) {
	defer compute.SetThreads(compute.Threads())
	rng := rand.New(rand.NewPCG(3, 4))
	const nq, n, d = 29, 301, 7
	gen := func(m int) []float32 {
		x := make([]float32, m)
		for i := range x {
			x[i] = float32(rng.IntN(3) - 1)
		}
		return x
	}
	bank, queries := gen(n*d), gen(nq*d)
	ref, _ := refSearch(bank, queries, nq, n, d)
	ix := NewIndex(bank, n, d)
	for _, k := range []int{1, 2, 5, 40} {
		for _, budget := range []int{0, 8, 4 * 50} {
			for _, threads := range []int{1, 2} {
				compute.SetThreads(threads)
				dist := make([]float32, nq*k)
				idx := make([]int32, nq*k)
				if err := ix.Search(dist, idx, queries, nq, k, budget); err != nil {
					t.Fatal(err)
				}
				for i, r := range ref {
					for p := range k {
						w := r.order[p]
						if int(idx[i*k+p]) != w || float64(dist[i*k+p]) != r.d[w] {
							t.Fatalf("k=%d budget=%d query %d rank %d: got (%v, %d), want (%v, %d)",
								k, budget, i, p, dist[i*k+p], idx[i*k+p], r.d[w], w)
						}
					}
				}
			}
		}
	}
}

// TestSearchKAboveN checks faiss's convention for the ranks past the bank
// size: index -1, distance math.MaxFloat32; and an empty bank.
func TestSearchKAboveN(t *testing.T) {
	bank := []float32{0, 0, 3, 4, 1, 0}
	ix := NewIndex(bank, 3, 2)
	dist := make([]float32, 5)
	idx := make([]int32, 5)
	if err := ix.Search(dist, idx, []float32{0, 0}, 1, 5, 0); err != nil {
		t.Fatal(err)
	}
	wantD := []float32{0, 1, 25, math.MaxFloat32, math.MaxFloat32}
	wantI := []int32{0, 2, 1, -1, -1}
	if !slices.Equal(dist, wantD) || !slices.Equal(idx, wantI) {
		t.Errorf("got %v %v, want %v %v", dist, idx, wantD, wantI)
	}
	empty := NewIndex(nil, 0, 2)
	if err := empty.Search(dist[:2], idx[:2], []float32{1, 2}, 1, 2, 0); err != nil {
		t.Fatal(err)
	}
	if dist[0] != math.MaxFloat32 || idx[0] != -1 || idx[1] != -1 {
		t.Errorf("empty bank: got %v %v", dist[:2], idx[:2])
	}
}

func TestSearchErrors(t *testing.T) {
	ix := NewIndex(make([]float32, 12), 4, 3)
	d, i, q := make([]float32, 4), make([]int32, 4), make([]float32, 6)
	for _, c := range []struct {
		name          string
		dist          []float32
		idx           []int32
		q             []float32
		nq, k, budget int
	}{
		{"k=0", d, i, q, 2, 0, 0},
		{"nq<0", d, i, q, -1, 1, 0},
		{"budget<0", d, i, q, 2, 2, -1},
		{"short queries", d, i, q[:5], 2, 2, 0},
		{"short dist", d[:3], i, q, 2, 2, 0},
		{"short idx", d, i[:3], q, 2, 2, 0},
	} {
		if err := ix.Search(c.dist, c.idx, c.q, c.nq, c.k, c.budget); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	for _, f := range []func(){
		func() { NewIndex(make([]float32, 5), 2, 3) },
		func() { NewIndex(nil, 1, 0) },
		func() { NewIndex(nil, -1, 3) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("NewIndex: no panic")
				}
			}()
			f()
		}()
	}
}

// TestBlockShape checks that blocks respect the budget and cover at least
// one element.
func TestBlockShape(t *testing.T) {
	for _, nq := range []int{1, 7, 784, 5000} {
		for _, n := range []int{1, 13, 16000, 300000} {
			for _, floats := range []int{0, 1, 2, 3, 100, 1 << 16, 1 << 24} {
				qb, bb := blockShape(nq, n, floats)
				if qb < 1 || bb < 1 || qb > nq || bb > n || qb*(bb+1) > min(max(floats, 2), maxTile) {
					t.Errorf("blockShape(%d, %d, %d) = %d, %d", nq, n, floats, qb, bb)
				}
			}
		}
	}
}
