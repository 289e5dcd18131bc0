package experiments

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/detector"
)

// jsonTags lists a struct type's JSON tags, in field order.
func jsonTags(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		if tag := t.Field(i).Tag.Get("json"); tag != "" {
			out = append(out, tag)
		}
	}
	return out
}

// TestResultSchema pins the JSON of a cell: field names, order and
// omitempty, which results files and reports depend on.
func TestResultSchema(t *testing.T) {
	for _, c := range []struct {
		v    any
		want string
	}{
		{Result{}, "commit date device data class method noise noise_files backbone mark,omitempty draws,omitempty settings,omitempty settings_hash,omitempty train_images test_images bank_size " +
			"excluded_patches,omitempty defect_bank_entries,omitempty defect_bank_fraction,omitempty filter,omitempty cflow_best_epoch,omitempty image_auroc pixel_auroc aupro image_f1max pixel_f1max image_ap pixel_ap aupimo,omitempty aupimo_note,omitempty decision,omitempty knn,omitempty per_image overlays,omitempty seconds"},
		{KNNResult{}, "search computed"},
		{BestEpoch{}, "epochs image_auroc image_epoch pixel_auroc pixel_epoch"},
		{ImageScore{}, "file label type score aupimo,omitempty"},
		{Overlay{}, "which file image score"},
		{FilterResult{}, "method drop,omitempty threshold,omitempty dropped dropped_scores injected dropped_noise precision recall reused,omitempty"},
		{Bank2D{}, "x y noisy defect,omitempty"},
		{DecisionResult{}, "test_fpr test_fnr"},
	} {
		typ := reflect.TypeOf(c.v)
		if got := strings.Join(jsonTags(typ), " "); got != c.want {
			t.Errorf("%s tags:\n%s\nwant\n%s", typ.Name(), got, c.want)
		}
	}
}

// TestResultRoundTripAndMetric encodes a full result, decodes it through a
// Record, and checks Metric by name, including metrics a result lacks.
func TestResultRoundTripAndMetric(t *testing.T) {
	drop, frac, aupimo, fpr, fnr := 0.1, 0.03, 0.6, 0.02, 0.25
	r := Result{Commit: "abc", Class: "wood", Method: "padim+patchcore", Noise: datasets.Noise{Ratio: 0.1, Overlap: true},
		NoiseDrawn: []string{"wood/test/hole/000.png"}, Backbone: backbone.Identity{Arch: "wide_resnet50_2", BNPass: backbone.BNPublished},
		Train: 10, Test: 4, BankSize: 100, Filter: &FilterResult{Method: "padim", Drop: &drop, Dropped: []string{"a"}, DroppedScore: []float32{2}},
		ImageAUROC: 0.1, PixelAUROC: 0.2, AUPRO: 0.3, ImageF1Max: 0.4, PixelF1Max: 0.5, ImageAP: 0.7, PixelAP: 0.8, AUPIMO: &aupimo, DefectBankEntries: 3, DefectBankFraction: &frac,
		Decision: &DecisionResult{Decision: detector.Decision{Threshold: 1.5, FPR: 0.01, Source: "holdout", Images: 20, Rounds: 1}, TestFPR: &fpr, TestFNR: &fnr},
		PerImage: []ImageScore{{File: "x.png", Label: 1, Type: "hole", Score: 0.5, AUPIMO: &aupimo}},
		Overlays: []Overlay{{Which: "highest", File: "overlays/c/highest.png", Image: "x.png", Score: 0.5}},
		Seconds:  map[string]float64{"features": 1}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	got, err := Record{Key: "k", Result: b}.Decode()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, r) {
		t.Errorf("round trip:\n%+v\nwant\n%+v", *got, r)
	}
	for _, name := range Metrics {
		v, ok := got.Metric(name)
		want := m[name]
		if slices.Contains(nestedMetrics, name) {
			want = m["decision"].(map[string]any)[name]
		}
		if !ok || v != want {
			t.Errorf("Metric(%q) = %v, %t; the JSON has %v", name, v, ok, want)
		}
	}
	if _, ok := got.Metric("seconds"); ok {
		t.Error("Metric accepted a name outside Metrics")
	}

	// A result lacking a metric, or giving it as null, does not have it;
	// one giving 0 does.
	part, err := Record{Result: []byte(`{"pixel_auroc":0,"aupro":null,"per_image":[]}`)}.Decode()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range Metrics {
		if _, ok := part.Metric(name); ok != (name == "pixel_auroc") {
			t.Errorf("partial result: Metric(%q) ok %t", name, ok)
		}
	}
	if _, err := (Record{Result: []byte(`{"per_image":[1]}`)}).Decode(); err == nil {
		t.Error("a malformed result decoded")
	}
}

func TestBank2DFiles(t *testing.T) {
	dir := t.TempDir()
	c := Cell{Class: "pill", Ratio: 0.1, Overlap: true, Method: "softpatch-lof"}
	path := Bank2DPath(dir, c.Dir())
	if want := filepath.Join(dir, "overlays", "pill_noise0.1_overlaptrue_fold0_softpatch-lof", "bank2d.json"); path != want ||
		filepath.Dir(path) != OverlayDir(dir, c.Dir()) {
		t.Fatalf("Bank2DPath %s, want %s", path, want)
	}
	if _, err := ReadBank2D(path); !errors.As(err, new(*fs.PathError)) {
		t.Errorf("missing bank: %v", err)
	}
	b := &Bank2D{X: []float32{0, 1.5}, Y: []float32{1, 0}, Noisy: []bool{false, true}}
	if err := WriteBank2D(path, b); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if string(raw) != `{"x":[0,1.5],"y":[1,0],"noisy":[false,true]}`+"\n" {
		t.Errorf("bank file %s", raw)
	}
	got, err := ReadBank2D(path)
	if err != nil || !reflect.DeepEqual(got, b) {
		t.Errorf("read back %+v, %v", got, err)
	}
	for _, bad := range []string{`{"x":[0],"y":[1,2],"noisy":[true]}`, `not json`} {
		os.WriteFile(path, []byte(bad), 0o644)
		if _, err := ReadBank2D(path); err == nil || errors.As(err, new(*fs.PathError)) || !strings.Contains(err.Error(), "not a bank file") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
