package compute

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>

// LAPACK's Cholesky factorisation and triangular inverse, as OpenBLAS
// exports them (Fortran calling convention; the trailing lengths are the
// hidden lengths of the character arguments).
extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t);
extern void dtrtri_(const char *uplo, const char *diag, const int *n, double *a, const int *lda, int *info, size_t, size_t);

// chol_inverse returns 0, or dpotrf's info (stage 1) or dtrtri's (stage 2).
static int chol_inverse(double *a, int n, int *stage) {
	int info = 0;
	// Row-major lower = column-major upper: A = U^T U with U^T = L.
	*stage = 1;
	dpotrf_("U", &n, a, &n, &info, 1);
	if (info != 0) {
		return info;
	}
	*stage = 2;
	dtrtri_("U", "N", &n, a, &n, &info, 1, 1);
	return info;
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// SgemmSerial is Sgemm computed on the calling goroutine by one kernel
// call, for callers that run many small independent products in parallel
// themselves (Sgemm would split each of them across Threads()).
func SgemmSerial(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm("SgemmSerial", transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 || k == 0 {
		Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) // the trivial cases, no threads
		return
	}
	var g gemmBatch
	g.add(transA, transB, m, n, k, 0, lda, 0, ldb, 0, ldc)
	g.run(alpha, a, b, beta, c)
}

// Dsyrk computes the lower triangle (i >= j) of C = alpha*A^T*A + beta*C
// for A [k][n] (row stride lda) and C [n][n] (row stride ldc), row-major,
// on the calling goroutine (OpenBLAS cblas_dsyrk, one thread). The strict
// upper triangle of C is not touched.
func Dsyrk(n, k int, alpha float64, a []float64, lda int, beta float64, c []float64, ldc int) {
	if n < 0 || k < 0 || lda < max(n, 1) || ldc < max(n, 1) {
		panic(fmt.Sprintf("compute.Dsyrk: n=%d k=%d lda=%d ldc=%d", n, k, lda, ldc))
	}
	if n == 0 {
		return
	}
	if k > 0 && len(a) < (k-1)*lda+n || len(c) < (n-1)*ldc+n {
		panic(fmt.Sprintf("compute.Dsyrk: len(a)=%d len(c)=%d too short for n=%d k=%d", len(a), len(c), n, k))
	}
	var ap *C.double
	if k > 0 {
		ap = (*C.double)(unsafe.Pointer(&a[0]))
	}
	C.cblas_dsyrk(C.CblasRowMajor, C.CblasLower, C.CblasTrans, C.blasint(n), C.blasint(k), C.double(alpha),
		ap, C.blasint(lda), C.double(beta), (*C.double)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}

// NotPositiveDefiniteError is returned by InverseCholesky for a matrix
// whose leading minor of order Order is not positive definite.
type NotPositiveDefiniteError struct{ Order int }

func (e NotPositiveDefiniteError) Error() string {
	return fmt.Sprintf("matrix is not positive definite (leading minor of order %d)", e.Order)
}

// InverseCholesky factors the symmetric positive definite matrix a [n][n]
// (row-major; only its lower triangle i >= j is read) as a = L*L^T and
// overwrites the lower triangle with W = L^-1, so that
// x^T a^-1 x = |W x|^2. The strict upper triangle is left with unspecified
// values. It runs LAPACK's dpotrf and dtrtri (OpenBLAS, one thread) on the
// calling goroutine.
func InverseCholesky(a []float64, n int) error {
	if n < 0 || len(a) < n*n {
		panic(fmt.Sprintf("compute.InverseCholesky: len(a)=%d for n=%d", len(a), n))
	}
	if n == 0 {
		return nil
	}
	var stage C.int
	info := int(C.chol_inverse((*C.double)(unsafe.Pointer(&a[0])), C.int(n), &stage))
	switch {
	case info == 0:
		return nil
	case stage == 1 && info > 0:
		return NotPositiveDefiniteError{Order: info}
	case stage == 1:
		return fmt.Errorf("compute.InverseCholesky: dpotrf failed (info %d)", info)
	default:
		return fmt.Errorf("compute.InverseCholesky: dtrtri failed (info %d)", info)
	}
}
