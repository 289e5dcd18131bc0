// The blocked SGEMM driver and packing routines, instantiated by sgemm.c
// once per instruction set. Before including, sgemm.c defines SG_T (the
// function target attribute), SG(name) (prefixes a name), SG_MR and SG_NR
// (the micro-tile) and SG(kernel), the micro-kernel:
//
//   kernel(kc, a, b, c, ldc, mr, nr, alpha, beta, bias, res, ldr, relu)
//
// computes the SG_MR x SG_NR product of the packed panels a (kc x SG_MR,
// element (i, p) at a[p*SG_MR+i]) and b (kc x SG_NR, (p, j) at b[p*SG_NR+j])
// and stores its top-left mr x nr corner into c as
// act(alpha*acc + beta*c + bias[i] + res[i*ldr+j]) (beta 0: c is not read;
// bias, res NULL: not added; relu: act = max(., 0)).

// pack_b packs the kc x nc block of B with element (p, j) at b[p*rsb+j*csb]
// into panels of SG_NR columns (the last zero-padded), panel after panel,
// each kc x SG_NR row by row.
SG_T static void SG(pack_b)(int kc, int nc, const float *b, long rsb, long csb, float *dst) {
	for (int j0 = 0; j0 < nc; j0 += SG_NR, dst += (long)kc * SG_NR) {
		int nr = nc - j0 < SG_NR ? nc - j0 : SG_NR;
		if (csb == 1 && nr == SG_NR) {
			const float *s = b + j0;
			for (int p = 0; p < kc; p++) {
				memcpy(dst + (long)p * SG_NR, s + (long)p * rsb, sizeof(float) * SG_NR);
			}
		} else if (csb == 1) {
			const float *s = b + j0;
			for (int p = 0; p < kc; p++) {
				float *d = dst + (long)p * SG_NR;
				memcpy(d, s + (long)p * rsb, sizeof(float) * nr);
				memset(d + nr, 0, sizeof(float) * (SG_NR - nr));
			}
		} else {
			for (int j = 0; j < SG_NR; j++) {
				if (j < nr) {
					const float *s = b + (long)(j0 + j) * csb;
					for (int p = 0; p < kc; p++) {
						dst[(long)p * SG_NR + j] = s[(long)p * rsb];
					}
				} else {
					for (int p = 0; p < kc; p++) {
						dst[(long)p * SG_NR + j] = 0;
					}
				}
			}
		}
	}
}

// pack_a packs the mc x kc block of A with element (i, p) at a[i*rsa+p*csa]
// into panels of SG_MR rows (the last zero-padded), panel q at
// dst + q*pstride, each kc x SG_MR with element (i, p) at p*SG_MR+i.
SG_T static void SG(pack_a)(int mc, int kc, const float *a, long rsa, long csa, float *dst, long pstride) {
	for (int i0 = 0; i0 < mc; i0 += SG_MR, dst += pstride) {
		int mr = mc - i0 < SG_MR ? mc - i0 : SG_MR;
		if (csa == 1) {
			for (int i = 0; i < SG_MR; i++) {
				if (i < mr) {
					const float *s = a + (long)(i0 + i) * rsa;
					for (int p = 0; p < kc; p++) {
						dst[(long)p * SG_MR + i] = s[p];
					}
				} else {
					for (int p = 0; p < kc; p++) {
						dst[(long)p * SG_MR + i] = 0;
					}
				}
			}
		} else {
			for (int p = 0; p < kc; p++) {
				const float *s = a + i0 * rsa + (long)p * csa;
				float *d = dst + (long)p * SG_MR;
				for (int i = 0; i < SG_MR; i++) {
					d[i] = i < mr ? s[i * rsa] : 0;
				}
			}
		}
	}
}

// gemm runs one job single-threaded (see sg_job), BLIS style: for each
// block of SG_NC columns and SG_KC inner indices, B is packed (into L3/L2);
// for each block of MC rows, A is packed (unless already packed; into L2);
// the micro-kernel then sweeps the SG_MR x SG_NR tiles, each B panel staying
// in L1 across the rows of the block. The epilogue (bias, res, ReLU) is
// applied with the last block of inner indices.
SG_T static void SG(gemm)(const sg_job *j, const float *A, int apacked, const float *B, float *C,
                           const float *bias, const float *res, float alpha, float beta, int relu,
                           float *bufa, float *bufb) {
	const int m = j->m, n = j->n, k = j->k;
	const long rsa = j->ta ? 1 : j->lda, csa = j->ta ? j->lda : 1;
	const long rsb = j->tb ? 1 : j->ldb, csb = j->tb ? j->ldb : 1;
	const long ldc = j->ldc, ldr = j->ldr;
	const float *a = A + j->a, *b = B + j->b;
	float *c = C + j->c;
	const float *bi = j->bias >= 0 ? bias + j->bias : NULL;
	const float *re = j->res >= 0 ? res + j->res : NULL;
	const int kcmax = sg_kc, mcmax = sg_mc / SG_MR * SG_MR, ncmax = sg_nc;
	for (int jc = 0; jc < n; jc += ncmax) {
		const int nc = n - jc < ncmax ? n - jc : ncmax;
		for (int pc = 0; pc < k; pc += kcmax) {
			const int kc = k - pc < kcmax ? k - pc : kcmax;
			const int last = pc + kc >= k;
			const float bt = pc == 0 ? beta : 1.0f;
			SG(pack_b)(kc, nc, b + pc * rsb + jc * csb, rsb, csb, bufb);
			for (int ic = 0; ic < m; ic += mcmax) {
				const int mc = m - ic < mcmax ? m - ic : mcmax;
				const float *ap;
				long ps;
				if (apacked) {
					ps = (long)k * SG_MR;
					ap = a + (long)(ic / SG_MR) * ps + (long)pc * SG_MR;
				} else {
					ps = (long)kc * SG_MR;
					SG(pack_a)(mc, kc, a + ic * rsa + pc * csa, rsa, csa, bufa, ps);
					ap = bufa;
				}
				for (int jr = 0; jr < nc; jr += SG_NR) {
					const int nr = nc - jr < SG_NR ? nc - jr : SG_NR;
					const float *bp = bufb + (long)(jr / SG_NR) * kc * SG_NR;
					for (int ir = 0; ir < mc; ir += SG_MR) {
						const int mr = mc - ir < SG_MR ? mc - ir : SG_MR;
						const long row = ic + ir;
						SG(kernel)(kc, ap + (long)(ir / SG_MR) * ps, bp, c + row * ldc + jc + jr, ldc, mr, nr, alpha, bt,
						           last && bi ? bi + row : NULL, last && re ? re + row * ldr + jc + jr : NULL, ldr,
						           last && relu);
					}
				}
			}
		}
	}
}

// run runs jobs[0..count) one after another, with this thread's packing
// buffers.
SG_T static void SG(run)(const sg_job *jobs, int count, const float *A, int apacked, const float *B, float *C,
                          const float *bias, const float *res, float alpha, float beta, int relu) {
	const long kc = sg_kc, mc = sg_mc / SG_MR * SG_MR, nc = (sg_nc + SG_NR - 1) / SG_NR * SG_NR;
	const long boff = ((long)kc * mc + 15) / 16 * 16; /* B's panel starts 64-byte aligned */
	float *buf = sg_buffer(boff + (long)kc * nc);
	for (int i = 0; i < count; i++) {
		SG(gemm)(&jobs[i], A, apacked, B, C, bias, res, alpha, beta, relu, buf, buf + boff);
	}
}
