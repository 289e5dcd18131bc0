package compute

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>

// gemm_job is one row-major product C = alpha*op(A)*op(B) + beta*C on
// blocks of a batch's base arrays, at element offsets a, b and c.
typedef struct {
	int ta, tb, m, n, k, lda, ldb, ldc;
	long a, b, c;
} gemm_job;

// gemm_jobs runs jobs[0..count) one after another on the calling thread.
static void gemm_jobs(const gemm_job *jobs, int count, float alpha, const float *A, const float *B, float beta, float *C) {
	for (int i = 0; i < count; i++) {
		const gemm_job *j = &jobs[i];
		cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans,
		            j->m, j->n, j->k, alpha, A + j->a, j->lda, B + j->b, j->ldb, beta, C + j->c, j->ldc);
	}
}
*/
import "C"

import "unsafe"

// gemmBatch collects independent SGEMMs on blocks of three base arrays and
// runs them with single-threaded OpenBLAS on Threads() goroutines (see
// SetThreads for why OpenBLAS's own threads are not used).
type gemmBatch struct {
	jobs []C.gemm_job
}

// add queues C[c:] = alpha*op(A[a:])*op(B[b:]) + beta*C[c:] (row-major,
// m x n result, inner size k, leading dimensions lda, ldb, ldc). Offsets and
// sizes are the caller's to check.
func (g *gemmBatch) add(transA, transB bool, m, n, k int, a, lda, b, ldb, c, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	j := C.gemm_job{m: C.int(m), n: C.int(n), k: C.int(k), lda: C.int(lda), ldb: C.int(ldb), ldc: C.int(ldc),
		a: C.long(a), b: C.long(b), c: C.long(c)}
	if transA {
		j.ta = 1
	}
	if transB {
		j.tb = 1
	}
	g.jobs = append(g.jobs, j)
}

// run executes the queued jobs on the base arrays a, b and c (non-empty),
// split into contiguous runs of jobs over Threads() goroutines (one cgo call
// each), and empties the batch.
func (g *gemmBatch) run(alpha float32, a, b []float32, beta float32, c []float32) {
	ap, bp, cp := (*C.float)(unsafe.Pointer(&a[0])), (*C.float)(unsafe.Pointer(&b[0])), (*C.float)(unsafe.Pointer(&c[0]))
	parallelFor(len(g.jobs), 1, func(lo, hi int) {
		C.gemm_jobs(&g.jobs[lo], C.int(hi-lo), C.float(alpha), ap, bp, C.float(beta), cp)
	})
	g.jobs = g.jobs[:0]
}
