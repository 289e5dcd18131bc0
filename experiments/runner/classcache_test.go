package runner

import (
	"slices"
	"testing"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/datasets/synth"
	"github.com/softpatch/softpatch/engine/detector"
)

// TestClassFeaturesAugmented serves a training set holding an augmented
// copy of a test image (a resampled noise copy) from the class's
// features: the plain images come from the class's features as they are,
// the copy is computed with its affine, as the pipeline computes it alone.
func TestClassFeaturesAugmented(t *testing.T) {
	root := t.TempDir()
	if err := synth.Generate(root, synth.Config{Classes: []string{"nut"}, Size: 64, Train: 3, TestGood: 1, TestDefect: 2}, nil); err != nil {
		t.Fatal(err)
	}
	class, err := datasets.Load(root, "nut", datasets.Layout{}, datasets.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o := DefaultOptions()
	o.Resize, o.ImageSize, o.Device = 64, 64, "cpu"
	b, err := Open(o, []string{"patchcore"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p, err := b.Pipeline("patchcore")
	if err != nil {
		t.Fatal(err)
	}
	cf := newClassFeatures(p, class, 2, 1<<30, nil)
	if err := fillClass([]*classFeatures{cf}); err != nil {
		t.Fatal(err)
	}
	copyOf := class.Test[len(class.Test)-1]
	copyOf.Augment = &datasets.Affine{Angle: 2, TX: 0.02, TY: -0.01, Scale: 1}
	items := append(slices.Clone(class.Train), copyOf)
	var served [][]float32
	err = cf.source("train", items, 2, func(lo, hi int, f detector.Features) error {
		per := f.Positions * f.Dim
		for j := range hi - lo {
			served = append(served, slices.Clone(f.Data[j*per:(j+1)*per]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(served) != len(items) {
		t.Fatalf("%d images served of %d", len(served), len(items))
	}
	for i, it := range class.Train {
		if !slices.Equal(served[i], cf.feats[it.Path]) {
			t.Errorf("training image %d is not the class's features", i)
		}
	}
	var alone []float32
	if err := p.each("copy", []datasets.Item{copyOf}, 1, func(_, _ int, f detector.Features) error {
		alone = slices.Clone(f.Data)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(served[len(items)-1], alone) {
		t.Error("the augmented copy is not its own features")
	}
	if slices.Equal(alone, cf.feats[copyOf.Path]) {
		t.Error("the affine changed nothing: the test cannot tell the copy from its image")
	}
}
