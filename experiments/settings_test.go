package experiments

import (
	"slices"
	"testing"
)

// TestSettingsHashAndDiff checks that equal settings hash alike, that any
// change of a leaf changes the hash, and that Diff names exactly the
// changed leaves by dotted key.
func TestSettingsHashAndDiff(t *testing.T) {
	th := 2.5
	a := &Settings{Numerics: NumericsVersion, Data: DataSettings{Root: "/d", Class: "wood", Images: "h1"}, Method: "padim+patchcore",
		Detector: DetectorSettings{Coreset: 0.1, Threshold: 0.15, LOFK: 5, SoftWeight: true, Filter: &FilterRule{Method: "padim", Drop: 0.1}},
		Features: FeatureSettings{Arch: "wide_resnet50_2", Weights: "sha256 x", Pipelines: []PipelineSettings{{Method: "patchcore", Layers: []string{"layer2", "layer3"}}}}}
	b := *a
	if a.Hash() != b.Hash() || len(Diff(a, &b)) != 0 {
		t.Fatal("equal settings differ")
	}
	b.Detector.Coreset = 0.01
	f := *a.Detector.Filter
	f.Threshold = &th
	b.Detector.Filter = &f
	b.Data.Images = "h2"
	if a.Hash() == b.Hash() {
		t.Error("changed settings hash alike")
	}
	want := []string{"data.images \"h1\" -> \"h2\"", "detector.coreset 0.1 -> 0.01", "detector.filter.threshold (none) -> 2.5"}
	if got := Diff(a, &b); !slices.Equal(got, want) {
		t.Errorf("Diff = %q, want %q", got, want)
	}
}
