// Package experiments plans and keeps the paper's experiments: the
// metrics of docs/method.md#7-metrics (metrics.go), the sweep config
// (config.go), the cell plan and its shards (plan.go) and the results
// store (store.go).
package experiments

import (
	"errors"
	"fmt"
	"math/bits"
)

// Errors of the metrics. Inputs that sklearn or the MVTec AD evaluation code reject (or for
// which they return NaN) are reported as errors here; no metric returns NaN.
var (
	// ErrNoScores: no scores (or no pixels) were given.
	ErrNoScores = errors.New("experiments: no scores")
	// ErrNaN: a score is NaN (sklearn raises "Input contains NaN").
	ErrNaN = errors.New("experiments: a score is NaN")
	// ErrOneClass: the labels hold only one class, so the ROC curve (and the FPR of the PRO
	// curve) is undefined; sklearn's roc_auc_score raises "Only one class present in y_true".
	ErrOneClass = errors.New("experiments: only one class present in the labels; ROC AUC is not defined")
	// ErrNoPositives: F1 needs at least one positive (sklearn's recall would be 0/0).
	ErrNoPositives = errors.New("experiments: no positive labels; F1 is not defined")
	// ErrTooMany: 2^32 or more scores (the exact integer arithmetic would overflow).
	ErrTooMany = errors.New("experiments: 2^32 or more scores")
)

// Curve is the ROC / precision-recall curve of scores against binary labels, one operating point
// per distinct score, as sklearn's _binary_clf_curve computes it: the classifier "score >=
// Thresholds[i]" has TP[i] true and FP[i] false positives. Thresholds decrease strictly, so TP and
// FP increase (not strictly); equal scores form one step (ties are one ROC segment). The last
// point holds every sample: TP[last] = P and FP[last] = N. Scores compare as float32 values, so
// -0 and +0 are one threshold; ±Inf are ordinary extreme scores (sklearn would reject them).
type Curve struct {
	Thresholds []float32 // distinct scores, decreasing
	TP, FP     []int64   // positives / negatives with score >= Thresholds[i]
	P, N       int64     // positives and negatives in all
}

// NewCurve sorts the scores once (a radix sort on a 64-bit key) and builds their Curve; labels[i]
// is true for an anomalous (positive) sample. It fails on empty or mismatched inputs and on NaN
// scores; a single class is accepted here (AUROC reports it, F1Max needs positives only).
func NewCurve(scores []float32, labels []bool) (*Curve, error) {
	if len(scores) != len(labels) {
		return nil, fmt.Errorf("experiments: %d scores but %d labels", len(scores), len(labels))
	}
	if len(scores) == 0 {
		return nil, ErrNoScores
	}
	if uint64(len(scores)) >= 1<<32 {
		return nil, ErrTooMany
	}
	keys := make([]uint64, len(scores))
	for i, s := range scores {
		if s != s {
			return nil, ErrNaN
		}
		var l uint64
		if labels[i] {
			l = 1
		}
		keys[i] = uint64(scoreKey(s))<<32 | l
	}
	sortByScore(keys)
	c := &Curve{}
	var tp, fp int64
	for i := len(keys) - 1; i >= 0; {
		hk := keys[i] >> 32
		for ; i >= 0 && keys[i]>>32 == hk; i-- {
			if keys[i]&1 != 0 {
				tp++
			} else {
				fp++
			}
		}
		c.Thresholds = append(c.Thresholds, keyScore(uint32(hk)))
		c.TP = append(c.TP, tp)
		c.FP = append(c.FP, fp)
	}
	c.P, c.N = tp, fp
	return c, nil
}

// AUROC is the exact trapezoidal area under the ROC curve (FPR = FP/N on x, TPR = TP/P on y,
// starting at (0,0)), equal to sklearn.metrics.roc_auc_score: tied scores form one diagonal
// step. The area is summed in integers (twice the area times P*N) and divided once, so the
// result is the correctly rounded exact value. It fails with ErrOneClass when P or N is zero.
func (c *Curve) AUROC() (float64, error) {
	if c.P == 0 || c.N == 0 {
		return 0, ErrOneClass
	}
	var a rocArea
	var ptp, pfp int64
	for i := range c.TP {
		a.add(c.FP[i]-pfp, c.TP[i]+ptp)
		ptp, pfp = c.TP[i], c.FP[i]
	}
	return a.value(c.P, c.N), nil
}

// F1Max is the best F1 = 2PR/(P+R) over the thresholds of sklearn's precision_recall_curve (one
// per distinct score; the extra (P=1, R=0) point has F1 0), computed as 2TP/(TP+FP+P). threshold
// is the lowest score reaching the maximum (np.argmax over sklearn's increasing thresholds):
// predicting "score >= threshold" as anomalous attains f1. It fails with ErrNoPositives when
// there are no positives; without negatives it is 1.
func (c *Curve) F1Max() (f1 float64, threshold float32, err error) {
	if c.P == 0 {
		return 0, 0, ErrNoPositives
	}
	var b f1Best
	for i := range c.TP {
		b.add(c.TP[i], c.FP[i], c.P, c.Thresholds[i])
	}
	return b.value(), b.thr, nil
}

// AP is the average precision, sklearn's average_precision_score: the sum over the thresholds of
// (R_i - R_{i-1}) P_i, recall R and precision P = TP/(TP+FP) of "score >= Thresholds[i]" (a
// step function, not the trapezoid). It fails with ErrNoPositives when there are no positives.
func (c *Curve) AP() (float64, error) {
	if c.P == 0 {
		return 0, ErrNoPositives
	}
	var a apSum
	var ptp int64
	for i := range c.TP {
		a.add(c.TP[i]-ptp, c.TP[i], c.FP[i])
		ptp = c.TP[i]
	}
	return a.value(c.P), nil
}

// AP is the average precision of scores against labels (true = anomalous); see Curve.AP.
func AP(scores []float32, labels []bool) (float64, error) {
	c, err := NewCurve(scores, labels)
	if err != nil {
		return 0, err
	}
	return c.AP()
}

// apSum accumulates the average precision's sum times P: each threshold's new true positives
// times its precision.
type apSum struct{ s float64 }

func (a *apSum) add(dtp, tp, fp int64) {
	if dtp > 0 {
		a.s += float64(dtp) * (float64(tp) / float64(tp+fp))
	}
}

func (a *apSum) value(p int64) float64 { return a.s / float64(p) }

// AUROC is the image-level (or any) ROC area of scores against labels (true = anomalous), with
// sklearn's roc_auc_score semantics; see Curve.AUROC. Errors: ErrNoScores, ErrNaN, length
// mismatch, and ErrOneClass when only one class is present (where sklearn raises ValueError).
func AUROC(scores []float32, labels []bool) (float64, error) {
	c, err := NewCurve(scores, labels)
	if err != nil {
		return 0, err
	}
	return c.AUROC()
}

// F1Max is the best F1 over all thresholds of scores against labels (true = anomalous) and the
// threshold reaching it; see Curve.F1Max.
func F1Max(scores []float32, labels []bool) (f1 float64, threshold float32, err error) {
	c, err := NewCurve(scores, labels)
	if err != nil {
		return 0, 0, err
	}
	return c.F1Max()
}

// DefaultFPRLimit is the FPR up to which AUPRO integrates (docs/method.md#7-metrics).
const DefaultFPRLimit = 0.3

// PixelMetrics are the pixel-level metrics of one class, from EvaluatePixels.
type PixelMetrics struct {
	AUROC       float64 // pixel AUROC over every pixel of every image (roc_auc_score semantics)
	F1Max       float64 // pixel F1-max (precision_recall_curve semantics)
	F1Threshold float32 // the lowest pixel score reaching F1Max
	AP          float64 // pixel average precision (average_precision_score semantics)
	AUPRO       float64 // area under the PRO curve up to FPR FPRLimit, divided by FPRLimit
	FPRLimit    float64 // the integration limit used
	Pixels      int64   // all pixels
	Anomalous   int64   // pixels with a non-zero mask value (the positives)
	Regions     int     // 8-connected ground-truth regions over all images
}

// EvaluatePixels computes pixel AUROC, pixel F1-max, pixel AP and AUPRO of anomaly maps against
// ground-truth masks with a single sort of all pixel scores.
//
// Layout: maps[i] is image i's anomaly map, h*w float32 values in row-major order (pixel (y, x)
// at index y*w+x); masks[i] is its ground truth in the same layout, 0 for a normal pixel and any
// non-zero value (1) for an anomalous one; a nil mask is an all-normal (good) image. Every image
// has the same h and w.
//
// AUPRO follows the MVTec AD evaluation code (compute_pro and generic_util.trapezoid): the
// regions are the connected components of each mask with 8-connectivity (scipy.ndimage.label
// with a 3x3 structure of ones); at each distinct score threshold t (pixels with score >= t are
// positive) the PRO is the mean over all regions of all images of the fraction of the region's
// pixels that are positive, and the FPR is the fraction of the normal pixels of all images that
// are positive. The curve (0,0), the per-threshold points, (1,1) is integrated with the
// trapezoidal rule up to fprLimit, with the PRO at fprLimit linearly interpolated between its
// neighbours, and divided by fprLimit. Differences from the reference code: FPRs are exact
// float64 ratios (the reference rounds them to float32, a change below 1e-6 in AUPRO), and
// tied scores are merged into one point exactly as there.
//
// Memory: 16 bytes per pixel while sorting (a 64-bit key per pixel and the radix buffer) plus
// 4 bytes per pixel of one image. Errors: ErrNoScores, ErrNaN, shape mismatches, fprLimit outside
// (0, 1], and ErrOneClass when there are no anomalous or no normal pixels (the MVTec code would
// produce NaN).
func EvaluatePixels(maps [][]float32, masks [][]uint8, h, w int, fprLimit float64) (PixelMetrics, error) {
	var r PixelMetrics
	if len(maps) != len(masks) {
		return r, fmt.Errorf("experiments: %d maps but %d masks", len(maps), len(masks))
	}
	if h <= 0 || w <= 0 {
		return r, fmt.Errorf("experiments: map size %dx%d", h, w)
	}
	if !(fprLimit > 0 && fprLimit <= 1) {
		return r, fmt.Errorf("experiments: FPR limit %v outside (0, 1]", fprLimit)
	}
	hw := h * w
	n := uint64(len(maps)) * uint64(hw)
	if n == 0 {
		return r, ErrNoScores
	}
	if n >= 1<<32 {
		return r, ErrTooMany
	}
	keys := make([]uint64, n)
	lab := make([]uint32, hw)
	var stack []int32
	sizes := []int64{0} // sizes[region]; region 0 is "normal"
	for i, m := range maps {
		if len(m) != hw {
			return r, fmt.Errorf("experiments: map %d has %d values, want %d", i, len(m), hw)
		}
		mk := masks[i]
		if mk != nil && len(mk) != hw {
			return r, fmt.Errorf("experiments: mask %d has %d values, want %d", i, len(mk), hw)
		}
		if mk == nil {
			clear(lab)
		} else {
			var err error
			if sizes, stack, err = label8(mk, h, w, lab, sizes, stack); err != nil {
				return r, err
			}
		}
		k := keys[i*hw : (i+1)*hw]
		for j, s := range m {
			if s != s {
				return r, ErrNaN
			}
			k[j] = uint64(scoreKey(s))<<32 | uint64(lab[j])
		}
	}
	var pos int64
	for _, s := range sizes[1:] {
		pos += s
	}
	r.Pixels, r.Anomalous, r.Regions, r.FPRLimit = int64(n), pos, len(sizes)-1, fprLimit
	neg := int64(n) - pos
	if pos == 0 || neg == 0 {
		return r, ErrOneClass
	}
	inv := make([]float64, len(sizes))
	for i := 1; i < len(sizes); i++ {
		inv[i] = 1 / float64(sizes[i])
	}
	sizes = nil
	sortByScore(keys)

	var (
		roc        rocArea
		f1         f1Best
		ap         apSum
		pro        proArea
		tp, fp     int64
		ptp, pfp   int64
		overlap    float64 // sum over regions of (positive pixels / region size)
		regions    = float64(r.Regions)
		negatives  = float64(neg)
		proPending = true
	)
	pro.limit = fprLimit
	for i := len(keys) - 1; i >= 0; {
		hk := keys[i] >> 32
		for ; i >= 0 && keys[i]>>32 == hk; i-- {
			if reg := uint32(keys[i]); reg == 0 {
				fp++
			} else {
				tp++
				overlap += inv[reg]
			}
		}
		roc.add(fp-pfp, tp+ptp)
		f1.add(tp, fp, pos, keyScore(uint32(hk)))
		ap.add(tp-ptp, tp, fp)
		if proPending {
			proPending = pro.add(float64(fp)/negatives, min(overlap/regions, 1))
		}
		ptp, pfp = tp, fp
	}
	if proPending {
		pro.add(1, 1)
	}
	r.AUROC = roc.value(pos, neg)
	r.F1Max, r.F1Threshold = f1.value(), f1.thr
	r.AP = ap.value(pos)
	r.AUPRO = pro.area / fprLimit
	return r, nil
}

// AUPRO is EvaluatePixels(maps, masks, h, w, fprLimit).AUPRO; use EvaluatePixels to get the
// pixel AUROC and F1-max from the same sort.
func AUPRO(maps [][]float32, masks [][]uint8, h, w int, fprLimit float64) (float64, error) {
	r, err := EvaluatePixels(maps, masks, h, w, fprLimit)
	return r.AUPRO, err
}

// rocArea accumulates twice the ROC area times P*N as a 128-bit integer.
type rocArea struct{ hi, lo uint64 }

// add adds the trapezoid of one ROC step: dfp new negatives at height sum tpSum = TP+TPprev.
func (a *rocArea) add(dfp, tpSum int64) {
	h, l := bits.Mul64(uint64(dfp), uint64(tpSum))
	var c uint64
	a.lo, c = bits.Add64(a.lo, l, 0)
	a.hi += h + c
}

// value divides the accumulated area by 2*P*N.
func (a *rocArea) value(p, n int64) float64 {
	num := float64(a.hi)*0x1p64 + float64(a.lo)
	return num / (2 * float64(p) * float64(n))
}

// f1Best tracks the largest F1 = 2TP/(TP+FP+P) with exact rational comparisons.
type f1Best struct {
	num, den uint64 // best F1 = num/den; den 0 until the first point
	thr      float32
}

// add offers the operating point "score >= thr" with tp and fp positives; ties go to the later
// (lower) threshold.
func (b *f1Best) add(tp, fp, p int64, thr float32) {
	num, den := 2*uint64(tp), uint64(tp+fp+p)
	if b.den != 0 {
		h1, l1 := bits.Mul64(num, b.den)
		h2, l2 := bits.Mul64(b.num, den)
		if h1 < h2 || h1 == h2 && l1 < l2 {
			return
		}
	}
	b.num, b.den, b.thr = num, den, thr
}

// value is the best F1 as a float64.
func (b *f1Best) value() float64 { return float64(b.num) / float64(b.den) }

// proArea integrates a PRO curve fed point by point in increasing FPR, starting at (0,0), with
// generic_util.trapezoid's cut at limit.
type proArea struct {
	limit, x, y, area float64
}

// add adds the segment to (x, y); it returns false once the limit has been passed (the segment
// that crosses it is cut at the limit with a linearly interpolated PRO).
func (p *proArea) add(x, y float64) bool {
	if x <= p.limit {
		p.area += 0.5 * (y + p.y) * (x - p.x)
		p.x, p.y = x, y
		return true
	}
	yi := p.y + (y-p.y)*(p.limit-p.x)/(x-p.x)
	p.area += 0.5 * (yi + p.y) * (p.limit - p.x)
	return false
}
