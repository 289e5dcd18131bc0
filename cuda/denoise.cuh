// Patch-level noise discriminators on the GPU (engine/denoise); included by kernels.cu.
//
// Every kernel works on a chunk of positions q0 .. q0+nq-1 of the training
// features feats [n][p][d] (image-major, engine/denoise's layout) and
// reproduces engine/denoise's arithmetic in the same order, so that the
// scores are the CPU's bit for bit: float64 differences summed in four
// interleaved lanes for the exact methods, float32 dot products in four
// lanes for the dense LOF. Scratch arrays are per chunk position qq:
// dist [nq][n][n], nbr [nq][n][k] (dense: [nq][n][k+1]), per-row values
// [nq][n]. Scores go to out[i*p + q0+qq] ([n][p], the CPU's output).

// feat_row is image i's feature vector at position q.
static __device__ __inline__ const float *feat_row(const float *feats, int p, int d, long i, long q) {
	return feats + (i * p + q) * d;
}

// group_dist is denoise.pairwise for a chunk of positions: dist[qq][i][j]
// = sqrt of the squared difference of rows i and j summed in four float64
// lanes (lane c%4; the d%4 tail into lane 0), ((s0+s1)+(s2+s3)). The
// matrix is symmetric bit for bit ((a-b)^2 == (b-a)^2) and its diagonal is
// exactly 0. One thread per entry.
extern "C" __global__ void group_dist(const float *feats, int n, int p, int d, int q0, int nq, double *dist) {
	long total = (long)nq * n * n;
	int d4 = d - d % 4;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		long j = t % n, r = t / n;
		long i = r % n, qq = r / n;
		const float *a = feat_row(feats, p, d, i, q0 + qq), *b = feat_row(feats, p, d, j, q0 + qq);
		double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
		int c = 0;
		for (; c < d4; c += 4) {
			double e0 = (double)a[c] - (double)b[c];
			double e1 = (double)a[c + 1] - (double)b[c + 1];
			double e2 = (double)a[c + 2] - (double)b[c + 2];
			double e3 = (double)a[c + 3] - (double)b[c + 3];
			s0 += e0 * e0;
			s1 += e1 * e1;
			s2 += e2 * e2;
			s3 += e3 * e3;
		}
		for (; c < d; c++) {
			double e0 = (double)a[c] - (double)b[c];
			s0 += e0 * e0;
		}
		dist[t] = i == j ? 0.0 : __builtin_sqrt((s0 + s1) + (s2 + s3));
	}
}

// nearest_score is denoise.nearestGroup's row step: 1 + the two smallest
// entries of the row (the first the zero self-distance). One thread per
// (position, image).
extern "C" __global__ void nearest_score(const double *dist, int n, int p, int q0, int nq, float *out) {
	long total = (long)nq * n;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		long i = t % n, qq = t / n;
		const double *row = dist + t * n;
		double m0 = __builtin_inf(), m1 = __builtin_inf();
		for (int j = 0; j < n; j++) {
			double v = row[j];
			if (v < m0) {
				m1 = m0;
				m0 = v;
			} else if (v < m1) {
				m1 = v;
			}
		}
		out[i * p + q0 + qq] = (float)((m0 + m1) + 1.0);
	}
}

// row_smallest writes to nb the indices of the len smallest entries of
// row (n entries; skip excluded, or -1 for none) by (value, index): stable
// insertion into the short list, as denoise.kNearest and denoise.topK32.
template <typename T>
static __device__ __inline__ void row_smallest(const T *row, int n, long skip, int *nb, int len) {
	int m = 0;
	for (int j = 0; j < n; j++) {
		if (j == skip) continue;
		T v = row[j];
		if (m == len) {
			if (v >= row[nb[len - 1]]) continue;
			m--;
		}
		int pos = m;
		while (pos > 0 && row[nb[pos - 1]] > v) {
			nb[pos] = nb[pos - 1];
			pos--;
		}
		nb[pos] = j;
		m++;
	}
}

// lof_knn is denoise.kNearest plus the k-distance: the k smallest entries
// of row i other than the diagonal, by (distance, index), kept by stable
// insertion in nbr[qq][i][0..k); kdist[qq][i] = the distance to the k-th.
extern "C" __global__ void lof_knn(const double *dist, int n, int k, int nq, int *nbr, double *kdist) {
	long total = (long)nq * n;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		long i = t % n;
		const double *row = dist + t * n;
		int *nb = nbr + t * k;
		row_smallest(row, n, i, nb, k);
		kdist[t] = row[nb[k - 1]];
	}
}

// lof_lrd is denoise.lofGroup's density: lrd = 1 / (mean over the
// neighbours o of max(d(i, o), kdist(o)) + 1e-10), summed in order.
extern "C" __global__ void lof_lrd(const double *dist, const int *nbr, const double *kdist, int n, int k, int nq, double *lrd) {
	long total = (long)nq * n;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		long qq = t / n;
		const double *row = dist + t * n;
		const int *nb = nbr + t * k;
		double s = 0;
		for (int m = 0; m < k; m++) {
			int o = nb[m];
			double a = row[o], b = kdist[qq * n + o];
			s += a > b ? a : b;
		}
		lrd[t] = 1.0 / (s / (double)k + 1e-10);
	}
}

// lof_score is denoise.lofGroup's factor: the mean over the neighbours o of
// lrd(o) / lrd(i), summed in order, as float32.
extern "C" __global__ void lof_score(const int *nbr, const double *lrd, int n, int k, int p, int q0, int nq, float *out) {
	long total = (long)nq * n;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		long i = t % n, qq = t / n;
		const int *nb = nbr + t * k;
		double li = lrd[t], s = 0;
		for (int m = 0; m < k; m++) {
			s += lrd[qq * n + nb[m]] / li;
		}
		out[i * p + q0 + qq] = (float)(s / (double)k);
	}
}

// dot32 is denoise.dot32: a float32 dot product in four lanes (the d%4
// tail into lane 0), ((s0+s1)+(s2+s3)).
static __device__ __inline__ float dot32(const float *a, const float *b, int d) {
	float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
	int c = 0;
	for (; c + 4 <= d; c += 4) {
		s0 += a[c] * b[c];
		s1 += a[c + 1] * b[c + 1];
		s2 += a[c + 2] * b[c + 2];
		s3 += a[c + 3] * b[c + 3];
	}
	for (; c < d; c++) {
		s0 += a[c] * b[c];
	}
	return (s0 + s1) + (s2 + s3);
}

// dense_dist is denoise.lofDenseGroup's distance matrix in float32:
// sqrt(|(xx_i + xx_j) - 2 g_ij|) + 1e-6 with xx and g from dot32 (so
// that the diagonal is exactly 1e-6).
extern "C" __global__ void dense_dist(const float *feats, int n, int p, int d, int q0, int nq, float *dist) {
	long total = (long)nq * n * n;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		long j = t % n, r = t / n;
		long i = r % n, qq = r / n;
		const float *a = feat_row(feats, p, d, i, q0 + qq), *b = feat_row(feats, p, d, j, q0 + qq);
		float xi = dot32(a, a, d), xj = dot32(b, b, d), g = dot32(a, b, d);
		float s = (xi + xj) - 2.0f * g;
		if (s < 0) s = -s;
		dist[t] = __builtin_sqrtf(s) + 1e-6f;
	}
}

// dense_knn is denoise.topK32 over the whole row (the diagonal included):
// the k+1 smallest entries by (value, index) in top[qq][i][0..k], the
// k-distance the value of the last.
extern "C" __global__ void dense_knn(const float *dist, int n, int k, int nq, int *top, float *kdist) {
	long total = (long)nq * n;
	int kk = k + 1;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		const float *row = dist + t * n;
		int *tp = top + t * kk;
		row_smallest(row, n, -1, tp, kk);
		kdist[t] = row[tp[k]];
	}
}

// dense_lrd is lofDenseGroup's density in float32: k / the sum over the
// neighbours (top entries 1..k) of max(dist[i][o], kdist[o]).
extern "C" __global__ void dense_lrd(const float *dist, const int *top, const float *kdist, int n, int k, int nq, float *lrd) {
	long total = (long)nq * n;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		long qq = t / n;
		const float *row = dist + t * n;
		const int *tp = top + t * (k + 1);
		float s = 0;
		for (int m = 1; m <= k; m++) {
			int o = tp[m];
			float a = row[o], b = kdist[qq * n + o];
			s += a > b ? a : b;
		}
		lrd[t] = (float)k / s;
	}
}

// dense_score is lofDenseGroup's factor in float32: (the sum of the
// neighbours' lrd / k) / lrd[i].
extern "C" __global__ void dense_score(const int *top, const float *lrd, int n, int k, int p, int q0, int nq, float *out) {
	long total = (long)nq * n;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		long i = t % n, qq = t / n;
		const int *tp = top + t * (k + 1);
		float s = 0;
		for (int m = 1; m <= k; m++) {
			s += lrd[qq * n + tp[m]];
		}
		out[i * p + q0 + qq] = (s / (float)k) / lrd[t];
	}
}

// gauss_center is denoise.gaussianGroup's first step: the mean of each
// channel over the n images (float64, summed in image order, divided by
// n) and the centred vectors xc [nq][n][d]. One thread per (position,
// channel).
extern "C" __global__ void gauss_center(const float *feats, int n, int p, int d, int q0, int nq, double *xc) {
	long total = (long)nq * d;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		long c = t % d, qq = t / d;
		double m = 0;
		for (long i = 0; i < n; i++) {
			m += (double)feat_row(feats, p, d, i, q0 + qq)[c];
		}
		m /= (double)n;
		for (long i = 0; i < n; i++) {
			xc[(qq * n + i) * d + c] = (double)feat_row(feats, p, d, i, q0 + qq)[c] - m;
		}
	}
}

// gauss_cov is the covariance's lower triangle, s [nq][d][d]: the scatter
// summed one image at a time (images whose entry a is 0 skipped, as the
// CPU's rank-1 updates skip them), times 1/(n-1), plus 0.01 on the
// diagonal. One thread per (position, a, b <= a); the upper triangle is
// not written.
extern "C" __global__ void gauss_cov(const double *xc, int n, int d, int nq, double *s) {
	long total = (long)nq * d * d;
	double inv = 1.0 / (double)(n - 1);
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		long b = t % d, r = t / d;
		long a = r % d, qq = r / d;
		if (b > a) continue;
		const double *x = xc + qq * n * d;
		double v = 0;
		for (long i = 0; i < n; i++) {
			double va = x[i * d + a];
			if (va == 0) continue;
			v += va * x[i * d + b];
		}
		v *= inv;
		if (a == b) v += 0.01;
		s[t] = v;
	}
}

// gauss_chol is denoise.cholesky on each position's s (one block per
// position): column by column, the pivot by thread 0 (clamped to the
// smallest normal double when rounding drives it to 0 or below), then the
// column's entries below it by the block's threads.
extern "C" __global__ void gauss_chol(double *s, int d, int nq) {
	__shared__ double ljj;
	for (long qq = blockIdx.x; qq < nq; qq += gridDim.x) {
		double *m = s + qq * d * d;
		for (int j = 0; j < d; j++) {
			const double *rj = m + (long)j * d;
			if (threadIdx.x == 0) {
				double v = rj[j];
				for (int b = 0; b < j; b++) {
					v -= rj[b] * rj[b];
				}
				if (v <= 0) v = 0x1p-1022;
				ljj = __builtin_sqrt(v);
				m[(long)j * d + j] = ljj;
			}
			sync_threads();
			for (int i = j + 1 + threadIdx.x; i < d; i += blockDim.x) {
				double *ri = m + (long)i * d;
				double w = ri[j];
				for (int b = 0; b < j; b++) {
					w -= ri[b] * rj[b];
				}
				ri[j] = w / ljj;
			}
			sync_threads();
		}
	}
}

// gauss_score is denoise.gaussianGroup's last step: forward substitution
// L y = xc_i (y in scratch [nq][n][d]) and 1 + |y|, the squares summed as
// they are found. One thread per (position, image).
extern "C" __global__ void gauss_score(const double *xc, const double *s, int n, int d, int p, int q0, int nq, double *y, float *out) {
	long total = (long)nq * n;
	for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < total; t += (long)gridDim.x * blockDim.x) {
		long i = t % n, qq = t / n;
		const double *dr = xc + t * d, *m = s + qq * d * d;
		double *yy = y + t * d;
		double q = 0;
		for (int a = 0; a < d; a++) {
			const double *la = m + (long)a * d;
			double v = dr[a];
			for (int b = 0; b < a; b++) {
				v -= la[b] * yy[b];
			}
			v /= la[a];
			yy[a] = v;
			q += v * v;
		}
		out[i * p + q0 + qq] = (float)(__builtin_sqrt(q) + 1.0);
	}
}
