// Patch embedding and anomaly-map kernels (engine/embed, engine/detector maps); included by kernels.cu.
//
// Each kernel reproduces its CPU counterpart bit for bit: the same float32
// or float64 operations in the same order, one rounded operation per
// temporary (make ptx compiles with -ffp-contract=off: no fused
// multiply-adds; `/` is IEEE division). Every loop is grid-stride over the
// flat output index, the last index fastest.

// copy_f32: dst[i] = src[i] for i < n (Backbone.Run copies a layer's output
// out of its scratch).
extern "C" __global__ void copy_f32(const float *src, long n, float *dst) {
	for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
		dst[i] = src[i];
	}
}

// pool_bin is compute.AdaptivePool1D's bin b of l values pooled to bins:
// [b*l/bins, ceil((b+1)*l/bins)).
static __device__ __inline__ void pool_bin(long b, long l, long bins, long *start, long *end) {
	*start = b * l / bins;
	*end = ((b + 1) * l + bins - 1) / bins;
}

// unfold_pool is engine/embed's unfold of one layer followed by
// compute.AdaptivePool1D.Pool to dim bins: x is the layer [n][c][h][w]; for
// image img, position pos = gy*gw + gx of the gh x gw patch grid and bin b,
// it sums the neighbourhood values j of the bin (pool_bin over l = c*p*p)
// in float32 in order, value j being channel j/(p*p), row gy*stride-pad +
// (j%(p*p))/p, column gx*stride-pad + j%p (torch Unfold's order; 0 outside
// the map), and divides by the bin's length. The mean goes to
// dst[(img*gh*gw + pos)*ld + b]. Threads (img, b, pos), pos fastest: a
// warp reads neighbouring columns of one channel.
extern "C" __global__ void unfold_pool(const float *x, int n, int c, int h, int w, int p, int stride, int pad, int gh,
	int gw, int dim, float *dst, int ld) {
	const long npos = (long)gh * gw;
	const long total = (long)n * dim * npos;
	const long l = (long)c * p * p;
	const int pp = p * p;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		const long pos = t % npos;
		const long r = t / npos;
		const int b = (int)(r % dim);
		const long img = r / dim;
		const int gy = (int)(pos / gw), gx = (int)(pos % gw);
		const int y0 = gy * stride - pad, x0 = gx * stride - pad;
		const float *xi = x + img * c * (long)h * w;
		long start, end;
		pool_bin(b, l, dim, &start, &end);
		float sum = 0.0f;
		for (long j = start; j < end; j++) {
			const int ch = (int)(j / pp);
			const int k = (int)(j % pp);
			const int y = y0 + k / p, xx = x0 + k % p;
			float v = 0.0f;
			if (y >= 0 && y < h && xx >= 0 && xx < w) {
				v = xi[((long)ch * h + y) * w + xx];
			}
			sum = sum + v;
		}
		const float count = (float)(end - start);
		dst[(img * npos + pos) * ld + b] = sum / count;
	}
}

// pool_rows is compute.AdaptivePool1D.Pool on each row of src [rows][l]
// into dst [rows][bins]: the final pooling of the concatenated layers.
// Threads (row, b), b fastest.
extern "C" __global__ void pool_rows(const float *src, long rows, int l, int bins, float *dst) {
	const long total = rows * bins;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		const int b = (int)(t % bins);
		const long row = t / bins;
		const float *s = src + row * l;
		long start, end;
		pool_bin(b, l, bins, &start, &end);
		float sum = 0.0f;
		for (long j = start; j < end; j++) {
			sum = sum + s[j];
		}
		const float count = (float)(end - start);
		dst[t] = sum / count;
	}
}

// bilerp is compute.ResizeBilinear's arithmetic for one output from the
// source values s<row><column> (rows i0, i1 of the y taps, columns i0, i1
// of the x taps), every product rounded to float32:
// (s00*xl0 + s01*xl1)*yl0 + (s10*xl0 + s11*xl1)*yl1.
static __device__ __inline__ float bilerp(float s00, float s01, float s10, float s11, float xl0, float xl1, float yl0,
	float yl1) {
	const float p00 = s00 * xl0;
	const float p01 = s01 * xl1;
	const float t0 = p00 + p01;
	const float p10 = s10 * xl0;
	const float p11 = s11 * xl1;
	const float t1 = p10 + p11;
	const float q0 = t0 * yl0;
	const float q1 = t1 * yl1;
	return q0 + q1;
}

// The resize kernels take compute's linear taps (cuda/embed.go's
// linearTaps) for an h x w -> oh x ow resize as ti (int) and tw (float):
// output row oy reads rows ti[2*oy], ti[2*oy+1] with weights tw[2*oy],
// tw[2*oy+1]; output column ox reads columns ti[2*(oh+ox)],
// ti[2*(oh+ox)+1] with weights tw[2*(oh+ox)], tw[2*(oh+ox)+1].

// resize_vectors is compute.ResizeBilinear on vectors stored position-major:
// src [n][h*w][dim] -> dst[(img*oh*ow + pos)*ld + k] (engine/embed resizes
// a deeper layer's pooled planes; position-major is the same per element).
// Threads (img, pos, k), k fastest.
extern "C" __global__ void resize_vectors(const float *src, int n, int h, int w, int dim, int oh, int ow, const int *ti,
	const float *tw, float *dst, int ld) {
	const long opos = (long)oh * ow;
	const long total = (long)n * opos * dim;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		const int k = (int)(t % dim);
		const long r = t / dim;
		const long pos = r % opos;
		const long img = r / opos;
		const int oy = (int)(pos / ow), ox = (int)(pos % ow);
		const int y0 = ti[2 * oy], y1 = ti[2 * oy + 1];
		const int x0 = ti[2 * (oh + ox)], x1 = ti[2 * (oh + ox) + 1];
		const float *s = src + img * h * (long)w * dim;
		const float s00 = s[((long)y0 * w + x0) * dim + k];
		const float s01 = s[((long)y0 * w + x1) * dim + k];
		const float s10 = s[((long)y1 * w + x0) * dim + k];
		const float s11 = s[((long)y1 * w + x1) * dim + k];
		dst[(img * opos + pos) * ld + k] =
			bilerp(s00, s01, s10, s11, tw[2 * (oh + ox)], tw[2 * (oh + ox) + 1], tw[2 * oy], tw[2 * oy + 1]);
	}
}

// resize_planes is compute.ResizeBilinear: src [planes][h][w] -> dst
// [planes][oh][ow]. Threads (plane, oy, ox), ox fastest.
extern "C" __global__ void resize_planes(const float *src, long planes, int h, int w, int oh, int ow, const int *ti,
	const float *tw, float *dst) {
	const long total = planes * oh * ow;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		const int ox = (int)(t % ow);
		const long r = t / ow;
		const int oy = (int)(r % oh);
		const long pl = r / oh;
		const int y0 = ti[2 * oy], y1 = ti[2 * oy + 1];
		const int x0 = ti[2 * (oh + ox)], x1 = ti[2 * (oh + ox) + 1];
		const float *s = src + pl * h * (long)w;
		const float s00 = s[(long)y0 * w + x0];
		const float s01 = s[(long)y0 * w + x1];
		const float s10 = s[(long)y1 * w + x0];
		const float s11 = s[(long)y1 * w + x1];
		dst[t] = bilerp(s00, s01, s10, s11, tw[2 * (oh + ox)], tw[2 * (oh + ox) + 1], tw[2 * oy], tw[2 * oy + 1]);
	}
}

// reflect_index is engine/detector's reflect: index i of a line of n
// extended with scipy's mode "reflect" (d c b a | a b c d | d c b a).
static __device__ __inline__ int reflect_index(int i, int n) {
	const int p = 2 * n;
	i %= p;
	if (i < 0) {
		i += p;
	}
	if (i >= n) {
		i = p - 1 - i;
	}
	return i;
}

// gauss_line is engine/detector's smooth1d for one output: the line's
// values at i and i -/+ j (j = r..1, reflected), read as float64 from s
// with the given stride, weighted by the half kernel wt[0..r] in scipy's
// symmetric order: acc = v[i]*wt[0], then acc += (v[i-j]+v[i+j])*wt[j].
static __device__ __inline__ float gauss_line(const float *s, int i, int n, long stride, const double *wt, int r) {
	double acc = (double)s[i * stride] * wt[0];
	for (int j = r; j >= 1; j--) {
		const double a = (double)s[reflect_index(i - j, n) * stride];
		const double b = (double)s[reflect_index(i + j, n) * stride];
		const double sum = a + b;
		const double prod = sum * wt[j];
		acc = acc + prod;
	}
	return (float)acc;
}

// gauss_cols is detector.GaussianFilter's first pass (along axis 0, the
// columns) on planes src [planes][h][w] into dst (same shape): the
// Gaussian of half kernel wt[0..r], float64 arithmetic, results rounded to
// float32. Threads (plane, y, x), x fastest.
extern "C" __global__ void gauss_cols(const float *src, long planes, int h, int w, const double *wt, int r, float *dst) {
	const long total = planes * h * w;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		const int x = (int)(t % w);
		const long q = t / w;
		const int y = (int)(q % h);
		const long pl = q / h;
		dst[t] = gauss_line(src + pl * h * (long)w + x, y, h, w, wt, r);
	}
}

// gauss_rows is detector.GaussianFilter's second pass (along axis 1, the
// rows), as gauss_cols. Threads (plane, y, x), x fastest.
extern "C" __global__ void gauss_rows(const float *src, long planes, int h, int w, const double *wt, int r, float *dst) {
	const long total = planes * h * w;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		const int x = (int)(t % w);
		const long q = t / w;
		dst[t] = gauss_line(src + q * w, x, w, 1, wt, r);
	}
}
