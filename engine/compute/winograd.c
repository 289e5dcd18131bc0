// Winograd F(4x4,3x3) and F(2x2,3x3) tile transforms (Lavin & Gray 2016)
// with AVX2/FMA, vectorised across 8 tiles of a tile row.
//
// F(4x4,3x3), 6x6 input tiles at stride 4:
//
//       | 4  0 -5  0  1  0 |         | 1  1  1  1  1  0 |
//       | 0 -4 -4  1  1  0 |   A^T = | 0  1 -1  2 -2  0 |
// B^T = | 0  4 -4 -1  1  0 |         | 0  1  1  4  4  0 |
//       | 0 -2 -1  2  1  0 |         | 0  1 -1  8 -8  1 |
//       | 0  2 -1 -2  1  0 |
//       | 0  4  0 -5  0  1 |
//
// F(2x2,3x3), 4x4 input tiles at stride 2:
//
//       | 1  0 -1  0 |
// B^T = | 0  1  1  0 |   A^T = | 1  1  1  0 |
//       | 0 -1  1  0 |         | 0  1 -1 -1 |
//       | 0  1  0 -1 |
//
// Columns are handled in "phase layout": for tiles at stride s (4 or 2), a
// row of width s*n is stored as s arrays of n floats, p[r][c] = row[s*c+r],
// so that column s*tx+j of the row is p[j%s][tx+j/s], contiguous in the
// tile index tx.

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

// wino_supported reports whether the CPU runs the AVX2/FMA code below.
int wino_supported(void) {
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

// cgo rejects -mavx2 -mfma in #cgo CFLAGS, so the ISA is selected here for
// the rest of the file.
#pragma GCC target("avx2,fma")

// lanemask returns a maskload/maskstore mask enabling the first n (0..8)
// lanes.
static inline __m256i lanemask(int n) {
	return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// bt applies B^T to six vectors: o[k] = sum_i B^T[k][i] d[i].
static inline void bt(__m256 d0, __m256 d1, __m256 d2, __m256 d3, __m256 d4, __m256 d5, __m256 o[6]) {
	const __m256 four = _mm256_set1_ps(4.0f), five = _mm256_set1_ps(5.0f), two = _mm256_set1_ps(2.0f);
	__m256 a = _mm256_fnmadd_ps(four, d2, d4);            // d4 - 4 d2
	__m256 b = _mm256_fnmadd_ps(four, d1, d3);            // d3 - 4 d1
	__m256 c = _mm256_sub_ps(d4, d2);                     // d4 - d2
	__m256 e = _mm256_mul_ps(two, _mm256_sub_ps(d3, d1)); // 2 (d3 - d1)
	o[0] = _mm256_add_ps(_mm256_fnmadd_ps(five, d2, _mm256_mul_ps(four, d0)), d4);
	o[1] = _mm256_add_ps(a, b);
	o[2] = _mm256_sub_ps(a, b);
	o[3] = _mm256_add_ps(c, e);
	o[4] = _mm256_sub_ps(c, e);
	o[5] = _mm256_add_ps(_mm256_fnmadd_ps(five, d3, _mm256_mul_ps(four, d1)), d5);
}

// at applies A^T to six vectors: o[q] = sum_k A^T[q][k] s[k].
static inline void at(__m256 s0, __m256 s1, __m256 s2, __m256 s3, __m256 s4, __m256 s5, __m256 o[4]) {
	__m256 a = _mm256_add_ps(s1, s2), b = _mm256_sub_ps(s1, s2);
	__m256 c = _mm256_add_ps(s3, s4), e = _mm256_sub_ps(s3, s4);
	o[0] = _mm256_add_ps(_mm256_add_ps(s0, a), c);
	o[1] = _mm256_fmadd_ps(_mm256_set1_ps(2.0f), e, b);
	o[2] = _mm256_fmadd_ps(_mm256_set1_ps(4.0f), c, a);
	o[3] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.0f), e, b), s5);
}

// wino_input transforms one input plane x [h][w] into B^T d B for every 6x6
// tile d. Tile (ty, tx), 0 <= ty < th, 0 <= tx < tw, covers input rows
// 4*ty-pad .. 4*ty-pad+5 and columns 4*tx-pad .. 4*tx-pad+5 (zero outside
// the plane). Element (k, l) of tile t = ty*tw+tx is stored at
// v[(6*k+l)*vs + t].
void wino_input(const float *x, int h, int w, int pad, int th, int tw, float *v, long vs) {
	const int n = ((tw + 1 + 7) / 8) * 8; // phase columns, >= tw+1, padded for vector loads
	const int rs = 4 * n;                 // floats per row in phase layout
	const int rows = 4 * th + 2;          // padded input rows the tiles cover
	float *buf = aligned_alloc(32, sizeof(float) * (size_t)(rows + 6) * rs);
	if (!buf) abort(); /* out of memory: nothing sane to return to Go */
	float *p = buf, *t = buf + (size_t)rows * rs;
	// p[i] = input row i-pad in phase layout, with column shift pad.
	memset(p, 0, sizeof(float) * (size_t)rows * rs);
	for (int i = 0; i < rows; i++) {
		int iy = i - pad;
		if (iy < 0 || iy >= h) {
			continue;
		}
		const float *row = x + (long)iy * w;
		float *pi = p + (size_t)i * rs;
		int xe = w < 4 * n - pad ? w : 4 * n - pad;
		for (int ix = 0; ix < xe; ix++) {
			int j = ix + pad;
			pi[(j & 3) * n + (j >> 2)] = row[ix];
		}
	}
	const __m256i tail = lanemask(tw % 8);
	for (int ty = 0; ty < th; ty++) {
		// Vertical pass: t[k] = sum_i B^T[k][i] p[4*ty+i], elementwise.
		const float *d = p + (size_t)(4 * ty) * rs;
		for (int j = 0; j < rs; j += 8) {
			__m256 o[6];
			bt(_mm256_load_ps(d + j), _mm256_load_ps(d + rs + j), _mm256_load_ps(d + 2 * rs + j),
			   _mm256_load_ps(d + 3 * rs + j), _mm256_load_ps(d + 4 * rs + j), _mm256_load_ps(d + 5 * rs + j), o);
			for (int k = 0; k < 6; k++) {
				_mm256_store_ps(t + k * rs + j, o[k]);
			}
		}
		// Horizontal pass on each row k of the tiles, 8 tiles at a time.
		for (int k = 0; k < 6; k++) {
			const float *q = t + k * rs;
			float *o = v + (long)(6 * k) * vs + (long)ty * tw;
			for (int c = 0; c < tw; c += 8) {
				__m256 r[6];
				bt(_mm256_load_ps(q + c), _mm256_load_ps(q + n + c), _mm256_load_ps(q + 2 * n + c),
				   _mm256_load_ps(q + 3 * n + c), _mm256_loadu_ps(q + c + 1), _mm256_loadu_ps(q + n + c + 1), r);
				if (c + 8 <= tw) {
					for (int l = 0; l < 6; l++) {
						_mm256_storeu_ps(o + l * vs + c, r[l]);
					}
				} else {
					for (int l = 0; l < 6; l++) {
						_mm256_maskstore_ps(o + l * vs + c, tail, r[l]);
					}
				}
			}
		}
	}
	free(buf);
}

// wino_output computes A^T m A for every tile of one output plane, adds bias,
// then res (when not NULL, same layout as y), applies ReLU when relu != 0
// (NaN stays NaN, as in torch) and writes the valid part of each 4x4 result
// to y [oh][ow]. Element (k, l) of tile t = ty*tw+tx is read from
// m[(6*k+l)*ms + t].
void wino_output(const float *m, long ms, int th, int tw, float bias, const float *res, int relu, float *y, int oh, int ow) {
	const int n = ((tw + 7) / 8) * 8;
	float *buf = aligned_alloc(32, sizeof(float) * (size_t)(6 * 4 + 4) * n);
	if (!buf) abort(); /* out of memory: nothing sane to return to Go */
	float *s = buf, *row = buf + 24 * n; // s[k][r][c]; row: one output row, 4*n wide
	const __m256i tail = lanemask(tw % 8);
	const __m256 vb = _mm256_set1_ps(bias), zero = _mm256_setzero_ps();
	for (int ty = 0; ty < th; ty++) {
		// Horizontal pass: s[k][r][tx] = sum_l A^T[r][l] m[k][l][tx].
		for (int k = 0; k < 6; k++) {
			const float *mk = m + (long)(6 * k) * ms + (long)ty * tw;
			float *sk = s + k * 4 * n;
			for (int c = 0; c < tw; c += 8) {
				__m256 l[6], o[4];
				if (c + 8 <= tw) {
					for (int i = 0; i < 6; i++) {
						l[i] = _mm256_loadu_ps(mk + i * ms + c);
					}
				} else {
					for (int i = 0; i < 6; i++) {
						l[i] = _mm256_maskload_ps(mk + i * ms + c, tail);
					}
				}
				at(l[0], l[1], l[2], l[3], l[4], l[5], o);
				for (int r = 0; r < 4; r++) {
					_mm256_store_ps(sk + r * n + c, o[r]);
				}
			}
		}
		// Vertical pass per phase group of 8 tiles, then interleave the
		// four phases of each output row back into columns.
		for (int q0 = 0; q0 < 4; q0++) {
			int oy = 4 * ty + q0;
			if (oy >= oh) {
				break;
			}
			for (int c = 0; c < n; c += 8) {
				__m256 ph[4];
				for (int r = 0; r < 4; r++) {
					const float *sr = s + r * n + c;
					__m256 o[4];
					at(_mm256_load_ps(sr), _mm256_load_ps(sr + 4 * n), _mm256_load_ps(sr + 8 * n),
					   _mm256_load_ps(sr + 12 * n), _mm256_load_ps(sr + 16 * n), _mm256_load_ps(sr + 20 * n), o);
					ph[r] = _mm256_add_ps(o[q0], vb);
				}
				// 4x8 transpose: ph[r][i] -> out[4*i + r].
				__m256 t0 = _mm256_unpacklo_ps(ph[0], ph[1]), t1 = _mm256_unpackhi_ps(ph[0], ph[1]);
				__m256 t2 = _mm256_unpacklo_ps(ph[2], ph[3]), t3 = _mm256_unpackhi_ps(ph[2], ph[3]);
				__m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
				__m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
				float *rc = row + 4 * c;
				_mm256_store_ps(rc, _mm256_permute2f128_ps(u0, u1, 0x20));
				_mm256_store_ps(rc + 8, _mm256_permute2f128_ps(u2, u3, 0x20));
				_mm256_store_ps(rc + 16, _mm256_permute2f128_ps(u0, u1, 0x31));
				_mm256_store_ps(rc + 24, _mm256_permute2f128_ps(u2, u3, 0x31));
			}
			// Epilogue into y.
			float *yr = y + (long)oy * ow;
			const float *rr = res ? res + (long)oy * ow : NULL;
			int ox = 0;
			for (; ox + 8 <= ow; ox += 8) {
				__m256 val = _mm256_load_ps(row + ox);
				if (rr) {
					val = _mm256_add_ps(val, _mm256_loadu_ps(rr + ox));
				}
				if (relu) {
					val = _mm256_max_ps(zero, val); // max(0, NaN) = NaN
				}
				_mm256_storeu_ps(yr + ox, val);
			}
			for (; ox < ow; ox++) {
				float val = row[ox];
				if (rr) {
					val += rr[ox];
				}
				if (relu && val < 0.0f) {
					val = 0.0f;
				}
				yr[ox] = val;
			}
		}
	}
	free(buf);
}

// bt2 applies the B^T of F(2x2,3x3) to four vectors.
static inline void bt2(__m256 d0, __m256 d1, __m256 d2, __m256 d3, __m256 o[4]) {
	o[0] = _mm256_sub_ps(d0, d2);
	o[1] = _mm256_add_ps(d1, d2);
	o[2] = _mm256_sub_ps(d2, d1);
	o[3] = _mm256_sub_ps(d1, d3);
}

// wino2_input is wino_input for F(2x2,3x3): tile (ty, tx) covers input rows
// 2*ty-pad .. 2*ty-pad+3 and columns 2*tx-pad .. 2*tx-pad+3; element (k, l)
// of tile t = ty*tw+tx is stored at v[(4*k+l)*vs + t].
void wino2_input(const float *x, int h, int w, int pad, int th, int tw, float *v, long vs) {
	const int n = ((tw + 1 + 7) / 8) * 8;
	const int rs = 2 * n;
	const int rows = 2 * th + 2;
	float *buf = aligned_alloc(32, sizeof(float) * (size_t)(rows + 4) * rs);
	if (!buf) abort(); /* out of memory: nothing sane to return to Go */
	float *p = buf, *t = buf + (size_t)rows * rs;
	memset(p, 0, sizeof(float) * (size_t)rows * rs);
	for (int i = 0; i < rows; i++) {
		int iy = i - pad;
		if (iy < 0 || iy >= h) {
			continue;
		}
		const float *row = x + (long)iy * w;
		float *pi = p + (size_t)i * rs;
		int xe = w < 2 * n - pad ? w : 2 * n - pad;
		for (int ix = 0; ix < xe; ix++) {
			int j = ix + pad;
			pi[(j & 1) * n + (j >> 1)] = row[ix];
		}
	}
	const __m256i tail = lanemask(tw % 8);
	for (int ty = 0; ty < th; ty++) {
		const float *d = p + (size_t)(2 * ty) * rs;
		for (int j = 0; j < rs; j += 8) {
			__m256 o[4];
			bt2(_mm256_load_ps(d + j), _mm256_load_ps(d + rs + j), _mm256_load_ps(d + 2 * rs + j), _mm256_load_ps(d + 3 * rs + j), o);
			for (int k = 0; k < 4; k++) {
				_mm256_store_ps(t + k * rs + j, o[k]);
			}
		}
		for (int k = 0; k < 4; k++) {
			const float *q = t + k * rs;
			float *o = v + (long)(4 * k) * vs + (long)ty * tw;
			for (int c = 0; c < tw; c += 8) {
				__m256 r[4];
				bt2(_mm256_load_ps(q + c), _mm256_load_ps(q + n + c), _mm256_loadu_ps(q + c + 1), _mm256_loadu_ps(q + n + c + 1), r);
				if (c + 8 <= tw) {
					for (int l = 0; l < 4; l++) {
						_mm256_storeu_ps(o + l * vs + c, r[l]);
					}
				} else {
					for (int l = 0; l < 4; l++) {
						_mm256_maskstore_ps(o + l * vs + c, tail, r[l]);
					}
				}
			}
		}
	}
	free(buf);
}

// wino2_output is wino_output for F(2x2,3x3): element (k, l) of tile t is
// read from m[(4*k+l)*ms + t] and each tile yields a 2x2 output block.
void wino2_output(const float *m, long ms, int th, int tw, float bias, const float *res, int relu, float *y, int oh, int ow) {
	const int n = ((tw + 7) / 8) * 8;
	float *buf = aligned_alloc(32, sizeof(float) * (size_t)(4 * 2 + 2) * n);
	if (!buf) abort(); /* out of memory: nothing sane to return to Go */
	float *s = buf, *row = buf + 8 * n; // s[k][r][c]; row: one output row, 2*n wide
	const __m256i tail = lanemask(tw % 8);
	const __m256 vb = _mm256_set1_ps(bias), zero = _mm256_setzero_ps();
	for (int ty = 0; ty < th; ty++) {
		for (int k = 0; k < 4; k++) {
			const float *mk = m + (long)(4 * k) * ms + (long)ty * tw;
			float *sk = s + k * 2 * n;
			for (int c = 0; c < tw; c += 8) {
				__m256 l[4];
				if (c + 8 <= tw) {
					for (int i = 0; i < 4; i++) {
						l[i] = _mm256_loadu_ps(mk + i * ms + c);
					}
				} else {
					for (int i = 0; i < 4; i++) {
						l[i] = _mm256_maskload_ps(mk + i * ms + c, tail);
					}
				}
				_mm256_store_ps(sk + c, _mm256_add_ps(_mm256_add_ps(l[0], l[1]), l[2]));
				_mm256_store_ps(sk + n + c, _mm256_sub_ps(_mm256_sub_ps(l[1], l[2]), l[3]));
			}
		}
		for (int q = 0; q < 2; q++) {
			int oy = 2 * ty + q;
			if (oy >= oh) {
				break;
			}
			for (int c = 0; c < n; c += 8) {
				__m256 ph[2];
				for (int r = 0; r < 2; r++) {
					const float *sr = s + r * n + c;
					__m256 s0 = _mm256_load_ps(sr), s1 = _mm256_load_ps(sr + 2 * n), s2 = _mm256_load_ps(sr + 4 * n), s3 = _mm256_load_ps(sr + 6 * n);
					__m256 o = q == 0 ? _mm256_add_ps(_mm256_add_ps(s0, s1), s2) : _mm256_sub_ps(_mm256_sub_ps(s1, s2), s3);
					ph[r] = _mm256_add_ps(o, vb);
				}
				__m256 lo = _mm256_unpacklo_ps(ph[0], ph[1]), hi = _mm256_unpackhi_ps(ph[0], ph[1]);
				_mm256_store_ps(row + 2 * c, _mm256_permute2f128_ps(lo, hi, 0x20));
				_mm256_store_ps(row + 2 * c + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
			}
			float *yr = y + (long)oy * ow;
			const float *rr = res ? res + (long)oy * ow : NULL;
			int ox = 0;
			for (; ox + 8 <= ow; ox += 8) {
				__m256 val = _mm256_load_ps(row + ox);
				if (rr) {
					val = _mm256_add_ps(val, _mm256_loadu_ps(rr + ox));
				}
				if (relu) {
					val = _mm256_max_ps(zero, val);
				}
				_mm256_storeu_ps(yr + ox, val);
			}
			for (; ox < ow; ox++) {
				float val = row[ox];
				if (rr) {
					val += rr[ox];
				}
				if (relu && val < 0.0f) {
					val = 0.0f;
				}
				yr[ox] = val;
			}
		}
	}
	free(buf);
}
