// softpatch's CUDA kernels, compiled to PTX for a baseline architecture
// (sm_70) by `make ptx` with Debian's clang (no CUDA toolkit needed) and
// JIT-compiled by the driver for the GPU at hand. Each kernel computes what
// its CPU counterpart computes, in the same arithmetic order wherever the
// CPU result is defined bit for bit (the squared norms, the nearest-
// neighbour folds, the coreset distance, and all of denoise.cuh and
// embed.cuh); the backbone's GEMMs are cuBLAS's.
#ifdef SOFTPATCH_EMULATOR
// Built for the host by cuda/emulator (a CPU stand-in for the driver, for
// tests): the prelude defines the CUDA names for the host compiler.
#include "emulator/prelude.h"
#else
#include <__clang_cuda_builtin_vars.h>

#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __shared__ __attribute__((shared))

static __device__ __inline__ void sync_threads() { __nvvm_bar_sync(0); }
#endif

// sq_norms: out[i] = float32(sum over j of double(x[i][j])^2), summed in
// order (knn.sqNorms).
extern "C" __global__ void sq_norms(const float *x, int n, int d, float *out) {
	for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
		const float *r = x + i * d;
		double s = 0;
		for (int j = 0; j < d; j++) {
			double v = r[j];
			s += v * v;
		}
		out[i] = (float)s;
	}
}

// block_best reduces each thread's (key, index) over the block into
// sk[0], si[0]: the largest key when Max, else the smallest, the lowest
// index on equal keys (blockDim.x a power of two, at most the arrays'
// length). Every thread of the block must call it.
template <bool Max, typename K, typename I>
static __device__ __inline__ void block_best(K *sk, I *si, K bk, I bi) {
	sk[threadIdx.x] = bk;
	si[threadIdx.x] = bi;
	sync_threads();
	for (int s = blockDim.x / 2; s > 0; s >>= 1) {
		if (threadIdx.x < s) {
			K ok = sk[threadIdx.x + s];
			I oi = si[threadIdx.x + s];
			K mine = sk[threadIdx.x];
			if ((Max ? ok > mine : ok < mine) || (ok == mine && oi < si[threadIdx.x])) {
				sk[threadIdx.x] = ok;
				si[threadIdx.x] = oi;
			}
		}
		sync_threads();
	}
}

// top1_tile folds one tile of inner-product terms c[r][j] = -2 q_r.b_j
// (rows x cols, row stride ldc; bank rows base+j) into each query's running
// nearest neighbour (dist[q0+r], idx[q0+r]), as knn.top1 does: the value
// (qn + norm_j) + c in float32, clamped at 0, the lowest index on ties (the
// running best, from earlier tiles, has lower indices). One block per row.
extern "C" __global__ void top1_tile(const float *c, int rows, int cols, int ldc, const float *qn, const float *norms,
	int base, int q0, float *dist, int *idx) {
	__shared__ float sv[256];
	__shared__ int si[256];
	for (int r = blockIdx.x; r < rows; r += gridDim.x) {
		float q = qn[q0 + r];
		float bv = __builtin_inff();
		int bi = 0x7fffffff;
		for (int j = threadIdx.x; j < cols; j += blockDim.x) {
			float v = (q + norms[base + j]) + c[(long)r * ldc + j];
			v = v < 0 ? 0 : v;
			if (v < bv) { // j increases: strict keeps the lower index
				bv = v;
				bi = base + j;
			}
		}
		block_best<false>(sv, si, bv, bi);
		if (threadIdx.x == 0 && sv[0] < dist[q0 + r]) {
			dist[q0 + r] = sv[0];
			idx[q0 + r] = si[0];
		}
		sync_threads();
	}
}

// topk_less orders (value, index) pairs: by value, then by index.
static __device__ __inline__ bool topk_less(float av, int ai, float bv, int bi) {
	return av < bv || (av == bv && ai < bi);
}

// topk_insert puts (v, i) into the sorted list lv/li of m entries (at most
// k kept), as engine/knn.topK does.
static __device__ __inline__ void topk_insert(float *lv, int *li, int &m, int k, float v, int i) {
	if (m == k) {
		if (!topk_less(v, i, lv[k - 1], li[k - 1])) return;
		m--;
	}
	int p = m;
	while (p > 0 && topk_less(v, i, lv[p - 1], li[p - 1])) {
		lv[p] = lv[p - 1];
		li[p] = li[p - 1];
		p--;
	}
	lv[p] = v;
	li[p] = i;
	m++;
}

// TOPK_MAX is the largest k of topk_tile.
#define TOPK_MAX 32

// topk_tile is top1_tile for 1 < k <= TOPK_MAX: it folds one tile into each
// query's running k nearest (dist/idx [q][k], ascending; unfilled ranks
// hold FLT_MAX and -1), as engine/knn.topK does: values (q + norm_j) + c,
// NaN and values not below FLT_MAX skipped, clamped at 0, ordered by
// (value, index). Each thread keeps the k best of its columns (thread 0
// also the running list); k rounds of a block argmin merge them. One block
// of at most 128 threads per row.
extern "C" __global__ void topk_tile(const float *c, int rows, int cols, int ldc, const float *qn, const float *norms,
	int base, int q0, int k, float *dist, int *idx) {
	__shared__ float sv[128];
	__shared__ int si[128];
	const float maxf = 3.40282346638528859812e+38f;
	float lv[TOPK_MAX];
	int li[TOPK_MAX];
	for (int r = blockIdx.x; r < rows; r += gridDim.x) {
		float *rd = dist + (long)(q0 + r) * k;
		int *ri = idx + (long)(q0 + r) * k;
		float q = qn[q0 + r];
		int m = 0;
		if (threadIdx.x == 0) {
			for (int s = 0; s < k; s++) {
				if (rd[s] < maxf) topk_insert(lv, li, m, k, rd[s], ri[s]);
			}
		}
		for (int j = threadIdx.x; j < cols; j += blockDim.x) {
			float v = (q + norms[base + j]) + c[(long)r * ldc + j];
			if (!(v < maxf)) continue; // NaN, FLT_MAX, +inf
			v = v < 0 ? 0 : v;
			topk_insert(lv, li, m, k, v, base + j);
		}
		int pos = 0;
		for (int s = 0; s < k; s++) {
			block_best<false>(sv, si, pos < m ? lv[pos] : __builtin_inff(), pos < m ? li[pos] : 0x7fffffff);
			bool some = si[0] != 0x7fffffff;
			if (threadIdx.x == 0) {
				rd[s] = some ? sv[0] : maxf;
				ri[s] = some ? si[0] : -1;
			}
			// Every index is in one thread's list only (the running list's,
			// from earlier tiles, in thread 0's): its owner advances.
			if (some && pos < m && li[pos] == si[0]) pos++;
			sync_threads();
		}
	}
}

// coreset_dist is engine/coreset's distance: float64 accumulation in eight
// lanes (lane l takes the dimensions j with j % 8 == l, acc = fma(d, d,
// acc), d = double(a) - double(b)), reduced ((l0+l1)+(l2+l3))+((l4+l5)+
// (l6+l7)), then sqrt, between points i and c of xt, the points
// transposed ([dim][n]).
#define LANE(k)                                                                  \
	do {                                                                         \
		double d = (double)xt[(long)(j + k) * n + i] - (double)xt[(long)(j + k) * n + c]; \
		l##k = __builtin_fma(d, d, l##k);                                        \
	} while (0)
static __device__ __inline__ double coreset_dist(const float *xt, long n, long i, long c, int dim) {
	// Eight scalar lanes (an array would live in local memory).
	double l0 = 0, l1 = 0, l2 = 0, l3 = 0, l4 = 0, l5 = 0, l6 = 0, l7 = 0;
	int j = 0;
	for (; j + 8 <= dim; j += 8) {
		LANE(0);
		LANE(1);
		LANE(2);
		LANE(3);
		LANE(4);
		LANE(5);
		LANE(6);
		LANE(7);
	}
	int rest = dim - j; // the tail: lane t takes dimension j + t
	if (rest > 0) LANE(0);
	if (rest > 1) LANE(1);
	if (rest > 2) LANE(2);
	if (rest > 3) LANE(3);
	if (rest > 4) LANE(4);
	if (rest > 5) LANE(5);
	if (rest > 6) LANE(6);
	return __builtin_sqrt(((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)));
}
#undef LANE

// coreset_step is one selection step of the approximate greedy coreset
// (engine/coreset.run) in one launch: the centre is sel[step-1]; every key
// becomes min(key, distance to the centre) (first step: min(init,
// distance * weight), computed for every point; later steps skip keys of
// 0, as the CPU does); sel[step] is the point with the largest key, the
// lowest index on ties. Blocks write their best to pk/pi; the last block to
// finish (counted in *count, reset for the next step) reduces them. xt is
// the points transposed, [dim][n].
extern "C" __global__ void coreset_step(const float *xt, int dim, long n, double *keys, const double *init,
	const float *weights, int first, int *sel, int step, double *pk, long *pi, unsigned *count) {
	__shared__ double sk[256];
	__shared__ long si[256];
	__shared__ int last;
	const long c = sel[step - 1];
	double bk = -1;
	long bi = n;
	for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
		double k;
		if (first) {
			double d = coreset_dist(xt, n, i, c, dim);
			if (weights) {
				d *= (double)weights[i];
			}
			// Go's min: NaN when either is NaN.
			k = (d != d || init[i] != init[i] || init[i] < d) ? (d != d ? d : init[i]) : d;
			keys[i] = k;
		} else {
			k = keys[i];
			if (k > 0) {
				double d = coreset_dist(xt, n, i, c, dim);
				if (d < k) {
					keys[i] = k = d;
				}
			}
		}
		if (k > bk) {
			bk = k;
			bi = i;
		}
	}
	block_best<true>(sk, si, bk, bi);
	if (threadIdx.x == 0) {
		pk[blockIdx.x] = sk[0];
		pi[blockIdx.x] = si[0];
		__nvvm_membar_gl();
		unsigned t = __nvvm_atom_inc_gen_ui(count, gridDim.x);
		last = t == gridDim.x - 1;
	}
	sync_threads();
	if (!last) {
		return;
	}
	__nvvm_membar_gl(); // acquire: the other blocks' bests are visible
	// The last block: reduce the blocks' bests.
	bk = -1;
	bi = n;
	for (unsigned b = threadIdx.x; b < gridDim.x; b += blockDim.x) {
		double k = ((volatile double *)pk)[b];
		long i = ((volatile long *)pi)[b];
		if (k > bk || (k == bk && i < bi)) {
			bk = k;
			bi = i;
		}
	}
	block_best<true>(sk, si, bk, bi);
	if (threadIdx.x == 0) {
		// All keys NaN (NaN features): point 0, as the CPU's scan ends.
		sel[step] = si[0] < n ? (int)si[0] : 0;
		*count = 0;
	}
}

// im2col writes the columns of n images x [n][c][h][w] for a k x k
// convolution (stride, zero padding pad) into col [n][c*k*k][oh*ow], rows
// in torch's (channel, ky, kx) order.
extern "C" __global__ void im2col(const float *x, long n, int c, int h, int w, int k, int stride, int pad, int oh, int ow, float *col) {
	long per = (long)c * k * k * oh * ow;
	long total = n * per;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		long img = t / per, u = t % per;
		int ox = (int)(u % ow);
		long r = u / ow;
		int oy = (int)(r % oh);
		r /= oh;
		int kx = (int)(r % k);
		r /= k;
		int ky = (int)(r % k);
		int ch = (int)(r / k);
		int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
		col[t] = (iy >= 0 && iy < h && ix >= 0 && ix < w) ? x[((img * c + ch) * h + iy) * w + ix] : 0.0f;
	}
}

// bias_act finishes a convolution's output y [n][out][hw] in place: plus
// the channel's bias, plus residual (same shape; may be null), then ReLU
// when relu is set (the CPU epilogue's order).
extern "C" __global__ void bias_act(float *y, const float *bias, const float *residual, long n, int out, int hw, int relu) {
	long total = n * out * hw;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		float v = y[t] + bias[(t / hw) % out];
		if (residual) {
			v += residual[t];
		}
		if (relu && !(v > 0)) {
			v = v != v ? v : 0.0f; // NaN stays NaN, as max(v, 0) in torch
		}
		y[t] = v;
	}
}

// max_pool is torch's max_pool2d (k x k, stride, padding as -inf) on
// planes [p][h][w] -> [p][oh][ow].
extern "C" __global__ void max_pool(const float *x, long planes, int h, int w, int k, int stride, int pad, int oh, int ow, float *y) {
	long total = planes * oh * ow;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		int ox = (int)(t % ow);
		long r = t / ow;
		int oy = (int)(r % oh);
		long p = r / oh;
		float m = -__builtin_inff();
		for (int ky = 0; ky < k; ky++) {
			int iy = oy * stride - pad + ky;
			if (iy < 0 || iy >= h) continue;
			for (int kx = 0; kx < k; kx++) {
				int ix = ox * stride - pad + kx;
				if (ix < 0 || ix >= w) continue;
				float v = x[(p * h + iy) * w + ix];
				if (v > m || v != v) m = v;
			}
		}
		y[t] = m;
	}
}

#include "denoise.cuh"
#include "embed.cuh"
#include "flow.cuh"
