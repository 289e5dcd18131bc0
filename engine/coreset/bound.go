package coreset

/*
#include "dist.h"
*/
import "C"

import (
	"math"
	"unsafe"

	"gonum.org/v1/gonum/mat"

	"github.com/softpatch/softpatch/engine/compute"
)

// prefixDim is the number of principal coordinates of the bounded pass
// (PREFIX in dist.c).
const prefixDim = 8

// prefix holds every point's first prefixDim principal coordinates and the
// slack that makes the lower bound safe under rounding.
type prefix struct {
	// z holds the coordinates in blocks of 8 points, [ceil(n/8)][prefixDim][8]:
	// coordinate k of point i at (i/8)*64 + k*8 + i%8 (dist.c reads 8
	// points' bounds at once).
	z   []float32
	eps float64
	// ok is false when the bound cannot be trusted: features that are not
	// finite, or so large that the float32 sum of squares could overflow.
	ok bool
}

// at returns the index in z of coordinate k of point i.
func at(i, k int) int { return (i/8)*8*prefixDim + k*8 + i%8 }

// centre returns point c's coordinates.
func (p prefix) centre(c int) []float32 {
	zc := make([]float32, prefixDim)
	for k := range zc {
		zc[k] = p.z[at(c, k)]
	}
	return zc
}

// principalPrefix returns z_i = V^T (x_i - mu) (see prefix.z) for the prefixDim leading
// eigenvectors V (orthonormal columns) of the covariance of a subsample of
// x [n][dim] (zero-padded when dim < prefixDim).
//
// Since V has orthonormal columns, |z_i - z_j| <= |x_i - x_j| exactly: the
// prefix distance is a lower bound of the distance, so a point whose bound
// exceeds its key cannot have its key lowered. The covariance only steers
// how tight the bound is (most of the variance of real patch features lies
// in a few directions); any orthonormal V keeps it valid. z is computed in
// float64 and rounded to float32, which moves it by at most 2^-24 |z_i|;
// eps = 1e-6 * max |z_i| + 1e-12 * (max |x_i| + |mu|) covers that and the
// float64 error of the projection (for dim up to about 3,000), and dist.c
// compares with a relative factor of 1e-5 for the float32 sum of squares.
// prefix.ok is false when the features are not finite or too large for
// that reasoning; the selection then runs without the bound.
func principalPrefix(x []float32, n, dim int) prefix {
	// Mean and covariance of at most 16,384 evenly spaced points.
	step := max(1, (n+16383)/16384)
	s := (n + step - 1) / step
	mu := make([]float64, dim)
	for i := 0; i < n; i += step {
		for j, v := range x[i*dim : (i+1)*dim] {
			mu[j] += float64(v)
		}
	}
	for j := range mu {
		mu[j] /= float64(s)
	}
	xc := make([]float32, s*dim)
	for r, i := 0, 0; i < n; r, i = r+1, i+step {
		for j, v := range x[i*dim : (i+1)*dim] {
			xc[r*dim+j] = float32(float64(v) - mu[j])
		}
	}
	cov := make([]float32, dim*dim)
	compute.Sgemm(true, false, dim, dim, s, 1, xc, dim, xc, dim, 0, cov, dim)
	c64 := make([]float64, dim*dim)
	for i := range cov {
		c64[i] = float64(cov[i])
	}
	var es mat.EigenSym
	v := make([]float64, dim*prefixDim) // [dim][prefixDim]
	if es.Factorize(mat.NewSymDense(dim, c64), true) {
		var vecs mat.Dense
		es.VectorsTo(&vecs) // columns in ascending eigenvalue order
		for k := 0; k < min(prefixDim, dim); k++ {
			for j := 0; j < dim; j++ {
				v[j*prefixDim+k] = vecs.At(j, dim-1-k)
			}
		}
	} else {
		// Unit vectors: still orthonormal, so the bound stays valid.
		for k := 0; k < min(prefixDim, dim); k++ {
			v[k*prefixDim+k] = 1
		}
	}
	z := make([]float32, (n+7)/8*8*prefixDim)
	t := compute.Threads()
	maxZ, maxX := make([]float64, t), make([]float64, t)
	compute.ParallelFor(t, 1, func(lo, hi int) {
		for w := lo; w < hi; w++ {
			var zi [prefixDim]float64
			for i := w * n / t; i < (w+1)*n/t; i++ {
				zi = [prefixDim]float64{}
				nx := 0.0
				for j, xv := range x[i*dim : (i+1)*dim] {
					d := float64(xv) - mu[j]
					nx += float64(xv) * float64(xv)
					vj := v[j*prefixDim : (j+1)*prefixDim]
					for k := range zi {
						zi[k] += d * vj[k]
					}
				}
				nz := 0.0
				for k, zk := range zi {
					z[at(i, k)] = float32(zk)
					nz += zk * zk
				}
				maxZ[w] = max(maxZ[w], math.Sqrt(nz))
				maxX[w] = max(maxX[w], math.Sqrt(nx))
			}
		}
	})
	nmu := 0.0
	for _, m := range mu {
		nmu += m * m
	}
	eps, mz := 0.0, 0.0
	for w := range t {
		eps = max(eps, 1e-6*maxZ[w]+1e-12*(maxX[w]+math.Sqrt(nmu)))
		mz = max(mz, maxZ[w])
	}
	// max propagates NaN; |z| <= 1e18 keeps the float32 squares finite.
	return prefix{z: z, eps: eps, ok: !math.IsNaN(eps) && !math.IsInf(eps, 0) && mz <= 1e18}
}

// boundedStep is step with the prefix bound: it sets keys[i] = min(keys[i],
// distance(x row i, c)) for i in [lo, lo+m) (skipping keys already 0 and
// points whose bound proves the distance larger than the key), and returns
// the largest key of the range, its first index and the number of
// distances computed.
func boundedStep(x []float32, dim int, c []float32, z, zc []float32, eps float64, keys []float64, lo, m int) (float64, int, int) {
	var bk C.double
	var bi, ev C.int64_t
	C.coreset_bstep(kernel, (*C.float)(unsafe.Pointer(&x[0])), C.int(dim), (*C.float)(unsafe.Pointer(&c[0])),
		(*C.float)(unsafe.Pointer(&z[0])), (*C.float)(unsafe.Pointer(&zc[0])), C.double(eps),
		(*C.double)(unsafe.Pointer(&keys[0])), C.int64_t(lo), C.int64_t(m), &bk, &bi, &ev)
	return float64(bk), int(bi), int(ev)
}
