package cflow

import (
	"sync"

	"github.com/softpatch/softpatch/engine/compute"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	G "gorgonia.org/gorgonia"
)

// blasImpl is the BLAS gorgonia's matrix products call: gonum's, with the
// float32 GEMM replaced by compute.Sgemm (our kernels, split over
// compute.Threads()).
type blasImpl struct{ gonum.Implementation }

func (blasImpl) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	compute.Sgemm(tA != blas.NoTrans, tB != blas.NoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

var useBLAS sync.Once

// useComputeBLAS makes gorgonia's products use compute.Sgemm. gorgonia
// keeps one BLAS for the whole process; nothing else in this module
// multiplies through gorgonia's own products (the backbone's ops call
// compute directly).
func useComputeBLAS() { useBLAS.Do(func() { G.Use(blasImpl{}) }) }
