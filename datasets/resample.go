package datasets

import "math"

// This file reproduces, bit for bit, Pillow's Image.resize(size, BILINEAR)
// on 8-bit images (Pillow 9.x src/libImaging/Resample.c, box = whole image,
// reducing_gap = None):
//
//   - Separable convolution; the filter support is scaled by the downscale
//     factor (antialiasing), never below the filter's own support.
//   - Per output sample, weights are computed in float64, normalised by
//     their sum, then converted to fixed point with 22 fractional bits
//     (PRECISION_BITS = 32-8-2), rounding half away from zero.
//   - The horizontal pass runs first, only over the source rows that the
//     vertical pass reads, into an intermediate 8-bit image (rounded and
//     clipped); the vertical pass then reads that intermediate.
//   - A pass whose dimension does not change is skipped.
//
// The float64 expressions below mirror the C evaluation order; explicit
// float64(...) conversions forbid fused multiply-add, which would change
// the rounding on architectures that have it.

// precisionBits is Pillow's PRECISION_BITS for 8-bit resampling.
const precisionBits = 32 - 8 - 2

// resampleFilter is a separable reconstruction filter.
type resampleFilter struct {
	fn      func(x float64) float64
	support float64
}

// bilinearFilter is Pillow's BILINEAR (triangle) filter.
var bilinearFilter = resampleFilter{
	fn: func(x float64) float64 {
		if x < 0 {
			x = -x
		}
		if x < 1 {
			return 1 - x
		}
		return 0
	},
	support: 1,
}

// coeffs holds the fixed-point weights of one resampling pass.
type coeffs struct {
	ksize int     // stride of k between output samples
	lo    []int   // first source index per output sample
	n     []int   // number of source samples per output sample
	k     []int32 // fixed-point weights, ksize per output sample
}

// precomputeCoeffs mirrors Pillow's precompute_coeffs followed by
// normalize_coeffs_8bpc, for the box [0, inSize).
func precomputeCoeffs(inSize, outSize int, f resampleFilter) coeffs {
	// in0 and in1 are C floats (float32) in Pillow.
	in0 := float64(float32(0))
	in1 := float64(float32(inSize))
	scale := (in1 - in0) / float64(outSize)
	filterscale := scale
	if filterscale < 1 {
		filterscale = 1
	}
	support := f.support * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	c := coeffs{
		ksize: ksize,
		lo:    make([]int, outSize),
		n:     make([]int, outSize),
		k:     make([]int32, outSize*ksize),
	}
	w := make([]float64, ksize)
	ss := 1.0 / filterscale
	for xx := 0; xx < outSize; xx++ {
		center := in0 + float64((float64(xx)+0.5)*scale)
		xmin := int(center - support + 0.5) // C (int) truncates toward zero
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		xmax -= xmin
		if xmax > ksize { // cannot happen; keeps indexing provably safe
			xmax = ksize
		}
		ww := 0.0
		for x := 0; x < xmax; x++ {
			v := f.fn(float64((float64(x+xmin) - center + 0.5) * ss))
			w[x] = v
			ww += v
		}
		k := c.k[xx*ksize : (xx+1)*ksize]
		for x := 0; x < xmax; x++ {
			v := w[x]
			if ww != 0 {
				v /= ww
			}
			if v < 0 {
				k[x] = int32(-0.5 + float64(v*(1<<precisionBits)))
			} else {
				k[x] = int32(0.5 + float64(v*(1<<precisionBits)))
			}
		}
		c.lo[xx] = xmin
		c.n[xx] = xmax
	}
	return c
}

// clip8 converts a fixed-point accumulator to a byte, as Pillow's clip8.
func clip8(ss int32) uint8 {
	v := ss >> precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// resize8 resizes an interleaved 8-bit image with ch channels from w x h to
// ow x oh exactly as Pillow's Image.resize((ow, oh), BILINEAR). It returns
// src itself when the size does not change (Pillow returns a copy).
func resize8(src []uint8, w, h, ch, ow, oh int) []uint8 {
	if w == ow && h == oh {
		return src
	}
	f := bilinearFilter
	needH := ow != w
	needV := oh != h

	vert := precomputeCoeffs(h, oh, f)
	// Rows of the source that the vertical pass reads.
	yFirst := vert.lo[0]
	yLast := vert.lo[oh-1] + vert.n[oh-1]

	cur, cw, cy0 := src, w, 0 // current image, its width, its first source row
	if needH {
		horiz := precomputeCoeffs(w, ow, f)
		rows := yLast - yFirst
		tmp := make([]uint8, rows*ow*ch)
		resampleHorizontal(tmp, src[yFirst*w*ch:yLast*w*ch], rows, w, ow, ch, horiz)
		cur, cw, cy0 = tmp, ow, yFirst
	}
	if !needV {
		return cur
	}
	out := make([]uint8, oh*cw*ch)
	resampleVertical(out, cur, cw, ch, cy0, vert)
	return out
}

// resampleHorizontal runs the horizontal pass over rows rows of src
// (width w) into dst (width ow).
func resampleHorizontal(dst, src []uint8, rows, w, ow, ch int, c coeffs) {
	const half = int32(1) << (precisionBits - 1)
	for y := 0; y < rows; y++ {
		srow := src[y*w*ch : (y+1)*w*ch]
		drow := dst[y*ow*ch : (y+1)*ow*ch]
		for xx := 0; xx < ow; xx++ {
			k := c.k[xx*c.ksize : xx*c.ksize+c.n[xx]]
			s := srow[c.lo[xx]*ch : (c.lo[xx]+len(k))*ch]
			switch ch {
			case 3:
				s0, s1, s2 := half, half, half
				for i, kv := range k {
					p := s[i*3 : i*3+3]
					s0 += int32(p[0]) * kv
					s1 += int32(p[1]) * kv
					s2 += int32(p[2]) * kv
				}
				d := drow[xx*3 : xx*3+3]
				d[0], d[1], d[2] = clip8(s0), clip8(s1), clip8(s2)
			case 1:
				s0 := half
				for i, kv := range k {
					s0 += int32(s[i]) * kv
				}
				drow[xx] = clip8(s0)
			default:
				for cc := 0; cc < ch; cc++ {
					s0 := half
					for i, kv := range k {
						s0 += int32(s[i*ch+cc]) * kv
					}
					drow[xx*ch+cc] = clip8(s0)
				}
			}
		}
	}
}

// resampleVertical runs the vertical pass: src (width w, whose first row is
// source row y0) into dst (len(c.n) rows).
func resampleVertical(dst, src []uint8, w, ch, y0 int, c coeffs) {
	const half = int32(1) << (precisionBits - 1)
	stride := w * ch
	acc := make([]int32, stride)
	for yy := range c.n {
		k := c.k[yy*c.ksize : yy*c.ksize+c.n[yy]]
		base := c.lo[yy] - y0
		for i := range acc {
			acc[i] = half
		}
		for i, kv := range k {
			row := src[(base+i)*stride : (base+i+1)*stride]
			for j, v := range row {
				acc[j] += int32(v) * kv
			}
		}
		drow := dst[yy*stride : (yy+1)*stride]
		for j, s := range acc {
			drow[j] = clip8(s)
		}
	}
}
