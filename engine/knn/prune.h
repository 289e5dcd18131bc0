#include <stdint.h>
int knn_kind(void);
void knn_cands(int kind, const float *w1, int64_t nb, const float *q1, int c, float *cd, int32_t *ci);
int64_t knn_survivors(int kind, const float *w1, const float *sig, const float *w2, int s2, int64_t nb, int64_t n,
	const float *q1, const float *q2, float t, int32_t *out, int64_t cap);
