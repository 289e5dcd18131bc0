// This package's SGEMM: a BLIS-style blocked product (packed panels, a
// register-blocked micro-kernel) with an AVX-512 and an AVX2 instantiation,
// each compiled with its own function target attributes so that the package
// builds for (and runs on) any x86-64; gemm.go picks the kernel set from
// the CPU. sg_jobs also runs job lists through OpenBLAS.

#include <cblas.h>
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "sgemm.h"

// Blocking (elements): inner indices per packed block, rows of A per packed
// block, columns of B per packed block. Zen 5: 48 KiB L1d, 1 MiB L2.
static int sg_kc = 256, sg_mc = 256, sg_nc = 2048;

// sg_set_blocking sets the blocking (for tuning; values <= 0 keep the
// current ones). Not safe while sg_jobs runs.
void sg_set_blocking(int kc, int mc, int nc) {
	if (kc > 0) sg_kc = kc;
	if (mc > 0) sg_mc = mc < 16 ? 16 : mc; /* at least one micro-panel of rows (MR <= 16) */
	if (nc > 0) sg_nc = nc;
}

// sg_buffer returns this thread's packing buffer, grown to at least n floats
// (64-byte aligned; kept for the life of the thread).
static float *sg_buffer(long n) {
	static __thread float *buf;
	static __thread long cap;
	if (cap < n) {
		free(buf);
		buf = aligned_alloc(64, sizeof(float) * (size_t)n);
		if (!buf) abort(); /* out of memory: nothing sane to return to Go */
		cap = n;
	}
	return buf;
}

// ---- AVX-512: 14 x 32 micro-tile, 28 zmm accumulators. ----

#define SG512_MR 14
#define SG512_NR 32

__attribute__((target("avx512f,fma"))) static inline void sg512_kernel(
	long kc, const float *restrict a, const float *restrict b, float *restrict c, long ldc, int mr, int nr,
	float alpha, float beta, const float *bias, const float *res, long ldr, int relu) {
	__m512 c0[SG512_MR], c1[SG512_MR];
#pragma GCC unroll 16
	for (int i = 0; i < SG512_MR; i++) {
		c0[i] = _mm512_setzero_ps();
		c1[i] = _mm512_setzero_ps();
	}
#pragma GCC unroll 16
	for (int i = 0; i < SG512_MR; i++) {
		if (i < mr) {
			_mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
			_mm_prefetch((const char *)(c + i * ldc + 16), _MM_HINT_T0);
		}
	}
	if (nr > 16) {
#pragma GCC unroll 4
		for (long p = 0; p < kc; p++) {
			const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 16
			for (int i = 0; i < SG512_MR; i++) {
				const __m512 ai = _mm512_set1_ps(a[i]);
				c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
				c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
			}
			a += SG512_MR;
			b += SG512_NR;
		}
	} else {
		// At most 16 columns (a tail panel): the right half of the tile
		// is padding, so skip it (c1 stays zero and is not stored).
#pragma GCC unroll 4
		for (long p = 0; p < kc; p++) {
			const __m512 b0 = _mm512_load_ps(b);
#pragma GCC unroll 16
			for (int i = 0; i < SG512_MR; i++) {
				c0[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), b0, c0[i]);
			}
			a += SG512_MR;
			b += SG512_NR;
		}
	}
	const __mmask16 k0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
	const __mmask16 k1 = nr >= 32 ? 0xffff : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
	const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta), zero = _mm512_setzero_ps();
#pragma GCC unroll 16
	for (int i = 0; i < SG512_MR; i++) {
		if (i < mr) {
			float *ci = c + i * ldc;
			__m512 v0 = _mm512_mul_ps(c0[i], va), v1 = _mm512_mul_ps(c1[i], va);
			if (beta != 0) {
				v0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k0, ci), v0);
				v1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k1, ci + 16), v1);
			}
			if (bias) {
				const __m512 bb = _mm512_set1_ps(bias[i]);
				v0 = _mm512_add_ps(v0, bb);
				v1 = _mm512_add_ps(v1, bb);
			}
			if (res) {
				const float *ri = res + i * ldr;
				v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(k0, ri));
				v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(k1, ri + 16));
			}
			if (relu) {
				v0 = _mm512_max_ps(zero, v0); /* NaN stays NaN, as torch and the Go epilogue */
				v1 = _mm512_max_ps(zero, v1);
			}
			_mm512_mask_storeu_ps(ci, k0, v0);
			_mm512_mask_storeu_ps(ci + 16, k1, v1);
		}
	}
}

#define SG_T __attribute__((target("avx512f,fma")))
#define SG(name) sg512_##name
#define SG_MR SG512_MR
#define SG_NR SG512_NR
#include "sgemm_impl.h"
#undef SG_T
#undef SG
#undef SG_MR
#undef SG_NR

// ---- AVX2: 6 x 16 micro-tile, 12 ymm accumulators. ----

#define SG256_MR 6
#define SG256_NR 16

__attribute__((target("avx2,fma"))) static inline __m256i sg256_lanes(int n) {
	return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

__attribute__((target("avx2,fma"))) static inline void sg256_kernel(
	long kc, const float *restrict a, const float *restrict b, float *restrict c, long ldc, int mr, int nr,
	float alpha, float beta, const float *bias, const float *res, long ldr, int relu) {
	__m256 c0[SG256_MR], c1[SG256_MR];
#pragma GCC unroll 8
	for (int i = 0; i < SG256_MR; i++) {
		c0[i] = _mm256_setzero_ps();
		c1[i] = _mm256_setzero_ps();
	}
	for (long p = 0; p < kc; p++) {
		const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 8
		for (int i = 0; i < SG256_MR; i++) {
			const __m256 ai = _mm256_broadcast_ss(a + i);
			c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
			c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
		}
		a += SG256_MR;
		b += SG256_NR;
	}
	const __m256i k0 = sg256_lanes(nr), k1 = sg256_lanes(nr - 8);
	const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta), zero = _mm256_setzero_ps();
#pragma GCC unroll 8
	for (int i = 0; i < SG256_MR; i++) {
		if (i < mr) {
			float *ci = c + i * ldc;
			__m256 v0 = _mm256_mul_ps(c0[i], va), v1 = _mm256_mul_ps(c1[i], va);
			if (beta != 0) {
				v0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(ci, k0), v0);
				v1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(ci + 8, k1), v1);
			}
			if (bias) {
				const __m256 bb = _mm256_set1_ps(bias[i]);
				v0 = _mm256_add_ps(v0, bb);
				v1 = _mm256_add_ps(v1, bb);
			}
			if (res) {
				const float *ri = res + i * ldr;
				v0 = _mm256_add_ps(v0, _mm256_maskload_ps(ri, k0));
				v1 = _mm256_add_ps(v1, _mm256_maskload_ps(ri + 8, k1));
			}
			if (relu) {
				v0 = _mm256_max_ps(zero, v0);
				v1 = _mm256_max_ps(zero, v1);
			}
			_mm256_maskstore_ps(ci, k0, v0);
			_mm256_maskstore_ps(ci + 8, k1, v1);
		}
	}
}

#define SG_T __attribute__((target("avx2,fma")))
#define SG(name) sg256_##name
#define SG_MR SG256_MR
#define SG_NR SG256_NR
#include "sgemm_impl.h"
#undef SG_T
#undef SG
#undef SG_MR
#undef SG_NR

// ---- Entry points. ----

// sg_mr returns the micro-tile height of isa (the row granularity of
// packed A), 1 for OpenBLAS.
int sg_mr(int isa) { return isa == SG_AVX512 ? SG512_MR : isa == SG_AVX2 ? SG256_MR : 1; }

// sg_nr returns the micro-tile width of isa, 1 for OpenBLAS.
int sg_nr(int isa) { return isa == SG_AVX512 ? SG512_NR : isa == SG_AVX2 ? SG256_NR : 1; }

// sg_packed_size returns the number of floats sg_pack_a writes for an m x k
// matrix.
long sg_packed_size(int isa, int m, int k) {
	const long mr = sg_mr(isa);
	return (m + mr - 1) / mr * mr * (long)k;
}

// sg_pack_a packs the m x k row-major matrix a (leading dimension lda) for
// isa's micro-kernel as sg_jobs expects a packed A: panels of SG_MR rows
// (the last zero-padded), panel q at dst + q*k*SG_MR, element (i, p) of a
// panel at p*SG_MR+i. The rows of a packed job start at a panel.
void sg_pack_a(int isa, int m, int k, const float *a, int lda, float *dst) {
	if (isa == SG_AVX512) {
		sg512_pack_a(m, k, a, lda, 1, dst, (long)k * SG512_MR);
	} else if (isa == SG_AVX2) {
		sg256_pack_a(m, k, a, lda, 1, dst, (long)k * SG256_MR);
	}
}

// sg_jobs runs jobs[0..count) (see sg_job) on the calling thread with the
// kernel set isa. OpenBLAS (SG_OPENBLAS) supports neither a packed A nor the
// epilogue (bias, res, relu).
void sg_jobs(int isa, const sg_job *jobs, int count, const float *A, int apacked, const float *B, float *C,
             const float *bias, const float *res, float alpha, float beta, int relu) {
	switch (isa) {
	case SG_AVX512:
		sg512_run(jobs, count, A, apacked, B, C, bias, res, alpha, beta, relu);
		break;
	case SG_AVX2:
		sg256_run(jobs, count, A, apacked, B, C, bias, res, alpha, beta, relu);
		break;
	default:
		for (int i = 0; i < count; i++) {
			const sg_job *j = &jobs[i];
			cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans, j->m, j->n,
			            j->k, alpha, A + j->a, j->lda, B + j->b, j->ldb, beta, C + j->c, j->ldc);
		}
	}
}
