// Bound kernels of the pruned search (prune.go). The coarse coordinates of
// the bank are stored in blocks of 8 rows: coordinate k of row 8b+l at
// w1[(b*C1 + k)*8 + l], C1 = 9 (8 principal coordinates and a residual
// norm), rows past the bank padded with 1e30 (their bounds overflow to
// +Inf and are never kept). The fine coordinates are rows of s2 floats
// (w2[m*s2 ...], zero-padded, as is q2). Bounds are sums of squared
// differences in float32; the caller's slack covers their rounding, so the
// portable and the AVX2 variants may round differently and still keep
// every row that can matter.
#include <immintrin.h>
#include <stdint.h>
#include "prune.h"

#define C1 9

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

static float coarse(const float *w1, int64_t m, const float *q1) {
	const float *b = w1 + (m / 8) * C1 * 8 + (m % 8);
	float s = 0;
	for (int k = 0; k < C1; k++) {
		float d = b[8 * k] - q1[k];
		s += d * d;
	}
	return s;
}

__attribute__((target("avx2,fma"))) static inline __m256 coarse8(const float *b, const __m256 *qv) {
	__m256 acc = _mm256_setzero_ps();
	for (int k = 0; k < C1; k++) {
		__m256 d = _mm256_sub_ps(_mm256_loadu_ps(b + 8 * k), qv[k]);
		acc = _mm256_fmadd_ps(d, d, acc);
	}
	return acc;
}

__attribute__((target("avx2,fma"))) static float fine256(const float *w2, int s2, int64_t m, const float *q2) {
	const float *r = w2 + m * s2;
	__m256 acc = _mm256_setzero_ps();
	for (int k = 0; k < s2; k += 8) {
		__m256 d = _mm256_sub_ps(_mm256_loadu_ps(r + k), _mm256_loadu_ps(q2 + k));
		acc = _mm256_fmadd_ps(d, d, acc);
	}
	__m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
	h = _mm_add_ps(h, _mm_movehl_ps(h, h));
	h = _mm_add_ss(h, _mm_movehdup_ps(h));
	return _mm_cvtss_f32(h);
}

__attribute__((target("avx2,fma"))) static void cands256(const float *w1, int64_t nb, const float *q1, int c, float *cd, int32_t *ci) {
	__m256 qv[C1];
	for (int k = 0; k < C1; k++) qv[k] = _mm256_set1_ps(q1[k]);
	for (int64_t b = 0; b < nb; b++) {
		__m256 lb = coarse8(w1 + b * C1 * 8, qv);
		int mask = _mm256_movemask_ps(_mm256_cmp_ps(lb, _mm256_set1_ps(cd[c - 1]), _CMP_LT_OQ));
		if (!mask) continue;
		float v[8];
		_mm256_storeu_ps(v, lb);
		while (mask) {
			int l = __builtin_ctz(mask);
			mask &= mask - 1;
			if (v[l] < cd[c - 1]) insert(v[l], (int32_t)(b * 8 + l), c, cd, ci);
		}
	}
}

static void candsC(const float *w1, int64_t nb, const float *q1, int c, float *cd, int32_t *ci) {
	for (int64_t m = 0; m < nb * 8; m++) {
		float v = coarse(w1, m, q1);
		if (v < cd[c - 1]) insert(v, (int32_t)m, c, cd, ci);
	}
}

// knn_cands writes the c rows of smallest coarse bound to q1 into (cd, ci),
// ascending (cd must hold +Inf and ci -1 on entry).
void knn_cands(int kind, const float *w1, int64_t nb, const float *q1, int c, float *cd, int32_t *ci) {
	if (kind == 1) {
		cands256(w1, nb, q1, c, cd, ci);
	} else {
		candsC(w1, nb, q1, c, cd, ci);
	}
}

__attribute__((target("avx2,fma"))) static int64_t surv256(const float *w1, const float *sig, const float *w2, int s2, int64_t nb,
	int64_t n, const float *q1, const float *q2, float t, int32_t *out, int64_t cap) {
	__m256 qv[C1];
	for (int k = 0; k < C1; k++) qv[k] = _mm256_set1_ps(q1[k]);
	const __m256 tv = _mm256_set1_ps(t);
	int64_t cnt = 0;
	for (int64_t b = 0; b < nb; b++) {
		__m256 s = _mm256_loadu_ps(sig + b * 8);
		__m256 lb = _mm256_sub_ps(coarse8(w1 + b * C1 * 8, qv), s);
		int mask = _mm256_movemask_ps(_mm256_cmp_ps(lb, tv, _CMP_LE_OQ));
		while (mask) {
			int l = __builtin_ctz(mask);
			mask &= mask - 1;
			int64_t m = b * 8 + l;
			if (m >= n) break;
			if (fine256(w2, s2, m, q2) - sig[m] <= t) {
				if (cnt == cap) return -1;
				out[cnt++] = (int32_t)m;
			}
		}
	}
	return cnt;
}

static int64_t survC(const float *w1, const float *sig, const float *w2, int s2, int64_t n, const float *q1, const float *q2,
	float t, int32_t *out, int64_t cap) {
	int64_t cnt = 0;
	for (int64_t m = 0; m < n; m++) {
		if (coarse(w1, m, q1) - sig[m] <= t && fine(w2, s2, m, q2) - sig[m] <= t) {
			if (cnt == cap) return -1;
			out[cnt++] = (int32_t)m;
		}
	}
	return cnt;
}

// knn_survivors writes into out, ascending, the rows m < n whose coarse
// and fine bounds to the query, less sig[m], are both at most t, and
// returns their number, or -1 when there are more than cap.
int64_t knn_survivors(int kind, const float *w1, const float *sig, const float *w2, int s2, int64_t nb, int64_t n,
	const float *q1, const float *q2, float t, int32_t *out, int64_t cap) {
	if (kind == 1) return surv256(w1, sig, w2, s2, nb, n, q1, q2, t, out, cap);
	return survC(w1, sig, w2, s2, n, q1, q2, t, out, cap);
}
