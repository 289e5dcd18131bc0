package datasets

import "image"

// Go's image/jpeg returns the decoded planes (Y and subsampled Cb, Cr) of a
// colour JPEG; PIL asks libjpeg-turbo for RGB, which upsamples the chroma
// with its "fancy" triangle filter and converts with its own fixed-point
// tables. This file redoes those two steps as libjpeg-turbo 2.1 does them
// (jdsample.c, jdcolor.c, jdmainct.c edge handling), so that the only
// remaining difference from PIL is the inverse DCT (Go's integer IDCT is
// not libjpeg's jidctint, so decoded samples can differ by a level or so).

// libjpeg's YCbCr->RGB tables (SCALEBITS = 16).
var jpegTabs = func() (t struct{ crR, cbB, crG, cbG [256]int32 }) {
	const (
		scaleBits = 16
		oneHalf   = 1 << (scaleBits - 1)
	)
	fix := func(x float64) int32 { return int32(x*(1<<scaleBits) + 0.5) }
	for i := 0; i < 256; i++ {
		x := int32(i - 128)
		t.crR[i] = (fix(1.40200)*x + oneHalf) >> scaleBits
		t.cbB[i] = (fix(1.77200)*x + oneHalf) >> scaleBits
		t.crG[i] = -fix(0.71414) * x
		t.cbG[i] = -fix(0.34414)*x + oneHalf
	}
	return t
}()

// clamp255 is libjpeg's range_limit.
func clamp255(v int32) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// ycbcrToRGB converts a decoded JPEG's planes to RGB like libjpeg-turbo
// with do_fancy_upsampling (PIL's default). ok is false for layouts it does
// not handle (a non-zero origin), which the caller converts generically.
func ycbcrToRGB(m *image.YCbCr) (img *RGB8, ok bool) {
	r := m.Rect
	if r.Min.X != 0 || r.Min.Y != 0 {
		return nil, false
	}
	w, h := r.Dx(), r.Dy()
	var hs, vs int // chroma subsampling factors
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio444:
		hs, vs = 1, 1
	case image.YCbCrSubsampleRatio422:
		hs, vs = 2, 1
	case image.YCbCrSubsampleRatio420:
		hs, vs = 2, 2
	case image.YCbCrSubsampleRatio440:
		hs, vs = 1, 2
	case image.YCbCrSubsampleRatio411:
		hs, vs = 4, 1
	case image.YCbCrSubsampleRatio410:
		hs, vs = 4, 2
	default:
		return nil, false
	}
	cw, ch := (w+hs-1)/hs, (h+vs-1)/vs // libjpeg's downsampled_width/height
	if len(m.Cb) < (ch-1)*m.CStride+cw || len(m.Cr) < (ch-1)*m.CStride+cw ||
		len(m.Y) < (h-1)*m.YStride+w {
		return nil, false
	}
	cb := upsampleChroma(m.Cb, m.CStride, cw, ch, w, h, hs, vs)
	cr := upsampleChroma(m.Cr, m.CStride, cw, ch, w, h, hs, vs)
	out := &RGB8{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	t := &jpegTabs
	for y := 0; y < h; y++ {
		yrow := m.Y[y*m.YStride : y*m.YStride+w]
		o := out.Pix[3*y*w : 3*(y+1)*w]
		cbr, crr := cb[y*w:(y+1)*w], cr[y*w:(y+1)*w]
		for x, yv := range yrow {
			Y := int32(yv)
			b, c := cbr[x], crr[x]
			o[3*x] = clamp255(Y + t.crR[c])
			o[3*x+1] = clamp255(Y + ((t.cbG[b] + t.crG[c]) >> 16))
			o[3*x+2] = clamp255(Y + t.cbB[b])
		}
	}
	return out, true
}

// upsampleChroma brings one cw x ch chroma plane (row stride stride) to
// w x h, choosing the method libjpeg-turbo's jinit_upsampler would:
// h2v1 and h2v2 fancy (triangle) upsampling when the plane is more than 2
// samples wide, h1v2 fancy always, and replication otherwise. Rows above
// the first and below the last real row duplicate it (jdmainct.c).
func upsampleChroma(p []uint8, stride, cw, ch, w, h, hs, vs int) []uint8 {
	out := make([]uint8, w*h)
	row := func(i int) []uint8 {
		i = max(0, min(i, ch-1))
		return p[i*stride : i*stride+cw]
	}
	line := make([]uint8, hs*cw) // one upsampled row, possibly wider than w
	switch {
	case hs == 1 && vs == 1:
		for y := 0; y < h; y++ {
			copy(out[y*w:(y+1)*w], row(y))
		}
	case hs == 2 && vs == 1 && cw > 2:
		for y := 0; y < h; y++ {
			in := row(y)
			line[0] = in[0]
			line[1] = uint8((int(in[0])*3 + int(in[1]) + 2) >> 2)
			for i := 1; i < cw-1; i++ {
				v := int(in[i]) * 3
				line[2*i] = uint8((v + int(in[i-1]) + 1) >> 2)
				line[2*i+1] = uint8((v + int(in[i+1]) + 2) >> 2)
			}
			last := cw - 1
			line[2*last] = uint8((int(in[last])*3 + int(in[last-1]) + 1) >> 2)
			line[2*last+1] = in[last]
			copy(out[y*w:(y+1)*w], line)
		}
	case hs == 2 && vs == 2 && cw > 2:
		sums := make([]int, cw)
		for y := 0; y < h; y++ {
			i := y / 2
			near, far := row(i), row(i+1)
			if y%2 == 0 {
				far = row(i - 1)
			}
			for j := range sums {
				sums[j] = int(near[j])*3 + int(far[j])
			}
			line[0] = uint8((sums[0]*4 + 8) >> 4)
			line[1] = uint8((sums[0]*3 + sums[1] + 7) >> 4)
			for j := 1; j < cw-1; j++ {
				line[2*j] = uint8((sums[j]*3 + sums[j-1] + 8) >> 4)
				line[2*j+1] = uint8((sums[j]*3 + sums[j+1] + 7) >> 4)
			}
			last := cw - 1
			line[2*last] = uint8((sums[last]*3 + sums[last-1] + 8) >> 4)
			line[2*last+1] = uint8((sums[last]*4 + 7) >> 4)
			copy(out[y*w:(y+1)*w], line)
		}
	case hs == 1 && vs == 2:
		for y := 0; y < h; y++ {
			i := y / 2
			near, far, bias := row(i), row(i+1), 2
			if y%2 == 0 {
				far, bias = row(i-1), 1
			}
			o := out[y*w : (y+1)*w]
			for j := range o {
				o[j] = uint8((int(near[j])*3 + int(far[j]) + bias) >> 2)
			}
		}
	default: // replication (box filter)
		for y := 0; y < h; y++ {
			in := row(y / vs)
			o := out[y*w : (y+1)*w]
			for x := range o {
				o[x] = in[x/hs]
			}
		}
	}
	return out
}
