package detector

import (
	"fmt"
	"math"
	"slices"

	"github.com/softpatch/softpatch/engine/compute"
)

// Smoothing is the standard deviation of the Gaussian that smooths the
// anomaly maps (RescaleSegmentor.smoothing in the published code).
const Smoothing = 4.0

// truncate is scipy.ndimage.gaussian_filter's default truncation, in
// standard deviations.
const truncate = 4.0

// gaussKernel returns the half kernel w[0..r] of scipy's
// _gaussian_kernel1d(sigma, 0, r) with r = int(truncate*sigma + 0.5):
// exp(-0.5/sigma^2 * x^2) for x in [-r, r], divided by its sum, in float64.
// The sum follows numpy's pairwise summation (eight accumulators for up to
// 128 terms), so the weights are those scipy uses to the last bit, up to
// differences between Go's and the C library's exp.
func gaussKernel(sigma float64) []float64 {
	r := int(truncate*sigma + 0.5)
	s2 := sigma * sigma
	full := make([]float64, 2*r+1)
	for i := range full {
		x := float64(i - r)
		full[i] = math.Exp(-0.5 / s2 * (x * x))
	}
	sum := pairwiseSum(full)
	half := make([]float64, r+1)
	for j := range half {
		half[j] = full[r+j] / sum
	}
	return half
}

// GaussKernel returns the half kernel w[0..r] (w[j] weighs the values at
// distance j) with which GaussianFilter smooths for standard deviation
// sigma: scipy's weights, r = int(4*sigma + 0.5).
func GaussKernel(sigma float64) []float64 { return gaussKernel(sigma) }

// pairwiseSum is numpy's pairwise_sum for float64.
func pairwiseSum(a []float64) float64 {
	n := len(a)
	switch {
	case n < 8:
		s := 0.0
		for _, v := range a {
			s += v
		}
		return s
	case n <= 128:
		var r [8]float64
		copy(r[:], a[:8])
		i := 8
		for ; i < n-n%8; i += 8 {
			for k := 0; k < 8; k++ {
				r[k] += a[i+k]
			}
		}
		s := ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
		for ; i < n; i++ {
			s += a[i]
		}
		return s
	default:
		m := n / 2
		m -= m % 8
		return pairwiseSum(a[:m]) + pairwiseSum(a[m:])
	}
}

// reflect maps an index of the extended line to [0, n) with scipy's mode
// "reflect" (half-sample symmetric: d c b a | a b c d | d c b a), for any
// distance outside the line.
func reflect(i, n int) int {
	p := 2 * n
	i %= p
	if i < 0 {
		i += p
	}
	if i >= n {
		i = p - 1 - i
	}
	return i
}

// smooth1d is scipy's correlate1d with a symmetric kernel along one line:
// the line is read in float64 and extended by reflection, each output is
// in[0]*w[0] + sum over j = r..1 of (in[-j]+in[j])*w[j] (the order of
// scipy's symmetric branch), stored as float32. src is read with the given
// stride, dst [n] is written contiguously; buf holds at least n+2r float64.
func smooth1d(dst, src []float32, n, stride int, w []float64, buf []float64) {
	r := len(w) - 1
	ext := buf[:n+2*r]
	for i := range ext {
		ext[i] = float64(src[reflect(i-r, n)*stride])
	}
	for i := 0; i < n; i++ {
		c := i + r
		acc := ext[c] * w[0]
		for j := r; j >= 1; j-- {
			acc += float64((ext[c-j] + ext[c+j]) * w[j])
		}
		dst[i] = float32(acc)
	}
}

// GaussianFilter smooths img [h][w] in place as
// scipy.ndimage.gaussian_filter(img, sigma) does for a float32 array
// (truncate 4.0, mode "reflect"): a 1-d pass along axis 0 (columns), its
// result rounded to float32, then along axis 1 (rows), in float64
// arithmetic with float64 weights.
func GaussianFilter(img []float32, h, w int, sigma float64) {
	if h <= 0 || w <= 0 || len(img) != h*w {
		panic(fmt.Sprintf("detector.GaussianFilter: len(img)=%d for %dx%d", len(img), h, w))
	}
	k := gaussKernel(sigma)
	r := len(k) - 1
	buf := make([]float64, max(h, w)+2*r)
	col := make([]float32, h)
	for x := 0; x < w; x++ {
		smooth1d(col, img[x:], h, w, k, buf)
		for y := 0; y < h; y++ {
			img[y*w+x] = col[y]
		}
	}
	row := make([]float32, w)
	for y := 0; y < h; y++ {
		smooth1d(row, img[y*w:(y+1)*w], w, 1, k, buf)
		copy(img[y*w:(y+1)*w], row)
	}
}

// Map writes the anomaly map of one image into dst [size][size]: the
// gh x gw patch scores resized bilinearly to size x size (torch
// F.interpolate, align_corners=False, float32), then smoothed with a
// Gaussian of standard deviation Smoothing (GaussianFilter), as the
// published RescaleSegmentor.convert_to_segmentation computes it.
func Map(dst []float32, patchScores []float32, gh, gw, size int) {
	if gh <= 0 || gw <= 0 || size <= 0 || len(patchScores) != gh*gw || len(dst) != size*size {
		panic(fmt.Sprintf("detector.Map: len(dst)=%d len(patchScores)=%d for %dx%d -> %d", len(dst), len(patchScores), gh, gw, size))
	}
	compute.ResizeBilinear(dst, patchScores, 1, gh, gw, size, size)
	GaussianFilter(dst, size, size, Smoothing)
}

// Quantile returns torch.quantile(x, q) (interpolation "linear") of the
// float32 values xs, computed as torch computes it for a float32 tensor:
// rank = float32(q)*float32(n-1) in float32, below = floor(rank),
// above = ceil(rank), weight = rank - below, and torch's lerp
// (below + weight*(above-below) for weight < 0.5, else
// above - (above-below)*(1-weight)), all in float32. NaNs are not
// supported (torch would return NaN). It panics for an empty xs or q
// outside [0, 1].
func Quantile(xs []float32, q float64) float64 {
	if len(xs) == 0 || !(q >= 0 && q <= 1) {
		panic(fmt.Sprintf("detector.Quantile: %d values, q=%v", len(xs), q))
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := float32(q) * float32(len(s)-1)
	lo := int(rank)
	hi := int(float32(math.Ceil(float64(rank))))
	wt := rank - float32(lo)
	a, b := s[lo], s[hi]
	var v float32
	if wt < 0.5 {
		v = a + float32(wt*(b-a))
	} else {
		v = b - float32((b-a)*(1-wt))
	}
	return float64(v)
}
