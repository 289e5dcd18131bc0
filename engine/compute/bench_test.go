package compute

import (
	"fmt"
	"math/rand"
	"testing"
)

// BenchmarkSgemm: a square 1024^3 SGEMM.
func BenchmarkSgemm(b *testing.B) {
	const n = 1024
	rng := rand.New(rand.NewSource(1))
	a, bb, c := randSlice(rng, n*n), randSlice(rng, n*n), make([]float32, n*n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Sgemm(false, false, n, n, n, 1, a, n, bb, n, 0, c, n)
	}
	b.ReportMetric(2*n*n*n*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

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

// wrnBlock is one torchvision Bottleneck (V1.5) of WideResNet-50-2 with
// BatchNorm folded: conv1 1x1, conv2 3x3 (strided), conv3 1x1 with the
// residual, and a 1x1 downsample on the first block of a stage.
type wrnBlock struct {
	c1, c2, c3, down *Conv
}

func randConv(rng *rand.Rand, in, out, k, s int, relu bool) *Conv {
	w := randSlice(rng, out*in*k*k)
	scale := float32(1 / float64(in*k*k))
	for i := range w {
		w[i] *= scale
	}
	return &Conv{In: in, Out: out, Kernel: k, Stride: s, Pad: k / 2, ReLU: relu, Weight: w, Bias: randSlice(rng, out)}
}

// BenchmarkWRN50x2Layer3 runs WideResNet-50-2 from the 224x224 input to the
// end of layer3 (stem, maxpool, 3+4+6 bottlenecks; 18.4 GFLOP per image)
// with random weights, and reports seconds per image.
func BenchmarkWRN50x2Layer3(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	stem := randConv(rng, 3, 64, 7, 2, true)
	var blocks []wrnBlock
	in := 64
	for s, nb := range []int{3, 4, 6} {
		width, out := 128<<s, 256<<s
		for i := 0; i < nb; i++ {
			stride := 1
			if i == 0 && s > 0 {
				stride = 2
			}
			blk := wrnBlock{randConv(rng, in, width, 1, 1, true), randConv(rng, width, width, 3, stride, true), randConv(rng, width, out, 1, 1, true), nil}
			if i == 0 {
				blk.down = randConv(rng, in, out, 1, stride, false)
			}
			blocks = append(blocks, blk)
			in = out
		}
	}
	for _, n := range []int{1, 8} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			var ws Workspace
			const maxAct = 256 * 56 * 56 // largest activation per image after the stem
			x := randSlice(rng, n*3*224*224)
			s0 := make([]float32, n*64*112*112)
			bufs := [4][]float32{}
			for i := range bufs {
				bufs[i] = make([]float32, n*maxAct)
			}
			forward := func() {
				stem.Forward(s0, x, nil, n, 224, 224, &ws)
				cur := bufs[0][:n*64*56*56]
				MaxPool2D(cur, s0, n*64, 112, 112, 3, 2, 1)
				h := 56
				for _, blk := range blocks {
					oh := (h-1)/blk.c2.Stride + 1
					t1 := bufs[1][:n*blk.c1.Out*h*h]
					blk.c1.Forward(t1, cur, nil, n, h, h, &ws)
					t2 := bufs[2][:n*blk.c2.Out*oh*oh]
					blk.c2.Forward(t2, t1, nil, n, h, h, &ws)
					res := cur
					if blk.down != nil {
						res = bufs[3][:n*blk.down.Out*oh*oh]
						blk.down.Forward(res, cur, nil, n, h, h, &ws)
					}
					out := bufs[1][:n*blk.c3.Out*oh*oh]
					blk.c3.Forward(out, t2, res, n, oh, oh, &ws)
					bufs[0], bufs[1] = bufs[1], bufs[0]
					cur = out
					h = oh
				}
			}
			forward()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				forward()
			}
			sec := b.Elapsed().Seconds() / float64(b.N*n)
			b.ReportMetric(sec, "s/image")
			b.ReportMetric(18.4/sec, "GFLOP/s")
		})
	}
}
