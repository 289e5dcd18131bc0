package experiments

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const quick = `name: quick
dataset:
  root: data/synth
  classes: [wood, "01"]
noise:
  ratios: [0, 0.1]
  overlap: [false, true]
methods: [patchcore, softpatch-lof]
detector:
  coreset: 0.05
`

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig("q.yaml", []byte(quick), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "quick" || !slices.Equal(c.Dataset.Classes, []string{"wood", "01"}) || c.Dataset.Format != "auto" ||
		!slices.Equal(c.Noise.Ratios, []float64{0, 0.1}) || !slices.Equal(c.Noise.Overlap, []bool{false, true}) ||
		!slices.Equal(c.Noise.Folds, Folds{0}) || c.Detector.Coreset != 0.05 || c.Detector.Threshold != 0.15 || c.Detector.LOFK != 5 ||
		!*c.Detector.SoftWeight || c.Backbone.Arch != "wide_resnet50_2" || c.Backbone.ImageSize != 224 ||
		c.Backbone.Resize != 256 || !slices.Equal(c.Backbone.Layers, []string{"layer2", "layer3"}) || c.Run.Batch != 8 {
		t.Errorf("decoded %+v", c)
	}
	// --set overrides, adds keys and takes YAML values; a scalar stands
	// for a one-element list.
	c, err = ParseConfig("q.yaml", []byte(quick), []string{"noise.ratios=[0.2]", "noise.folds=3", "detector.soft_weight=false", "noise.overlap=true", "run.threads=2"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Noise.Ratios, []float64{0.2}) || !slices.Equal(c.Noise.Folds, Folds{0, 1, 2}) || *c.Detector.SoftWeight ||
		!slices.Equal(c.Noise.Overlap, []bool{true}) || c.Run.Threads != 2 {
		t.Errorf("after --set: %+v", c)
	}
}

// TestParseConfigErrors checks that each kind of mistake names the file,
// the line and what is allowed.
func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		sets []string
		want []string
	}{
		{"dataset:\n  root: x\n  colour: red\n", nil, []string{"c.yaml:3:", `unknown key "colour" in dataset`, "allowed: root, format, normal, mask_suffix, split_file, classes, generate"}},
		{"dataset: {root: x}\nnoise:\n  ratios: [0.1, lots]\n", nil, []string{"c.yaml:3:", "noise.ratios[1]", "want a number", `"lots"`}},
		{"dataset: {root: x}\nnoise:\n  ratios: [1.5]\n", nil, []string{"c.yaml:3:", "noise.ratios[0]", "1.5 is not in [0, 1)"}},
		{"dataset: {root: x}\nmethods: [patchcore, cflow]\n", nil, []string{"c.yaml:2:", "methods[1]", `"cflow" is not a method: want one of padim, patchcore, patchcore-random, softpatch-nearest`}},
		{"dataset: {root: x, format: mvtec, split_file: s.csv}\n", nil, []string{"c.yaml:1:", "dataset:", "a split file needs the visa or realiad format, not mvtec"}},
		{"dataset: {root: x, normal: ok}\n", nil, []string{"c.yaml:1:", "a normal-folder name and a mask suffix need the folder format, not auto"}},
		{"dataset: {root: x}\nmethods: [padim+patchcore, padim+]\n", nil, []string{"c.yaml:2:", "methods[1]", `"padim+" is not a method`, "FILTER+METHOD"}},
		{"dataset: {root: x}\nmethods: [+patchcore]\n", nil, []string{"methods[0]", `"+patchcore" is not a method`}},
		{"dataset: {root: x}\nfilter: {drop: 0.1, threshold: 3}\n", nil, []string{"c.yaml:2:", "filter", "drop or threshold, not both"}},
		{"dataset: {root: x}\nfilter: {drop: 1}\n", nil, []string{"filter.drop", "1 is not in [0, 1)"}},
		{"dataset: {root: x}\nbackbone: {padim_channels: 0}\n", nil, []string{"backbone.padim_channels", "0 is not at least 1"}},
		{"dataset: {root: x}\ndetector:\n  coreset: 0\n", nil, []string{"c.yaml:3:", "detector.coreset", "0 is not in (0, 1)"}},
		{"dataset: {root: x}\nbackbone:\n  arch: vgg16\n", nil, []string{"c.yaml:3:", "backbone.arch", "wide_resnet50_2"}},
		{"dataset: {root: x, format: coco}\n", nil, []string{"dataset.format", `"coco" is not one of auto, mvtec, btad, folder`}},
		{"dataset: {root: x}\nbackbone: {arch: vgg16}\n", nil, []string{`"vgg16" is not one of resnet50, wide_resnet50_2, wide_resnet101_2`}},
		{"dataset: {root: x}\nbackbone: {layers: [layer2, layer5]}\n", nil, []string{"backbone.layers[1]", `"layer5" is not one of layer1, layer2, layer3, layer4`}},
		{"dataset: {root: x}\nbackbone: {layers: []}\n", nil, []string{"backbone.layers", "at least one layer is needed (layer1, layer2, layer3, layer4)"}},
		{"dataset: {root: x}\nbackbone: {resize_mode: crop}\n", nil, []string{"backbone.resize_mode", `"crop" is not one of shorter, square`}},
		{"dataset: {root: x}\nbackbone: {bn_pass: train}\n", nil, []string{"backbone.bn_pass", `"train" is not one of published, checkpoint`}},
		{"dataset: {root: x}\nnoise: 0.1\n", nil, []string{"c.yaml:2:", "noise: want a mapping of ratios, overlap, folds, augment"}},
		{"dataset: {root: x}\nnoise:\n  folds: two\n", nil, []string{"c.yaml:3:", "noise.folds", "want a fold count in [1, 100] or a list of fold numbers"}},
		{"dataset: {root: x}\nnoise:\n  folds: [0, 2, 0]\n", nil, []string{"c.yaml:3:", "noise.folds[2]", "fold 0 is listed twice"}},
		{"dataset: {root: x}\nnoise:\n  folds: 0\n", nil, []string{"c.yaml:3:", "noise.folds", "want a fold count"}},
		{"dataset: {root: x}\ndetector:\n  seeds: [1, 1]\n", nil, []string{"c.yaml:3:", "detector.seeds[1]", "seed 1 is listed twice"}},
		{"dataset: {root: x}\nnoise:\n  overlap: [yes please]\n", nil, []string{"c.yaml:3:", "want true or false"}},
		{"dataset: {root: x}\ndataset: {root: y}\n", nil, []string{"c.yaml:2:", `key "dataset" given twice`}},
		{"name: n\n", nil, []string{"c.yaml: dataset.root is required"}},
		{"dataset: {root: x}\n", []string{"detector.threshold=2"}, []string{"c.yaml (--set): detector.threshold", "2 is not in [0, 1)"}},
		{"dataset: {root: x}\n", []string{"detector"}, []string{`--set "detector": want key.path=value`}},
		{"name: n\ndataset: {root: x}\n", []string{"name.first=a"}, []string{"name is not a mapping"}},
		{"dataset: {root: x}\n", []string{"name.first=a"}, []string{"c.yaml (--set): name: want a string, got a mapping"}},
		{"dataset: [x\n", nil, []string{"c.yaml: yaml:"}},
	} {
		_, err := ParseConfig("c.yaml", []byte(tc.yaml), tc.sets)
		if err == nil {
			t.Errorf("%q %v: accepted", tc.yaml, tc.sets)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q %v: error %q does not say %q", tc.yaml, tc.sets, err, w)
			}
		}
	}
}

func TestLoadConfigRelativeRoot(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, []byte("dataset:\n  root: data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Dataset.Root != filepath.Join(dir, "data") {
		t.Errorf("root %q", c.Dataset.Root)
	}
	// A split file is resolved as the root is.
	if err := os.WriteFile(p, []byte("dataset:\n  root: data\n  format: visa\n  split_file: splits/1cls.csv\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err = LoadConfig(p, nil); err != nil || c.Dataset.SplitFile != filepath.Join(dir, "splits", "1cls.csv") {
		t.Errorf("split file %q (%v)", c.Dataset.SplitFile, err)
	}
	if l, err := c.Dataset.Layout(); err != nil || l.SplitFile != c.Dataset.SplitFile || l.Format != "visa" {
		t.Errorf("layout %+v (%v)", l, err)
	}
	if _, err := LoadConfig(filepath.Join(dir, "nope.yaml"), nil); err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("missing file: %v", err)
	}
	// A --set path is relative to the working directory; "~" is the home
	// folder, in the file and with --set.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, c := range []struct {
		file string
		sets []string
		want string
	}{
		{"dataset:\n  root: data\n", []string{"dataset.root=other/data"}, filepath.Join(wd, "other", "data")},
		{"dataset:\n  root: data\n", []string{"dataset.root=~/data/mvtec"}, filepath.Join(home, "data", "mvtec")},
		{"dataset:\n  root: ~/mvtec\n", nil, filepath.Join(home, "mvtec")},
		{"dataset:\n  root: /abs/mvtec\n", nil, "/abs/mvtec"},
	} {
		if err := os.WriteFile(p, []byte(c.file), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(p, c.sets)
		if err != nil || cfg.Dataset.Root != c.want {
			t.Errorf("%q %v: root %q (%v), want %q", c.file, c.sets, cfg.Dataset.Root, err, c.want)
		}
	}
}

// unitCosts prices every cell 1 and every class's features 0.
var unitCosts = Costs{Cell: func(Cell) float64 { return 1 }, Class: func(string) float64 { return 0 }}

func TestPlanAndShards(t *testing.T) {
	c, err := ParseConfig("q.yaml", []byte(quick), []string{"noise.folds=2"})
	if err != nil {
		t.Fatal(err)
	}
	cells := Plan(c, []string{"wood", "pill"})
	// Per class: ratio 0 gives one cell per method; ratio 0.1 gives
	// 2 overlaps x 2 folds per method: (1 + 4) x 2 methods.
	if len(cells) != 2*(1+4)*2 {
		t.Fatalf("%d cells", len(cells))
	}
	keys := map[string]bool{}
	for _, cl := range cells {
		if keys[cl.Key()] {
			t.Fatalf("cell %s planned twice", cl.Key())
		}
		keys[cl.Key()] = true
		if cl.Ratio == 0 && (cl.Overlap || cl.Fold != 0) {
			t.Errorf("clean cell %s", cl.Key())
		}
	}
	if cells[0].Class != "wood" || cells[len(cells)-1].Class != "pill" {
		t.Error("cells not grouped by class")
	}
	// A fold list and seeds: folds 1 and 4, seeds 0 and 7 give 2 x 2
	// replicates per noisy setting and method, the clean cells one per seed.
	c, err = ParseConfig("q.yaml", []byte(quick), []string{"noise.folds=[1, 4]", "detector.seeds=[0, 7]", "noise.overlap=false"})
	if err != nil {
		t.Fatal(err)
	}
	seeded := Plan(c, []string{"wood"})
	if len(seeded) != (2+4)*2 {
		t.Fatalf("%d cells with folds [1, 4] and seeds [0, 7]", len(seeded))
	}
	reps := map[string]bool{}
	for _, cl := range seeded {
		reps[cl.Replicate()] = true
	}
	if !reps["fold=4/seed=7"] || !reps["fold=0/seed=0"] || !reps["fold=0/seed=7"] || len(reps) != 6 {
		t.Errorf("replicates %v", reps)
	}
	if k := (Cell{Class: "wood", Ratio: 0.1, Fold: 1, Seed: 7, Method: "patchcore"}).Key(); k != "wood/noise=0.1/overlap=false/fold=1/seed=7/patchcore" {
		t.Errorf("key %s", k)
	}
	if k := (Cell{Class: "wood", Ratio: 0.1, Fold: 1, Method: "patchcore"}).Key(); k != "wood/noise=0.1/overlap=false/fold=1/patchcore" {
		t.Errorf("seed 0 key %s", k)
	}
	for n := 1; n <= 7; n++ {
		count := map[string]int{}
		for i := 0; i < n; i++ {
			s, err := ParseShard(fmt.Sprintf("%d/%d", i, n))
			if err != nil {
				t.Fatal(err)
			}
			for _, cl := range s.Select(cells, unitCosts) {
				count[cl.Key()]++
			}
		}
		if len(count) != len(cells) {
			t.Fatalf("%d shards cover %d of %d cells", n, len(count), len(cells))
		}
		for k, v := range count {
			if v != 1 {
				t.Fatalf("%d shards run %s %d times", n, k, v)
			}
		}
	}
	for _, bad := range []string{"4/4", "-1/2", "1", "a/b", "0/0"} {
		if _, err := ParseShard(bad); err == nil {
			t.Errorf("shard %q accepted", bad)
		}
	}
}

// TestPartition checks the shard plan's balance: every cell in exactly one
// shard and in plan order, shards by cost rather than count, classes kept
// whole when that costs little balance, and more shards than cells.
func TestPartition(t *testing.T) {
	var cells []Cell
	for _, class := range []string{"a", "b", "c", "d"} {
		for _, m := range []string{"patchcore", "softpatch-lof", "cflow"} {
			cells = append(cells, Cell{Class: class, Method: m})
		}
	}
	// cflow costs 10, the others 1, each class's features 2: a class is
	// 14, the plan 56.
	costs := Costs{
		Cell: func(c Cell) float64 {
			if c.Method == "cflow" {
				return 10
			}
			return 1
		},
		Class: func(string) float64 { return 2 },
	}
	for n := 1; n <= 14; n++ {
		parts := Partition(cells, n, costs)
		var joined []Cell
		for _, p := range parts {
			joined = append(joined, p...)
		}
		if len(parts) != n || !slices.Equal(joined, cells) {
			t.Fatalf("%d shards: %d parts, cells %v", n, len(parts), joined)
		}
	}
	// Two shards: a class boundary lies exactly at half the cost, so each
	// shard takes two whole classes (28 each).
	parts := Partition(cells, 2, costs)
	if len(parts[0]) != 6 || parts[0][5].Class != "b" || costs.Cost(parts[0]) != 28 || costs.Cost(parts[1]) != 28 {
		t.Errorf("2 shards: %v / %v", parts[0], parts[1])
	}
	// Four shards: one class each, not three cells each by count.
	for i, p := range Partition(cells, 4, costs) {
		if len(p) != 3 || p[0].Class != p[2].Class || costs.Cost(p) != 14 {
			t.Errorf("4 shards, shard %d: %v", i, p)
		}
	}
	// By cost, not count: with the expensive cells first, shard sizes differ.
	heavy := []Cell{{Class: "a", Method: "cflow"}, {Class: "a", Method: "cflow"}, {Class: "a", Method: "patchcore"},
		{Class: "a", Method: "patchcore"}, {Class: "a", Method: "patchcore"}, {Class: "a", Method: "patchcore"}}
	parts = Partition(heavy, 2, costs)
	if len(parts[0]) != 1 || len(parts[1]) != 5 {
		t.Errorf("cost-balanced shards %d + %d cells, want 1 + 5", len(parts[0]), len(parts[1]))
	}
}
