package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/datasets/synth"
	"github.com/softpatch/softpatch/experiments"
	"github.com/softpatch/softpatch/experiments/runner"
)

// TestEvalRunsOneCell runs `softpatch eval` end to end on a tiny generated
// class with a random-init backbone at 64 px: the JSON must carry the
// metrics, one entry per test image, the noise draw and the random-init mark.
func TestEvalRunsOneCell(t *testing.T) {
	dir, data := nutClass(t, 6, 2, 3)
	out := filepath.Join(dir, "cell.json")
	err := runEval([]string{"--data", data, "--class", "nut", "--method", "softpatch-lof", "--noise", "0.34", "--overlap",
		"--resize", "72", "--imagesize", "64", "--coreset", "0.25", "--json", out})
	if err != nil {
		t.Fatal(err)
	}
	r := readCell(t, out)
	if r.Mark != runner.RandomInitMark || len(r.PerImage) != 5 || r.Train != 8 || len(r.NoiseDrawn) != 2 || r.BankSize != 8*64/4 {
		t.Errorf("cell %+v", r)
	}
	for name, v := range map[string]float64{"image_auroc": r.ImageAUROC, "pixel_auroc": r.PixelAUROC, "aupro": r.AUPRO} {
		if !(v >= 0 && v <= 1) {
			t.Errorf("%s = %v", name, v)
		}
	}
	for _, s := range []string{"features", "discriminator", "coreset", "scoring", "maps", "metrics"} {
		if _, ok := r.Seconds[s]; !ok {
			t.Errorf("no time for stage %s", s)
		}
	}

	// With 1 MiB of features in memory (of 2 MiB) the rest is spilled to a
	// temporary file, which must change nothing and leave nothing behind.
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp)
	out2 := filepath.Join(dir, "cell2.json")
	err = runEval([]string{"--data", data, "--class", "nut", "--method", "softpatch-lof", "--noise", "0.34", "--overlap",
		"--resize", "72", "--imagesize", "64", "--coreset", "0.25", "--feature-memory", "1", "--json", out2})
	if err != nil {
		t.Fatal(err)
	}
	r2 := readCell(t, out2)
	if r2.PixelAUROC != r.PixelAUROC || r2.AUPRO != r.AUPRO || !slices.Equal(r2.PerImage, r.PerImage) {
		t.Errorf("spilled features changed the cell: %v vs %v", r2.PerImage, r.PerImage)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("%d files left in TMPDIR", len(left))
	}
	if err := runEval([]string{"--data", data, "--class", "nut", "--method", "magic", "--json", out}); err == nil {
		t.Error("unknown method accepted")
	}
}

// TestEvalFitCheckFirst checks what eval and fit refuse before computing
// anything: an output path that cannot be written and detector values
// that a config would reject too (--lof-k 0, --coreset 1).
func TestEvalFitCheckFirst(t *testing.T) {
	_, data := nutClass(t, 3, 1, 1)
	missing := filepath.Join(t.TempDir(), "no", "such", "dir", "x.json")
	for _, c := range []struct {
		verb func([]string) error
		args []string
		want string
	}{
		{runEval, []string{"--json", missing}, "cannot write " + missing},
		{runFit, []string{"--out", missing}, "cannot write " + missing},
		{runEval, []string{"--lof-k", "0", "--json", filepath.Join(t.TempDir(), "x.json")}, "--lof-k 0 is not at least 1"},
		{runFit, []string{"--coreset", "1", "--out", filepath.Join(t.TempDir(), "x.model")}, "--coreset 1 is not in (0, 1)"},
	} {
		err := c.verb(append([]string{"--data", data, "--class", "nut"}, c.args...))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}

// nutClass writes a generated "nut" class of 64 px images (train training,
// good and defect test images) under a fresh directory in which no weights
// are found (withoutWeights); it returns the directory and the dataset.
func nutClass(t *testing.T, train, good, defect int) (dir, data string) {
	t.Helper()
	dir = withoutWeights(t)
	data = filepath.Join(dir, "data")
	cfg := synth.Config{Classes: []string{"nut"}, Size: 64, Train: train, TestGood: good, TestDefect: defect}
	if err := synth.Generate(data, cfg, nil); err != nil {
		t.Fatal(err)
	}
	return dir, data
}

// readCell reads a cell's JSON written by eval.
func readCell(t *testing.T, path string) experiments.Result {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r experiments.Result
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestEvalSkipBad removes a mask: eval fails naming the image, and with
// --skip-bad leaves the image out and runs.
func TestEvalSkipBad(t *testing.T) {
	dir, data := nutClass(t, 4, 1, 3)
	masks, err := filepath.Glob(filepath.Join(data, "nut", "ground_truth", "*", "*.png"))
	if err != nil || len(masks) == 0 {
		t.Fatalf("masks %v %v", masks, err)
	}
	if err := os.Remove(masks[0]); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "cell.json")
	args := []string{"--data", data, "--class", "nut", "--method", "patchcore", "--resize", "72", "--imagesize", "64", "--json", out}
	if err := runEval(args); err == nil || !strings.Contains(err.Error(), "mask") {
		t.Fatalf("a missing mask: %v", err)
	}
	if err := runEval(append(args, "--skip-bad")); err != nil {
		t.Fatal(err)
	}
	if r := readCell(t, out); r.Test != 3 {
		t.Errorf("%d test images, want 3 (one left out)", r.Test)
	}
}
