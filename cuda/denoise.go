package cuda

import (
	"fmt"

	"github.com/softpatch/softpatch/engine/denoise"
)

// DefaultNoiseBudget is the device memory NoiseScores uses for its
// per-position scratch.
const DefaultNoiseBudget = 1 << 30

// NoiseScores computes denoise.Scores(disc, feats, n, p, dim, k) on the
// GPU, bit for bit (the kernels of denoise.cuh keep the CPU's arithmetic
// and its order; see there), with DefaultNoiseBudget bytes of scratch (see
// noiseScores).
func (d *Device) NoiseScores(disc denoise.Discriminator, feats []float32, n, p, dim, k int) ([]float32, error) {
	return d.noiseScores(disc, feats, n, p, dim, k, DefaultNoiseBudget)
}

// gpuDiscriminator is how the GPU runs one discriminator: its kernels, the
// scratch buffers they share, and their launches for a chunk of positions.
type gpuDiscriminator struct {
	kernels []string
	// scratch returns the sizes in bytes of the scratch buffers for c
	// positions of n images of dim values with k neighbours.
	scratch func(c, n, dim, k int64) []int64
	// launch queues the kernels fns for positions [q0, q0+nq) of p, whose
	// features x ([n][nq][dim]) are on the device, with scratch s; the
	// scores go to out ([n][p]).
	launch func(l launcher, fns []Function, x Buffer, s []Buffer, out Buffer, n, p, dim, k, q0, nq int)
}

// launcher queues a kernel over total threads (capped 256-thread grid),
// or with an explicit grid and block.
type launcher struct {
	d    *Device
	errs *[]error
}

func (l launcher) threads(fn Function, total int64, args ...any) {
	*l.errs = append(*l.errs, l.d.Launch(fn, grid(total), [3]uint32{256, 1, 1}, 0, args...))
}

func (l launcher) blocks(fn Function, grid, block [3]uint32, args ...any) {
	*l.errs = append(*l.errs, l.d.Launch(fn, grid, block, 0, args...))
}

// lofLaunch queues the four LOF kernels (distances, k nearest, local
// reachability densities, scores), shared by LOF and LOFDense.
func lofLaunch(l launcher, fns []Function, x Buffer, s []Buffer, out Buffer, n, p, dim, k, q0, nq int) {
	rows, pairs := int64(nq)*int64(n), int64(nq)*int64(n)*int64(n)
	l.threads(fns[0], pairs, x, n, nq, dim, 0, nq, s[0])
	l.threads(fns[1], rows, s[0], n, k, nq, s[1], s[2])
	l.threads(fns[2], rows, s[0], s[1], s[2], n, k, nq, s[3])
	l.threads(fns[3], rows, s[1], s[3], n, k, p, q0, nq, out)
}

// gpuDiscriminators are the discriminators the GPU runs, each with its
// kernels (denoise.cuh); NoiseScores refuses any other.
var gpuDiscriminators = map[denoise.Discriminator]gpuDiscriminator{
	denoise.Nearest: {
		kernels: []string{"group_dist", "nearest_score"},
		scratch: func(c, n, _, _ int64) []int64 { return []int64{c * n * n * 8} },
		launch: func(l launcher, fns []Function, x Buffer, s []Buffer, out Buffer, n, p, dim, _, q0, nq int) {
			l.threads(fns[0], int64(nq)*int64(n)*int64(n), x, n, nq, dim, 0, nq, s[0])
			l.threads(fns[1], int64(nq)*int64(n), s[0], n, p, q0, nq, out)
		},
	},
	denoise.LOF: {
		kernels: []string{"group_dist", "lof_knn", "lof_lrd", "lof_score"},
		scratch: func(c, n, _, k int64) []int64 { return []int64{c * n * n * 8, c * n * k * 4, c * n * 8, c * n * 8} },
		launch:  lofLaunch,
	},
	denoise.LOFDense: {
		kernels: []string{"dense_dist", "dense_knn", "dense_lrd", "dense_score"},
		scratch: func(c, n, _, k int64) []int64 {
			return []int64{c * n * n * 4, c * n * (k + 1) * 4, c * n * 4, c * n * 4}
		},
		launch: lofLaunch,
	},
	denoise.Gaussian: {
		kernels: []string{"gauss_center", "gauss_cov", "gauss_chol", "gauss_score"},
		scratch: func(c, n, dim, _ int64) []int64 { return []int64{c * n * dim * 8, c * dim * dim * 8, c * n * dim * 8} },
		launch: func(l launcher, fns []Function, x Buffer, s []Buffer, out Buffer, n, p, dim, _, q0, nq int) {
			l.threads(fns[0], int64(nq)*int64(dim), x, n, nq, dim, 0, nq, s[0])
			l.threads(fns[1], int64(nq)*int64(dim)*int64(dim), s[0], n, dim, nq, s[1])
			l.blocks(fns[2], [3]uint32{uint32(min(nq, 1<<16)), 1, 1}, [3]uint32{128, 1, 1}, s[1], dim, nq)
			l.threads(fns[3], int64(nq)*int64(n), s[0], s[1], n, dim, p, q0, nq, s[2], out)
		},
	},
}

// noiseScores is NoiseScores with positions processed in chunks whose
// scratch fits budget bytes of device memory (0: DefaultNoiseBudget): the
// chunk's features ([n][chunk][dim], gathered from feats as they are
// uploaded) and the discriminator's scratch (dense [chunk][n][n] distance
// matrices, float64 or float32 for LOFDense, and neighbour lists; for
// Gaussian the centred vectors, the covariance and its Cholesky factor in
// float64). A single position's scratch is allocated even when it alone
// exceeds the budget.
func (d *Device) noiseScores(disc denoise.Discriminator, feats []float32, n, p, dim, k int, budget int64) (out []float32, err error) {
	if err := denoise.Check(disc, feats, n, p, dim, k); err != nil {
		return nil, err
	}
	g, ok := gpuDiscriminators[disc]
	if !ok {
		return nil, fmt.Errorf("cuda: no kernels for the %s discriminator", disc)
	}
	if int64(n)*int64(n) >= 1<<31 || int64(n)*int64(p) >= 1<<31 {
		return nil, fmt.Errorf("cuda: noise scores: %d images x %d positions is too large", n, p)
	}
	k = min(k, n-1)
	if budget <= 0 {
		budget = DefaultNoiseBudget
	}
	chunk := int(min(max(budget/noiseBytes(disc, n, dim, k), 1), int64(p)))
	fns := make([]Function, len(g.kernels))
	for i, name := range g.kernels {
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
	x := bs.alloc(int64(n) * int64(chunk) * int64(dim) * 4)
	outB := bs.alloc(int64(n) * int64(p) * 4)
	var scratch []Buffer
	for _, size := range g.scratch(int64(chunk), int64(n), int64(dim), int64(k)) {
		scratch = append(scratch, bs.alloc(size))
	}
	if bs.err != nil {
		return nil, bs.err
	}
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
		var launches []error
		g.launch(launcher{d, &launches}, fns, x, scratch, outB, n, p, dim, k, q0, nq)
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

// noiseBytes is noiseScores' device memory per position: the position's
// features and the discriminator's scratch for one position.
func noiseBytes(disc denoise.Discriminator, n, dim, k int) int64 {
	per := int64(n) * int64(dim) * 4
	for _, s := range gpuDiscriminators[disc].scratch(1, int64(n), int64(dim), int64(k)) {
		per += s
	}
	return per
}
