package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/experiments"
)

// TestPaDiMEvalFilterFitPredict runs PaDiM end to end on a tiny generated
// class (random-init backbone, 64 px, 20 channels): eval, eval behind an
// image-level filter (PaDiM dropping 20% of the noisy training set before
// PatchCore), and fit + predict, whose image scores must be eval's.
func TestPaDiMEvalFilterFitPredict(t *testing.T) {
	dir, data := nutClass(t, 8, 2, 6)
	common := []string{"--data", data, "--class", "nut", "--noise", "0.25", "--overlap", "--resize", "72", "--imagesize", "64",
		"--coreset", "0.25", "--padim-channels", "20"}
	out := filepath.Join(dir, "padim.json")
	if err := runEval(append(slices.Clone(common), "--method", "padim", "--json", out)); err != nil {
		t.Fatal(err)
	}
	r := readCell(t, out)
	if r.Method != "padim" || r.Train != 10 || len(r.PerImage) != 8 || r.Filter != nil || r.BankSize != 0 {
		t.Errorf("padim cell: method %s, %d train, %d test, filter %v", r.Method, r.Train, len(r.PerImage), r.Filter)
	}
	for _, s := range []string{"features", "fit", "scoring", "maps", "metrics"} {
		if _, ok := r.Seconds[s]; !ok {
			t.Errorf("no time for stage %s", s)
		}
	}
	for _, v := range []float64{r.ImageAUROC, r.PixelAUROC, r.AUPRO} {
		if !(v >= 0 && v <= 1) {
			t.Errorf("metric %v", v)
		}
	}

	out = filepath.Join(dir, "filtered.json")
	if err := runEval(append(slices.Clone(common), "--method", "patchcore", "--filter", "padim:0.2", "--json", out)); err != nil {
		t.Fatal(err)
	}
	f := readCell(t, out)
	fr := f.Filter
	if f.Method != "padim+patchcore" || fr == nil || fr.Method != "padim" || len(fr.Dropped) != 2 || f.Train != 8 ||
		fr.Injected != 2 || f.BankSize != 8*64/4 || f.Seconds["filter"] <= 0 {
		t.Fatalf("filtered cell: method %s, %d train, bank %d, filter %+v", f.Method, f.Train, f.BankSize, fr)
	}
	noisy := 0
	for _, d := range fr.Dropped {
		if slices.Contains(f.NoiseDrawn, d) {
			noisy++
		}
	}
	if fr.DroppedNoise != noisy || fr.Precision != float64(noisy)/2 || fr.Recall != float64(noisy)/2 ||
		!(fr.DroppedScore[0] >= fr.DroppedScore[1]) {
		t.Errorf("filter bookkeeping %+v (dropped noise %d)", fr, noisy)
	}
	// The filter's scores are PaDiM's image scores of the training images:
	// the injected images are also test images (overlap), where eval
	// scored them with the same model.
	for i, d := range fr.Dropped {
		for _, im := range r.PerImage {
			if im.File == d && math.Abs(float64(im.Score/fr.DroppedScore[i])-1) > 1e-4 {
				t.Errorf("%s: filter score %v, padim test score %v", d, fr.DroppedScore[i], im.Score)
			}
		}
	}

	// Nothing scores above 1e30: the filter drops nothing.
	out = filepath.Join(dir, "none.json")
	if err := runEval(append(slices.Clone(common), "--method", "padim+padim", "--json", out)); err != nil {
		t.Fatal(err)
	}
	if err := runEval(append(slices.Clone(common), "--method", "patchcore", "--filter", "padim:>1e30", "--json", out)); err != nil {
		t.Fatal(err)
	}
	if n := readCell(t, out); n.Train != 10 || len(n.Filter.Dropped) != 0 || n.Filter.Precision != 0 || n.Filter.Threshold == nil {
		t.Errorf("threshold 1e30: %d train, filter %+v", n.Train, n.Filter)
	}
	for args, want := range map[string]string{
		"--method padim+padim --filter padim":  "already names a filter",
		"--method patchcore --filter magic":    `unknown method "magic"`,
		"--method patchcore --filter padim:2":  "not in [0, 1)",
		"--method patchcore --filter padim:>x": "not a score",
		"--method padim+":                      "FILTER+METHOD",
	} {
		err := runEval(append(append(slices.Clone(common), strings.Fields(args)...), "--json", out))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", args, err, want)
		}
	}

	// fit + predict: the model file keeps the channels, and predict's image
	// scores are eval's (features at another batch size: 1e-4).
	model := filepath.Join(dir, "nut.padim")
	if err := runFit(append(slices.Clone(common), "--method", "padim", "--out", model)); err != nil {
		t.Fatal(err)
	}
	m, meta, err := detector.LoadPaDiMFile(model)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Embedding != "padim" || len(meta.Channels) != 20 || m.Dim != 20 || m.Positions != 256 || m.Images != 10 ||
		!slices.Equal(meta.Layers, []string{"layer1", "layer2", "layer3"}) || meta.GridH != 16 {
		t.Errorf("model %dx%d from %d images, meta %+v", m.Positions, m.Dim, m.Images, meta)
	}
	var images []string
	for _, im := range r.PerImage {
		images = append(images, filepath.Join(data, im.File))
	}
	pr := predict(t, model, filepath.Join(dir, "pred"), 3, images)
	for i, s := range pr.Scores {
		if math.Abs(float64(s.Score/r.PerImage[i].Score)-1) > 1e-4 {
			t.Errorf("%s: predict %v, eval %v", s.File, s.Score, r.PerImage[i].Score)
		}
	}
}

// TestRunPaDiMSweep runs a tiny sweep with PaDiM, a filtered method and
// PatchCore from one config: the cells, their filters and the report's
// column order (PaDiM, PaDiM+PaDiM... as the paper's table).
func TestRunPaDiMSweep(t *testing.T) {
	dir := withoutWeights(t)
	cfg := `name: tiny
dataset:
  root: data
  classes: [nut]
  generate: {train: 6, test_good: 2, test_defect: 6, size: 64}
backbone: {resize: 64, imagesize: 64, padim_channels: 16}
noise: {ratios: [0.34], overlap: [true]}
methods: [patchcore, padim+patchcore, padim, padim+padim]
detector: {coreset: 0.25}
filter: {drop: 0.25}
`
	path := filepath.Join(dir, "tiny.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := runRun([]string{path, "--out", out}); err != nil {
		t.Fatal(err)
	}
	got, err := experiments.ReadResults(out)
	if err != nil || len(got) != 4 {
		t.Fatalf("%d cells (%v)", len(got), err)
	}
	filters := map[string]*experiments.FilterResult{}
	for _, rec := range got {
		var r experiments.Result
		if err := json.Unmarshal(rec.Result, &r); err != nil {
			t.Fatal(err)
		}
		filtered := strings.HasPrefix(r.Method, "padim+")
		if (r.Filter != nil) != filtered || filtered && (len(r.Filter.Dropped) != 2 || r.Train != 6) || !filtered && r.Train != 8 {
			t.Errorf("%s: %d train, filter %+v", r.Method, r.Train, r.Filter)
		}
		if filtered {
			filters[r.Method] = r.Filter
		}
	}
	// The sweep computed PatchCore's and PaDiM's features in one forward
	// pass per image: its PaDiM cell must equal eval's, computed alone.
	alone := filepath.Join(dir, "alone.json")
	if err := runEval([]string{"--data", filepath.Join(dir, "data"), "--class", "nut", "--method", "padim", "--noise", "0.34", "--overlap",
		"--resize", "64", "--imagesize", "64", "--padim-channels", "16", "--json", alone}); err != nil {
		t.Fatal(err)
	}
	var swept experiments.Result
	for _, rec := range got {
		if rec.Cell.Method == "padim" {
			if err := json.Unmarshal(rec.Result, &swept); err != nil {
				t.Fatal(err)
			}
		}
	}
	if a := readCell(t, alone); !slices.Equal(a.PerImage, swept.PerImage) || a.PixelAUROC != swept.PixelAUROC {
		t.Errorf("padim in the sweep %v, alone %v", swept.PerImage, a.PerImage)
	}
	// The second filtered cell reuses the first one's filter run.
	a, b := filters["padim+patchcore"], filters["padim+padim"]
	if a == nil || b == nil || a.Reused || !b.Reused || !slices.Equal(a.Dropped, b.Dropped) {
		t.Errorf("filters: %+v and %+v", a, b)
	}
	md, err := os.ReadFile(filepath.Join(out, "tables.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(md)
	if i, j, k := strings.Index(s, "| padim "), strings.Index(s, "| patchcore "), strings.Index(s, "| padim+patchcore"); !(i >= 0 && i < j && j < k) {
		t.Errorf("column order in tables.md:\n%s", s)
	}
}
