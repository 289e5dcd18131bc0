package datasets

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// noiseClass builds a class with 20 training images and 12 anomalous test
// images (two defect types) plus 3 normal ones.
func noiseClass(t *testing.T) *Class {
	t.Helper()
	var files []string
	for i := 0; i < 20; i++ {
		files = append(files, fmt.Sprintf("k/train/good/%03d.png", i))
	}
	for i := 0; i < 3; i++ {
		files = append(files, fmt.Sprintf("k/test/good/%03d.png", i))
	}
	for _, d := range []string{"cut", "hole"} {
		for i := 0; i < 6; i++ {
			files = append(files, fmt.Sprintf("k/test/%s/%03d.png", d, i), fmt.Sprintf("k/ground_truth/%s/%03d_mask.png", d, i))
		}
	}
	c, err := Load(tree(t, files...), "k", Layout{}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNoisyDraw(t *testing.T) {
	c := noiseClass(t)
	n := Noise{Ratio: 0.25, Fold: 0}
	train, test, drawn, err := c.Noisy("mvtec", n)
	if err != nil {
		t.Fatal(err)
	}
	if len(drawn) != 5 || len(train) != 25 || len(test) != 15-5 {
		t.Fatalf("drawn %d train %d test %d", len(drawn), len(train), len(test))
	}
	if !reflect.DeepEqual(train[:20], c.Train) || !reflect.DeepEqual(train[20:], drawn) {
		t.Error("train is not the clean images followed by the drawn ones")
	}
	// No overlap: test is c.Test minus exactly the drawn images, in order.
	isDrawn := map[string]bool{}
	for _, d := range drawn {
		if !d.Anomalous || d.Split != "test" || isDrawn[d.Path] {
			t.Errorf("bad draw %+v", d)
		}
		isDrawn[d.Path] = true
	}
	var want []Item
	for _, it := range c.Test {
		if !isDrawn[it.Path] {
			want = append(want, it)
		}
	}
	if !reflect.DeepEqual(test, want) {
		t.Error("no-overlap test set is not the test set minus the draw")
	}
	// Deterministic.
	_, _, again, _ := c.Noisy("mvtec", n)
	if !reflect.DeepEqual(again, drawn) {
		t.Error("same arguments, different draw")
	}
	// Overlap keeps the test set whole and draws the same images.
	n.Overlap = true
	train2, test2, drawn2, err := c.Noisy("mvtec", n)
	if err != nil || !reflect.DeepEqual(test2, c.Test) || !reflect.DeepEqual(drawn2, drawn) || !reflect.DeepEqual(train2, train) {
		t.Errorf("overlap: %v", err)
	}
	// Other folds, ratios, datasets and classes give other draws.
	differs := 0
	for _, m := range []struct {
		ds string
		n  Noise
	}{{"mvtec", Noise{Ratio: 0.25, Fold: 1}}, {"mvtec", Noise{Ratio: 0.25, Fold: 2}}, {"btad", Noise{Ratio: 0.25}}, {"mvtec", Noise{Ratio: 0.26}}} {
		_, _, d, err := c.Noisy(m.ds, m.n)
		if err != nil || len(d) != 5 {
			t.Fatalf("%+v: %d drawn, %v", m, len(d), err)
		}
		if !reflect.DeepEqual(d, drawn) {
			differs++
		}
	}
	if differs < 3 { // C(12,5) = 792 draws: a repeat is possible but rare
		t.Errorf("only %d of 4 other seeds changed the draw", differs)
	}
	// The input class is untouched; counts follow floor(r * n).
	if len(c.Test) != 15 || len(c.Train) != 20 {
		t.Error("Noisy modified the class")
	}
	for _, r := range []struct {
		ratio float64
		want  int
	}{{0, 0}, {0.1, 2}, {0.29, 5}, {0.6, 12}} {
		_, _, d, err := c.Noisy("x", Noise{Ratio: r.ratio})
		if err != nil || len(d) != r.want {
			t.Errorf("ratio %v: %d drawn, %v", r.ratio, len(d), err)
		}
	}
	for _, r := range []float64{0.65, -0.1, 1.5} {
		if _, _, _, err := c.Noisy("x", Noise{Ratio: r}); err == nil {
			t.Errorf("ratio %v accepted", r)
		}
	}
}

func TestNoisyExplicitListAndRoundTrip(t *testing.T) {
	c := noiseClass(t)
	_, _, drawn, err := c.Noisy("mvtec", Noise{Ratio: 0.2, Fold: 3})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "noise.json")
	if err := WriteNoiseList(path, c.Root, drawn); err != nil {
		t.Fatal(err)
	}
	names, err := ReadNoiseList(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 4 || !strings.HasPrefix(names[0], "k/test/") {
		t.Fatalf("names %v", names)
	}
	_, test, again, err := c.Noisy("other", Noise{Files: names})
	if err != nil || !reflect.DeepEqual(again, drawn) || len(test) != 11 {
		t.Fatalf("explicit list: %v", err)
	}
	for _, bad := range [][]string{{"k/test/good/000.png"}, {"k/train/good/000.png"}, {"k/test/cut/999.png"}, {names[0], names[0]}} {
		_, _, _, err := c.Noisy("x", Noise{Files: bad})
		if err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%v: error %v", bad, err)
		}
	}
	if _, err := ReadNoiseList(filepath.Join(t.TempDir(), "none.json")); err == nil {
		t.Error("missing list read")
	}
}

// Lists from other implementations name files relative to the class folder
// or by absolute path; both select the same images.
func TestNoisyExplicitListPathForms(t *testing.T) {
	c := noiseClass(t)
	_, _, drawn, err := c.Noisy("mvtec", Noise{Ratio: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	var classRel, abs []string
	for _, it := range drawn {
		classRel = append(classRel, strings.TrimPrefix(RelPath(c.Root, it), "k/"))
		a, _ := filepath.Abs(it.Path)
		abs = append(abs, a)
	}
	for _, files := range [][]string{classRel, abs} {
		_, _, got, err := c.Noisy("x", Noise{Files: files})
		if err != nil || !reflect.DeepEqual(got, drawn) {
			t.Errorf("%v: %v", files, err)
		}
	}
}

// The draw is part of every persisted result: it must not change when the
// code changes. These names were drawn by this implementation (seed
// "softpatch-noise-v1", PCG, partial Fisher-Yates) and pin it.
func TestNoisyDrawIsStable(t *testing.T) {
	c := noiseClass(t)
	_, _, drawn, err := c.Noisy("mvtec", Noise{Ratio: 0.25, Fold: 0})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range drawn {
		got = append(got, RelPath(c.Root, it))
	}
	want := []string{"k/test/cut/001.png", "k/test/cut/005.png", "k/test/hole/000.png", "k/test/hole/002.png", "k/test/hole/005.png"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("draw %q, pinned %q", got, want)
	}
}
