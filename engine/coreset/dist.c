// Distance kernels of package coreset (see dist.go): the Euclidean distance
// between float32 rows, accumulated in float64 in eight lanes (lane l takes
// the dimensions j with j % 8 == l, each step acc = fma(d, d, acc) with
// d = (double)a - (double)b), reduced as ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)),
// then sqrt. Every variant computes exactly this, bit for bit.
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include "dist.h"

static double reduce8(const double *l) {
	return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

__attribute__((target("avx512f,fma"))) static double dist512(const float *a, const float *b, int dim) {
	__m512d acc = _mm512_setzero_pd();
	int j = 0;
	for (; j + 8 <= dim; j += 8) {
		__m512d d = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(a + j)), _mm512_cvtps_pd(_mm256_loadu_ps(b + j)));
		acc = _mm512_fmadd_pd(d, d, acc);
	}
	double l[8];
	_mm512_storeu_pd(l, acc);
	for (int t = 0; j < dim; j++, t++) {
		double d = (double)a[j] - (double)b[j];
		l[t] = __builtin_fma(d, d, l[t]);
	}
	return sqrt(reduce8(l));
}

__attribute__((target("avx2,fma"))) static double dist256(const float *a, const float *b, int dim) {
	__m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
	int j = 0;
	for (; j + 8 <= dim; j += 8) {
		__m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + j)), _mm256_cvtps_pd(_mm_loadu_ps(b + j)));
		__m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + j + 4)), _mm256_cvtps_pd(_mm_loadu_ps(b + j + 4)));
		acc0 = _mm256_fmadd_pd(d0, d0, acc0);
		acc1 = _mm256_fmadd_pd(d1, d1, acc1);
	}
	double l[8];
	_mm256_storeu_pd(l, acc0);
	_mm256_storeu_pd(l + 4, acc1);
	for (int t = 0; j < dim; j++, t++) {
		double d = (double)a[j] - (double)b[j];
		l[t] = __builtin_fma(d, d, l[t]);
	}
	return sqrt(reduce8(l));
}

static double distC(const float *a, const float *b, int dim) {
	double l[8] = {0};
	for (int j = 0; j < dim; j++) {
		double d = (double)a[j] - (double)b[j];
		l[j % 8] = fma(d, d, l[j % 8]);
	}
	return sqrt(reduce8(l));
}

int coreset_kind(void) {
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) return 2;
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
	return 0;
}

#define LOOP(F)                                                              \
	for (int64_t i = 0; i < m; i++) {                                        \
		int64_t r = idx ? (int64_t)idx[i] : lo + i;                          \
		out[i] = F(x + r * dim, c, dim);                                     \
	}

void coreset_dists(int kind, const float *x, int dim, const float *c, const int32_t *idx, int64_t lo, int64_t m, double *out) {
	if (kind == 2) {
		LOOP(dist512)
	} else if (kind == 1) {
		LOOP(dist256)
	} else {
		LOOP(distC)
	}
}

#define STEP(F)                                                              \
	for (int64_t i = lo; i < lo + m; i++) {                                  \
		double k = keys[i];                                                  \
		if (k > 0) {                                                         \
			double d = F(x + i * dim, c, dim);                               \
			if (d < k) keys[i] = k = d;                                      \
		}                                                                    \
		if (k > bk) { bk = k; bi = i; }                                      \
	}

void coreset_step(int kind, const float *x, int dim, const float *c, double *keys, int64_t lo, int64_t m, double *bestk, int64_t *besti) {
	double bk = -1;
	int64_t bi = lo;
	if (kind == 2) {
		STEP(dist512)
	} else if (kind == 1) {
		STEP(dist256)
	} else {
		STEP(distC)
	}
	*bestk = bk;
	*besti = bi;
}

// Bounded step (see bound.go): a point's distance to the centre is computed
// only when the lower bound from its first PREFIX principal coordinates
// does not prove it larger than the point's key. z holds the coordinates in
// blocks of 8 points (block b at z + 64*b, coordinate j of point 8b+p at
// [8*j + p]); lb2 is the bound squared in float32, and a point is kept when
// lb2 * (1 - 1e-5) <= t * t, t = (key + eps) * (1 + 1e-9), so that float32
// rounding never skips a point whose key could change (bound.go derives
// eps). Every variant computes the same keys; which points they keep may
// differ where the compiler fuses lb2's multiply-adds, which changes only
// how many distances are computed.
#define PREFIX 8
#define KEEP(lb2, k, eps) ((double)(lb2) * (1 - 1e-5) <= ((k) + (eps)) * (1 + 1e-9) * (((k) + (eps)) * (1 + 1e-9)))

static float lb2C(const float *z, int64_t i, const float *zc) {
	const float *b = z + (i / 8) * 64 + (i % 8);
	float s = 0;
	for (int j = 0; j < PREFIX; j++) {
		float d = b[8 * j] - zc[j];
		s += d * d;
	}
	return s;
}

// ONE handles point i in scalar code: bound, distance when kept, min,
// argmax.
#define ONE(F, i)                                                            \
	{                                                                        \
		double k = keys[i];                                                  \
		if (k > 0 && KEEP(lb2C(z, i, zc), k, eps)) {                         \
			double d = F(x + (i) * dim, c, dim);                             \
			ev++;                                                            \
			if (d < k) keys[i] = k = d;                                      \
		}                                                                    \
		if (k > bk) { bk = k; bi = i; }                                      \
	}

// BLOCKS handles the whole blocks of [lo, hi) with AVX2 (lo a multiple of
// 8): the 8 bounds at once, scalar work only for kept points and for
// blocks holding a key above the running maximum.
#define BLOCKS(F)                                                            \
	int64_t i = lo;                                                          \
	for (; i < hi && i % 8; i++) ONE(F, i)                                   \
	__m256 zcv[PREFIX];                                                      \
	for (int j = 0; j < PREFIX; j++) zcv[j] = _mm256_set1_ps(zc[j]);         \
	const __m256d shrink = _mm256_set1_pd(1 - 1e-5), grow = _mm256_set1_pd(1 + 1e-9); \
	const __m256d epsv = _mm256_set1_pd(eps), zero = _mm256_setzero_pd();    \
	for (; i + 8 <= hi; i += 8) {                                            \
		const float *b = z + i * 8;                                          \
		__m256 acc = _mm256_setzero_ps();                                    \
		for (int j = 0; j < PREFIX; j++) {                                   \
			__m256 d = _mm256_sub_ps(_mm256_loadu_ps(b + 8 * j), zcv[j]);     \
			acc = _mm256_fmadd_ps(d, d, acc);                                \
		}                                                                    \
		int mask = 0;                                                        \
		for (int h = 0; h < 2; h++) {                                        \
			__m256d lb = _mm256_mul_pd(_mm256_cvtps_pd(h ? _mm256_extractf128_ps(acc, 1) : _mm256_castps256_ps128(acc)), shrink); \
			__m256d k = _mm256_loadu_pd(keys + i + 4 * h);                   \
			__m256d t = _mm256_mul_pd(_mm256_add_pd(k, epsv), grow);         \
			__m256d keep = _mm256_and_pd(_mm256_cmp_pd(lb, _mm256_mul_pd(t, t), _CMP_LE_OQ), _mm256_cmp_pd(k, zero, _CMP_GT_OQ)); \
			mask |= _mm256_movemask_pd(keep) << (4 * h);                      \
		}                                                                    \
		while (mask) {                                                       \
			int64_t p = i + __builtin_ctz(mask);                             \
			mask &= mask - 1;                                                \
			double d = F(x + p * dim, c, dim);                               \
			ev++;                                                            \
			if (d < keys[p]) keys[p] = d;                                    \
		}                                                                    \
		__m256d bkv = _mm256_set1_pd(bk);                                    \
		int above = _mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(keys + i), bkv, _CMP_GT_OQ)) | \
			(_mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(keys + i + 4), bkv, _CMP_GT_OQ)) << 4); \
		if (above) {                                                         \
			for (int p = 0; p < 8; p++) {                                    \
				if (keys[i + p] > bk) { bk = keys[i + p]; bi = i + p; }      \
			}                                                                \
		}                                                                    \
	}                                                                        \
	for (; i < hi; i++) ONE(F, i)

__attribute__((target("avx512f,avx2,fma"))) static void bstep512(const float *x, int dim, const float *c, const float *z, const float *zc,
	double eps, double *keys, int64_t lo, int64_t hi, double *bestk, int64_t *besti, int64_t *evals) {
	double bk = -1;
	int64_t bi = lo, ev = 0;
	BLOCKS(dist512)
	*bestk = bk, *besti = bi, *evals = ev;
}

__attribute__((target("avx2,fma"))) static void bstep256(const float *x, int dim, const float *c, const float *z, const float *zc,
	double eps, double *keys, int64_t lo, int64_t hi, double *bestk, int64_t *besti, int64_t *evals) {
	double bk = -1;
	int64_t bi = lo, ev = 0;
	BLOCKS(dist256)
	*bestk = bk, *besti = bi, *evals = ev;
}

static void bstepC(const float *x, int dim, const float *c, const float *z, const float *zc,
	double eps, double *keys, int64_t lo, int64_t hi, double *bestk, int64_t *besti, int64_t *evals) {
	double bk = -1;
	int64_t bi = lo, ev = 0;
	for (int64_t i = lo; i < hi; i++) ONE(distC, i)
	*bestk = bk, *besti = bi, *evals = ev;
}

void coreset_bstep(int kind, const float *x, int dim, const float *c, const float *z, const float *zc, double eps,
	double *keys, int64_t lo, int64_t m, double *bestk, int64_t *besti, int64_t *evals) {
	if (kind == 2) {
		bstep512(x, dim, c, z, zc, eps, keys, lo, lo + m, bestk, besti, evals);
	} else if (kind == 1) {
		bstep256(x, dim, c, z, zc, eps, keys, lo, lo + m, bestk, besti, evals);
	} else {
		bstepC(x, dim, c, z, zc, eps, keys, lo, lo + m, bestk, besti, evals);
	}
}
