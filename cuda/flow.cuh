// CFLOW's decoders on the GPU (engine/cflow; Go side flow.go); included by kernels.cu.
//
// A decoder's forward pass, its gradients and Adam on a batch of n fibers of C channels
// with P condition dims: the GEMMs are cuBLAS's, these kernels are the rest. They keep
// engine/cflow's float32 arithmetic and its order where it is a chain of float32
// operations (the coupling, Adam, the column sums in row order); the transcendental
// functions are computed in float64 by the sp_ functions below and rounded once, as the
// CPU computes float32(math.Tanh(float64(x))) (the kernels are built without libdevice,
// so they carry their own). The reductions over a row are block reductions in float64,
// so results agree with the CPU's to float32 rounding, not bit for bit.
//
// Shapes: h, u0, dz [n][C]; a, da [n][2 C2] (log-scale inputs, then shifts); C1 = C - C2,
// C2 = C/2; sigma, scale, offset [C]; per-row values [n].

#define SP_CLAMP 1.9f
#define SP_TENTH 0.1f

// sp_expm1_reduced is e^r - 1 for |r| <= ln2/2: Horner's form of the Taylor series to r^17
// (truncation below 1e-19 relative).
static __device__ __inline__ double sp_expm1_reduced(double r) {
	double q = 1.0;
#pragma unroll
	for (int k = 17; k >= 2; k--) {
		q = 1.0 + r * q * (1.0 / k);
	}
	return r * q;
}

// sp_pow2 is 2^k for a normal exponent k (-1022 <= k <= 1023).
static __device__ __inline__ double sp_pow2(int k) {
	union {
		unsigned long long u;
		double d;
	} v;
	v.u = (unsigned long long)(k + 1023) << 52;
	return v.d;
}

// sp_exp is e^x in float64 (about an ulp): x = k ln2 + r with |r| <= ln2/2 (Cody and
// Waite's two-part ln2), e^r from sp_expm1_reduced. Results below 2^-1022 flush to 0.
static __device__ __inline__ double sp_exp(double x) {
	if (x != x) return x;
	if (x > 709.782712893384) return __builtin_inf();
	if (x < -708.39641853226408) return 0.0;
	const double ln2hi = 6.93147180369123816490e-01, ln2lo = 1.90821492927058770002e-10;
	double kf = x * 1.4426950408889634 + (x >= 0 ? 0.5 : -0.5);
	int k = (int)kf; // truncation of x/ln2 +- 1/2: the nearest integer
	double r = (x - k * ln2hi) - k * ln2lo;
	double e = 1.0 + sp_expm1_reduced(r);
	if (k > 1023) return e * sp_pow2(1023) * 2.0;
	if (k < -1021) return e * sp_pow2(k + 60) * sp_pow2(-60);
	return e * sp_pow2(k);
}

// sp_log is ln x in float64 (about an ulp): x = m 2^e with sqrt(1/2) <= m < sqrt(2), ln m =
// 2 atanh(s), s = (m-1)/(m+1), by its series to s^27. 0 gives -inf, negatives and NaN NaN.
static __device__ __inline__ double sp_log(double x) {
	if (!(x > 0)) return x == 0 ? -__builtin_inf() : __builtin_nan("");
	if (x == __builtin_inf()) return x;
	int adj = 0;
	if (x < 2.2250738585072014e-308) { // subnormal: scale into the normal range
		x *= 18014398509481984.0;   // 2^54
		adj = -54;
	}
	union {
		unsigned long long u;
		double d;
	} v;
	v.d = x;
	int e = (int)((v.u >> 52) & 0x7ff) - 1023 + adj;
	v.u = (v.u & 0x000fffffffffffffULL) | (1023ULL << 52);
	double m = v.d;
	if (m > 1.4142135623730951) {
		m *= 0.5;
		e++;
	}
	double s = (m - 1.0) / (m + 1.0), s2 = s * s;
	double q = 0.0;
#pragma unroll
	for (int k = 27; k >= 3; k -= 2) {
		q = s2 * (1.0 / k + q);
	}
	double lm = 2.0 * s + 2.0 * s * q;
	const double ln2hi = 6.93147180369123816490e-01, ln2lo = 1.90821492927058770002e-10;
	return (e * ln2hi + lm) + e * ln2lo;
}

// sp_log1p is ln(1 + y) for y >= 0, accurate for small y (Goldberg's correction).
static __device__ __inline__ double sp_log1p(double y) {
	double u = 1.0 + y;
	if (u == 1.0) return y;
	return sp_log(u) * (y / (u - 1.0));
}

// sp_tanh is tanh x in float64.
static __device__ __inline__ double sp_tanh(double x) {
	double ax = x < 0 ? -x : x, t;
	if (x != x) return x;
	if (ax > 22) {
		t = 1.0;
	} else if (ax < 0.17) {
		double em = sp_expm1_reduced(2 * ax);
		t = em / (em + 2.0);
	} else {
		t = 1.0 - 2.0 / (sp_exp(2 * ax) + 1.0);
	}
	return x < 0 ? -t : t;
}

// sp_softplus is ln(1 + e^x); sp_sigmoid is 1/(1 + e^-x), its derivative.
static __device__ __inline__ double sp_softplus(double x) {
	return x > 0 ? x + sp_log1p(sp_exp(-x)) : sp_log1p(sp_exp(x));
}

static __device__ __inline__ double sp_sigmoid(double x) {
	if (x >= 0) return 1.0 / (1.0 + sp_exp(-x));
	double e = sp_exp(x);
	return e / (1.0 + e);
}

static __device__ __inline__ float tanh32(float x) { return (float)sp_tanh((double)x); }
static __device__ __inline__ float exp32(float x) { return (float)sp_exp((double)x); }

// block_sum returns the sum of every thread's v over the block (blockDim.x a power of two,
// at most 256), in a fixed tree order; every thread of the block must call it.
static __device__ __inline__ double block_sum(double v) {
	__shared__ double sh[256];
	sh[threadIdx.x] = v;
	sync_threads();
	for (int s = blockDim.x / 2; s > 0; s >>= 1) {
		if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
		sync_threads();
	}
	double out = sh[0];
	sync_threads(); // sh is reused by the next call
	return out;
}

// flow_subnet_in is the subnets' input [h1, c]: out [n][C1+P].
extern "C" __global__ void flow_subnet_in(const float *h, const float *c, int n, int C, int c1, int P, float *out) {
	int w = c1 + P;
	long total = (long)n * w;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		long i = t / w;
		int j = (int)(t % w);
		out[t] = j < c1 ? h[i * C + j] : c[i * P + (j - c1)];
	}
}

// flow_sigma is the global affine's scale, sigma = 0.2 softplus(Scale/2) in the CPU's
// float32 steps, and writes the sum of log sigma over the C channels to logsum[0]. One
// block.
extern "C" __global__ void flow_sigma(const float *scale, int C, float *sigma, float *logsum) {
	double s = 0;
	for (int j = threadIdx.x; j < C; j += blockDim.x) {
		float h = scale[j] * 0.5f;
		float sg = (float)sp_softplus((double)h) * 0.2f;
		sigma[j] = sg;
		s += (double)(float)sp_log((double)sg);
	}
	s = block_sum(s);
	if (threadIdx.x == 0) logsum[0] = (float)s;
}

// flow_coupling is a block's affine coupling and global affine, one block of threads per
// row: u0 = [h1, h2 exp(s) + t] with s = Clamp tanh(0.1 a1), t = 0.1 a2, out = u0 sigma +
// offset, and the block's log-determinant, the row's sum of s plus logsum[0], added to
// logdet (set when first).
extern "C" __global__ void flow_coupling(const float *h, const float *a, const float *sigma, const float *offset,
	const float *logsum, int n, int C, float *u0, float *out, float *logdet, int first) {
	int c2 = C / 2, c1 = C - c2;
	for (long i = blockIdx.x; i < n; i += gridDim.x) {
		const float *hi = h + i * C, *ai = a + i * 2 * c2;
		float *ui = u0 + i * C, *oi = out + i * C;
		double s = 0;
		for (int j = threadIdx.x; j < C; j += blockDim.x) {
			float u;
			if (j < c1) {
				u = hi[j];
			} else {
				int jj = j - c1;
				float sj = tanh32(ai[jj] * SP_TENTH) * SP_CLAMP;
				s += sj;
				u = hi[j] * exp32(sj) + ai[c2 + jj] * SP_TENTH;
			}
			ui[j] = u;
			oi[j] = u * sigma[j] + offset[j];
		}
		s = block_sum(s);
		if (threadIdx.x == 0) {
			float ld = (float)s + logsum[0];
			logdet[i] = first ? ld : logdet[i] + ld;
		}
	}
}

// flow_head is log p / C of each row of z [n][C] with its log-determinant, one block per
// row; with grads it also writes the loss's gradients (the loss being the mean over the n
// rows of softplus(-log p / C)): dz [n][C] and dld [n], the gradient of every block's
// log-determinant.
extern "C" __global__ void flow_head(const float *z, const float *logdet, int n, int C, float *logprob, float *dz,
	float *dld, int grads) {
	for (long i = blockIdx.x; i < n; i += gridDim.x) {
		const float *zi = z + i * C;
		double s = 0;
		for (int j = threadIdx.x; j < C; j += blockDim.x) {
			s += (double)zi[j] * zi[j];
		}
		s = block_sum(s);
		float lp = ((float)s * -0.5f - (float)(C * 0.9189385332046727) + logdet[i]) * (float)(1.0 / C);
		if (threadIdx.x == 0) logprob[i] = lp;
		if (!grads) continue;
		float g = (float)(-sp_sigmoid(-(double)lp) / n) * (float)(1.0 / C); // d loss / d log p
		if (threadIdx.x == 0) dld[i] = g;
		for (int j = threadIdx.x; j < C; j += blockDim.x) {
			dz[i * C + j] = -g * zi[j];
		}
	}
}

// flow_coupling_grad is the coupling's gradients with respect to h and a from du, the
// gradient of its output, and dld: dh = [G1, G2 exp(s)], da = [(G2 h2 exp(s) + dld) Clamp
// (1 - tanh^2) 0.1, 0.1 G2] with G = du sigma. One thread per value of du.
extern "C" __global__ void flow_coupling_grad(const float *h, const float *a, const float *sigma, const float *du,
	const float *dld, int n, int C, float *dh, float *da) {
	int c2 = C / 2, c1 = C - c2;
	long total = (long)n * C;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		long i = t / C;
		int j = (int)(t % C);
		float g = du[t] * sigma[j];
		if (j < c1) {
			dh[t] = g;
			continue;
		}
		int jj = j - c1;
		const float *ai = a + i * 2 * c2;
		float th = tanh32(ai[jj] * SP_TENTH);
		float e = exp32(th * SP_CLAMP);
		float d = SP_CLAMP * (1 - th * th) * SP_TENTH;
		dh[t] = g * e;
		da[i * 2 * c2 + jj] = g * h[t] * e * d + dld[i] * d;
		da[i * 2 * c2 + c2 + jj] = g * SP_TENTH;
	}
}

// flow_affine_grad is the global affine's gradients, one thread per channel j summing
// the rows in order: dOffset = sum du, dsigma = sum du u0 + (sum dld) / sigma, and dScale
// = dsigma 0.2 sigmoid(Scale/2) 0.5.
extern "C" __global__ void flow_affine_grad(const float *du, const float *u0, const float *sigma, const float *scale,
	const float *dld, int n, int C, float *dscale, float *doffset) {
	for (long j = blockIdx.x * (long)blockDim.x + threadIdx.x; j < C; j += (long)gridDim.x * blockDim.x) {
		float so = 0, ss = 0, sl = 0;
		for (long i = 0; i < n; i++) {
			float g = du[i * C + j];
			so += g;
			ss += g * u0[i * C + j];
			sl += dld[i];
		}
		float ds = ss + sl / sigma[j];
		doffset[j] = so;
		dscale[j] = ds * 0.2f * (float)sp_sigmoid((double)(scale[j] * 0.5f)) * 0.5f;
	}
}

// col_sums sums the columns of x [n][cols] in row order into out [cols].
extern "C" __global__ void col_sums(const float *x, int n, int cols, float *out) {
	for (long j = blockIdx.x * (long)blockDim.x + threadIdx.x; j < cols; j += (long)gridDim.x * blockDim.x) {
		float s = 0;
		for (long i = 0; i < n; i++) {
			s += x[i * cols + j];
		}
		out[j] = s;
	}
}

// relu_grad zeroes the gradient dr where the ReLU's output r is not positive.
extern "C" __global__ void relu_grad(float *dr, const float *r, long total) {
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		if (!(r[t] > 0)) dr[t] = 0.0f;
	}
}

// flow_add_passive adds the subnet input's gradient dsin [n][w] to the passive half of
// dh [n][C]: dh[i][j] += dsin[i][j] for j < c1.
extern "C" __global__ void flow_add_passive(float *dh, const float *dsin, int n, int C, int c1, int w) {
	long total = (long)n * c1;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		long i = t / c1;
		int j = (int)(t % c1);
		dh[i * C + j] += dsin[i * w + j];
	}
}

// adam_step is cflow.Adam.Step on count values: the moments' decays b1, b2, their
// complements c1, c2, the step lr/(1 - b1^t), bc2 = sqrt(1 - b2^t) and eps.
extern "C" __global__ void adam_step(float *p, const float *g, float *m, float *v, long count, float b1, float b2,
	float c1, float c2, float step, float bc2, float eps) {
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < count; t += (long)gridDim.x * blockDim.x) {
		float gt = g[t];
		float mt = m[t] * b1 + gt * c1;
		float vt = v[t] * b2 + gt * gt * c2;
		float denom = (float)__builtin_sqrt((double)vt) / bc2 + eps;
		m[t] = mt;
		v[t] = vt;
		p[t] -= step * (mt / denom);
	}
}

// adam_drift is cflow.Adam.Drift: k steps with zero gradients, at steps[i] and bc2[i].
extern "C" __global__ void adam_drift(float *p, float *m, float *v, long count, float b1, float b2, float eps,
	const float *steps, const float *bc2, int k) {
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < count; t += (long)gridDim.x * blockDim.x) {
		float mt = m[t], vt = v[t], pt = p[t];
		for (int i = 0; i < k; i++) {
			mt *= b1;
			vt *= b2;
			float denom = (float)__builtin_sqrt((double)vt) / bc2[i] + eps;
			pt -= steps[i] * (mt / denom);
		}
		m[t] = mt;
		v[t] = vt;
		p[t] = pt;
	}
}
