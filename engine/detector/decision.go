package detector

import (
	"fmt"
	"math"
	"slices"
)

// Decision is a fitted model's yes/no rule for inspection: an image is
// anomalous when its score is above Threshold. The threshold is set
// without anomalous images, from scores of normal images the model did
// not see when it was fitted (NewDecision), at the false-positive rate
// FPR asked for; it travels in the model file (Meta.Decision).
type Decision struct {
	Threshold float64 `json:"threshold"`
	// FPR is the false-positive rate on normal images that the threshold
	// was set for.
	FPR float64 `json:"fpr"`
	// Source says which normal images set it: "holdout" (training images
	// held out of fits of the same method, see docs/method.md) or
	// "validation" (a validation split of normal images, MVTec AD 2's), or
	// "given" (by the user at predict time).
	Source string `json:"source"`
	// Images is the number of normal-image scores the threshold was
	// taken from, and Rounds the number of held-out parts they came from
	// (holdout only).
	Images int `json:"images"`
	Rounds int `json:"rounds,omitempty"`
}

// NewDecision sets the threshold from the scores of normal images at the
// false-positive rate fpr in [0, 1): with m = floor(fpr*n) of n scores,
// the threshold is the (m+1)-th highest score, so that at most m of the
// n images (exactly m without ties) score above it. With fewer than
// 1/fpr images, m is 0 and the threshold is the highest score. NaN or
// infinite scores are an error.
func NewDecision(scores []float32, fpr float64, source string) (Decision, error) {
	if len(scores) == 0 {
		return Decision{}, fmt.Errorf("detector: decision threshold: no normal-image scores")
	}
	if !(fpr >= 0 && fpr < 1) {
		return Decision{}, fmt.Errorf("detector: decision threshold: false-positive rate %v is not in [0, 1)", fpr)
	}
	s := make([]float64, len(scores))
	for i, v := range scores {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return Decision{}, fmt.Errorf("detector: decision threshold: normal image %d scored %v", i, v)
		}
		s[i] = float64(v)
	}
	slices.Sort(s)
	m := int(math.Floor(fpr * float64(len(s))))
	return Decision{Threshold: s[len(s)-1-m], FPR: fpr, Source: source, Images: len(s)}, nil
}

// Anomalous reports the decision on an image that scored score.
func (d Decision) Anomalous(score float32) bool { return float64(score) > d.Threshold }

// Rates returns the false-positive rate on the normal images and the
// false-negative rate on the anomalous ones (labels true) of scores under
// d, NaN for a rate without images to count.
func (d Decision) Rates(scores []float32, anomalous []bool) (fpr, fnr float64) {
	var fp, neg, fn, pos int
	for i, s := range scores {
		if anomalous[i] {
			pos++
			if !d.Anomalous(s) {
				fn++
			}
		} else {
			neg++
			if d.Anomalous(s) {
				fp++
			}
		}
	}
	fpr, fnr = math.NaN(), math.NaN()
	if neg > 0 {
		fpr = float64(fp) / float64(neg)
	}
	if pos > 0 {
		fnr = float64(fn) / float64(pos)
	}
	return fpr, fnr
}
