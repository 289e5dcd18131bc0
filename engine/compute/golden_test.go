package compute

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// genInput mirrors gen() of testdata/gen_golden.py.
func genInput(n, seed int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32((i*7919+seed*104729)%2001-1000) / 1000
	}
	return s
}

func readGolden(t *testing.T, name string, n int) []float64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".f32"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 4*n {
		t.Fatalf("%s: %d bytes, want %d", name, len(b), 4*n)
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
	}
	return out
}

// TestGoldenTorch compares with outputs of torch 1.13 written by
// testdata/gen_golden.py. Pooling must match exactly (tolerance 0; measured
// 0). Bilinear resize: 1e-6 relative (measured 9e-8 and 1.8e-7; torch's
// kernel may contract to FMA). conv+BN+ReLU (torch runs conv then BN, we
// fold): 1e-6 for im2col and F(2x2) (measured 2.9e-7, 2.2e-7), 2e-6 for
// F(4x4) (measured 8.1e-7).
func TestGoldenTorch(t *testing.T) {
	for _, c := range []struct {
		name                       string
		seed, planes, h, w, oh, ow int
	}{{"interp_14x14_28x28", 1, 2, 14, 14, 28, 28}, {"interp_5x7_9x4", 2, 3, 5, 7, 9, 4}} {
		got := make([]float32, c.planes*c.oh*c.ow)
		ResizeBilinear(got, genInput(c.planes*c.h*c.w, c.seed), c.planes, c.h, c.w, c.oh, c.ow)
		checkRel(t, c.name, got, readGolden(t, c.name, len(got)), 1e-6)
	}
	for _, c := range [][2]int{{4608, 1024}, {9216, 1024}, {2048, 1024}, {144, 40}, {40, 200}} {
		l, outL := c[0], c[1]
		got := make([]float32, 2*outL)
		AdaptiveAvgPool1D(got, genInput(2*l, 3), 2, l, outL)
		name := fmt.Sprintf("aap1d_%d_%d", l, outL)
		checkRel(t, name, got, readGolden(t, name, len(got)), 0)
	}
	{
		oh, ow := MaxPoolOutputSize(13, 11, 3, 2, 1)
		got := make([]float32, 6*oh*ow)
		MaxPool2D(got, genInput(6*13*11, 4), 6, 13, 11, 3, 2, 1)
		checkRel(t, "maxpool_13x11", got, readGolden(t, "maxpool_13x11", len(got)), 0)
	}
	{
		gamma := genInput(4, 7)
		for i := range gamma {
			gamma[i] += 1.5
		}
		variance := genInput(4, 10)
		for i := range variance {
			variance[i] = float32(math.Abs(float64(variance[i]))) + 0.1
		}
		w, b := FoldBatchNorm(genInput(4*5*9, 6), 4, gamma, genInput(4, 8), genInput(4, 9), variance, 1e-5)
		c := &Conv{In: 5, Out: 4, Kernel: 3, Stride: 1, Pad: 1, Weight: w, Bias: b, ReLU: true}
		want := readGolden(t, "conv_bn_relu", 2*4*9*8)
		defer func(p convPath, v *winoVariant) { forcePath, forceWino = p, v }(forcePath, forceWino)
		for _, cfg := range []struct {
			name string
			p    convPath
			v    *winoVariant
			tol  float64
		}{{"im2col", pathIm2col, nil, 1e-6}, {"winograd F4", pathWinograd, winoF4, 2e-6}, {"winograd F2", pathWinograd, winoF2, 1e-6}} {
			forcePath, forceWino = cfg.p, cfg.v
			got := make([]float32, 2*4*9*8)
			c.Forward(got, genInput(2*5*9*8, 5), nil, 2, 9, 8, nil)
			checkRel(t, "conv_bn_relu "+cfg.name, got, want, cfg.tol)
		}
	}
}
