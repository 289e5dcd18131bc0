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
// a window propagates. x is [planes][h][w] (planes = n*c of an NCHW tensor),
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
	negInf := float32(math.Inf(-1))
	parallelFor(planes, max(1, 16384/(h*w)), func(lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			src := x[pl*h*w : (pl+1)*h*w]
			d := dst[pl*oh*ow : (pl+1)*oh*ow]
			for oy := 0; oy < oh; oy++ {
				y0 := oy*stride - pad
				y1 := min(y0+kernel, h)
				y0 = max(y0, 0)
				for ox := 0; ox < ow; ox++ {
					x0 := ox*stride - pad
					x1 := min(x0+kernel, w)
					x0 = max(x0, 0)
					m := negInf
					for iy := y0; iy < y1; iy++ {
						for _, v := range src[iy*w+x0 : iy*w+x1] {
							if v > m || v != v {
								m = v
							}
						}
					}
					d[oy*ow+ox] = m
				}
			}
		}
	})
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
	parallelFor(rows, max(1, 16384/l), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			s := src[r*l : (r+1)*l]
			d := dst[r*outL : (r+1)*outL]
			for i := range d {
				a := i * l / outL
				b := ((i+1)*l + outL - 1) / outL
				var sum float32
				for _, v := range s[a:b] {
					sum += v
				}
				d[i] = sum / float32(b-a)
			}
		}
	})
}
