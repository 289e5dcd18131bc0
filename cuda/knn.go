package cuda

import (
	"fmt"
	"math"
	"sync"
)

// DefaultKNNBudget bounds the device memory of a Search's inner-product
// tile and query block, in bytes.
const DefaultKNNBudget = 1 << 30

// Index is an exact L2 nearest-neighbour index over a bank of n vectors of
// dimension dim held on the GPU with their squared norms: the device
// version of engine/knn.Index, for k up to MaxK.
type Index struct {
	d           *Device
	bank, norms Buffer
	n, dim      int
	norm, fold  Function // sq_norms, top1_tile
	foldK       Function // topk_tile
	// scratch of Search, kept between calls (a scoring run calls it once
	// per batch of test images): queries, their norms, the tile of inner
	// products, the running distances and indices; mu serialises the
	// calls that share it.
	q, qn, tile, bd, bi Buffer
	mu                  sync.Mutex
}

// NewIndex uploads the bank [n][dim] and computes its squared norms on the
// device (float64 sums, as engine/knn does). Close frees it.
func (d *Device) NewIndex(bank []float32, n, dim int) (*Index, error) {
	if n <= 0 || dim <= 0 || len(bank) != n*dim || n >= 1<<31 {
		return nil, fmt.Errorf("cuda: index of %d values for %d x %d", len(bank), n, dim)
	}
	if !d.HasBLAS() {
		return nil, fmt.Errorf("cuda: the nearest-neighbour search needs cuBLAS: %v", d.BLASError)
	}
	ix := &Index{d: d, n: n, dim: dim}
	var err error
	if ix.norm, err = d.kernel("sq_norms"); err != nil {
		return nil, err
	}
	if ix.fold, err = d.kernel("top1_tile"); err != nil {
		return nil, err
	}
	if ix.foldK, err = d.kernel("topk_tile"); err != nil {
		return nil, err
	}
	if ix.bank, err = d.Alloc(int64(n) * int64(dim) * 4); err != nil {
		return nil, err
	}
	if ix.norms, err = d.Alloc(int64(n) * 4); err != nil {
		ix.Close()
		return nil, err
	}
	if err := Upload(d, ix.bank, 0, bank); err != nil {
		ix.Close()
		return nil, err
	}
	if err := ix.d.Launch(ix.norm, grid(int64(n)), [3]uint32{256, 1, 1}, 0, ix.bank, n, dim, ix.norms); err != nil {
		ix.Close()
		return nil, err
	}
	return ix, nil
}

// Close frees the index's device memory.
func (ix *Index) Close() error {
	var err error
	for _, b := range []*Buffer{&ix.bank, &ix.norms, &ix.q, &ix.qn, &ix.tile, &ix.bd, &ix.bi} {
		if e := ix.d.Free(*b); err == nil {
			err = e
		}
		*b = Buffer{}
	}
	return err
}

// ensure makes *b hold at least bytes, reallocating it when it is smaller.
func (ix *Index) ensure(b *Buffer, bytes int64) error {
	if b.Bytes >= bytes && b.Ptr != 0 {
		return nil
	}
	if err := ix.d.Free(*b); err != nil {
		return err
	}
	*b = Buffer{}
	nb, err := ix.d.Alloc(bytes)
	if err != nil {
		return err
	}
	*b = nb
	return nil
}

// MaxK is the largest k of Index.Search.
const MaxK = 32

// Search1 is Search with k = 1.
func (ix *Index) Search1(dist []float32, idx []int32, queries []float32, nq int, budget int64) error {
	return ix.Search(dist, idx, queries, nq, 1, budget)
}

// Search writes each of the nq queries' ([nq][dim]) k nearest bank rows
// into idx[i*k:(i+1)*k] and their squared L2 distances, (|q|^2 + |b|^2) -
// 2 q.b in float32 clamped at 0, into dist, ascending, the lower index on
// ties; ranks past the bank's size get index -1 and distance
// math.MaxFloat32 (engine/knn's Search; the inner products come from
// cuBLAS, so distances may differ from the CPU's in the last bits). k = 1
// folds each tile with top1_tile, larger k with topk_tile. budget bounds
// the device memory of a block of queries and its tile of inner products
// (0: DefaultKNNBudget), which the Index keeps for the next call until
// Close.
func (ix *Index) Search(dist []float32, idx []int32, queries []float32, nq, k int, budget int64) error {
	if k < 1 || k > MaxK {
		return fmt.Errorf("cuda: search for k=%d nearest, want 1 <= k <= %d", k, MaxK)
	}
	if nq < 0 || len(queries) < nq*ix.dim || len(dist) < nq*k || len(idx) < nq*k {
		return fmt.Errorf("cuda: search of %d queries (k=%d) with %d values, %d dist, %d idx", nq, k, len(queries), len(dist), len(idx))
	}
	if nq == 0 {
		return nil
	}
	if budget <= 0 {
		budget = DefaultKNNBudget
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	d, n, dim := ix.d, ix.n, ix.dim
	// A block of qb queries and a tile of qb x bb inner products: all the
	// bank at once when it fits, else tiles of at least 4096 rows.
	bb := n
	qb := int(min(int64(nq), budget/int64(4*(bb+dim+1+2*k))))
	if qb < min(256, nq) {
		bb = min(n, 4096)
		qb = int(max(1, min(int64(nq), budget/int64(4*(bb+dim+1+2*k)))))
	}
	for _, a := range []struct {
		b     *Buffer
		bytes int64
	}{{&ix.q, int64(qb) * int64(dim) * 4}, {&ix.qn, int64(qb) * 4}, {&ix.tile, int64(qb) * int64(bb) * 4},
		{&ix.bd, int64(qb) * int64(k) * 4}, {&ix.bi, int64(qb) * int64(k) * 4}} {
		if err := ix.ensure(a.b, a.bytes); err != nil {
			return err
		}
	}
	q, qn, tile, bd, bi := ix.q, ix.qn, ix.tile, ix.bd, ix.bi
	inf := make([]float32, qb*k)
	none := make([]int32, qb*k)
	for i := range inf {
		inf[i], none[i] = math.MaxFloat32, -1
	}
	for q0 := 0; q0 < nq; q0 += qb {
		rows := min(qb, nq-q0)
		if err := Upload(d, q, 0, queries[q0*dim:(q0+rows)*dim]); err != nil {
			return err
		}
		if err := Upload(d, bd, 0, inf[:rows*k]); err != nil {
			return err
		}
		if err := Upload(d, bi, 0, none[:rows*k]); err != nil {
			return err
		}
		if err := d.Launch(ix.norm, grid(int64(rows)), [3]uint32{256, 1, 1}, 0, q, rows, dim, qn); err != nil {
			return err
		}
		for b0 := 0; b0 < n; b0 += bb {
			cols := min(bb, n-b0)
			bank := Buffer{Ptr: ix.bank.Ptr + uint64(b0)*uint64(dim)*4, Bytes: int64(cols) * int64(dim) * 4}
			if err := d.Sgemm(false, true, rows, cols, dim, -2, q, dim, bank, dim, 0, tile, cols); err != nil {
				return err
			}
			blocks := [3]uint32{uint32(min(rows, 1<<16)), 1, 1}
			var err error
			if k == 1 {
				err = d.Launch(ix.fold, blocks, [3]uint32{256, 1, 1}, 0, tile, rows, cols, cols, qn, ix.norms, b0, 0, bd, bi)
			} else {
				err = d.Launch(ix.foldK, blocks, [3]uint32{128, 1, 1}, 0, tile, rows, cols, cols, qn, ix.norms, b0, 0, k, bd, bi)
			}
			if err != nil {
				return err
			}
		}
		if err := Download(d, dist[q0*k:(q0+rows)*k], bd, 0); err != nil {
			return err
		}
		if err := Download(d, idx[q0*k:(q0+rows)*k], bi, 0); err != nil {
			return err
		}
	}
	return nil
}
