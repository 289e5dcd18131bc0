package experiments

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// AUPIMO settings of the reference implementation (Bertoldo et al., "AUPIMO: Redefining Visual
// Anomaly Detection Benchmarks with High Speed and Low Tolerance", 2024; the numpy version in
// anomalib's metrics/per_image/pimo_numpy.py): thresholds, and the shared-FPR range integrated.
const (
	AUPIMOThresholds = 300_000
	AUPIMOFPRLow     = 1e-5
	AUPIMOFPRHigh    = 1e-4
)

// ErrAUPIMORange: the thresholds do not resolve the shared-FPR range: too few of them fall in it
// (the reference refuses 30 or fewer points), or its two ends meet at one threshold.
var ErrAUPIMORange = errors.New("experiments: AUPIMO: too few thresholds in the FPR range (more normal pixels or thresholds needed)")

// PIMO is the per-image overlap result of a test set: AUPIMO of each anomalous image, and what
// the curves were integrated over.
type PIMO struct {
	// Scores[i] is image i's AUPIMO in [0, 1]; NaN for normal images (no anomalous pixel).
	Scores []float64
	// Mean is the mean of Scores over the anomalous images.
	Mean float64
	// FPRLow and FPRHigh are the shared FPRs reached at the ends of the integration range (the
	// closest to the requested bounds), Points the number of thresholds integrated over.
	FPRLow, FPRHigh float64
	Points          int
}

// AUPIMO computes the per-image overlap (PIMO) curves of anomaly maps against masks and their
// normalised areas within the shared-FPR range [lo, hi], as the reference numpy implementation
// does (pimo_numpy.aupimo_scores with its defaults: the mean per-image FPR of the normal images
// as the shared FPR, the "score >= threshold" rule):
//
//   - Images with a non-zero mask pixel are anomalous, the others (nil mask included) normal.
//     There must be both kinds.
//   - k thresholds evenly spaced from the minimum to the maximum score of the normal images'
//     maps (numpy's linspace in float64, rounded to float32; the last is the maximum itself).
//   - The shared FPR at a threshold is the mean over the normal images of the fraction of their
//     pixels scoring at or above it; an anomalous image's TPR is the fraction of its anomalous
//     pixels doing so.
//   - The range's ends are the thresholds whose shared FPR is closest to hi and to lo (the first
//     on ties); between them, the points with a finite log(shared FPR) are kept, more than 30 of
//     them are needed, and each TPR curve is integrated against log(shared FPR) with the
//     trapezoidal rule, divided by log(hi/lo) and clipped to [0, 1].
//
// Layout as EvaluatePixels. The sums run in a fixed order that may differ from numpy's pairwise
// sums, so results agree to about 1e-12, not bit for bit. Errors: ErrNoScores, ErrNaN, shape
// mismatches, ErrOneClass without normal or anomalous images, a constant normal map range, bounds
// outside (0, 1] or the shared FPR's range, and ErrAUPIMORange.
func AUPIMO(maps [][]float32, masks [][]uint8, h, w int, lo, hi float64, k int) (PIMO, error) {
	var r PIMO
	if len(maps) != len(masks) {
		return r, fmt.Errorf("experiments: %d maps but %d masks", len(maps), len(masks))
	}
	if h <= 0 || w <= 0 {
		return r, fmt.Errorf("experiments: map size %dx%d", h, w)
	}
	if !(lo > 0 && lo < hi && hi <= 1) {
		return r, fmt.Errorf("experiments: AUPIMO FPR range [%v, %v] is not within (0, 1]", lo, hi)
	}
	if k < 2 {
		return r, fmt.Errorf("experiments: AUPIMO needs 2 or more thresholds, got %d", k)
	}
	if len(maps) == 0 {
		return r, ErrNoScores
	}
	hw := h * w
	anomalous := make([]bool, len(maps))
	var normals, anomalies int
	sMin, sMax := float32(math.Inf(1)), float32(math.Inf(-1))
	for i, m := range maps {
		if len(m) != hw {
			return r, fmt.Errorf("experiments: map %d has %d values, want %d", i, len(m), hw)
		}
		if masks[i] != nil && len(masks[i]) != hw {
			return r, fmt.Errorf("experiments: mask %d has %d values, want %d", i, len(masks[i]), hw)
		}
		for _, s := range m {
			if s != s {
				return r, ErrNaN
			}
		}
		anomalous[i] = masks[i] != nil && slices.ContainsFunc(masks[i], func(v uint8) bool { return v != 0 })
		if anomalous[i] {
			anomalies++
			continue
		}
		normals++
		for _, s := range m {
			sMin, sMax = min(sMin, s), max(sMax, s)
		}
	}
	if normals == 0 || anomalies == 0 {
		return r, ErrOneClass
	}
	if !(sMin < sMax) || math.IsInf(float64(sMin), 0) || math.IsInf(float64(sMax), 0) {
		return r, fmt.Errorf("experiments: AUPIMO: the normal images' scores span [%v, %v]: no threshold range", sMin, sMax)
	}
	thr := linspace32(float64(sMin), float64(sMax), k)

	// The shared FPR: the normal images' per-image FPRs summed in image order, then averaged.
	shared := make([]float64, k)
	sorted := make([]float32, hw)
	counts := make([]int64, k)
	for i, m := range maps {
		if anomalous[i] {
			continue
		}
		copy(sorted, m)
		atOrAbove(sorted, thr, counts)
		for j, c := range counts {
			shared[j] += float64(c) / float64(hw)
		}
	}
	for j := range shared {
		shared[j] /= float64(normals)
	}
	hiIdx, err := closestFPR(shared, hi) // the lower threshold
	if err != nil {
		return r, err
	}
	loIdx, err := closestFPR(shared, lo)
	if err != nil {
		return r, err
	}
	if hiIdx >= loIdx {
		return r, ErrAUPIMORange
	}
	r.FPRLow, r.FPRHigh = shared[loIdx], shared[hiIdx]
	// The integration points, in increasing FPR (decreasing threshold), without log(0).
	var idx []int
	var x []float64
	for j := loIdx; j >= hiIdx; j-- {
		if l := math.Log(shared[j]); !math.IsInf(l, 0) && !math.IsNaN(l) {
			idx, x = append(idx, j), append(x, l)
		}
	}
	r.Points = len(idx)
	if r.Points <= 30 {
		return r, fmt.Errorf("%w: %d points", ErrAUPIMORange, r.Points)
	}
	norm := math.Log(hi / lo)
	r.Scores = make([]float64, len(maps))
	var sum float64
	for i, m := range maps {
		if !anomalous[i] {
			r.Scores[i] = math.NaN()
			continue
		}
		var pos []float32
		for p, v := range masks[i] {
			if v != 0 {
				pos = append(pos, m[p])
			}
		}
		atOrAbove(pos, thr, counts)
		y := func(j int) float64 { return float64(counts[idx[j]]) / float64(len(pos)) }
		var auc float64
		for j := 0; j+1 < len(idx); j++ {
			auc += (x[j+1] - x[j]) * (y(j+1) + y(j)) / 2
		}
		r.Scores[i] = min(max(auc/norm, 0), 1)
		sum += r.Scores[i]
	}
	r.Mean = sum / float64(anomalies)
	return r, nil
}

// linspace32 is numpy.linspace(lo, hi, k, dtype=float32): lo + j*step in float64 with step =
// (hi-lo)/(k-1), the last value hi, each rounded to float32.
func linspace32(lo, hi float64, k int) []float32 {
	out := make([]float32, k)
	step := (hi - lo) / float64(k-1)
	for j := range out {
		out[j] = float32(float64(j)*step + lo)
	}
	out[k-1] = float32(hi)
	return out
}

// atOrAbove sets counts[j] to the number of values at or above thr[j] (thr increasing); it sorts
// values.
func atOrAbove(values, thr []float32, counts []int64) {
	slices.Sort(values)
	below := 0
	for j, t := range thr {
		for below < len(values) && values[below] < t {
			below++
		}
		counts[j] = int64(len(values) - below)
	}
}

// closestFPR returns the first index of the shared FPR closest to level (numpy's argmin of the
// absolute difference); level must lie within the shared FPR's range.
func closestFPR(shared []float64, level float64) (int, error) {
	lo, hi := slices.Min(shared), slices.Max(shared)
	if level < lo || level > hi {
		return 0, fmt.Errorf("experiments: AUPIMO: FPR bound %v is outside the shared FPR's range [%v, %v]", level, lo, hi)
	}
	best, bi := math.Inf(1), 0
	for j, v := range shared {
		if d := math.Abs(v - level); d < best {
			best, bi = d, j
		}
	}
	return bi, nil
}
