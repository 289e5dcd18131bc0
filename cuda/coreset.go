package cuda

import (
	"fmt"
)

// coresetBlock is the threads per block of coreset_step.
const coresetBlock = 256

// CoresetSteps runs the approximate greedy coreset's selection loop
// (engine/coreset: Greedy.Steps) on the GPU: the points, transposed to
// [dim][n] so that a warp reads consecutive points, the keys (float64), the
// initial keys and the weights live on the device, and each selection is
// one launch of coreset_step, which reads the previous selection from
// device memory: no host round trip until the picks are copied back. The
// distances are engine/coreset's, bit for bit (float64 lanes in the same
// order), so the selection is the CPU's.
func (d *Device) CoresetSteps(x []float32, dim int, init []float64, weights []float32, picks int) (sel []int, err error) {
	n := len(init)
	if dim <= 0 || len(x) != n*dim || (weights != nil && len(weights) != n) || picks < 0 || picks > n {
		return nil, fmt.Errorf("cuda: coreset: %d values, %d keys, %d weights for dim %d and %d picks", len(x), n, len(weights), dim, picks)
	}
	if n >= 1<<31 {
		return nil, fmt.Errorf("cuda: coreset: %d points, at most 2^31-1", n)
	}
	if picks == 0 {
		return []int{}, nil
	}
	c0 := 0
	for i, k := range init {
		if k > init[c0] {
			c0 = i
		}
	}
	if picks == 1 {
		return []int{c0}, nil
	}
	fn, err := d.kernel("coreset_step")
	if err != nil {
		return nil, err
	}
	blocks := min((n+coresetBlock-1)/coresetBlock, 4*max(d.SMs, 1))
	bs := &buffers{d: d}
	defer func() {
		if ferr := bs.free(); err == nil {
			err = ferr
		}
	}()
	alloc := bs.alloc
	xt := alloc(int64(n) * int64(dim) * 4)
	keys := alloc(int64(n) * 8)
	initB := alloc(int64(n) * 8)
	selB := alloc(int64(picks) * 4)
	pk := alloc(int64(blocks) * 8)
	pi := alloc(int64(blocks) * 8)
	count := alloc(4)
	var wB Buffer
	if weights != nil {
		wB = alloc(int64(n) * 4)
	}
	if bs.err != nil {
		return nil, bs.err
	}
	t := make([]float32, n*dim)
	for i := 0; i < n; i++ {
		for j := 0; j < dim; j++ {
			t[j*n+i] = x[i*dim+j]
		}
	}
	for _, up := range []func() error{
		func() error { return Upload(d, xt, 0, t) },
		func() error { return Upload(d, initB, 0, init) },
		func() error { return Upload(d, selB, 0, []int32{int32(c0)}) },
		func() error { return d.Zero(count) },
		func() error {
			if weights == nil {
				return nil
			}
			return Upload(d, wB, 0, weights)
		},
	} {
		if err := up(); err != nil {
			return nil, err
		}
	}
	for step := 1; step < picks; step++ {
		first := 0
		if step == 1 {
			first = 1
		}
		if err := d.Launch(fn, [3]uint32{uint32(blocks), 1, 1}, [3]uint32{coresetBlock, 1, 1}, 0,
			xt, dim, int64(n), keys, initB, wB, first, selB, step, pk, pi, count); err != nil {
			return nil, err
		}
	}
	out := make([]int32, picks)
	if err := Download(d, out, selB, 0); err != nil {
		return nil, err
	}
	sel = make([]int, picks)
	for i, v := range out {
		sel[i] = int(v)
	}
	return sel, nil
}
