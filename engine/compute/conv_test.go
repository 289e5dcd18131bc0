package compute

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

// refConv is a direct float64 convolution with bias, residual and ReLU.
func refConv(c *Conv, x, residual []float32, n, h, w int) []float64 {
	oh, ow := c.OutputSize(h, w)
	k := c.Kernel
	out := make([]float64, n*c.Out*oh*ow)
	for img := 0; img < n; img++ {
		for o := 0; o < c.Out; o++ {
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					s := float64(c.Bias[o])
					for ci := 0; ci < c.In; ci++ {
						for ky := 0; ky < k; ky++ {
							iy := oy*c.Stride - c.Pad + ky
							if iy < 0 || iy >= h {
								continue
							}
							for kx := 0; kx < k; kx++ {
								ix := ox*c.Stride - c.Pad + kx
								if ix < 0 || ix >= w {
									continue
								}
								s += float64(c.Weight[((o*c.In+ci)*k+ky)*k+kx]) * float64(x[((img*c.In+ci)*h+iy)*w+ix])
							}
						}
					}
					idx := ((img*c.Out+o)*oh+oy)*ow + ox
					if residual != nil {
						s += float64(residual[idx])
					}
					if c.ReLU {
						s = math.Max(s, 0)
					}
					out[idx] = s
				}
			}
		}
	}
	return out
}

type convCase struct {
	in, out, k, s, p, n, h, w int
	res, relu                 bool
}

var convCases = []convCase{
	{3, 5, 7, 2, 3, 1, 13, 11, false, true},
	{3, 5, 7, 2, 3, 3, 13, 11, true, true},
	{4, 6, 3, 1, 1, 1, 13, 11, true, true},
	{4, 6, 3, 1, 1, 3, 13, 11, false, false},
	{5, 7, 3, 1, 0, 3, 13, 11, true, false},
	{17, 9, 3, 1, 1, 3, 9, 9, true, true},
	{6, 4, 3, 2, 1, 1, 13, 11, false, true},
	{6, 4, 3, 2, 1, 3, 13, 11, true, true},
	{8, 5, 1, 1, 0, 1, 13, 11, true, true},
	{8, 5, 1, 1, 0, 3, 13, 11, false, false},
	{8, 5, 1, 2, 0, 3, 13, 11, false, true},
	{5, 3, 1, 1, 1, 2, 5, 4, true, true},
	{2, 3, 3, 1, 1, 2, 1, 1, false, false},
	{2, 3, 3, 1, 1, 1, 4, 5, false, false},
	{33, 20, 3, 1, 1, 2, 16, 16, true, true},
}

func newTestConv(rng *rand.Rand, cc convCase) *Conv {
	c := &Conv{In: cc.in, Out: cc.out, Kernel: cc.k, Stride: cc.s, Pad: cc.p, ReLU: cc.relu}
	c.Weight = randSlice(rng, cc.out*cc.in*cc.k*cc.k)
	c.Bias = randSlice(rng, cc.out)
	return c
}

// TestConvPaths runs every case through every applicable path (forced) and
// compares with the float64 direct convolution. Tolerances (max abs err /
// max abs ref): GEMM paths 1e-6 (measured up to 7.6e-7), Winograd 1e-5
// (measured up to 3.6e-6 for F(4x4,3x3), 2.3e-7 for F(2x2,3x3)).
func TestConvPaths(t *testing.T) {
	defer func(p convPath, b bool, gb int, wv *winoVariant) {
		forcePath, batchIm2col, winoGroupBytes, forceWino = p, b, gb, wv
	}(forcePath, batchIm2col, winoGroupBytes, forceWino)
	rng := rand.New(rand.NewSource(2))
	var ws Workspace
	for _, cc := range convCases {
		c := newTestConv(rng, cc)
		x := randSlice(rng, cc.n*cc.in*cc.h*cc.w)
		oh, ow := c.OutputSize(cc.h, cc.w)
		var res []float32
		if cc.res {
			res = randSlice(rng, cc.n*cc.out*oh*ow)
		}
		want := refConv(c, x, res, cc.n, cc.h, cc.w)
		type variant struct {
			name    string
			path    convPath
			batched bool
			tol     float64
			group   int          // winoGroupBytes; 0: default
			wino    *winoVariant // forced Winograd variant; nil: automatic
		}
		variants := []variant{{"auto", pathAuto, true, 1e-5, 0, nil}, {"im2col", pathIm2col, false, 1e-6, 0, nil}, {"im2col-batched", pathIm2col, true, 1e-6, 0, nil}}
		if cc.k == 1 && cc.s == 1 && cc.p == 0 {
			variants = append(variants, variant{"gemm1x1", pathGEMM1x1, false, 1e-6, 0, nil})
		}
		if cc.k == 3 && cc.s == 1 && winoOK {
			variants = append(variants,
				variant{"winograd", pathWinograd, false, 1e-5, 0, nil},
				variant{"winograd-F4", pathWinograd, false, 1e-5, 0, winoF4},
				variant{"winograd-F2", pathWinograd, false, 1e-5, 0, winoF2},
				variant{"winograd-F4-per-image", pathWinograd, false, 1e-5, 1, winoF4},
				variant{"winograd-F2-per-image", pathWinograd, false, 1e-5, 1, winoF2})
		}
		for _, v := range variants {
			forcePath, batchIm2col, winoGroupBytes, forceWino = v.path, v.batched, 32<<20, v.wino
			if v.group > 0 {
				winoGroupBytes = v.group
			}
			if c.path() != v.path && v.path != pathAuto {
				t.Fatalf("%+v: path %v not taken", cc, v.path)
			}
			got := make([]float32, len(want))
			for i := range got {
				got[i] = float32(math.NaN()) // Forward must overwrite everything
			}
			c.Forward(got, x, res, cc.n, cc.h, cc.w, &ws)
			checkRel(t, fmt.Sprintf("%+v %s", cc, v.name), got, want, v.tol)
		}
	}
}

// TestConvNilWorkspace checks that a nil workspace works and that inputs
// are not modified.
func TestConvNilWorkspace(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	cc := convCase{4, 3, 3, 1, 1, 2, 6, 7, true, true}
	c := newTestConv(rng, cc)
	x := randSlice(rng, 2*4*6*7)
	res := randSlice(rng, 2*3*6*7)
	x0 := append([]float32(nil), x...)
	got := make([]float32, len(res))
	c.Forward(got, x, res, 2, 6, 7, nil)
	checkRel(t, "nil ws", got, refConv(c, x0, res, 2, 6, 7), 1e-5)
	for i := range x {
		if x[i] != x0[i] {
			t.Fatal("Forward modified x")
		}
	}
}

func TestConvPanics(t *testing.T) {
	c := &Conv{In: 2, Out: 3, Kernel: 3, Stride: 1, Pad: 1, Weight: make([]float32, 54), Bias: make([]float32, 3)}
	for _, f := range []func(){
		func() { c.Forward(make([]float32, 3*16), make([]float32, 2*16-1), nil, 1, 4, 4, nil) },
		func() { c.Forward(make([]float32, 3*16+1), make([]float32, 2*16), nil, 1, 4, 4, nil) },
		func() { c.Forward(make([]float32, 3*16), make([]float32, 2*16), make([]float32, 1), 1, 4, 4, nil) },
		func() { (&Conv{In: 2, Out: 3, Kernel: 3, Stride: 1}).Forward(nil, nil, nil, 1, 4, 4, nil) },
	} {
		func() {
			defer func() {
				if r, ok := recover().(string); !ok || len(r) < 20 || r[:20] != "compute.Conv.Forward" {
					t.Errorf("recover() = %q", r)
				}
			}()
			f()
		}()
	}
}

func TestFoldBatchNorm(t *testing.T) {
	weight := []float32{1, 2, 3, 4, 5, 6}
	gamma := []float32{2, 0.5}
	beta := []float32{1, -1}
	mean := []float32{0.5, 2}
	variance := []float32{3, 0.25}
	w, b := FoldBatchNorm(weight, 2, gamma, beta, mean, variance, 1)
	// scale = {2/sqrt(4), 0.5/sqrt(1.25)} = {1, 0.4472136}
	s1 := 0.5 / math.Sqrt(1.25)
	wantW := []float64{1, 2, 3, 4 * s1, 5 * s1, 6 * s1}
	wantB := []float64{1 - 0.5, -1 - 2*s1}
	checkRel(t, "fold w", w, wantW, 1e-7)
	checkRel(t, "fold b", b, wantB, 1e-7)
	if weight[0] != 1 || weight[3] != 4 {
		t.Error("FoldBatchNorm modified weight")
	}
}
