package main

import (
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/experiments"
	"github.com/softpatch/softpatch/experiments/runner"
	"github.com/softpatch/softpatch/internal/npy"
)

// TestFitPredict fits a model on a tiny generated class with a random-init
// backbone at 64 px, predicts on test images, and checks the outputs; a
// model whose recorded backbone differs is refused.
func TestFitPredict(t *testing.T) {
	dir, data := nutClass(t, 6, 1, 2)
	model := filepath.Join(dir, "nut.model")
	if err := runFit([]string{"--data", data, "--class", "nut", "--method", "softpatch-lof", "--noise", "0.34", "--overlap",
		"--resize", "72", "--imagesize", "64", "--coreset", "0.25", "--out", model}); err != nil {
		t.Fatal(err)
	}
	m, meta, err := detector.LoadModelFile(model)
	if err != nil {
		t.Fatal(err)
	}
	if d, _, err := experiments.ReadDraws(model + ".draws.npz"); err != nil || len(d.Detector.CoresetStartPoints) != 128 || len(d.NoiseFiles) != 2 {
		t.Errorf("fit's draws: %v", err)
	}
	// fit holds every training image out once for its threshold.
	if d := meta.Decision; d == nil || d.Source != "holdout" || d.Rounds != 5 || d.Images != meta.Train || d.FPR != 0.01 {
		t.Errorf("the model's decision %+v (%d training images)", d, meta.Train)
	}
	if !meta.Backbone.RandomInit || meta.ImageSize != 64 || meta.Resize != 72 || meta.GridH*meta.GridW != 64 ||
		!slices.Equal(meta.Layers, []string{"layer2", "layer3"}) || meta.Method != "softpatch-lof" || len(meta.NoiseFiles) != 2 ||
		m.N != 8*64/4 || m.Weights == nil {
		t.Errorf("model N=%d, meta %+v", m.N, meta)
	}

	images, err := filepath.Glob(filepath.Join(data, "nut", "test", "*", "*.png"))
	if err != nil || len(images) != 3 {
		t.Fatalf("test images %v %v", images, err)
	}
	out := filepath.Join(dir, "pred")
	r := predict(t, model, out, 2, images)
	if len(r.Scores) != 3 || r.Mark != runner.RandomInitMark || !r.Backbone.RandomInit || !(r.MapMax >= r.MapMin) {
		t.Fatalf("scores.json %+v", r)
	}
	for i, s := range r.Scores {
		if s.File != images[i] || !(s.Score >= 0) {
			t.Errorf("entry %+v for %s", s, images[i])
		}
		a, err := npy.ReadFile(filepath.Join(out, s.Map))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a.Shape, []int{64, 64}) || len(a.F32) != 64*64 {
			t.Errorf("%s: shape %v", s.Map, a.Shape)
		}
		f, err := os.Open(filepath.Join(out, s.Overlay))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", s.Overlay, err)
		}
		if bd := img.Bounds(); bd.Dx() != 64 || bd.Dy() != 64 {
			t.Errorf("%s: %v", s.Overlay, bd)
		}
	}

	// Same model, recorded as fitted with another random-init seed.
	meta.Backbone.Seed = 7
	bad := filepath.Join(dir, "bad.model")
	if err := m.SaveFile(bad, meta); err != nil {
		t.Fatal(err)
	}
	err = runPredict([]string{"--model", bad, "--out", filepath.Join(dir, "pred2"), images[0]})
	if err == nil || !strings.Contains(err.Error(), "backbone mismatch") || !strings.Contains(err.Error(), "seed 7") ||
		!strings.Contains(err.Error(), "seed 0") {
		t.Errorf("mismatching backbone: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pred2", "scores.json")); err == nil {
		t.Error("mismatching backbone wrote scores")
	}
	if err := runPredict([]string{"--model", filepath.Join(dir, "none.model"), "--out", out, images[0]}); err == nil ||
		!strings.Contains(err.Error(), "none.model") {
		t.Errorf("missing model: %v", err)
	}
	if err := runFit([]string{"--data", data, "--class", "nut", "--method", "magic", "--out", model}); err == nil {
		t.Error("unknown method accepted")
	}
}

// predict runs softpatch predict with model on images into out, batch
// images at a time, and returns its scores.json.
func predict(t *testing.T, model, out string, batch int, images []string) runner.Predictions {
	t.Helper()
	if err := runPredict(append([]string{"--model", model, "--out", out, "--batch", fmt.Sprint(batch)}, images...)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "scores.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r runner.Predictions
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}
