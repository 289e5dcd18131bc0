package compute

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

// sgemmShapes are the GEMMs of WideResNet-50-2's 1x1 convolutions at
// 224x224 and batch 1 (M = Out, N = H*W, K = In), and a square one.
var sgemmShapes = []struct{ m, n, k int }{
	{1024, 1024, 1024},
	{128, 3136, 256},
	{256, 3136, 128},
	{256, 784, 512},
	{512, 784, 256},
	{512, 196, 1024},
	{1024, 196, 512},
}

func benchSgemm(b *testing.B, kern gemmKernel) {
	defer func(k gemmKernel) { useKernel = k }(useKernel)
	useKernel = kern
	for _, sh := range sgemmShapes {
		m, n, k := sh.m, sh.n, sh.k
		b.Run(fmt.Sprintf("%dx%dx%d", m, n, k), func(b *testing.B) {
			rng := rand.New(rand.NewSource(1))
			a, bb, c := randSlice(rng, m*k), randSlice(rng, k*n), make([]float32, m*n)
			Sgemm(false, false, m, n, k, 1, a, k, bb, n, 0, c, n)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				Sgemm(false, false, m, n, k, 1, a, k, bb, n, 0, c, n)
			}
			b.ReportMetric(2*float64(m)*float64(n)*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkSgemmOurs runs Sgemm with this package's kernel (the best the
// CPU supports) on the square and WRN-50-2 1x1 shapes.
func BenchmarkSgemmOurs(b *testing.B) {
	if bestKernel == kernelOpenBLAS {
		b.Skip("no AVX2/AVX-512 kernel on this CPU")
	}
	benchSgemm(b, bestKernel)
}

// BenchmarkSgemmOpenBLAS runs Sgemm through OpenBLAS on the same shapes.
func BenchmarkSgemmOpenBLAS(b *testing.B) { benchSgemm(b, kernelOpenBLAS) }

// refGemm returns alpha*op(A)*op(B) + beta*C in float64 (C m x n with
// leading dimension ldc; beta 0 ignores C).
func refGemm(ta, tb bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) []float64 {
	want := make([]float64, len(c))
	for i := range c {
		want[i] = float64(c[i])
	}
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				ai, bi := i*lda+p, p*ldb+j
				if ta {
					ai = p*lda + i
				}
				if tb {
					bi = j*ldb + p
				}
				av, bv := a[ai], b[bi]
				s += float64(av) * float64(bv)
			}
			cv := 0.0
			if beta != 0 {
				cv = float64(beta) * float64(c[i*ldc+j])
			}
			want[i*ldc+j] = float64(alpha)*s + cv
		}
	}
	return want
}

// ourKernels are the kernel sets of this package the CPU runs.
func ourKernels() []gemmKernel {
	var ks []gemmKernel
	for _, k := range []gemmKernel{kernelAVX512, kernelAVX2} {
		if k <= bestKernel {
			ks = append(ks, k)
		}
	}
	return ks
}

// TestSgemmKernels checks Sgemm with each of this package's kernel sets
// (and OpenBLAS) against a float64 reference on random sizes m, n, k in
// 1..67 and on WRN-50-2 shapes, with every transpose combination, padded
// leading dimensions and several alpha/beta (beta 0 must ignore NaNs in C),
// one thread and two, and small blocking so that the K, M and N block
// loops, the fused epilogue on the last K block and every edge are
// exercised. Tolerance 1e-6 relative (max abs error / max abs reference).
func TestSgemmKernels(t *testing.T) {
	defer func(k gemmKernel, th int) { useKernel = k; SetThreads(th); setBlocking(256, 256, 2048) }(useKernel, Threads())
	type shape struct{ m, n, k int }
	rng := rand.New(rand.NewSource(5))
	var shapes []shape
	for i := 0; i < 60; i++ {
		shapes = append(shapes, shape{1 + rng.Intn(67), 1 + rng.Intn(67), 1 + rng.Intn(67)})
	}
	shapes = append(shapes, shape{1, 1, 1}, shape{67, 67, 67}, shape{14, 32, 1}, shape{15, 33, 300}, shape{28, 64, 256})
	big := []shape{{256, 196, 128}, {130, 250, 300}}
	ab := [][2]float32{{1, 0}, {0.75, -0.5}, {1, 1}, {-2, 0}}
	for _, kern := range append(ourKernels(), kernelOpenBLAS) {
		useKernel = kern
		for bi, blk := range [][3]int{{256, 256, 2048}, {16, 28, 64}} {
			setBlocking(blk[0], blk[1], blk[2])
			for si, sh := range append(shapes, big...) {
				m, n, k := sh.m, sh.n, sh.k
				for tr := 0; tr < 4; tr++ {
					ta, tb := tr&1 != 0, tr&2 != 0
					ar, ac, br, bc := storedShapes(m, n, k, ta, tb)
					lda, ldb, ldc := ac+rng.Intn(3), bc+rng.Intn(3), n+rng.Intn(3)
					a, b := randSlice(rng, ar*lda), randSlice(rng, br*ldb)
					c := randSlice(rng, m*ldc)
					alpha, beta := ab[(si+tr)%len(ab)][0], ab[(si+tr)%len(ab)][1]
					if beta == 0 {
						for i := range c {
							c[i] = float32(math.NaN())
						}
					}
					want := refGemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
					SetThreads(1 + (si+tr)%2)
					Sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
					name := fmt.Sprintf("%v blocking %d %dx%dx%d ta=%v tb=%v alpha=%v beta=%v", kern, bi, m, n, k, ta, tb, alpha, beta)
					if beta == 0 { // padding columns keep their NaNs
						for i := 0; i < m; i++ {
							for j := n; j < ldc; j++ {
								c[i*ldc+j], want[i*ldc+j] = 0, 0
							}
						}
					}
					checkRel(t, name, c, want, 1e-6)
				}
			}
		}
	}
}

// TestSgemmPacked checks the packed-A path with the fused epilogue (bias,
// residual, ReLU) that the convolutions use, split by rows and by columns.
// Tolerance 1e-6 relative.
func TestSgemmPacked(t *testing.T) {
	defer func(th int) { SetThreads(th); setBlocking(256, 256, 2048) }(Threads())
	rng := rand.New(rand.NewSource(6))
	type shape struct{ m, n, k int }
	shapes := []shape{{1, 1, 1}, {5, 7, 3}, {14, 32, 9}, {29, 33, 67}, {64, 300, 100}, {67, 1, 5}, {256, 196, 128}}
	for _, kern := range ourKernels() {
		for bi, blk := range [][3]int{{256, 256, 2048}, {16, 28, 64}} {
			setBlocking(blk[0], blk[1], blk[2])
			for si, sh := range shapes {
				m, n, k := sh.m, sh.n, sh.k
				for v := 0; v < 4; v++ {
					useBias, useRes, relu := v&1 != 0, v&2 != 0, (v+si)%2 == 0
					lda, ldb, ldc := k+1, n+2, n+1
					a, b := randSlice(rng, m*lda), randSlice(rng, k*ldb)
					bias, res := randSlice(rng, m), randSlice(rng, m*ldc)
					c := make([]float32, m*ldc)
					want := refGemm(false, false, m, n, k, 1, a, lda, b, ldb, 0, c, ldc)
					for i := 0; i < m; i++ {
						for j := 0; j < n; j++ {
							w := want[i*ldc+j]
							if useBias {
								w += float64(bias[i])
							}
							if useRes {
								w += float64(res[i*ldc+j])
							}
							if relu {
								w = math.Max(w, 0)
							}
							want[i*ldc+j] = w
						}
					}
					pa := packA(kern, m, k, a, lda)
					bo, ro := -1, -1
					if useBias {
						bo = 0
					}
					if useRes {
						ro = 0
					}
					for _, parts := range []int{1, 2, 3} {
						SetThreads(parts)
						for i := range c {
							c[i] = 0
						}
						var g gemmBatch
						g.addPackedSplit(kern, parts, m, n, k, 0, 0, ldb, 0, ldc, bo, ro, ldc)
						g.runPacked(kern, pa, b, c, bias, res, relu)
						checkRel(t, fmt.Sprintf("%v blocking %d %dx%dx%d bias=%v res=%v relu=%v parts=%d", kern, bi, m, n, k, useBias, useRes, relu, parts), c, want, 1e-6)
					}
				}
			}
		}
	}
}

// TestKernelsEverywhere reruns the GEMM-based tests of the package (Sgemm,
// every convolution path, the Winograd checks and the torch goldens, with
// their tolerances) with each GEMM implementation forced: OpenBLAS and each
// of this package's kernel sets the CPU runs.
func TestKernelsEverywhere(t *testing.T) {
	defer func(k gemmKernel) { useKernel = k }(useKernel)
	for _, kern := range append([]gemmKernel{kernelOpenBLAS}, ourKernels()...) {
		useKernel = kern
		t.Run(kern.String(), func(t *testing.T) {
			t.Run("Sgemm", TestSgemm)
			t.Run("ConvPaths", TestConvPaths)
			t.Run("ConvNilWorkspace", TestConvNilWorkspace)
			t.Run("WinogradWide", TestWinogradWide)
			t.Run("WinogradChain", TestWinogradChain)
			t.Run("GoldenTorch", TestGoldenTorch)
		})
	}
}

// TestSgemmShapeFree checks ShapeFreeSgemm's promise for each of our
// kernel sets: rows gathered from a larger product, multiplied as a small
// product with the operands swapped (as engine/knn's pruned search does),
// give every element bit for bit, for inner dimensions across block
// boundaries and edge tiles.
func TestSgemmShapeFree(t *testing.T) {
	defer func(k gemmKernel) { useKernel = k }(useKernel)
	r := rand.New(rand.NewSource(31))
	for _, kern := range ourKernels() {
		useKernel = kern
		if !ShapeFreeSgemm() {
			t.Fatalf("%v: ShapeFreeSgemm false", kern)
		}
		for _, k := range []int{1, 77, 256, 300, 1024} {
			m, n := 45, 700
			a, b := randSlice(r, m*k), randSlice(r, n*k)
			full := make([]float32, m*n)
			Sgemm(false, true, m, n, k, -2, a, k, b, k, 0, full, n)
			rows := []int{3, 17, 18, 250, 511, 699}
			g := make([]float32, len(rows)*k)
			for i, j := range rows {
				copy(g[i*k:(i+1)*k], b[j*k:(j+1)*k])
			}
			part := make([]float32, len(rows)*m)
			SgemmSerial(false, true, len(rows), m, k, -2, g, k, a, k, 0, part, m)
			for i, j := range rows {
				for q := range m {
					if math.Float32bits(part[i*m+q]) != math.Float32bits(full[q*n+j]) {
						t.Fatalf("%v k=%d: element (%d, %d) %v gathered, %v in the full product", kern, k, q, j, part[i*m+q], full[q*n+j])
					}
				}
			}
		}
	}
	useKernel = kernelOpenBLAS
	if ShapeFreeSgemm() {
		t.Error("OpenBLAS reported shape-free")
	}
}
