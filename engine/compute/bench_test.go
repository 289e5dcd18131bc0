package compute

import (
	"fmt"
	"math/rand"
	"testing"
)

// wrnConvs are the convolution shapes of WideResNet-50-2 at 224x224.
var wrnConvs = []struct {
	name                string
	in, out, k, s, p, h int
}{
	{"stem7x7s2_3to64_224", 3, 64, 7, 2, 3, 224},
	{"3x3_128_56", 128, 128, 3, 1, 1, 56},
	{"3x3s2_256_56", 256, 256, 3, 2, 1, 56},
	{"3x3_256_28", 256, 256, 3, 1, 1, 28},
	{"3x3s2_512_28", 512, 512, 3, 2, 1, 28},
	{"3x3_512_14", 512, 512, 3, 1, 1, 14},
	{"1x1_1024to512_14", 1024, 512, 1, 1, 0, 14},
	{"1x1s2_512to1024_28", 512, 1024, 1, 2, 0, 28},
}

func benchConv(b *testing.B, path convPath, batched bool, wv *winoVariant) {
	defer func(p convPath, bt bool, v *winoVariant) { forcePath, batchIm2col, forceWino = p, bt, v }(forcePath, batchIm2col, forceWino)
	for _, sh := range wrnConvs {
		for _, n := range []int{1, 8} {
			rng := rand.New(rand.NewSource(1))
			c := &Conv{In: sh.in, Out: sh.out, Kernel: sh.k, Stride: sh.s, Pad: sh.p, ReLU: true,
				Weight: randSlice(rng, sh.out*sh.in*sh.k*sh.k), Bias: randSlice(rng, sh.out)}
			forcePath, batchIm2col, forceWino = path, batched, wv
			if path != pathAuto && c.path() != path {
				continue
			}
			oh, ow := c.OutputSize(sh.h, sh.h)
			x := randSlice(rng, n*sh.in*sh.h*sh.h)
			dst := make([]float32, n*sh.out*oh*ow)
			res := randSlice(rng, len(dst))
			flop := 2 * float64(n*sh.out*oh*ow) * float64(sh.in*sh.k*sh.k)
			b.Run(fmt.Sprintf("%s/n=%d", sh.name, n), func(b *testing.B) {
				var ws Workspace
				c.Forward(dst, x, res, n, sh.h, sh.h, &ws) // warm up the workspace and caches
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					c.Forward(dst, x, res, n, sh.h, sh.h, &ws)
				}
				b.ReportMetric(flop*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkConvAuto runs each WRN-50-2 shape with the path Forward picks.
// GFLOP/s counts direct-convolution FLOPs (2*N*Out*OH*OW*In*K*K) for every
// path, so Winograd reports an effective rate. Each iteration reuses the
// same weights, so they are warm in cache, unlike in a network.
func BenchmarkConvAuto(b *testing.B) { benchConv(b, pathAuto, true, nil) }

// BenchmarkConvIm2col forces im2col+GEMM, images batched into one GEMM.
func BenchmarkConvIm2col(b *testing.B) { benchConv(b, pathIm2col, true, nil) }

// BenchmarkConvIm2colPerImage forces im2col+GEMM, one GEMM per image.
func BenchmarkConvIm2colPerImage(b *testing.B) { benchConv(b, pathIm2col, false, nil) }

// BenchmarkConvWinogradF4 forces Winograd F(4x4,3x3) on the 3x3 stride-1
// shapes.
func BenchmarkConvWinogradF4(b *testing.B) { benchConv(b, pathWinograd, true, winoF4) }

// BenchmarkConvWinogradF2 forces Winograd F(2x2,3x3) on the 3x3 stride-1
// shapes.
func BenchmarkConvWinogradF2(b *testing.B) { benchConv(b, pathWinograd, true, winoF2) }
