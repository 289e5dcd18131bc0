package cuda

import (
	"fmt"

	"github.com/softpatch/softpatch/engine/compute"
	"github.com/softpatch/softpatch/engine/denoise"
)

// DefaultNoiseBudget is the device memory NoiseScores uses for its
// per-position scratch.
const DefaultNoiseBudget = 1 << 30

// Device implements the engine's hand-over interface.
var _ compute.Accelerator = (*Device)(nil)

// NoiseScores computes denoise.Scores(denoise.Method(method), feats, n, p,
// dim, k) on the GPU, bit for bit (the kernels of denoise.cuh keep the
// CPU's arithmetic and its order; see there), with DefaultNoiseBudget bytes
// of scratch (see noiseScores).
func (d *Device) NoiseScores(method string, feats []float32, n, p, dim, k int) ([]float32, error) {
	return d.noiseScores(denoise.Method(method), feats, n, p, dim, k, DefaultNoiseBudget)
}

// noiseScores is NoiseScores with positions processed in chunks whose
// scratch fits budget bytes of device memory (0: DefaultNoiseBudget): the
// chunk's features ([n][chunk][dim], gathered from feats as they are
// uploaded), dense [chunk][n][n] distance matrices (float64; float32 for
// LOFDense), the neighbour lists and, for Gaussian, the centred vectors,
// the covariance and its Cholesky factor in float64. A single position's
// scratch is allocated even when it alone exceeds the budget.
func (d *Device) noiseScores(method denoise.Method, feats []float32, n, p, dim, k int, budget int64) (out []float32, err error) {
	if err := denoise.Check(method, feats, n, p, dim, k); err != nil {
		return nil, err
	}
	if int64(n)*int64(n) >= 1<<31 || int64(n)*int64(p) >= 1<<31 {
		return nil, fmt.Errorf("cuda: noise scores: %d images x %d positions is too large", n, p)
	}
	if k > n-1 {
		k = n - 1
	}
	if budget <= 0 {
		budget = DefaultNoiseBudget
	}
	n64, d64, k64 := int64(n), int64(dim), int64(k)
	chunk := int(min(max(budget/noiseBytes(method, n, dim, k), 1), int64(p)))
	names := map[denoise.Method][]string{
		denoise.Nearest:  {"group_dist", "nearest_score"},
		denoise.LOF:      {"group_dist", "lof_knn", "lof_lrd", "lof_score"},
		denoise.LOFDense: {"dense_dist", "dense_knn", "dense_lrd", "dense_score"},
		denoise.Gaussian: {"gauss_center", "gauss_cov", "gauss_chol", "gauss_score"},
	}[method]
	fns := make([]Function, len(names))
	for i, name := range names {
		if fns[i], err = d.kernel(name); err != nil {
			return nil, err
		}
	}
	bs := &buffers{d: d}
	defer func() {
		if ferr := bs.free(); err == nil {
			err = ferr
		}
	}()
	c64 := int64(chunk)
	x := bs.alloc(n64 * c64 * d64 * 4)
	outB := bs.alloc(n64 * int64(p) * 4)
	var a, b, c, e Buffer // per method: see the launches below
	switch method {
	case denoise.Nearest:
		a = bs.alloc(c64 * n64 * n64 * 8)
	case denoise.LOF:
		a, b, c, e = bs.alloc(c64*n64*n64*8), bs.alloc(c64*n64*k64*4), bs.alloc(c64*n64*8), bs.alloc(c64*n64*8)
	case denoise.LOFDense:
		a, b, c, e = bs.alloc(c64*n64*n64*4), bs.alloc(c64*n64*(k64+1)*4), bs.alloc(c64*n64*4), bs.alloc(c64*n64*4)
	case denoise.Gaussian:
		a, b, c = bs.alloc(c64*n64*d64*8), bs.alloc(c64*d64*d64*8), bs.alloc(c64*n64*d64*8)
	}
	if bs.err != nil {
		return nil, bs.err
	}
	block := [3]uint32{256, 1, 1}
	var host []float32 // a chunk's features, when they are not all of feats
	if chunk < p {
		host = make([]float32, n*chunk*dim)
	}
	for q0 := 0; q0 < p; q0 += chunk {
		nq := min(chunk, p-q0)
		// The chunk's features, [n][nq][dim], gathered on the host and
		// uploaded at once: the kernels read them as a feature array of
		// nq positions.
		if chunk == p {
			host = feats
		} else {
			host = host[:n*nq*dim]
			for i := 0; i < n; i++ {
				copy(host[i*nq*dim:(i+1)*nq*dim], feats[(i*p+q0)*dim:(i*p+q0+nq)*dim])
			}
		}
		if err := Upload(d, x, 0, host); err != nil {
			return nil, err
		}
		rows, pairs := int64(nq)*n64, int64(nq)*n64*n64
		var launches []error
		launch := func(fn Function, total int64, args ...any) {
			launches = append(launches, d.Launch(fn, grid(total), block, 0, args...))
		}
		switch method {
		case denoise.Nearest:
			launch(fns[0], pairs, x, n, nq, dim, 0, nq, a)
			launch(fns[1], rows, a, n, p, q0, nq, outB)
		case denoise.LOF:
			launch(fns[0], pairs, x, n, nq, dim, 0, nq, a)
			launch(fns[1], rows, a, n, k, nq, b, c)
			launch(fns[2], rows, a, b, c, n, k, nq, e)
			launch(fns[3], rows, b, e, n, k, p, q0, nq, outB)
		case denoise.LOFDense:
			launch(fns[0], pairs, x, n, nq, dim, 0, nq, a)
			launch(fns[1], rows, a, n, k, nq, b, c)
			launch(fns[2], rows, a, b, c, n, k, nq, e)
			launch(fns[3], rows, b, e, n, k, p, q0, nq, outB)
		case denoise.Gaussian:
			launch(fns[0], int64(nq)*d64, x, n, nq, dim, 0, nq, a)
			launch(fns[1], int64(nq)*d64*d64, a, n, dim, nq, b)
			launches = append(launches, d.Launch(fns[2], [3]uint32{uint32(min(nq, 1<<16)), 1, 1}, [3]uint32{128, 1, 1}, 0, b, dim, nq))
			launch(fns[3], rows, a, b, n, dim, p, q0, nq, c, outB)
		}
		for _, err := range launches {
			if err != nil {
				return nil, err
			}
		}
	}
	out = make([]float32, n*p)
	if err := Download(d, out, outB, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// noiseBytes is NoiseScores' device memory per position: the position's
// features, its distance matrix (or Gaussian's float64 centred vectors,
// covariance and substitution scratch) and its neighbour lists.
func noiseBytes(method denoise.Method, n, dim, k int) int64 {
	n64, d64, k64 := int64(n), int64(dim), int64(k)
	per := n64 * d64 * 4
	switch method {
	case denoise.Nearest:
		per += n64 * n64 * 8
	case denoise.LOF:
		per += n64*n64*8 + n64*k64*4 + 2*n64*8
	case denoise.LOFDense:
		per += n64*n64*4 + n64*(k64+1)*4 + 2*n64*4
	case denoise.Gaussian:
		per += 2*n64*d64*8 + d64*d64*8
	}
	return per
}
