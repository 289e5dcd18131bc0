package compute

import "fmt"

// ResizeBilinear is torch's F.interpolate(mode="bilinear",
// align_corners=False, antialias=False) with an explicit output size:
// src [planes][h][w] -> dst [planes][oh][ow] (planes = n*c of NCHW).
//
// Per axis, as torch 1.13's CPU kernel computes it in float32: scale =
// float32(in)/float32(out); the source coordinate is (dst+0.5)*scale-0.5
// (evaluated in float64, rounded to float32) clamped below at 0;
// i0 = floor, i1 = min(i0+1, in-1), l1 = clamp(coord-i0, 0, 1), l0 = 1-l1;
// an axis whose size does not change is copied. Each output is
// (s[i0][j0]*wl0 + s[i0][j1]*wl1)*hl0 + (s[i1][j0]*wl0 + s[i1][j1]*wl1)*hl1.
// The slices belong to the caller.
func ResizeBilinear(dst, src []float32, planes, h, w, oh, ow int) {
	if planes < 0 || h <= 0 || w <= 0 || oh <= 0 || ow <= 0 || len(src) != planes*h*w || len(dst) != planes*oh*ow {
		panic(fmt.Sprintf("compute.ResizeBilinear: len(src)=%d len(dst)=%d, want planes*h*w=%d*%d*%d and planes*oh*ow=%d*%d*%d",
			len(src), len(dst), planes, h, w, planes, oh, ow))
	}
	ys := LinearTaps(h, oh)
	xs := LinearTaps(w, ow)
	ParallelFor(planes, max(1, 16384/(oh*ow)), func(lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			s := src[pl*h*w : (pl+1)*h*w]
			d := dst[pl*oh*ow : (pl+1)*oh*ow]
			for oy, ty := range ys {
				r0 := s[ty.I0*w : (ty.I0+1)*w]
				r1 := s[ty.I1*w : (ty.I1+1)*w]
				drow := d[oy*ow : (oy+1)*ow]
				for ox, tx := range xs {
					t0 := float32(r0[tx.I0]*tx.L0) + float32(r0[tx.I1]*tx.L1)
					t1 := float32(r1[tx.I0]*tx.L0) + float32(r1[tx.I1]*tx.L1)
					drow[ox] = float32(t0*ty.L0) + float32(t1*ty.L1)
				}
			}
		}
	})
}

// LinearTap is one output position of a linear interpolation axis: inputs
// I0 and I1 with weights L0 and L1.
type LinearTap struct {
	I0, I1 int
	L0, L1 float32
}

// LinearTaps returns torch's (align_corners=False) taps for resizing an
// axis of length in to length out, as ResizeBilinear uses them (for other
// backends that resize the same way).
func LinearTaps(in, out int) []LinearTap {
	taps := make([]LinearTap, out)
	if in == out {
		for i := range taps {
			taps[i] = LinearTap{I0: i, I1: i, L0: 1}
		}
		return taps
	}
	scale := float32(in) / float32(out)
	for i := range taps {
		// torch: scalar_t src = scale * (dst_index + 0.5) - 0.5, where the
		// right-hand side is double because 0.5 is.
		real := float32(float64(float64(scale)*(float64(i)+0.5)) - 0.5)
		if real < 0 {
			real = 0
		}
		i0 := int(real)
		i1 := i0
		if i0 < in-1 {
			i1 = i0 + 1
		}
		l1 := min(max(real-float32(i0), 0), 1)
		taps[i] = LinearTap{I0: i0, I1: i1, L0: 1 - l1, L1: l1}
	}
	return taps
}
