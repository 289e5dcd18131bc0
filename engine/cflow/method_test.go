package cflow

import (
	"bytes"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/detector"
)

// tinyFibers is a two-layer fiber embedding small enough to train in a
// test: 4 and 8 channels, the second a stage deeper.
var tinyFibers = Fibers{Layers: []string{"layer2", "layer3"}, Channels: []int{4, 8}, Stages: []int{1, 2}, Width: 4}

// tinyOptions trains tinyFibers' decoders briefly.
func tinyOptions() *Options {
	return &Options{MetaEpochs: 2, SubEpochs: 2, WarmEpochs: 1, LR: 2e-3, CouplingBlocks: 2, ConditionDim: 8, FiberBatch: 16,
		ImageBatch: 4, Layers: []string{"layer2", "layer3"}}
}

func TestFibersEmbed(t *testing.T) {
	f, err := NewFibers(backbone.WideResNet50_2, []string{"layer2", "layer3", "layer4"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Channels, []int{512, 1024, 2048}) || f.Width != 512 || !slices.Equal(f.Stages, []int{1, 2, 3}) {
		t.Fatalf("fibers %+v", f)
	}
	// 28x28 at 224 px: 14x14 and 7x7 deeper, 28*28*(1 + 2/4 + 4/16) rows.
	if rows, one := f.Grid(28, 28); rows != 1372 || one != 1 {
		t.Errorf("grid %d x %d, want 1372 x 1", rows, one)
	}
	if ls := f.Layout(7, 5); ls[2].H != 2 || ls[2].W != 2 || ls[1].H != 4 || ls[1].W != 3 {
		t.Errorf("odd grids halve rounding up: %+v", ls)
	}

	// The embedding transposes every layer's [C][H][W] to [H*W][C].
	n := 2
	r := rand.New(rand.NewPCG(1, 2))
	ls := tinyFibers.Layout(4, 3)
	var feats []backbone.Feature
	for _, l := range ls {
		x := backbone.Feature{Layer: l.Name, N: n, C: l.C, H: l.H, W: l.W, Data: make([]float32, n*l.C*l.H*l.W)}
		for i := range x.Data {
			x.Data[i] = r.Float32()
		}
		feats = append(feats, x)
	}
	data, rows, err := tinyFibers.Embed(feats)
	if err != nil {
		t.Fatal(err)
	}
	per := values(ls)
	if rows*tinyFibers.Width != per || len(data) != n*per {
		t.Fatalf("%d rows of %d for %d values an image, %d values", rows, tinyFibers.Width, per, len(data))
	}
	vo, _ := offsets(ls)
	for i := range n {
		for j, l := range ls {
			hw := l.H * l.W
			for c := range l.C {
				for p := range hw {
					if got, want := data[i*per+vo[j]+p*l.C+c], feats[j].Data[(i*l.C+c)*hw+p]; got != want {
						t.Fatalf("image %d %s channel %d position %d: %v, want %v", i, l.Name, c, p, got, want)
					}
				}
			}
		}
	}
	if got, err := tinyFibers.layoutOf(rows, 4); err == nil {
		t.Errorf("a 4x3 grid is not square, yet layoutOf found %+v", got)
	}
	sq := values(tinyFibers.Layout(4, 4)) / 4
	if got, err := tinyFibers.layoutOf(sq, 4); err != nil || !slices.Equal(got, tinyFibers.Layout(4, 4)) {
		t.Errorf("layoutOf(%d rows): %+v, %v", sq, got, err)
	}
	feats[1].H = 3
	if _, _, err := tinyFibers.Embed(feats); err == nil || !strings.Contains(err.Error(), "layer3") {
		t.Errorf("a layer of the wrong grid: %v", err)
	}
}

func TestStoreSpills(t *testing.T) {
	const n, per = 5, 7
	data := make([]float32, n*per)
	for i := range data {
		data[i] = float32(i) * 0.5
	}
	for _, bound := range []int64{0, 4 * per} { // in memory; in a file
		s, err := newStore(n, per, bound, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Add(data[:2*per], 2); err != nil {
			t.Fatal(err)
		}
		if err := s.Add(data[2*per:], 3); err != nil {
			t.Fatal(err)
		}
		if s.Spilled() != (bound > 0) {
			t.Errorf("bound %d: spilled %v", bound, s.Spilled())
		}
		got := make([]float32, per)
		for _, i := range []int{4, 0, 2} {
			if err := s.image(got, i); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, data[i*per:(i+1)*per]) {
				t.Errorf("bound %d: image %d read back as %v", bound, i, got)
			}
		}
		if err := s.Add(data[:per], 1); err == nil {
			t.Errorf("bound %d: a sixth image of five was taken", bound)
		}
		name := ""
		if s.file != nil {
			name = s.file.Name()
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if name != "" {
			if _, err := os.Stat(name); !os.IsNotExist(err) {
				t.Errorf("temporary file %s left behind: %v", name, err)
			}
		}
	}
}

func TestOptionsCheck(t *testing.T) {
	if err := DefaultOptions().Check(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		set  func(*Options)
		want string
	}{
		{func(o *Options) { o.MetaEpochs = 0 }, "cflow.meta_epochs"},
		{func(o *Options) { o.WarmEpochs = 25 }, "cflow.warm_epochs"},
		{func(o *Options) { o.LR = 0 }, "cflow.lr"},
		{func(o *Options) { o.ConditionDim = 130 }, "cflow.condition_dim"},
		{func(o *Options) { o.FiberBatch = 0 }, "cflow.fiber_batch"},
		{func(o *Options) { o.Layers = []string{"layer3", "layer2"} }, "cflow.layers"},
		{func(o *Options) { o.Layers = []string{"layer9"} }, "cflow.layers"},
	} {
		o := DefaultOptions()
		c.set(o)
		if err := o.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %s", o, err, c.want)
		}
	}
}

// tinyImages returns n images of tinyFibers features on a 4x4 grid:
// fibers around a fixed mean per channel and position, plus shift.
func tinyImages(n int, seed uint64, shift float32) detector.Features {
	ls := tinyFibers.Layout(4, 4)
	per := values(ls)
	r := rand.New(rand.NewPCG(seed, 3))
	f := detector.Features{Data: make([]float32, n*per), N: n, Positions: per / tinyFibers.Width, Dim: tinyFibers.Width}
	for i := range f.Data {
		f.Data[i] = float32(i%per%5)*0.3 + float32(r.NormFloat64())*0.2 + shift
	}
	return f
}

// fitTiny fits a detector on 10 tiny images.
func fitTiny(t *testing.T, seed uint64) detector.Detector {
	t.Helper()
	d, err := detector.New(Name, detector.Params{Seed: seed, Options: map[string]any{Name: tinyOptions()},
		Features: detector.FeatureSpec{Layers: tinyFibers.Layers, Embed: tinyFibers}})
	if err != nil {
		t.Fatal(err)
	}
	train := tinyImages(10, 1, 0)
	var stages []string
	err = d.Fit(detector.Stream{Images: train.N, Each: func(fn func(detector.Features) error) error { return fn(train) }},
		detector.FitOptions{MaxMemory: 1 << 20, Stage: func(name string, _ float64) { stages = append(stages, name) }})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(stages, []string{"features", "init", "train"}) {
		t.Errorf("stages %v", stages)
	}
	return d
}

// scoreTiny returns the maps of 3 normal and 3 shifted images.
func scoreTiny(t *testing.T, d detector.Detector) ([]float32, [][]float32, []float32) {
	t.Helper()
	normal, odd := tinyImages(3, 7, 0), tinyImages(3, 8, 2)
	test := detector.Features{Data: append(normal.Data, odd.Data...), N: 6, Positions: normal.Positions, Dim: normal.Dim}
	patch := make([]float32, test.N*test.Positions)
	for i := range patch {
		patch[i] = -1 // Score must overwrite every value
	}
	if err := d.Score(patch, test); err != nil {
		t.Fatal(err)
	}
	maps, err := d.(detector.Mapper).Maps(patch, test.N, test.Positions, 9)
	if err != nil {
		t.Fatal(err)
	}
	scores, err := d.ImageScores(patch, test.N, test.Positions, maps)
	if err != nil {
		t.Fatal(err)
	}
	return patch, maps, scores
}

// TestFitScoreSaveLoad trains tiny decoders, checks that shifted images
// score above normal ones, that the same seed trains the same model, and
// that a saved and loaded model scores the same.
func TestFitScoreSaveLoad(t *testing.T) {
	d := fitTiny(t, 3)
	defer d.Close()
	patch, maps, scores := scoreTiny(t, d)
	for i := 3; i < 6; i++ {
		for j := range 3 {
			if scores[i] <= scores[j] {
				t.Errorf("shifted image %d scores %v, not above normal image %d's %v", i, scores[i], j, scores[j])
			}
		}
	}
	// Positions past the layers' (16 + 4 of 24 rows) hold 0.
	rows := len(patch) / 6
	if patch[rows-1] != 0 || patch[19] == 0 {
		t.Errorf("row scores of image 0: %v", patch[:rows])
	}
	for _, m := range maps {
		if len(m) != 81 {
			t.Fatalf("a map of %d values, want 9x9", len(m))
		}
	}

	again := fitTiny(t, 3)
	defer again.Close()
	if p2, _, _ := scoreTiny(t, again); !slices.Equal(p2, patch) {
		t.Error("the same seed trained a different model")
	}
	other := fitTiny(t, 4)
	defer other.Close()
	if p3, _, _ := scoreTiny(t, other); slices.Equal(p3, patch) {
		t.Error("another seed trained the same model")
	}

	var buf bytes.Buffer
	meta := detector.Meta{Method: Name, Layers: tinyFibers.Layers, Embedding: embedding, GridH: rows, GridW: 1}
	if err := d.Save(&buf, meta); err != nil {
		t.Fatal(err)
	}
	file := buf.Bytes()
	path := t.TempDir() + "/m.model"
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	l, lmeta, method, err := detector.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if method != Name || lmeta.GridH != rows || !slices.Equal(l.(detector.Configured).Options().(*Options).Layers, tinyFibers.Layers) {
		t.Errorf("loaded %s, meta %+v", method, lmeta)
	}
	if p4, m4, s4 := scoreTiny(t, l); !slices.Equal(p4, patch) || !slices.Equal(s4, scores) || !slices.Equal(m4[5], maps[5]) {
		t.Error("the loaded model scores differently")
	}
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", file[:len(file)-3], "truncated"},
		{"trailing", append(slices.Clone(file), 0), "after the last decoder"},
		{"not a model", []byte("SOFTPATCH-CFLOW?xxxxxxxx"), "bad magic"},
	} {
		if _, _, err := Load(bytes.NewReader(c.data)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
}
