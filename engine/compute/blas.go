package compute

/*
#cgo LDFLAGS: -lopenblas -ldl
#include <cblas.h>
#include <dlfcn.h>

// stop_openblas_pool ends the worker threads a threaded OpenBLAS starts at
// load time (they busy-wait for ~2^28 cycles first), using the function
// OpenBLAS's own fork handler calls, when the library has it. With one
// thread set, OpenBLAS never needs them again.
static void stop_openblas_pool(void) {
	int (*shutdown)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "blas_thread_shutdown_");
	if (shutdown) {
		shutdown();
	}
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"unsafe"
)

var numThreads atomic.Int64

func init() {
	// OpenBLAS always runs single-threaded: every parallel GEMM of this
	// package is split over goroutines instead (see SetThreads).
	C.openblas_set_num_threads(1)
	C.stop_openblas_pool()
	SetThreads(0)
}

// SetThreads sets the number of goroutines (at most one per CPU is useful)
// that Sgemm, Conv.Forward and the other kernels split their work across,
// GEMMs included; n <= 0 means runtime.GOMAXPROCS(0) (all cores, less any
// container CPU limit Go detects), which is also the default
// at package initialisation.
//
// OpenBLAS itself is kept at one thread (openblas_set_num_threads(1) at
// init, and its idle thread pool is shut down; nothing else in the program
// should call openblas_set_num_threads). Each parallel GEMM is split into
// independent single-threaded cblas_sgemm calls on disjoint blocks of the
// output, made from Threads() goroutines. OpenBLAS's own pool busy-waits
// (sched_yield) for about 2^28 cycles after every threaded call, which on a
// machine with few cores takes about half the CPU from the Go loops (im2col,
// Winograd transforms, epilogues) that run between GEMMs; measured on
// WRN-50-2 at batch 1, splitting the GEMMs ourselves is ~25% faster end to
// end, and it never oversubscribes the CPUs.
func SetThreads(n int) {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	numThreads.Store(int64(n))
}

// Threads returns the thread count last set by SetThreads.
func Threads() int { return int(numThreads.Load()) }

// BLASInfo describes the SGEMM in use, for example
// "OpenBLAS 0.3.21 (core Haswell) + softpatch AVX-512 SGEMM, 2 threads":
// OpenBLAS's version from openblas_get_config and its kernel set from
// openblas_get_corename (which OPENBLAS_CORETYPE overrides), this package's
// own SGEMM kernel set when the CPU runs one (it then does every GEMM;
// OpenBLAS is the fallback), and Threads(), the number of goroutines each
// GEMM is split across (each running a single-threaded kernel;
// openblas_get_num_threads is 1).
func BLASInfo() string {
	cfg := strings.Fields(C.GoString(C.openblas_get_config()))
	version := strings.Join(cfg, " ")
	if len(cfg) >= 2 && cfg[0] == "OpenBLAS" {
		version = cfg[0] + " " + cfg[1]
	}
	core := strings.TrimSpace(C.GoString(C.openblas_get_corename()))
	s := fmt.Sprintf("%s (core %s)", version, core)
	if ours() {
		s += fmt.Sprintf(" + softpatch %v SGEMM", useKernel)
	}
	return fmt.Sprintf("%s, %d threads", s, Threads())
}

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major matrices
// with this package's SGEMM kernel (AVX-512 or AVX2, whichever the CPU
// has), else OpenBLAS's cblas_sgemm. C is m x n with leading dimension (row
// stride) ldc; op(A) is m x k: A is stored m x k (lda >= k) when transA is
// false and k x m (lda >= m) when it is true; op(B) is k x n: B is stored
// k x n (ldb >= n) when transB is false and n x k (ldb >= k) when true.
// The slices must hold at least (rows-1)*ld+cols elements of their stored
// shape. C is overwritten in place; when beta is 0 its old contents are
// ignored (NaNs included, as in BLAS). a, b and c belong to the caller.
//
// Large products are split into Threads() blocks of rows of C (of columns
// when m is too small to split), computed concurrently by single-threaded
// kernel calls on that many threads.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm("Sgemm", transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
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
	const minFlops = 1 << 20 // below this one call is faster than splitting
	parts := Threads()
	if m*n*k < minFlops {
		parts = 1
	}
	mr, nr := 16, 16 // split granularity: the kernels' register blocking
	if ours() {
		mr, nr = useKernel.mr(), useKernel.nr()
	}
	var g gemmBatch
	for p := 0; p < parts; p++ {
		if m >= mr*parts || parts == 1 {
			i0, i1 := splitUnits(m, parts, p, mr)
			ao := i0 * lda
			if transA {
				ao = i0
			}
			g.add(transA, transB, i1-i0, n, k, ao, lda, 0, ldb, i0*ldc, ldc)
		} else {
			j0, j1 := splitUnits(n, parts, p, nr)
			bo := j0
			if transB {
				bo = j0 * ldb
			}
			g.add(transA, transB, m, j1-j0, k, 0, lda, bo, ldb, j0, ldc)
		}
	}
	g.run(alpha, a, b, beta, c)
}

// Dgemm is Sgemm in float64: C = alpha op(A) op(B) + beta C, row-major,
// by OpenBLAS's cblas_dgemm, split into Threads() blocks of rows of C
// computed concurrently (one call when the product is small).
func Dgemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	checkGemm("Dgemm", transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	ta, tb := C.enum_CBLAS_TRANSPOSE(C.CblasNoTrans), C.enum_CBLAS_TRANSPOSE(C.CblasNoTrans)
	if transA {
		ta = C.CblasTrans
	}
	if transB {
		tb = C.CblasTrans
	}
	parts := Threads()
	if m*n*k < 1<<20 || m < 2*parts {
		parts = 1
	}
	ParallelFor(parts, 1, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			i0, i1 := splitBlock(m, parts, p)
			if i0 == i1 {
				continue
			}
			ao := i0 * lda
			if transA {
				ao = i0
			}
			var ap *C.double
			if k > 0 {
				ap = (*C.double)(unsafe.Pointer(&a[ao]))
			}
			var bp *C.double
			if k > 0 {
				bp = (*C.double)(unsafe.Pointer(&b[0]))
			}
			C.cblas_dgemm(C.CblasRowMajor, ta, tb, C.blasint(i1-i0), C.blasint(n), C.blasint(k), C.double(alpha), ap, C.blasint(lda),
				bp, C.blasint(ldb), C.double(beta), (*C.double)(unsafe.Pointer(&c[i0*ldc])), C.blasint(ldc))
		}
	})
}

// splitBlock returns block p of [0, n) split into parts blocks whose
// boundaries are multiples of 16 where possible (see splitUnits).
func splitBlock(n, parts, p int) (lo, hi int) { return splitUnits(n, parts, p, 16) }

// splitUnits returns block p of [0, n) split into parts blocks whose
// boundaries are multiples of unit (a GEMM kernel's register blocking)
// where possible.
func splitUnits(n, parts, p, unit int) (lo, hi int) {
	units := (n + unit - 1) / unit
	lo = min(n, p*units/parts*unit)
	hi = min(n, (p+1)*units/parts*unit)
	if p == parts-1 {
		hi = n
	}
	return lo, hi
}

// checkGemm panics unless the sizes are non-negative and the arrays hold
// the matrices of a GEMM (fn names the caller).
func checkGemm[T float32 | float64](fn string, transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, c []T, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("compute.%s: negative size m=%d n=%d k=%d", fn, m, n, k))
	}
	ar, ac, br, bc := storedShapes(m, n, k, transA, transB)
	checkMat(fn, "A", a, ar, ac, lda)
	checkMat(fn, "B", b, br, bc, ldb)
	checkMat(fn, "C", c, m, n, ldc)
}

// checkMat panics unless s can hold a rows x cols row-major matrix with row
// stride ld.
func checkMat[T float32 | float64](fn, name string, s []T, rows, cols, ld int) {
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

// storedShapes returns the stored shapes (rows x cols) of A and B of a GEMM
// whose op(A) is m x k and op(B) is k x n.
func storedShapes(m, n, k int, ta, tb bool) (ar, ac, br, bc int) {
	ar, ac, br, bc = m, k, k, n
	if ta {
		ar, ac = k, m
	}
	if tb {
		br, bc = n, k
	}
	return ar, ac, br, bc
}
