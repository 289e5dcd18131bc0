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
	ys := linearTaps(h, oh)
	xs := linearTaps(w, ow)
	ParallelFor(planes, max(1, 16384/(oh*ow)), func(lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			s := src[pl*h*w : (pl+1)*h*w]
			d := dst[pl*oh*ow : (pl+1)*oh*ow]
			for oy, ty := range ys {
				r0 := s[ty.i0*w : (ty.i0+1)*w]
				r1 := s[ty.i1*w : (ty.i1+1)*w]
				drow := d[oy*ow : (oy+1)*ow]
				for ox, tx := range xs {
					t0 := float32(r0[tx.i0]*tx.l0) + float32(r0[tx.i1]*tx.l1)
					t1 := float32(r1[tx.i0]*tx.l0) + float32(r1[tx.i1]*tx.l1)
					drow[ox] = float32(t0*ty.l0) + float32(t1*ty.l1)
				}
			}
		}
	})
}

// linearTap is one output position of a linear interpolation axis: inputs
// i0 and i1 with weights l0 and l1.
type linearTap struct {
	i0, i1 int
	l0, l1 float32
}

// linearTaps returns torch's (align_corners=False) taps for resizing an
// axis of length in to length out.
func linearTaps(in, out int) []linearTap {
	taps := make([]linearTap, out)
	if in == out {
		for i := range taps {
			taps[i] = linearTap{i0: i, i1: i, l0: 1}
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
		taps[i] = linearTap{i0: i0, i1: i1, l0: 1 - l1, l1: l1}
	}
	return taps
}
