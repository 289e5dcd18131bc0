package detector

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/engine/denoise"
)

// stream serves feats [n][pos][dim] in batches of 1, 2, 3, ... images.
func stream(feats []float32, n, pos, dim int) Stream {
	return Stream{Images: n, Each: func(fn func(Features) error) error {
		per := pos * dim
		for lo, k := 0, 1; lo < n; lo, k = lo+k, k+1 {
			hi := min(lo+k, n)
			if err := fn(Features{Data: slices.Clone(feats[lo*per : hi*per]), N: hi - lo, Positions: pos, Dim: dim}); err != nil {
				return err
			}
		}
		return nil
	}}
}

// TestDetectorMatchesFit checks that every registered memory-bank method,
// fitted through the Detector interface from a stream, gives the model of
// Fit with its configuration, scores as the model does, reports its
// stages, hands scoring to the Accelerator's Searcher and closes it, and
// survives a Save and LoadFile.
func TestDetectorMatchesFit(t *testing.T) {
	const n, pos, dim = 8, 6, 24
	r := rand.New(rand.NewPCG(5, 6))
	feats, _ := plantedFeats(r, n, pos, dim)
	test := randFeats(r, 3*pos*dim)
	p := Params{Coreset: 0.25, Threshold: 0.15, LOFK: 3, Seed: 4}
	for _, name := range []string{"patchcore", "patchcore-random", "softpatch-nearest", "softpatch-lof"} {
		d, err := New(name, p)
		if err != nil {
			t.Fatal(err)
		}
		var stages []string
		a := &cpuAccel{}
		err = d.Fit(stream(feats, n, pos, dim), FitOptions{Accelerator: a, Stage: func(s string, _ float64) { stages = append(stages, s) }})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := []string{"features", "discriminator", "coreset"}; !slices.Equal(stages, want) {
			t.Errorf("%s: stages %v, want %v", name, stages, want)
		}
		want, err := Fit(d.(*bankDetector).cfg, feats, n, pos, dim)
		if err != nil {
			t.Fatal(err)
		}
		got := d.(Banked).Bank()
		if !slices.Equal(got.Indices, want.Indices) || !slices.Equal(got.Bank, want.Bank) || !slices.Equal(got.Weights, want.Weights) {
			t.Errorf("%s: the streamed detector's bank differs from Fit's", name)
		}
		if in := d.Info(); in.Method != name || in.BankSize != want.N || in.Excluded != want.Excluded || in.Dim != dim {
			t.Errorf("%s: info %+v", name, in)
		}
		gotS, wantS := make([]float32, 3*pos), make([]float32, 3*pos)
		if err := d.Score(gotS, Features{Data: test, N: 3, Positions: pos, Dim: dim}); err != nil {
			t.Fatal(err)
		}
		if err := want.Score(wantS, test, 3, pos); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(gotS, wantS) || a.searches != 1 {
			t.Errorf("%s: scores differ or the accelerator's searcher was not used (%d searches)", name, a.searches)
		}
		if err := d.Score(gotS, Features{Data: test[:3*(pos-1)*dim], N: 3, Positions: pos - 1, Dim: dim}); err == nil {
			t.Errorf("%s: features of another grid scored", name)
		}
		path := filepath.Join(t.TempDir(), "m.model")
		var buf bytes.Buffer
		if err := d.Save(&buf, Meta{Method: name, GridH: 2, GridW: 3}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if d.Close() != nil || a.closed != 1 {
			t.Errorf("%s: the searcher was closed %d times", name, a.closed)
		}
		if err := d.Score(gotS, Features{Data: test, N: 3, Positions: pos, Dim: dim}); err != nil || !slices.Equal(gotS, wantS) || a.searches != 1 {
			t.Errorf("%s: after Close, scoring does not run on the CPU (%v, %d searches)", name, err, a.searches)
		}
		l, meta, method, err := LoadFile(path)
		if err != nil || method != "patchcore" || meta.Method != name {
			t.Fatalf("%s: LoadFile: %q %q %v", name, method, meta.Method, err)
		}
		if err := l.Score(gotS, Features{Data: test, N: 3, Positions: pos, Dim: dim}); err != nil || !slices.Equal(gotS, wantS) {
			t.Errorf("%s: the loaded detector scores differently (%v)", name, err)
		}
	}
}

// TestDetectorStreamErrors checks that Fit rejects streams whose batches
// disagree with each other or with the image count.
func TestDetectorStreamErrors(t *testing.T) {
	feats := make([]float32, 4*3*8)
	for name, src := range map[string]Stream{
		"no images": {Images: 0, Each: func(func(Features) error) error { return nil }},
		"too few":   stream(feats, 4, 3, 8).withImages(5),
		"grid": {Images: 2, Each: func(fn func(Features) error) error {
			fn(Features{Data: feats[:24], N: 1, Positions: 3, Dim: 8})
			return fn(Features{Data: feats[:24], N: 1, Positions: 4, Dim: 6})
		}},
		"bad length": {Images: 1, Each: func(fn func(Features) error) error { return fn(Features{Data: feats[:5], N: 1, Positions: 3, Dim: 8}) }},
	} {
		for _, m := range []string{"patchcore", "padim"} {
			d, _ := New(m, Params{Coreset: 0.5})
			if err := d.Fit(src, FitOptions{}); err == nil {
				t.Errorf("%s %s: no error", m, name)
			}
			if err := d.Score(make([]float32, 3), Features{Data: feats[:24], N: 1, Positions: 3, Dim: 8}); err == nil && name == "no images" {
				t.Errorf("%s: an unfitted detector scored", m)
			}
		}
	}
}

func (s Stream) withImages(n int) Stream { s.Images = n; return s }

// TestRegistry checks the built-in methods' names, order and defaults,
// Split, and the errors for unknown names.
func TestRegistry(t *testing.T) {
	names := Names()
	want := []string{"padim", "patchcore", "patchcore-random"}
	for _, d := range denoise.Discriminators() {
		want = append(want, "softpatch-"+d.Name())
	}
	if !slices.Equal(names, want) {
		t.Errorf("Names() = %v, want %v", names, want)
	}
	def := DefaultNames()
	if slices.Contains(def, "padim") || !slices.Contains(def, "softpatch-lof") || slices.Contains(def, "softpatch-lof_dense") {
		t.Errorf("DefaultNames() = %v", def)
	}
	for in, want := range map[string][2]string{
		"patchcore":           {"", "patchcore"},
		"padim+softpatch-lof": {"padim", "softpatch-lof"},
		"patchcore+patchcore": {"patchcore", "patchcore"},
	} {
		f, m, err := Split(in)
		if err != nil || f != want[0] || m != want[1] {
			t.Errorf("Split(%q) = %q, %q, %v", in, f, m, err)
		}
	}
	for _, bad := range []string{"knn", "padim+", "+padim", "padim+knn", "a+b+c"} {
		if _, _, err := Split(bad); err == nil || !strings.Contains(err.Error(), "not a method") {
			t.Errorf("Split(%q): %v", bad, err)
		}
	}
	if _, err := New("knn", Params{}); err == nil || !strings.Contains(err.Error(), "softpatch-lof") {
		t.Errorf("New(knn): %v", err)
	}
}

// TestConfigLegacyMethod checks that model files written before Config had
// Random read as they were written: a "Method" of patchcore-random is a
// random bank, other methods are not, and the discriminator is kept.
func TestConfigLegacyMethod(t *testing.T) {
	for in, want := range map[string]Config{
		`{"Method":"patchcore-random","Coreset":0.1,"Seed":3}`:                {Random: true, Coreset: 0.1, Seed: 3},
		`{"Method":"patchcore","Coreset":0.1}`:                                {Coreset: 0.1},
		`{"Method":"softpatch","Coreset":0.1,"Discriminator":"lof","LOFK":5}`: {Coreset: 0.1, Discriminator: denoise.LOF, LOFK: 5},
		`{"Random":true,"Coreset":0.2}`:                                       {Random: true, Coreset: 0.2},
	} {
		var c Config
		if err := json.Unmarshal([]byte(in), &c); err != nil || c != want {
			t.Errorf("%s: %+v, %v; want %+v", in, c, err, want)
		}
	}
}
