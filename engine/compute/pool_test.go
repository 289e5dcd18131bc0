package compute

import (
	"math"
	"math/rand"
	"testing"
)

func refMaxPool(x []float32, planes, h, w, k, s, p int) []float64 {
	oh, ow := MaxPoolOutputSize(h, w, k, s, p)
	out := make([]float64, planes*oh*ow)
	for pl := 0; pl < planes; pl++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				m := math.Inf(-1)
				for ky := 0; ky < k; ky++ {
					for kx := 0; kx < k; kx++ {
						iy, ix := oy*s-p+ky, ox*s-p+kx
						if iy >= 0 && iy < h && ix >= 0 && ix < w {
							m = math.Max(m, float64(x[(pl*h+iy)*w+ix]))
						}
					}
				}
				out[(pl*oh+oy)*ow+ox] = m
			}
		}
	}
	return out
}

// TestMaxPool2D is exact (tolerance 0).
func TestMaxPool2D(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	for _, c := range [][6]int{{6, 13, 11, 3, 2, 1}, {2, 8, 8, 2, 2, 0}, {3, 5, 7, 3, 1, 1}, {1, 1, 1, 3, 2, 1}, {4, 9, 10, 5, 3, 2}} {
		planes, h, w, k, s, p := c[0], c[1], c[2], c[3], c[4], c[5]
		x := randSlice(rng, planes*h*w)
		oh, ow := MaxPoolOutputSize(h, w, k, s, p)
		got := make([]float32, planes*oh*ow)
		MaxPool2D(got, x, planes, h, w, k, s, p)
		checkRel(t, "MaxPool2D", got, refMaxPool(x, planes, h, w, k, s, p), 0)
	}
	// Hand-derived: 3x3 s2 p1 on a 4x4 ramp 0..15 -> [[5 7] [13 15]].
	x := make([]float32, 16)
	for i := range x {
		x[i] = float32(i)
	}
	got := make([]float32, 4)
	MaxPool2D(got, x, 1, 4, 4, 3, 2, 1)
	if got[0] != 5 || got[1] != 7 || got[2] != 13 || got[3] != 15 {
		t.Errorf("MaxPool2D ramp = %v, want [5 7 13 15]", got)
	}
	// NaN propagates as in torch.
	x[0] = float32(math.NaN())
	MaxPool2D(got, x, 1, 4, 4, 3, 2, 1)
	if got[0] == got[0] || got[1] != 7 || got[3] != 15 {
		t.Errorf("MaxPool2D with NaN = %v, want [NaN . . 15]", got)
	}
}

// refAdaptive is the naive formula in float64.
func refAdaptive(x []float32, rows, l, outL int) []float64 {
	out := make([]float64, rows*outL)
	for r := 0; r < rows; r++ {
		for i := 0; i < outL; i++ {
			a := int(math.Floor(float64(i*l) / float64(outL)))
			b := int(math.Ceil(float64((i+1)*l) / float64(outL)))
			var s float64
			for j := a; j < b; j++ {
				s += float64(x[r*l+j])
			}
			out[r*outL+i] = s / float64(b-a)
		}
	}
	return out
}

// TestAdaptiveAvgPool1D: hand-derived cases are exact; random cases against
// the float64 formula to 1e-6 relative (float32 sums of <= 9 terms).
func TestAdaptiveAvgPool1D(t *testing.T) {
	x := []float32{1, 2, 3, 4, 5}
	got := make([]float32, 3)
	// l=5, out=3: bins [0,2) [1,4) [3,5) -> 1.5, 3, 4.5
	AdaptiveAvgPool1D(got, x, 1, 5, 3)
	if got[0] != 1.5 || got[1] != 3 || got[2] != 4.5 {
		t.Errorf("5->3 = %v, want [1.5 3 4.5]", got)
	}
	// l=2, out=5 (upsampling): bins [0,1) [0,1) [0,2) [1,2) [1,2).
	got = make([]float32, 5)
	AdaptiveAvgPool1D(got, []float32{2, 4}, 1, 2, 5)
	if want := []float32{2, 2, 3, 4, 4}; got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] || got[4] != want[4] {
		t.Errorf("2->5 = %v, want %v", got, want)
	}
	rng := rand.New(rand.NewSource(5))
	for _, c := range [][3]int{{3, 144, 40}, {2, 40, 200}, {2, 97, 13}, {1, 7, 7}} {
		rows, l, outL := c[0], c[1], c[2]
		x := randSlice(rng, rows*l)
		got := make([]float32, rows*outL)
		AdaptiveAvgPool1D(got, x, rows, l, outL)
		checkRel(t, "AdaptiveAvgPool1D", got, refAdaptive(x, rows, l, outL), 1e-6)
	}
}

// refBilinear is the align_corners=False formula in float64.
func refBilinear(x []float32, planes, h, w, oh, ow int) []float64 {
	taps := func(in, out int) (i0, i1 []int, l1 []float64) {
		for i := 0; i < out; i++ {
			c := math.Max((float64(i)+0.5)*float64(in)/float64(out)-0.5, 0)
			a := int(math.Floor(c))
			i0 = append(i0, a)
			i1 = append(i1, min(a+1, in-1))
			l1 = append(l1, c-float64(a))
		}
		return
	}
	y0, y1, ly := taps(h, oh)
	x0, x1, lx := taps(w, ow)
	out := make([]float64, planes*oh*ow)
	for pl := 0; pl < planes; pl++ {
		at := func(iy, ix int) float64 { return float64(x[(pl*h+iy)*w+ix]) }
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				top := at(y0[oy], x0[ox])*(1-lx[ox]) + at(y0[oy], x1[ox])*lx[ox]
				bot := at(y1[oy], x0[ox])*(1-lx[ox]) + at(y1[oy], x1[ox])*lx[ox]
				out[(pl*oh+oy)*ow+ox] = top*(1-ly[oy]) + bot*ly[oy]
			}
		}
	}
	return out
}

// TestResizeBilinear: hand-derived 2x upsampling exact; random cases against
// the float64 formula to 1e-6 relative.
func TestResizeBilinear(t *testing.T) {
	// 1x2 -> 1x4: coordinates -0.25->0, 0.25, 0.75, 1.25 (i0=1,i1=1).
	got := make([]float32, 4)
	ResizeBilinear(got, []float32{0, 4}, 1, 1, 2, 1, 4)
	if got[0] != 0 || got[1] != 1 || got[2] != 3 || got[3] != 4 {
		t.Errorf("1x2->1x4 = %v, want [0 1 3 4]", got)
	}
	rng := rand.New(rand.NewSource(6))
	for _, c := range [][5]int{{2, 14, 14, 28, 28}, {3, 5, 7, 9, 4}, {1, 28, 28, 224, 224}, {2, 6, 6, 6, 6}, {1, 9, 3, 4, 3}} {
		planes, h, w, oh, ow := c[0], c[1], c[2], c[3], c[4]
		x := randSlice(rng, planes*h*w)
		got := make([]float32, planes*oh*ow)
		ResizeBilinear(got, x, planes, h, w, oh, ow)
		checkRel(t, "ResizeBilinear", got, refBilinear(x, planes, h, w, oh, ow), 1e-6)
	}
}
