package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/softpatch/softpatch/datasets/synth"
)

// TestEvalRunsOneCell runs `softpatch eval` end to end on a tiny generated
// class with a random-init backbone at 64 px: the JSON must carry the
// metrics, one entry per test image, the noise draw and the random-init mark.
func TestEvalRunsOneCell(t *testing.T) {
	dir := withoutWeights(t)
	data := filepath.Join(dir, "data")
	if err := synth.Generate(data, synth.Config{Classes: []string{"nut"}, Size: 64, Train: 6, TestGood: 2, TestDefect: 3}, nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "cell.json")
	err := runEval([]string{"--data", data, "--class", "nut", "--method", "softpatch-lof", "--noise", "0.34", "--overlap",
		"--resize", "72", "--imagesize", "64", "--coreset", "0.25", "--json", out})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r evalResult
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Mark != randomInitMark || len(r.PerImage) != 5 || r.Train != 8 || len(r.NoiseDrawn) != 2 || r.BankSize != 8*64/4 {
		t.Errorf("cell %s", b)
	}
	for name, v := range map[string]float64{"image_auroc": r.ImageAUROC, "pixel_auroc": r.PixelAUROC, "aupro": r.AUPRO} {
		if !(v >= 0 && v <= 1) {
			t.Errorf("%s = %v", name, v)
		}
	}
	for _, s := range []string{"features", "fit", "scoring", "maps", "metrics"} {
		if _, ok := r.Seconds[s]; !ok {
			t.Errorf("no time for stage %s", s)
		}
	}
	if err := runEval([]string{"--data", data, "--class", "nut", "--method", "magic", "--json", out}); err == nil {
		t.Error("unknown method accepted")
	}
}
