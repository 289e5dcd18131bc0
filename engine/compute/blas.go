package compute

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

var numThreads atomic.Int64

func init() { SetThreads(0) }

// SetThreads sets the number of threads OpenBLAS uses (through
// openblas_set_num_threads) and the number of goroutines the Go-side loops
// of this package split their work across. n <= 0 means runtime.NumCPU(),
// which is also the default at package initialisation.
func SetThreads(n int) {
	if n <= 0 {
		n = runtime.NumCPU()
	}
	blasMu.Lock()
	defer blasMu.Unlock()
	numThreads.Store(int64(n))
	C.openblas_set_num_threads(C.int(n))
}

// blasMu serialises changes of OpenBLAS's thread count.
var blasMu sync.Mutex

// parallelGEMM makes sgemmBatch run its products on Threads() goroutines,
// each calling a single-threaded OpenBLAS, instead of one after another on
// a multi-threaded OpenBLAS.
var parallelGEMM = true

// sgemmBatch runs job(0) .. job(count-1), each of which calls sgemm on
// independent outputs. With parallelGEMM and Threads() > 1, OpenBLAS is
// switched to one thread for the duration and the jobs are spread over
// Threads() goroutines: for the many small products of a Winograd
// convolution this avoids OpenBLAS's per-call thread synchronisation, and
// the CPUs stay at one thread each. (A concurrent Sgemm elsewhere runs
// single-threaded meanwhile.)
func sgemmBatch(count int, job func(i int)) {
	t := Threads()
	if !parallelGEMM || t <= 1 || count <= 1 {
		for i := 0; i < count; i++ {
			job(i)
		}
		return
	}
	blasMu.Lock()
	defer blasMu.Unlock()
	C.openblas_set_num_threads(1)
	defer C.openblas_set_num_threads(C.int(t))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(t, count); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < count; i = int(next.Add(1) - 1) {
				job(i)
			}
		}()
	}
	wg.Wait()
}

// Threads returns the thread count last set by SetThreads.
func Threads() int { return int(numThreads.Load()) }

// BLASInfo describes the OpenBLAS library in use, for example
// "OpenBLAS 0.3.21 (core Haswell, 2 threads)": the version from
// openblas_get_config, the kernel set from openblas_get_corename (which
// OPENBLAS_CORETYPE overrides) and openblas_get_num_threads.
func BLASInfo() string {
	cfg := strings.Fields(C.GoString(C.openblas_get_config()))
	version := strings.Join(cfg, " ")
	if len(cfg) >= 2 && cfg[0] == "OpenBLAS" {
		version = cfg[0] + " " + cfg[1]
	}
	core := strings.TrimSpace(C.GoString(C.openblas_get_corename()))
	return fmt.Sprintf("%s (core %s, %d threads)", version, core, int(C.openblas_get_num_threads()))
}

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major matrices
// through OpenBLAS's cblas_sgemm. C is m x n with leading dimension (row
// stride) ldc; op(A) is m x k: A is stored m x k (lda >= k) when transA is
// false and k x m (lda >= m) when it is true; op(B) is k x n: B is stored
// k x n (ldb >= n) when transB is false and n x k (ldb >= k) when true.
// The slices must hold at least (rows-1)*ld+cols elements of their stored
// shape. C is overwritten in place; when beta is 0 its old contents are
// ignored (NaNs included, as in BLAS). a, b and c belong to the caller.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("compute.Sgemm: negative size m=%d n=%d k=%d", m, n, k))
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	checkMat("Sgemm", "A", a, ar, ac, lda)
	checkMat("Sgemm", "B", b, br, bc, ldb)
	checkMat("Sgemm", "C", c, m, n, ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		for i := 0; i < m; i++ {
			row := c[i*ldc : i*ldc+n]
			if beta == 0 {
				clear(row)
			} else if beta != 1 {
				for j := range row {
					row[j] *= beta
				}
			}
		}
		return
	}
	sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// sgemm calls cblas_sgemm without checks; the slices must be non-empty.
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ta, tb := uint32(C.CblasNoTrans), uint32(C.CblasNoTrans)
	if transA {
		ta = C.CblasTrans
	}
	if transB {
		tb = C.CblasTrans
	}
	C.cblas_sgemm(C.CblasRowMajor, C.enum_CBLAS_TRANSPOSE(ta), C.enum_CBLAS_TRANSPOSE(tb),
		C.blasint(m), C.blasint(n), C.blasint(k), C.float(alpha),
		(*C.float)(unsafe.Pointer(&a[0])), C.blasint(lda),
		(*C.float)(unsafe.Pointer(&b[0])), C.blasint(ldb), C.float(beta),
		(*C.float)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}

// checkMat panics unless s can hold a rows x cols row-major matrix with row
// stride ld.
func checkMat(fn, name string, s []float32, rows, cols, ld int) {
	if ld < max(cols, 1) {
		panic(fmt.Sprintf("compute.%s: ld%s=%d < max(%d, 1) columns", fn, strings.ToLower(name), ld, cols))
	}
	if rows == 0 || cols == 0 {
		return
	}
	if need := (rows-1)*ld + cols; len(s) < need {
		panic(fmt.Sprintf("compute.%s: len(%s)=%d < %d needed for %dx%d with ld %d", fn, name, len(s), need, rows, cols, ld))
	}
}
