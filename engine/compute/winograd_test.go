package compute

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

// heConv returns a 3x3 stride-1 pad-1 conv with He-initialised weights
// (std sqrt(2/(9*in))) and small biases, like a trained layer with BN
// folded in.
func heConv(rng *rand.Rand, in, out int, relu bool) *Conv {
	c := &Conv{In: in, Out: out, Kernel: 3, Stride: 1, Pad: 1, ReLU: relu}
	std := math.Sqrt(2 / float64(9*in))
	c.Weight = make([]float32, out*in*9)
	for i := range c.Weight {
		c.Weight[i] = float32(rng.NormFloat64() * std)
	}
	c.Bias = make([]float32, out)
	for i := range c.Bias {
		c.Bias[i] = float32(rng.NormFloat64() * 0.1)
	}
	return c
}

// TestWinogradWide checks single layers with the channel counts of
// WRN-50-2 (In up to 512), where Winograd's error is largest, with both
// variants. Tolerance 2e-5 relative; measured (F4) ~3e-6 (In=128) to
// ~6e-6 (In=256), F2 below 1e-6.
func TestWinogradWide(t *testing.T) {
	if !winoOK {
		t.Skip("no AVX2/FMA")
	}
	defer func(p convPath, v *winoVariant) { forcePath, forceWino = p, v }(forcePath, forceWino)
	forcePath = pathWinograd
	rng := rand.New(rand.NewSource(7))
	for _, sh := range [][3]int{{128, 16, 15}, {256, 16, 14}, {512, 8, 14}} {
		in, out, hw := sh[0], sh[1], sh[2]
		c := heConv(rng, in, out, false)
		x := make([]float32, in*hw*hw)
		for i := range x {
			x[i] = float32(math.Abs(rng.NormFloat64())) // post-ReLU-like input
		}
		want := refConv(c, x, nil, 1, hw, hw)
		for _, v := range []*winoVariant{winoF4, winoF2} {
			forceWino = v
			got := make([]float32, out*hw*hw)
			c.Forward(got, x, nil, 1, hw, hw, nil)
			checkRel(t, fmt.Sprintf("winograd F%d In=%d", v.m, in), got, want, 2e-5)
		}
	}
}

// TestWinogradChain runs 8 residual blocks of two 3x3 convolutions (16
// convolutions, 64 channels, 14x14, batch 2) with every path and compares
// the final activations with float64 computed block by block. Tolerance
// 1e-4 relative (the engine's end-to-end budget); measured 6.5e-7 for
// im2col and 1.8e-6 for Winograd F(4x4,3x3).
func TestWinogradChain(t *testing.T) {
	if testing.Short() {
		t.Skip("slow float64 reference")
	}
	defer func(p convPath, v *winoVariant) { forcePath, forceWino = p, v }(forcePath, forceWino)
	forceWino = winoF4
	const ch, hw, n, blocks = 64, 14, 2, 8
	rng := rand.New(rand.NewSource(8))
	convs := make([]*Conv, 2*blocks)
	for i := range convs {
		convs[i] = heConv(rng, ch, ch, true)
	}
	x0 := make([]float32, n*ch*hw*hw)
	for i := range x0 {
		x0[i] = float32(math.Abs(rng.NormFloat64()))
	}
	// float64 reference, evaluated with float64 activations throughout.
	ref := make([]float64, len(x0))
	for i, v := range x0 {
		ref[i] = float64(v)
	}
	for b := 0; b < blocks; b++ {
		mid := refConv64(convs[2*b], ref, nil, n, hw)
		ref = refConv64(convs[2*b+1], mid, ref, n, hw)
	}
	for _, p := range []convPath{pathIm2col, pathWinograd} {
		forcePath = p // Winograd: F(4x4) at these sizes (2*16 tiles per GEMM would pick F2; force F4)
		var ws Workspace
		x := append([]float32(nil), x0...)
		mid := make([]float32, len(x))
		y := make([]float32, len(x))
		for b := 0; b < blocks; b++ {
			convs[2*b].Forward(mid, x, nil, n, hw, hw, &ws)
			convs[2*b+1].Forward(y, mid, x, n, hw, hw, &ws)
			x, y = y, x
		}
		checkRel(t, map[convPath]string{pathIm2col: "chain im2col", pathWinograd: "chain winograd"}[p], x, ref, 1e-4)
	}
}

// refConv64 is refConv on float64 activations for 3x3 stride-1 pad-1
// convolutions of square hw x hw images.
func refConv64(c *Conv, x, residual []float64, n, hw int) []float64 {
	out := make([]float64, n*c.Out*hw*hw)
	for img := 0; img < n; img++ {
		for o := 0; o < c.Out; o++ {
			acc := out[(img*c.Out+o)*hw*hw : (img*c.Out+o+1)*hw*hw]
			for i := range acc {
				acc[i] = float64(c.Bias[o])
			}
			for ci := 0; ci < c.In; ci++ {
				plane := x[(img*c.In+ci)*hw*hw : (img*c.In+ci+1)*hw*hw]
				for ky := 0; ky < 3; ky++ {
					for kx := 0; kx < 3; kx++ {
						wv := float64(c.Weight[((o*c.In+ci)*3+ky)*3+kx])
						for oy := 0; oy < hw; oy++ {
							iy := oy - 1 + ky
							if iy < 0 || iy >= hw {
								continue
							}
							for ox := max(0, 1-kx); ox < min(hw, hw+1-kx); ox++ {
								acc[oy*hw+ox] += wv * plane[iy*hw+ox-1+kx]
							}
						}
					}
				}
			}
			for i := range acc {
				if residual != nil {
					acc[i] += residual[(img*c.Out+o)*hw*hw+i]
				}
				if c.ReLU {
					acc[i] = math.Max(acc[i], 0)
				}
			}
		}
	}
	return out
}
