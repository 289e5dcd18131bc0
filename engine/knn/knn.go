// Package knn is exact L2 nearest-neighbour search over a memory bank, the
// scoring step of PatchCore and SoftPatch
// (docs/method.md#42-scoring-image-score-and-anomaly-map): each test patch
// feature is matched to its nearest memory-bank entry under L2, and the
// patch's score is its squared L2 distance to that entry.
//
// It returns what faiss's IndexFlatL2 returns: squared L2 distances in
// ascending order with their bank indices, ties broken by the lower index,
// distances clamped at 0 (near-duplicates can otherwise come out slightly
// negative), and index -1 with distance math.MaxFloat32 for the ranks beyond
// the bank size when k > n.
//
// Distances are computed as |q|^2 + |m|^2 - 2 q.m: the inner products by
// compute.Sgemm (float32, with alpha = -2) on blocks of queries x bank rows,
// then a row-wise top-k that adds the squared norms, clamps and keeps the k
// best of each query, run on compute.Threads() goroutines. The squared norms
// are accumulated in float64 and rounded to float32; each distance is then
// formed in float32 as (|q|^2 + |m|^2) + (-2 q.m), the same expression and
// order faiss's BLAS path uses (faiss also takes the BLAS path for 20 or more
// queries; below that it sums squared differences directly, which differs
// from ours in the last bits).
//
// Memory: the only scratch is one block of inner products (plus the block's
// query norms), whose size the caller bounds with a byte budget; the full
// queries x bank matrix is never formed unless it fits in that budget. The
// per-query top-k lives in the caller's output slices.
//
// # The pruned search
//
// With principal coordinates (NewPrincipal, Index.UsePrincipal) Search
// returns the same neighbours and the same distances, bit for bit, while
// computing few of the distances (docs/method.md#44-pruned-exact-search).
// For a vector x with centred coordinates x - mean, principal coordinates
// z (P = 64 orthonormal directions) and residual norm r, the bound
// |z_q - z_m|^2 + (r_q - r_m)^2 never exceeds |q - m|^2. Queries are
// sorted by their first principal coordinate and searched in groups of
// 32:
//
//  1. each query's k+3 rows of smallest coarse bound (8 coordinates and
//     their residual, a vectorised pass over the bank, prune.c), whose
//     exact distances give an upper bound U of the query's k-th nearest
//     distance;
//  2. the survivors: the rows whose coarse and fine (64 coordinates)
//     bounds, less a rounding slack, do not exceed U plus the query's
//     share of the slack (see below);
//  3. the group's survivors, gathered in increasing row order, against the
//     group's queries in one SGEMM of the same kernel as the brute force,
//     and the same top-k fold.
//
// Same bits: the SGEMM's kernels accumulate each product over the inner
// dimension in the same order whatever the matrix shapes (the order is
// fixed by the dimension alone; compute.ShapeFreeSgemm), so a gathered
// row's product equals the brute force's; the fold sees every row that
// can be among the k nearest in increasing index order, which gives the
// same ties. The slack tau*(|q|^2 + |q-mean|^2 + |m|^2 + |m-mean|^2) +
// floor, tau = 2(D + s + 16) 2^-24 with s = 72 for 64 directions and
// floor the same count of half subnormal steps, bounds twice over the
// float32 error of the brute force's |q|^2 + |m|^2 - 2 q.m (a D-term dot
// product) and of the bounds (the coordinates are computed in float64 and
// rounded; a basis orthonormal to e moves the residual norms by up to
// sqrt(64 e)|x|, which is why Principal.Check asks for e <= 1e-12), so a
// row is skipped only when its computed distance must exceed the k-th.
//
// Fallbacks: without shape-free SGEMM kernels (the OpenBLAS fallback on
// CPUs without AVX2 and FMA) the index searches by brute force. Queries
// with values that are not finite or too large, and queries with more
// than an eighth of the bank surviving, go to the brute force together;
// so does a whole group whose survivors cover half of the bank. In mode
// Auto, banks under 2,048 rows are searched by brute force; and when more
// than half of the first 256 queries of a chunk of 1,024 went to the brute
// force (isotropic data, where no bound prunes), so do the rest of the
// chunk and the next 16,384 queries, each call's share in one search.
package knn

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/softpatch/softpatch/engine/compute"
)

// DefaultBudget is the scratch budget in bytes that Search uses when it is
// passed 0; it is also the most Search uses whatever the budget (see
// Search).
const DefaultBudget = 4 << 20

// maxTile caps a block's inner products and query norms (in float32
// elements) whatever the budget: a block that stays in cache between the
// GEMM that writes it and the top-k that reads it is no slower than a larger
// one, and blocks of this size already keep the GEMM near full speed
// (measured with BenchmarkSearch: 2^19 to 2^20 best, 2^22 slower).
const maxTile = DefaultBudget / 4

// minCols is the fewest bank rows a block keeps before it gives up query
// rows (see blockShape).
const minCols = 512

// Index is an exact L2 index over a bank of n vectors of dimension d
// (row-major, n x d), with their squared norms precomputed. It refers to the
// bank slice without copying it: the caller must not modify the bank while
// the Index is in use. Search may be called concurrently.
type Index struct {
	bank  []float32
	norms []float32
	n, d  int

	// The pruned search (prune.go): its bank-side data, the mode, how
	// many chunks Auto still searches by brute force, and the work done.
	prune           *pruning
	mode            Mode
	skip            atomic.Int64
	pairs, computed atomic.Int64
}

// NewIndex returns an index over bank, an n x d row-major matrix of at least
// n*d elements (extra elements are ignored). It panics if n < 0, d < 1 or the
// bank is too short. Squared norms are accumulated in float64 and stored as
// float32.
func NewIndex(bank []float32, n, d int) *Index {
	if n < 0 || d < 1 {
		panic(fmt.Sprintf("knn.NewIndex: invalid shape n=%d d=%d", n, d))
	}
	if len(bank) < n*d {
		panic(fmt.Sprintf("knn.NewIndex: bank has %d elements, want %d (n=%d d=%d)", len(bank), n*d, n, d))
	}
	ix := &Index{bank: bank[:n*d], norms: make([]float32, n), n: n, d: d}
	compute.ParallelFor(n, 256, func(lo, hi int) { sqNorms(ix.norms[lo:hi], bank[lo*d:hi*d], d) })
	return ix
}

// N returns the number of bank vectors.
func (ix *Index) N() int { return ix.n }

// D returns the dimension of the vectors.
func (ix *Index) D() int { return ix.d }

// Norms returns the bank's squared norms (length N); the slice belongs to
// the index and must not be modified.
func (ix *Index) Norms() []float32 { return ix.norms }

// Search writes the k nearest bank rows of each of the nq queries (an
// nq x d row-major matrix): dist[i*k+r] is the squared L2 distance of query i
// to its r-th nearest bank row idx[i*k+r], ascending in r, ties broken by the
// lower bank index, clamped at 0. When k exceeds N the ranks past N get index
// -1 and distance math.MaxFloat32 (as faiss). dist and idx must hold at least
// nq*k elements and queries at least nq*d.
//
// budget bounds the scratch Search allocates, in bytes (0: DefaultBudget):
// it processes the queries x bank distances in blocks whose inner products
// and query norms take at most min(max(budget, 8), DefaultBudget) bytes
// (larger blocks measured no faster: a 4 MiB block stays in cache between
// the GEMM that writes it and the top-k that reads it). Beyond that it
// allocates only a few small closures. A block holds all the queries as long
// as it can still hold 512 bank rows, so that the bank is read once.
//
// The pruned search (see the package doc) does not follow the budget: it
// holds the coordinates of up to 1,024 queries (about 8.5 KiB per query at
// d = 1024) and, per thread, about 2.3 MiB plus 2 bytes per bank row.
//
// Search returns an error for k < 1, nq < 0, a negative budget or slices
// that are too short; it does not modify dist and idx then.
func (ix *Index) Search(dist []float32, idx []int32, queries []float32, nq, k int, budget int) error {
	switch {
	case k < 1:
		return fmt.Errorf("knn: k=%d, want k >= 1", k)
	case nq < 0:
		return fmt.Errorf("knn: nq=%d, want nq >= 0", nq)
	case budget < 0:
		return fmt.Errorf("knn: budget=%d bytes, want >= 0", budget)
	case len(queries) < nq*ix.d:
		return fmt.Errorf("knn: queries has %d elements, want %d (nq=%d d=%d)", len(queries), nq*ix.d, nq, ix.d)
	case len(dist) < nq*k || len(idx) < nq*k:
		return fmt.Errorf("knn: dist has %d and idx %d elements, want %d (nq=%d k=%d)", len(dist), len(idx), nq*k, nq, k)
	case ix.n > math.MaxInt32:
		return errors.New("knn: bank has more than 2^31-1 rows")
	}
	if budget == 0 {
		budget = DefaultBudget
	}
	dist, idx = dist[:nq*k], idx[:nq*k]
	for i := range dist {
		dist[i] = math.MaxFloat32
		idx[i] = -1
	}
	if nq == 0 || ix.n == 0 {
		return nil
	}
	if ix.prune != nil && Prunable(ix.n, ix.mode) {
		ix.pruned(dist, idx, queries, nq, k, budget)
		return nil
	}
	ix.brute(dist, idx, queries, nq, k, budget)
	return nil
}

// brute is the brute force on initialised dist and idx, counted in the
// index's Stats.
func (ix *Index) brute(dist []float32, idx []int32, queries []float32, nq, k, budget int) {
	ix.bruteBlocks(dist, idx, queries, nq, k, budget)
	ix.pairs.Add(int64(nq) * int64(ix.n))
	ix.computed.Add(int64(nq) * int64(ix.n))
}

// bruteBlocks computes the distances of the queries to every bank row,
// block by block, folding them into the initialised dist and idx.
func (ix *Index) bruteBlocks(dist []float32, idx []int32, queries []float32, nq, k, budget int) {
	n, d := ix.n, ix.d
	qb, bb := blockShape(nq, n, budget/4)
	tile := make([]float32, qb*bb)
	qn := make([]float32, qb)
	for q0 := 0; q0 < nq; q0 += qb {
		rows := min(qb, nq-q0)
		compute.ParallelFor(rows, 256, func(lo, hi int) { sqNorms(qn[lo:hi], queries[(q0+lo)*d:(q0+hi)*d], d) })
		for b0 := 0; b0 < n; b0 += bb {
			cols := min(bb, n-b0)
			c := tile[:rows*cols]
			compute.Sgemm(false, true, rows, cols, d, -2, queries[q0*d:(q0+rows)*d], d, ix.bank[b0*d:(b0+cols)*d], d, 0, c, cols)
			norms := ix.norms[b0 : b0+cols]
			compute.ParallelFor(rows, 1, func(lo, hi int) {
				for r := lo; r < hi; r++ {
					qi := q0 + r
					row := c[r*cols : (r+1)*cols]
					if k == 1 {
						top1(row, qn[r], norms, int32(b0), nil, &dist[qi], &idx[qi])
					} else {
						topK(row, qn[r], norms, int32(b0), nil, dist[qi*k:(qi+1)*k], idx[qi*k:(qi+1)*k])
					}
				}
			})
		}
	}
}

// blockShape returns a block of qb queries x bb bank rows such that the
// block's inner products and query norms, qb*(bb+1) floats, fit in floats
// elements (taken as at least 2 and at most maxTile). It keeps as many
// queries as it can in a block (all of them unless that would leave fewer
// than minCols bank rows): compute.Sgemm splits a block across threads by
// query rows and each thread packs the block's bank rows, so the packing
// cost per flop falls with the number of query rows per block.
func blockShape(nq, n, floats int) (qb, bb int) {
	tile := min(max(floats, 2), maxTile)
	if nq*(n+1) <= tile {
		return nq, n
	}
	qb = min(nq, tile/(min(n, minCols)+1))
	if qb < 1 {
		return 1, tile - 1
	}
	return qb, min(n, tile/qb-1)
}

// top1 folds one row of -2 q.m (for bank rows base, base+1, ..., or ids[0],
// ids[1], ... when ids is given; increasing) into the running minimum
// (*dist, *idx) of one query with squared norm qn.
func top1(row []float32, qn float32, norms []float32, base int32, ids []int32, dist *float32, idx *int32) {
	best, bi := *dist, *idx
	norms = norms[:len(row)]
	for j, c := range row {
		v := qn + norms[j] + c
		if v < best {
			if v < 0 {
				if best <= 0 {
					continue // clamps to 0, ties with an earlier 0
				}
				v = 0
			}
			best, bi = v, rowID(base, ids, j)
		}
	}
	*dist, *idx = best, bi
}

// topK folds one row of -2 q.m (for bank rows base, base+1, ..., or ids[0],
// ids[1], ... when ids is given) into the sorted k best (dist, idx) of one
// query with squared norm qn. Bank rows come in increasing index order, so
// a strict comparison keeps the lower index on ties.
func topK(row []float32, qn float32, norms []float32, base int32, ids []int32, dist []float32, idx []int32) {
	k := len(dist)
	idx = idx[:k]
	worst := dist[k-1]
	norms = norms[:len(row)]
	for j, c := range row {
		v := qn + norms[j] + c
		if v >= worst || v != v {
			continue
		}
		if v < 0 {
			if worst <= 0 {
				continue
			}
			v = 0
		}
		p := k - 1
		for p > 0 && dist[p-1] > v {
			dist[p], idx[p] = dist[p-1], idx[p-1]
			p--
		}
		dist[p], idx[p] = v, rowID(base, ids, j)
		worst = dist[k-1]
	}
}

// rowID is the bank row of a fold's j-th value: ids[j], or base+j without
// ids (read only when a value enters the top-k, off the loop's fast path).
func rowID(base int32, ids []int32, j int) int32 {
	if ids != nil {
		return ids[j]
	}
	return base + int32(j)
}

// sqNorms writes the squared norms of the rows of x (len(dst) rows of d
// elements), accumulated in float64.
func sqNorms(dst, x []float32, d int) {
	for i := range dst {
		var s float64
		for _, v := range x[i*d : (i+1)*d] {
			s += float64(v) * float64(v)
		}
		dst[i] = float32(s)
	}
}
