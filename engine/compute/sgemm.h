// Declarations shared by gemm.go and sgemm.c: the SGEMM job list run by
// sg_jobs, through OpenBLAS or this package's own kernels.

#ifndef SOFTPATCH_SGEMM_H
#define SOFTPATCH_SGEMM_H

// Kernel sets (isa arguments).
enum { SG_OPENBLAS = 0, SG_AVX2 = 1, SG_AVX512 = 2 };

// sg_job is one row-major product
//   C = act(alpha*op(A)*op(B) + beta*C + bias[i] + res[i][j])
// on blocks of a batch's base arrays, at element offsets a, b and c (and
// bias and res, negative when absent; act is ReLU when the batch asks for
// it). C is m x n, op(A) m x k, op(B) k x n; ta and tb transpose A and B as
// stored. When the batch's A is packed (see sg_pack_a), a is the offset of
// the panel holding row 0 of this job and lda and ta are unused.
typedef struct {
	int m, n, k;
	int ta, tb;
	int lda, ldb, ldc, ldr;
	long a, b, c, bias, res;
} sg_job;

int sg_mr(int isa);
int sg_nr(int isa);
long sg_packed_size(int isa, int m, int k);
void sg_pack_a(int isa, int m, int k, const float *a, int lda, float *dst);
void sg_jobs(int isa, const sg_job *jobs, int count, const float *A, int apacked, const float *B, float *C,
             const float *bias, const float *res, float alpha, float beta, int relu);
void sg_set_blocking(int kc, int mc, int nc);

#endif
