package runner_test

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/datasets/synth"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/engine/knn"
	"github.com/softpatch/softpatch/experiments"
	"github.com/softpatch/softpatch/experiments/runner"
)

// TestPrunedSearchSameScores runs one SoftPatch cell on a generated class
// with the pruned exact search and with the brute force, and checks that
// every image score and every metric is the same bit for bit, with fewer
// distances computed; then fits a model (whose file stores the principal
// coordinates) and scores test images with predict as fitted and with
// --knn brute: the same scores, and byte-identical anomaly maps.
func TestPrunedSearchSameScores(t *testing.T) {
	class := generatedClass(t, "wood", synth.Config{Size: 96, Train: 40, TestGood: 6, TestDefect: 10})
	b := openCPU(t, 104, 96, []string{"softpatch-lof"}, nil)
	co := runner.CellOptions{Batch: 8, FeatureMemoryMiB: 512}
	run := func(search knn.Mode) *experiments.Result {
		cell, err := runner.NewCell(class, datasets.Noise{Ratio: 0.1, Overlap: true}, "softpatch-lof",
			detector.Params{Coreset: 0.5, Threshold: 0.15, LOFK: 5, Search: search}, nil)
		if err != nil {
			t.Fatal(err)
		}
		cell.Decision = experiments.DecisionConfig{Source: "none"}
		res, err := cell.Run(b, co)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	pruned, brute := run(knn.Pruned), run(knn.Brute)
	if pruned.KNN == nil || pruned.KNN.Search != "exact" || !(pruned.KNN.Computed < 0.7) {
		t.Errorf("pruned cell's search record %+v, want exact with most distances skipped", pruned.KNN)
	}
	if brute.KNN == nil || brute.KNN.Search != "brute" || brute.KNN.Computed != 1 {
		t.Errorf("brute-force cell's search record %+v", brute.KNN)
	}
	t.Logf("bank %d entries, %d test images: %.3f of the distances computed", pruned.BankSize, pruned.Test, pruned.KNN.Computed)
	if len(pruned.PerImage) != len(brute.PerImage) || len(pruned.PerImage) == 0 {
		t.Fatalf("%d and %d images", len(pruned.PerImage), len(brute.PerImage))
	}
	for i, p := range pruned.PerImage {
		if math.Float32bits(p.Score) != math.Float32bits(brute.PerImage[i].Score) {
			t.Errorf("%s: score %v pruned, %v brute force", p.File, p.Score, brute.PerImage[i].Score)
		}
	}
	for _, m := range []string{"image_auroc", "pixel_auroc", "aupro", "pixel_ap"} {
		a, _ := pruned.Metric(m)
		c, _ := brute.Metric(m)
		if a != c {
			t.Errorf("%s: %v pruned, %v brute force", m, a, c)
		}
	}

	// A fitted model keeps its principal coordinates; predict's maps are
	// the same with and without them.
	cell, err := runner.NewCell(class, datasets.Noise{}, "softpatch-lof", detector.Params{Coreset: 0.5, Threshold: 0.15, LOFK: 5, Search: knn.Pruned}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cell.Decision = experiments.DecisionConfig{Source: "none"}
	det, meta, err := cell.Fit(b, co)
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(t.TempDir(), "wood.model")
	err = detector.SaveFile(model, det, meta)
	det.Close()
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := detector.LoadModelFile(model)
	if err != nil {
		t.Fatal(err)
	}
	if m.Principal == nil || m.Config.Search != knn.Pruned {
		t.Fatalf("the model file has principal coordinates %v, search %v", m.Principal != nil, m.Config.Search)
	}
	var images []string
	for _, it := range class.Test {
		images = append(images, it.Path)
	}
	bruteMode := knn.Brute
	outs := map[string]string{}
	preds := map[string]*runner.Predictions{}
	for name, search := range map[string]*knn.Mode{"exact": nil, "brute": &bruteMode} {
		outs[name] = t.TempDir()
		if preds[name], err = runner.Predict(images, runner.PredictOptions{Model: model, Out: outs[name], Batch: 8, Device: "cpu", Search: search}); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range preds["exact"].Scores {
		if o := preds["brute"].Scores[i]; math.Float32bits(s.Score) != math.Float32bits(o.Score) {
			t.Errorf("predict %s: score %v pruned, %v brute force", s.File, s.Score, o.Score)
		}
	}
	maps, _ := filepath.Glob(filepath.Join(outs["exact"], "*_map.npy"))
	if len(maps) != len(images) {
		t.Fatalf("%d maps for %d images", len(maps), len(images))
	}
	for _, p := range maps {
		a, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		c, err := os.ReadFile(filepath.Join(outs["brute"], filepath.Base(p)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, c) {
			t.Errorf("%s differs between the pruned search and the brute force", filepath.Base(p))
		}
	}
}
