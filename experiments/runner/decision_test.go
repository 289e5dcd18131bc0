package runner_test

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/datasets/synth"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/experiments"
	"github.com/softpatch/softpatch/experiments/runner"
)

// TestDecisionThreshold sets a holdout threshold at a 20% false-positive
// rate on a generated class (100 training and 100 normal test images,
// 64 px) and checks the rate it gives on the test normals: near the one
// asked for (measured 0.23; see docs/method.md#11-decision-threshold).
// The fitted model carries the same threshold, and predict decides with
// it.
func TestDecisionThreshold(t *testing.T) {
	class := generatedClass(t, "fabric", synth.Config{Size: 64, Train: 100, TestGood: 100, TestDefect: 4})
	root := class.Root
	cell, err := runner.NewCell(class, datasets.Noise{}, "patchcore", detector.Params{Coreset: 0.1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cell.Decision = experiments.DecisionConfig{Source: "auto", FPR: 0.2, Holdout: 0.2, Rounds: 5}
	b := openCPU(t, 72, 64, cell.Methods(), nil)
	co := runner.CellOptions{Batch: 8, FeatureMemoryMiB: 512}
	res, err := cell.Run(b, co)
	if err != nil {
		t.Fatal(err)
	}
	d := res.Decision
	if d == nil || d.Source != "holdout" || d.Images != 100 || d.Rounds != 5 || d.TestFPR == nil || d.TestFNR == nil {
		t.Fatalf("decision %+v", d)
	}
	// 100 test normals: one binomial standard deviation at 0.2 is 0.04.
	if math.Abs(*d.TestFPR-0.2) > 0.1 {
		t.Errorf("false-positive rate %.3f on the test normals, asked for 0.2", *d.TestFPR)
	}
	var normals, above int
	for _, s := range res.PerImage {
		if s.Label == 0 {
			normals++
			if float64(s.Score) > d.Threshold {
				above++
			}
		}
	}
	if normals != 100 || float64(above)/float64(normals) != *d.TestFPR {
		t.Errorf("%d of %d normals above the threshold, the cell says %v", above, normals, *d.TestFPR)
	}
	t.Logf("threshold %.4f: test false-positive rate %.3f, false-negative rate %.3f", d.Threshold, *d.TestFPR, *d.TestFNR)

	det, meta, err := cell.Fit(b, co)
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(t.TempDir(), "fabric.model")
	err = detector.SaveFile(model, det, meta)
	det.Close()
	if err != nil {
		t.Fatal(err)
	}
	if meta.Decision == nil || meta.Decision.Threshold != d.Threshold {
		t.Fatalf("the model's decision %+v, the cell's threshold %v", meta.Decision, d.Threshold)
	}
	images := []string{filepath.Join(root, res.PerImage[0].File), filepath.Join(root, res.PerImage[len(res.PerImage)-1].File)}
	pred, err := runner.Predict(images, runner.PredictOptions{Model: model, Out: t.TempDir(), Batch: 8, Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	if pred.Decision == nil || pred.Decision.Threshold != d.Threshold {
		t.Fatalf("predict's decision %+v", pred.Decision)
	}
	for _, s := range pred.Scores {
		if s.Anomalous == nil || *s.Anomalous != (float64(s.Score) > d.Threshold) {
			t.Errorf("%s: score %v, threshold %v, decision %v", s.File, s.Score, d.Threshold, s.Anomalous)
		}
	}
}
