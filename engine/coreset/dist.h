#include <stdint.h>
int coreset_kind(void);
void coreset_dists(int kind, const float *x, int dim, const float *c, const int32_t *idx, int64_t lo, int64_t m, double *out);
void coreset_step(int kind, const float *x, int dim, const float *c, double *keys, int64_t lo, int64_t m, double *bestk, int64_t *besti);
void coreset_bstep(int kind, const float *x, int dim, const float *c, const float *z, const float *zc, double eps,
	double *keys, int64_t lo, int64_t m, double *bestk, int64_t *besti, int64_t *evals);
