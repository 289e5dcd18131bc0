package detector

import (
	"math"
	"testing"
)

func TestNewDecision(t *testing.T) {
	// 10 scores; fpr 0.2 allows m = 2 above the threshold: the third
	// highest, 8.
	scores := []float32{3, 9, 1, 8, 2, 10, 4, 7, 6, 5}
	d, err := NewDecision(scores, 0.2, "holdout")
	if err != nil || d.Threshold != 8 || d.Images != 10 || d.FPR != 0.2 || d.Source != "holdout" {
		t.Fatalf("%+v %v", d, err)
	}
	fpr, fnr := d.Rates(scores, make([]bool, len(scores)))
	if fpr != 0.2 || !math.IsNaN(fnr) {
		t.Errorf("rates on its own scores: %v %v", fpr, fnr)
	}
	// fpr 0.05 of 10 images: m = 0, the highest score; 0: also the
	// highest (nothing above it).
	for _, f := range []float64{0.05, 0} {
		if d, _ := NewDecision(scores, f, "x"); d.Threshold != 10 {
			t.Errorf("fpr %v: threshold %v", f, d.Threshold)
		}
	}
	// fpr 0.29: m = floor(2.9) = 2 still.
	if d, _ := NewDecision(scores, 0.29, "x"); d.Threshold != 8 {
		t.Errorf("fpr 0.29: threshold %v", d.Threshold)
	}
	// Ties: the threshold is a tied value, so fewer than m score above.
	if d, _ := NewDecision([]float32{1, 5, 5, 5, 2}, 0.4, "x"); d.Threshold != 5 || d.Anomalous(5) || !d.Anomalous(5.0001) {
		t.Errorf("ties: %+v", d)
	}
	// Rates with both labels: threshold 8; normals 3, 9 (one above),
	// anomalies 8 (not above: a false negative), 10.
	fpr, fnr = d.Rates([]float32{3, 9, 8, 10}, []bool{false, false, true, true})
	if fpr != 0.5 || fnr != 0.5 {
		t.Errorf("rates %v %v", fpr, fnr)
	}
	for _, bad := range []struct {
		s   []float32
		fpr float64
	}{{nil, 0.1}, {scores, 1}, {scores, -0.1}, {scores, math.NaN()}, {[]float32{1, float32(math.NaN())}, 0.1}, {[]float32{float32(math.Inf(1))}, 0.1}} {
		if _, err := NewDecision(bad.s, bad.fpr, "x"); err == nil {
			t.Errorf("%v at %v accepted", bad.s, bad.fpr)
		}
	}
}
