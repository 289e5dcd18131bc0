package compute

import (
	"fmt"
	"math"
)

// MaxPoolOutputSize returns the output size of MaxPool2D for an h x w input:
// (h+2*pad-kernel)/stride+1 on each axis (torch, ceil_mode=false).
func MaxPoolOutputSize(h, w, kernel, stride, pad int) (oh, ow int) {
	return (h+2*pad-kernel)/stride + 1, (w+2*pad-kernel)/stride + 1
}

// MaxPool2D is torch's max_pool2d (square kernel, same stride and padding on
// both axes, no dilation, ceil_mode=false): padding acts as -inf and a NaN in
// a window propagates (the sign of a zero maximum may differ from torch). x is [planes][h][w] (planes = n*c of an NCHW tensor),
// dst is [planes][oh][ow] with oh, ow from MaxPoolOutputSize. pad must be at
// most kernel/2, as torch requires. The slices belong to the caller.
func MaxPool2D(dst, x []float32, planes, h, w, kernel, stride, pad int) {
	oh, ow := MaxPoolOutputSize(h, w, kernel, stride, pad)
	if planes < 0 || h <= 0 || w <= 0 || kernel <= 0 || stride <= 0 || pad < 0 || pad > kernel/2 || oh <= 0 || ow <= 0 {
		panic(fmt.Sprintf("compute.MaxPool2D: invalid sizes planes=%d h=%d w=%d kernel=%d stride=%d pad=%d", planes, h, w, kernel, stride, pad))
	}
	if len(x) != planes*h*w || len(dst) != planes*oh*ow {
		panic(fmt.Sprintf("compute.MaxPool2D: len(x)=%d len(dst)=%d, want %d*%d*%d=%d and %d*%d*%d=%d",
			len(x), len(dst), planes, h, w, planes*h*w, planes, oh, ow, planes*oh*ow))
	}
	// Separable: a horizontal max over each input row into hm [h][ow],
	// then a vertical max over the rows of each window.
	x0s, x1s := poolWindows(w, ow, kernel, stride, pad)
	y0s, y1s := poolWindows(h, oh, kernel, stride, pad)
	ParallelFor(planes, max(1, 16384/(h*w)), func(lo, hi int) {
		hm := make([]float32, h*ow)
		for pl := lo; pl < hi; pl++ {
			src := x[pl*h*w : (pl+1)*h*w]
			for iy := 0; iy < h; iy++ {
				row := src[iy*w : (iy+1)*w]
				hr := hm[iy*ow : (iy+1)*ow]
				for ox := range hr {
					hr[ox] = maxNaN(row[x0s[ox]:x1s[ox]])
				}
			}
			d := dst[pl*oh*ow : (pl+1)*oh*ow]
			for oy := 0; oy < oh; oy++ {
				dr := d[oy*ow : (oy+1)*ow]
				copy(dr, hm[y0s[oy]*ow:(y0s[oy]+1)*ow])
				for iy := y0s[oy] + 1; iy < y1s[oy]; iy++ {
					for ox, v := range hm[iy*ow : (iy+1)*ow] {
						dr[ox] = max(dr[ox], v)
					}
				}
			}
		}
	})
}

// poolWindows returns the clipped input ranges [lo[o], hi[o]) of the out
// pooling windows along an axis of length n.
func poolWindows(n, out, kernel, stride, pad int) (lo, hi []int) {
	lo, hi = make([]int, out), make([]int, out)
	for o := range lo {
		lo[o] = max(o*stride-pad, 0)
		hi[o] = min(o*stride-pad+kernel, n)
	}
	return lo, hi
}

// maxNaN returns the maximum of s, NaN if s holds a NaN (as torch's max
// pooling), -Inf for an empty s. It uses the branch-free builtin max, which
// only differs from torch in returning +0 rather than the first of -0 and +0.
func maxNaN(s []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range s {
		m = max(m, v)
	}
	return m
}

// AdaptiveAvgPool1D is torch's F.adaptive_avg_pool1d applied to each of rows
// rows: src [rows][l] -> dst [rows][outL]. Output bin i averages
// src[floor(i*l/outL) : ceil((i+1)*l/outL)] (bins overlap or repeat when
// outL does not divide l, including outL > l), summing in float32 in order
// and dividing by the bin length, as torch's CPU kernel does. The slices
// belong to the caller.
func AdaptiveAvgPool1D(dst, src []float32, rows, l, outL int) {
	if rows < 0 || l <= 0 || outL <= 0 || len(src) != rows*l || len(dst) != rows*outL {
		panic(fmt.Sprintf("compute.AdaptiveAvgPool1D: len(src)=%d len(dst)=%d, want rows*l=%d*%d and rows*outL=%d*%d", len(src), len(dst), rows, l, rows, outL))
	}
	p := NewAdaptivePool1D(l, outL)
	ParallelFor(rows, max(1, 16384/l), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			p.Pool(dst[r*outL:(r+1)*outL], src[r*l:(r+1)*l])
		}
	})
}

// AdaptivePool1D is AdaptiveAvgPool1D for one row, with its bins computed
// once: for a hot loop that pools many rows of the same length.
type AdaptivePool1D struct {
	l          int
	start, end []int32   // bin i averages src[start[i]:end[i]]
	count      []float32 // end-start, the divisor
}

// NewAdaptivePool1D plans the pooling of l values to outL bins.
func NewAdaptivePool1D(l, outL int) *AdaptivePool1D {
	if l <= 0 || outL <= 0 {
		panic(fmt.Sprintf("compute.NewAdaptivePool1D: l=%d outL=%d", l, outL))
	}
	p := &AdaptivePool1D{l: l, start: make([]int32, outL), end: make([]int32, outL), count: make([]float32, outL)}
	for i := range p.start {
		p.start[i] = int32(i * l / outL)
		p.end[i] = int32(((i+1)*l + outL - 1) / outL)
		p.count[i] = float32(p.end[i] - p.start[i])
	}
	return p
}

// Pool writes the outL bin means of src (length l) to dst (length outL),
// exactly as AdaptiveAvgPool1D.
func (p *AdaptivePool1D) Pool(dst, src []float32) {
	if len(src) != p.l || len(dst) != len(p.start) {
		panic(fmt.Sprintf("compute.AdaptivePool1D.Pool: len(src)=%d len(dst)=%d, want %d and %d", len(src), len(dst), p.l, len(p.start)))
	}
	for i := range dst {
		var sum float32
		for _, v := range src[p.start[i]:p.end[i]] {
			sum += v
		}
		dst[i] = sum / p.count[i]
	}
}
