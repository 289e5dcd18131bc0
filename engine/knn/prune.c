// Bound kernels of the pruned search (prune.go). The coarse coordinates of
// the bank are stored in blocks of 8 rows: coordinate k of row 8b+l at
// w1[(b*W1 + k)*8 + l] for k < C1 = 9 (8 principal coordinates and a
// residual norm) and the row's squared coarse norm at k = C1; rows past
// the bank have coordinates 0 and norm +Inf, so their bounds are +Inf and
// never kept. The coarse bound is computed as |q|^2 + |m|^2 - 2 q.m from
// the query's squared norm nq1 and its coordinates times -2 (q1m2), the
// fine one as the sum of squared differences of rows of s2 floats
// (w2[m*s2 ...], zero-padded, as is q2), both in float32; the caller's
// slack covers their rounding, so the portable and the AVX2 variants may
// round differently and still keep every row that can matter.
#include <immintrin.h>
#include <stdint.h>
#include "prune.h"


int knn_kind(void) {
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
}

// insert puts (v, m) into the ascending top-c list (cd, ci), after any
// equal value (rows come in increasing order, so ties keep the lower row).
static void insert(float v, int32_t m, int c, float *cd, int32_t *ci) {
	int p = c - 1;
	while (p > 0 && cd[p - 1] > v) {
		cd[p] = cd[p - 1];
		ci[p] = ci[p - 1];
		p--;
	}
	cd[p] = v;
	ci[p] = m;
}

static float fine(const float *w2, int s2, int64_t m, const float *q2) {
	const float *r = w2 + m * s2;
	float s = 0;
	for (int k = 0; k < s2; k++) {
		float d = r[k] - q2[k];
		s += d * d;
	}
	return s;
}

static float coarse(const float *w1, int64_t m, const float *q1m2, float nq1) {
	const float *b = w1 + (m / 8) * W1 * 8 + (m % 8);
	float s = nq1 + b[8 * C1];
	for (int k = 0; k < C1; k++) s += q1m2[k] * b[8 * k];
	return s;
}

__attribute__((target("avx2,fma"))) static float fine256(const float *w2, int s2, int64_t m, const float *q2) {
	const float *r = w2 + m * s2;
	__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps();
	int k = 0;
	for (; k + 24 <= s2; k += 24) {
		__m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(r + k), _mm256_loadu_ps(q2 + k));
		__m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(r + k + 8), _mm256_loadu_ps(q2 + k + 8));
		__m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(r + k + 16), _mm256_loadu_ps(q2 + k + 16));
		a0 = _mm256_fmadd_ps(d0, d0, a0);
		a1 = _mm256_fmadd_ps(d1, d1, a1);
		a2 = _mm256_fmadd_ps(d2, d2, a2);
	}
	for (; k < s2; k += 8) {
		__m256 d = _mm256_sub_ps(_mm256_loadu_ps(r + k), _mm256_loadu_ps(q2 + k));
		a0 = _mm256_fmadd_ps(d, d, a0);
	}
	__m256 acc = _mm256_add_ps(_mm256_add_ps(a0, a1), a2);
	__m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
	h = _mm_add_ps(h, _mm_movehl_ps(h, h));
	h = _mm_add_ss(h, _mm_movehdup_ps(h));
	return _mm_cvtss_f32(h);
}

// The passes take NQ queries at a time, so that each block of the bank,
// once loaded, serves all of them (the passes are bound by reading the
// bank): q1m2 [NQ][C1], nq1 [NQ], and per query its own outputs.

// broadcast4 spreads the NQ queries' coarse coordinates (times -2) and
// squared norms over vector lanes.
__attribute__((target("avx2,fma"))) static inline void broadcast4(const float *q1m2, const float *nq1, __m256 *qb, __m256 *nqb) {
	for (int j = 0; j < NQ; j++) {
		nqb[j] = _mm256_set1_ps(nq1[j]);
		for (int k = 0; k < C1; k++) qb[j * C1 + k] = _mm256_set1_ps(q1m2[j * C1 + k]);
	}
}

// coarse4 computes the NQ queries' coarse bounds to the 8 rows of the
// block at p: acc[j] = (|q_j|^2 + |m|^2) + sum_k (-2 q_jk) m_k.
__attribute__((target("avx2,fma"))) static inline void coarse4(const float *p, const __m256 *qb, const __m256 *nqb, __m256 *acc) {
	__m256 m[W1];
#pragma GCC unroll 10
	for (int k = 0; k < W1; k++) m[k] = _mm256_loadu_ps(p + 8 * k);
#pragma GCC unroll 4
	for (int j = 0; j < NQ; j++) acc[j] = _mm256_add_ps(nqb[j], m[C1]);
#pragma GCC unroll 9
	for (int k = 0; k < C1; k++) {
#pragma GCC unroll 4
		for (int j = 0; j < NQ; j++) acc[j] = _mm256_fmadd_ps(qb[j * C1 + k], m[k], acc[j]);
	}
}

__attribute__((target("avx2,fma"))) static void cands256(const float *w1, int64_t nb, const float *q1m2, const float *nq1, int c,
	float *cd, int32_t *ci) {
	__m256 qb[NQ * C1], nqb[NQ];
	broadcast4(q1m2, nq1, qb, nqb);
	for (int64_t b = 0; b < nb; b++) {
		__m256 acc[NQ];
		coarse4(w1 + b * W1 * 8, qb, nqb, acc);
		for (int j = 0; j < NQ; j++) {
			float *dj = cd + j * c;
			int mask = _mm256_movemask_ps(_mm256_cmp_ps(acc[j], _mm256_broadcast_ss(dj + c - 1), _CMP_LT_OQ));
			if (!mask) continue;
			float v[8];
			_mm256_storeu_ps(v, acc[j]);
			while (mask) {
				int l = __builtin_ctz(mask);
				mask &= mask - 1;
				if (v[l] < dj[c - 1]) insert(v[l], (int32_t)(b * 8 + l), c, dj, ci + j * c);
			}
		}
	}
}

static void candsC(const float *w1, int64_t nb, const float *q1m2, const float *nq1, int c, float *cd, int32_t *ci) {
	for (int j = 0; j < NQ; j++) {
		for (int64_t m = 0; m < nb * 8; m++) {
			float v = coarse(w1, m, q1m2 + j * C1, nq1[j]);
			if (v < cd[j * c + c - 1]) insert(v, (int32_t)m, c, cd + j * c, ci + j * c);
		}
	}
}

// knn_cands writes, for each of NQ queries (coarse coordinates times -2
// q1m2 [NQ][C1], squared norms nq1 [NQ]), the c rows of smallest coarse
// bound into (cd, ci) [NQ][c], ascending (cd must hold +Inf on entry).
void knn_cands(int kind, const float *w1, int64_t nb, const float *q1m2, const float *nq1, int c, float *cd, int32_t *ci) {
	if (kind == 1) {
		cands256(w1, nb, q1m2, nq1, c, cd, ci);
	} else {
		candsC(w1, nb, q1m2, nq1, c, cd, ci);
	}
}

__attribute__((target("avx2,fma"))) static void surv256(const float *w1, const float *sig, const float *w2, int s2, int64_t nb,
	int64_t n, const float *q1m2, const float *nq1, const float *q2, const float *t, int32_t *out, int64_t cap, int64_t *cnt) {
	__m256 qb[NQ * C1], nqb[NQ];
	broadcast4(q1m2, nq1, qb, nqb);
	for (int64_t b = 0; b < nb; b++) {
		const __m256 sv = _mm256_loadu_ps(sig + b * 8);
		__m256 acc[NQ];
		coarse4(w1 + b * W1 * 8, qb, nqb, acc);
		for (int j = 0; j < NQ; j++) {
			int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_sub_ps(acc[j], sv), _mm256_broadcast_ss(t + j), _CMP_LE_OQ));
			while (mask) {
				int l = __builtin_ctz(mask);
				mask &= mask - 1;
				int64_t r = b * 8 + l;
				if (r >= n || cnt[j] < 0) break;
				if (fine256(w2, s2, r, q2 + j * s2) - sig[r] <= t[j]) {
					if (cnt[j] == cap) {
						cnt[j] = -1;
						break;
					}
					out[j * cap + cnt[j]++] = (int32_t)r;
				}
			}
		}
	}
}

static void survC(const float *w1, const float *sig, const float *w2, int s2, int64_t n, const float *q1m2, const float *nq1,
	const float *q2, const float *t, int32_t *out, int64_t cap, int64_t *cnt) {
	for (int j = 0; j < NQ; j++) {
		for (int64_t r = 0; r < n && cnt[j] >= 0; r++) {
			if (coarse(w1, r, q1m2 + j * C1, nq1[j]) - sig[r] <= t[j] && fine(w2, s2, r, q2 + j * s2) - sig[r] <= t[j]) {
				if (cnt[j] == cap) {
					cnt[j] = -1;
					break;
				}
				out[j * cap + cnt[j]++] = (int32_t)r;
			}
		}
	}
}

// knn_survivors writes, for each of NQ queries (q1m2, nq1 as knn_cands',
// fine coordinates q2 [NQ][s2], thresholds t [NQ]), the rows r < n whose
// coarse and fine bounds less sig[r] are both at most t[j] into
// out[j*cap ...], ascending, and their number into cnt[j] (which must be
// 0 on entry), or -1 when there are more than cap.
void knn_survivors(int kind, const float *w1, const float *sig, const float *w2, int s2, int64_t nb, int64_t n,
	const float *q1m2, const float *nq1, const float *q2, const float *t, int32_t *out, int64_t cap, int64_t *cnt) {
	if (kind == 1) {
		surv256(w1, sig, w2, s2, nb, n, q1m2, nq1, q2, t, out, cap, cnt);
	} else {
		survC(w1, sig, w2, s2, n, q1m2, nq1, q2, t, out, cap, cnt);
	}
}
