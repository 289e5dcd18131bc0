package knn

/*
#cgo CFLAGS: -O2
#include "prune.h"
*/
import "C"

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/softpatch/softpatch/engine/compute"
)

// Mode says how Index.Search finds the nearest neighbours. Every mode
// returns the same neighbours and distances (the package doc's "The
// pruned search").
type Mode int

const (
	// Auto prunes when the index has principal coordinates, the bank is
	// large enough and pruning has recently paid; otherwise brute force.
	Auto Mode = iota
	// Pruned always takes the pruned exact search where it can (principal
	// coordinates set, finite values, compute.ShapeFreeSgemm); "exact" on
	// the command line.
	Pruned
	// Brute always computes every distance.
	Brute
)

// ParseMode reads a mode's command-line name: auto, exact (Pruned) or
// brute.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "auto":
		return Auto, nil
	case "exact":
		return Pruned, nil
	case "brute":
		return Brute, nil
	}
	return Auto, fmt.Errorf("knn: search %q, want auto, exact or brute", s)
}

// String returns the mode's command-line name.
func (m Mode) String() string {
	switch m {
	case Pruned:
		return "exact"
	case Brute:
		return "brute"
	}
	return "auto"
}

// The pruned search's shape.
const (
	// minPruneBank is the smallest bank Auto prunes.
	minPruneBank = 2048
	// group is the number of queries whose candidate rows are gathered
	// into one product.
	group = 32
	// chunkQueries is the number of queries whose coordinates are
	// computed at once; Auto judges pruning chunk by chunk.
	chunkQueries = 1024
	// gatherRows is the most bank rows gathered into one product.
	gatherRows = 512
	// extraCands is the number of candidates beyond k whose exact
	// distances set a query's threshold.
	extraCands = 3
	// skipQueries is how many queries Auto searches by brute force after
	// a chunk in which pruning did not pay, before it tries again.
	skipQueries = 16 * chunkQueries
	// probeQueries is how many queries of a chunk Auto searches before it
	// judges whether pruning pays: when more than half of them went to the
	// brute force, so do the chunk's other queries.
	probeQueries = 8 * group
)

// pruning is an Index's bank-side data for the pruned search.
type pruning struct {
	pr *Principal
	// w1 holds the coarse coordinates (the first min(8, P) principal
	// coordinates, zero-padded to 8, and the residual norm after them) and
	// their squared norm in blocks of 8 rows (prune.c); nb blocks.
	w1 []float32
	nb int
	// w2 holds the fine coordinates, [N][s2]: the P coordinates, the
	// residual norm after them, zeros up to a multiple of 8.
	w2 []float32
	s2 int
	// sig holds each row's share of the slack, tau*(|m|^2 + |m-mean|^2),
	// [nb*8] (0 past N).
	sig []float32
	// tau and floor are the rounding slack's relative and absolute parts.
	tau, floor float64
}

// pruneKernel selects the bound kernels: 1 AVX2+FMA, 0 portable C.
var pruneKernel = int(C.knn_kind())

// UsePrincipal gives the index the principal coordinates of its bank
// (NewPrincipal, or read from a model file) and sets how Search searches.
// It returns an error when pr does not fit the bank (Principal.Check, and
// a sample of rows whose coordinates are computed again) or the bank's
// norms are too large for the pruned search's rounding bounds; the index
// then searches by brute force. A nil pr, mode Brute, or an SGEMM without
// shape-free results (compute.ShapeFreeSgemm: the OpenBLAS fallback)
// leave only the brute force.
func (ix *Index) UsePrincipal(pr *Principal, mode Mode) error {
	ix.mode = mode
	ix.prune = nil
	if pr == nil || mode == Brute || ix.n == 0 || !compute.ShapeFreeSgemm() {
		return nil
	}
	if err := pr.Check(ix.n, ix.d); err != nil {
		return err
	}
	for _, v := range ix.norms {
		if !(v <= maxNorm) {
			return fmt.Errorf("knn: bank squared norm %v is not finite or exceeds %g", v, maxNorm)
		}
	}
	if err := pr.checkRows(ix.bank); err != nil {
		return err
	}
	n, p := ix.n, pr.P
	pd := &pruning{pr: pr, nb: (n + 7) / 8, s2: (p + 1 + 7) / 8 * 8}
	pd.tau = 2 * float64(ix.d+pd.s2+16) * 0x1p-24
	// Near float32's smallest numbers every operation may err by up to
	// half a subnormal step, which no relative slack covers.
	pd.floor = 2 * float64(ix.d+pd.s2+16) * 0x1p-149
	pd.w1 = make([]float32, pd.nb*w1Rows*8)
	pd.w2 = make([]float32, n*pd.s2)
	pd.sig = make([]float32, pd.nb*8)
	for m := n; m < pd.nb*8; m++ {
		pd.w1[(m/8)*w1Rows*8+coarseDims*8+m%8] = float32(math.Inf(1))
	}
	for m := range n {
		c := pr.Coords[m*p : (m+1)*p]
		b := (m/8)*w1Rows*8 + m%8
		var w [coarseDims]float32
		sq := coarseCoords(w[:], c, pr.Resid[2*m])
		for k, v := range w {
			pd.w1[b+8*k] = v
		}
		pd.w1[b+8*coarseDims] = float32(sq)
		copy(pd.w2[m*pd.s2:], c)
		pd.w2[m*pd.s2+p] = pr.Resid[2*m+1]
		// |m - mean|^2 = |z|^2 + r^2 up to rounding, which tau's margin
		// covers.
		r := float64(pr.Resid[2*m+1])
		s := float64(ix.norms[m]) + r*r
		for _, z := range c {
			s += float64(z) * float64(z)
		}
		pd.sig[m] = float32(pd.tau * s)
	}
	ix.prune = pd
	return nil
}

// coarseCoords writes a row's coarse coordinates into dst
// [coarseDims]: its first principal coordinates (zero-padded when there
// are fewer) and its residual norm r after them; it returns their squared
// norm, summed in float64.
func coarseCoords(dst, coords []float32, r float32) float64 {
	clear(dst)
	copy(dst[:coarseDims-1], coords)
	dst[coarseDims-1] = r
	var sq float64
	for _, v := range dst {
		sq += float64(v) * float64(v)
	}
	return sq
}

// maxNorm bounds the squared norms the pruned search accepts (bank rows
// and queries): the float32 sums stay finite with room to spare.
const maxNorm = 1e30

// Stats counts the work of an index's searches: Pairs query-row pairs
// asked for, Computed the distances computed in full (brute force
// computes all; the pruned search computes its candidates' twice, so
// where pruning fails Computed can exceed Pairs a little).
type Stats struct {
	Pairs, Computed int64
}

// Stats returns the work of the index's searches so far.
func (ix *Index) Stats() Stats {
	return Stats{Pairs: ix.pairs.Load(), Computed: ix.computed.Load()}
}

// pruned searches the queries chunk by chunk: each chunk by the pruned
// search, or by brute force while Auto skips pruning. dist and idx are
// initialised.
func (ix *Index) pruned(dist []float32, idx []int32, queries []float32, nq, k, budget int) {
	d := ix.d
	s := newChunkScratch(ix, min(nq, chunkQueries), k)
	for q0 := 0; q0 < nq; q0 += chunkQueries {
		if ix.mode == Auto && ix.skipping(nq-q0) {
			// The rest of the call in one brute-force search: larger
			// blocks of queries read the bank fewer times.
			ix.brute(dist[q0*k:], idx[q0*k:], queries[q0*d:nq*d], nq-q0, k, budget)
			return
		}
		rows := min(chunkQueries, nq-q0)
		fallback := ix.prunedChunk(s, dist[q0*k:(q0+rows)*k], idx[q0*k:(q0+rows)*k], queries[q0*d:(q0+rows)*d], rows, k, budget)
		if ix.mode == Auto && 2*fallback > rows {
			ix.skip.Store(skipQueries)
		}
	}
}

// skipping reports whether Auto searches the next rest queries by brute
// force, counting them off.
func (ix *Index) skipping(rest int) bool {
	for {
		v := ix.skip.Load()
		if v <= 0 {
			return false
		}
		if ix.skip.CompareAndSwap(v, v-int64(min(int64(rest), v))) {
			return true
		}
	}
}

// chunkScratch is a Search's scratch: the coordinates of a chunk's queries
// and one worker per thread.
type chunkScratch struct {
	coords, resid []float32
	xc, z, sq     []float64
	qn            []float32
	workers       []*worker
}

func newChunkScratch(ix *Index, rows, k int) *chunkScratch {
	p := ix.prune.pr.P
	s := &chunkScratch{coords: make([]float32, rows*p), resid: make([]float32, rows*2),
		xc: make([]float64, rows*ix.d), z: make([]float64, rows*p), sq: make([]float64, rows), qn: make([]float32, rows)}
	for range min(compute.Threads(), (rows+group-1)/group) {
		s.workers = append(s.workers, newWorker(ix, k))
	}
	return s
}

// query is one query's data in a chunk.
type query struct {
	i      int     // index in the chunk
	qn     float32 // squared norm as the brute force computes it
	scale  float64 // |q|^2 + |q - mean|^2
	q1, q2 []float32
	nq1    float32 // |q1|^2, q1 holding the coarse coordinates times -2
}

// prunedChunk searches nq queries (at most chunkQueries) and returns how
// many of them it had to search by brute force.
func (ix *Index) prunedChunk(s *chunkScratch, dist []float32, idx []int32, queries []float32, nq, k, budget int) int {
	pd, d, p := ix.prune, ix.d, ix.prune.pr.P
	pd.pr.coordinates(s.coords, s.resid, queries, nq, s.xc, s.z, s.sq)
	sqNorms(s.qn[:nq], queries, d) // as the brute force computes them
	qs := make([]query, 0, nq)
	var slow []int // queries for the brute force
	q12 := make([]float32, nq*(coarseDims+pd.s2))
	for i := range nq {
		ok := true
		for _, x := range queries[i*d : (i+1)*d] {
			ok = ok && math.Abs(float64(x)) <= maxAbs
		}
		if n2 := float64(s.qn[i]); !ok || !(n2 <= maxNorm) {
			slow = append(slow, i)
			continue
		}
		o := i * (coarseDims + pd.s2)
		q := query{i: i, qn: s.qn[i], scale: float64(s.qn[i]) + s.sq[i], q1: q12[o : o+coarseDims], q2: q12[o+coarseDims : o+coarseDims+pd.s2]}
		c := s.coords[i*p : (i+1)*p]
		q.nq1 = float32(coarseCoords(q.q1, c, s.resid[2*i]))
		for k, v := range q.q1 {
			q.q1[k] = -2 * v
		}
		copy(q.q2, c)
		q.q2[p] = s.resid[2*i+1]
		qs = append(qs, q)
	}
	// Queries close in the leading coordinate tend to share candidates.
	slices.SortStableFunc(qs, func(a, b query) int {
		return cmp.Compare(s.coords[a.i*p], s.coords[b.i*p])
	})
	groups := (len(qs) + group - 1) / group
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	done := make([]bool, groups)
	searched, missed := 0, 0
	abandon := false // Auto: pruning does not pay on this chunk's first queries
	for _, w := range s.workers[:min(len(s.workers), groups)] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.computed = 0
			for {
				g := int(next.Add(1)) - 1
				if g >= groups {
					break
				}
				lo, hi := g*group, min(len(qs), (g+1)*group)
				miss := w.group(qs[lo:hi], dist, idx, queries)
				mu.Lock()
				done[g] = true
				slow = append(slow, miss...)
				searched += hi - lo
				missed += len(miss)
				if ix.mode == Auto && searched >= probeQueries && 2*missed > searched {
					abandon = true
				}
				stop := abandon
				mu.Unlock()
				if stop {
					break
				}
			}
			ix.computed.Add(w.computed)
		}()
	}
	wg.Wait()
	for g, ok := range done {
		if !ok {
			for _, q := range qs[g*group : min(len(qs), (g+1)*group)] {
				slow = append(slow, q.i)
			}
		}
	}
	ix.pairs.Add(int64(nq) * int64(ix.n))
	if len(slow) > 0 {
		slices.Sort(slow)
		sq := make([]float32, len(slow)*d)
		for j, i := range slow {
			copy(sq[j*d:(j+1)*d], queries[i*d:(i+1)*d])
		}
		sd := make([]float32, len(slow)*k)
		si := make([]int32, len(slow)*k)
		for j := range sd {
			sd[j], si[j] = math.MaxFloat32, -1
		}
		ix.bruteBlocks(sd, si, sq, len(slow), k, budget)
		ix.computed.Add(int64(len(slow)) * int64(ix.n))
		for j, i := range slow {
			copy(dist[i*k:(i+1)*k], sd[j*k:(j+1)*k])
			copy(idx[i*k:(i+1)*k], si[j*k:(j+1)*k])
		}
	}
	return len(slow)
}

// worker is one goroutine's scratch for searching groups of queries.
type worker struct {
	ix       *Index
	k, c     int
	mark     []uint64  // bit set of bank rows (all clear between uses)
	ids      []int32   // a union of rows, ascending
	q1, nq1  []float32 // [4][coarseDims], [4]: the pass's queries (see load)
	q2, t    []float32 // [4][s2], [4]
	lists    []int32   // [4][cap] survivors of each query of a pass
	cnt      []int64   // [4] their numbers
	cap      int       // most survivors kept per query
	cd       []float32 // [4][c] candidate bounds of a pass
	ci       []int32   // [4][c] candidate rows of a pass
	gq       []float32 // [group][D] the group's queries
	buf      []float32 // [gatherRows][D] gathered bank rows
	mn       []float32 // [gatherRows] their squared norms
	out      []float32 // [group][gatherRows] -2 query.row
	ud       []float32 // [group][k] distances to the candidates
	ui       []int32
	computed int64
}

func newWorker(ix *Index, k int) *worker {
	c := min(ix.n, k+extraCands)
	capq := max(ix.n/8, c)
	s2 := ix.prune.s2
	return &worker{ix: ix, k: k, c: c, mark: make([]uint64, (ix.n+63)/64),
		q1: make([]float32, passQueries*coarseDims), nq1: make([]float32, passQueries), q2: make([]float32, passQueries*s2), t: make([]float32, passQueries),
		lists: make([]int32, passQueries*capq), cnt: make([]int64, passQueries), cap: capq,
		cd: make([]float32, passQueries*c), ci: make([]int32, passQueries*c), gq: make([]float32, group*ix.d),
		buf: make([]float32, gatherRows*ix.d), mn: make([]float32, gatherRows), out: make([]float32, gatherRows*group),
		ud: make([]float32, group*k), ui: make([]int32, group*k)}
}

// group searches a group of queries and returns those it leaves to the
// brute force (chunk indices).
func (w *worker) group(qs []query, dist []float32, idx []int32, queries []float32) []int {
	ix, pd, d, k := w.ix, w.ix.prune, w.ix.d, w.k
	g := len(qs)
	for j, q := range qs {
		copy(w.gq[j*d:(j+1)*d], queries[q.i*d:(q.i+1)*d])
	}
	// 1. The c rows of smallest coarse bound of each query, and their
	// exact distances: the k-th best of them bounds the k-th nearest.
	for j0 := 0; j0 < g; j0 += passQueries {
		w.load(qs, j0, nil)
		for t := range w.cd {
			w.cd[t] = float32(math.Inf(1))
		}
		pd.cands(w.q1, w.nq1, w.cd, w.ci)
		w.setAll(w.ci[:min(g-j0, passQueries)*w.c])
	}
	active := make([]bool, g)
	for j := range active {
		active[j] = true
	}
	w.collect()
	for i := range w.ud[:g*k] {
		w.ud[i], w.ui[i] = math.MaxFloat32, -1
	}
	w.eval(qs, active, w.ud, w.ui)
	// 2. Each query's survivors: rows whose bounds, less the rounding
	// slack, do not exceed the k-th candidate distance plus the query's
	// share of the slack.
	var slow []int
	thr := make([]float32, g)
	for j, q := range qs {
		u := w.ud[j*k+k-1]
		t := float64(u) + pd.tau*q.scale + pd.floor
		if !(u < math.MaxFloat32) || !(t <= maxNorm) {
			active[j] = false
			slow = append(slow, q.i)
			continue
		}
		thr[j] = math.Nextafter32(float32(t), float32(math.Inf(1)))
	}
	for j0 := 0; j0 < g; j0 += passQueries {
		w.load(qs, j0, thr)
		pd.survivors(ix.n, w.q1, w.nq1, w.q2, w.t, w.lists, w.cap, w.cnt)
		for j := j0; j < min(g, j0+passQueries); j++ {
			c := w.cnt[j-j0]
			if !active[j] {
				continue
			}
			if c < 0 {
				active[j] = false
				slow = append(slow, qs[j].i)
				continue
			}
			w.setAll(w.lists[(j-j0)*w.cap : (j-j0)*w.cap+int(c)])
		}
	}
	// 3. The exact distances to the union of the survivors, folded in
	// increasing row order as the brute force does.
	w.collect()
	if 2*len(w.ids) > ix.n {
		for j, q := range qs {
			if active[j] {
				slow = append(slow, q.i)
			}
		}
		return slow
	}
	for j, q := range qs {
		if active[j] {
			for r := range k {
				dist[q.i*k+r], idx[q.i*k+r] = math.MaxFloat32, -1
			}
		}
	}
	w.evalInto(qs, active, dist, idx)
	return slow
}

// The kernels' shapes (prune.h): passQueries queries per pass (each block
// of the bank, once read, serves them all), coarseDims coarse coordinates
// (8 principal ones and a residual norm), w1Rows values per row of the
// coarse layout (the coordinates and their squared norm).
const (
	passQueries = C.NQ
	coarseDims  = C.C1
	w1Rows      = C.W1
)

// load copies the coarse and fine coordinates of queries j0 to j0+3 of qs
// (the last one repeated past the end of qs) and, when thr is given, their
// thresholds into the worker's pass buffers, and clears the survivor
// counts.
func (w *worker) load(qs []query, j0 int, thr []float32) {
	s2 := w.ix.prune.s2
	for j := range passQueries {
		jj := min(j0+j, len(qs)-1)
		q := qs[jj]
		copy(w.q1[j*coarseDims:(j+1)*coarseDims], q.q1)
		w.nq1[j] = q.nq1
		copy(w.q2[j*s2:(j+1)*s2], q.q2)
		if thr != nil {
			w.t[j] = thr[jj]
		}
		w.cnt[j] = 0
	}
}

// cands writes, for each of passQueries queries (coarse coordinates times
// -2 q1m2 [4][9], squared norms nq1 [4]), the c rows of smallest coarse
// bound into cd and ci [4][c], ascending; cd must hold +Inf on entry.
func (pd *pruning) cands(q1m2, nq1 []float32, cd []float32, ci []int32) {
	C.knn_cands(C.int(pruneKernel), (*C.float)(&pd.w1[0]), C.int64_t(pd.nb), (*C.float)(&q1m2[0]), (*C.float)(&nq1[0]), C.int(len(cd)/passQueries),
		(*C.float)(&cd[0]), (*C.int32_t)(unsafe.Pointer(&ci[0])))
}

// survivors writes, for each of passQueries queries (q1m2 and nq1 as
// cands', fine coordinates q2 [4][s2], thresholds t [4]), the rows of the
// n-row bank whose coarse and fine bounds, less their slack, are at most
// the query's threshold into out[j*capq ...], ascending, and their number
// into cnt[j] (0 on entry), or -1 when more than capq.
func (pd *pruning) survivors(n int, q1m2, nq1, q2, t []float32, out []int32, capq int, cnt []int64) {
	C.knn_survivors(C.int(pruneKernel), (*C.float)(&pd.w1[0]), (*C.float)(&pd.sig[0]), (*C.float)(&pd.w2[0]), C.int(pd.s2),
		C.int64_t(pd.nb), C.int64_t(n), (*C.float)(&q1m2[0]), (*C.float)(&nq1[0]), (*C.float)(&q2[0]), (*C.float)(&t[0]),
		(*C.int32_t)(unsafe.Pointer(&out[0])), C.int64_t(capq), (*C.int64_t)(unsafe.Pointer(&cnt[0])))
}

// setAll marks rows in w.mark.
func (w *worker) setAll(rows []int32) {
	for _, m := range rows {
		if m >= 0 {
			w.mark[m>>6] |= 1 << (m & 63)
		}
	}
}

// collect moves the marked rows into w.ids, ascending, and clears the
// marks.
func (w *worker) collect() {
	w.ids = w.ids[:0]
	for i, word := range w.mark {
		for word != 0 {
			t := bits.TrailingZeros64(word)
			w.ids = append(w.ids, int32(i*64+t))
			word &= word - 1
		}
		w.mark[i] = 0
	}
}

// eval folds the distances of the active queries to the rows w.ids into
// their top-k (dist, idx) [len(qs)][k], group-indexed.
func (w *worker) eval(qs []query, active []bool, dist []float32, idx []int32) {
	w.fold(qs, active, func(j int) ([]float32, []int32) {
		return dist[j*w.k : (j+1)*w.k], idx[j*w.k : (j+1)*w.k]
	})
}

// evalInto is eval into the chunk's result slices.
func (w *worker) evalInto(qs []query, active []bool, dist []float32, idx []int32) {
	w.fold(qs, active, func(j int) ([]float32, []int32) {
		i := qs[j].i
		return dist[i*w.k : (i+1)*w.k], idx[i*w.k : (i+1)*w.k]
	})
}

// fold gathers the rows w.ids in blocks, computes -2 query.row for the
// group's queries with the same SGEMM kernel as the brute force (so each
// product has the same bits), and folds each active query's distances
// (|q|^2 + |m|^2) + (-2 q.m) into its top-k in increasing row order, as
// the brute force does (top1, topK).
func (w *worker) fold(qs []query, active []bool, out func(j int) ([]float32, []int32)) {
	ix, d, g := w.ix, w.ix.d, len(qs)
	for r0 := 0; r0 < len(w.ids); r0 += gatherRows {
		ids := w.ids[r0:min(len(w.ids), r0+gatherRows)]
		rows := len(ids)
		for r, m := range ids {
			copy(w.buf[r*d:(r+1)*d], ix.bank[int(m)*d:(int(m)+1)*d])
			w.mn[r] = ix.norms[m]
		}
		compute.SgemmSerial(false, true, g, rows, d, -2, w.gq[:g*d], d, w.buf[:rows*d], d, 0, w.out[:g*rows], rows)
		for j, q := range qs {
			if !active[j] {
				continue
			}
			dj, ij := out(j)
			row := w.out[j*rows : (j+1)*rows]
			if w.k == 1 {
				top1(row, q.qn, w.mn[:rows], 0, ids, &dj[0], &ij[0])
			} else {
				topK(row, q.qn, w.mn[:rows], 0, ids, dj, ij)
			}
		}
		w.computed += int64(rows) * int64(g)
	}
}

// MarshalText writes the mode's command-line name.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads a mode's command-line name (ParseMode).
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Prunable reports whether an index over n bank rows searched in mode
// would use principal coordinates: Pruned always, Auto from 2,048 rows.
func Prunable(n int, mode Mode) bool {
	return n > 0 && (mode == Pruned || mode == Auto && n >= minPruneBank)
}
