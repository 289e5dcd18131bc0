#include <stdint.h>
// NQ queries per pass; C1 coarse coordinates (8 principal ones and a
// residual norm); W1 values per row of the coarse layout (C1 and the
// squared norm).
#define NQ 4
#define C1 9
#define W1 (C1 + 1)
int knn_kind(void);
void knn_cands(int kind, const float *w1, int64_t nb, const float *q1m2, const float *nq1, int c, float *cd, int32_t *ci);
void knn_survivors(int kind, const float *w1, const float *sig, const float *w2, int s2, int64_t nb, int64_t n,
	const float *q1m2, const float *nq1, const float *q2, const float *t, int32_t *out, int64_t cap, int64_t *cnt);
