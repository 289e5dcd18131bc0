package experiments

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/internal/npy"
)

// TestDrawsRoundTrip writes every key and reads it back with the file's
// sha256.
func TestDrawsRoundTrip(t *testing.T) {
	proj := make([]float32, 128*3)
	for i := range proj {
		proj[i] = float32(i) / 7
	}
	in := &Draws{NoiseFiles: []string{"wood/test/hole/000.png"}, Augment: []datasets.Affine{{Angle: 3, TX: 0.05, TY: -0.02, Scale: 1.05, ShearX: -4}},
		PaDiMChannels: []int{4, 9}, Detector: detector.Draws{DiscriminatorProjection: proj, CoresetProjection: proj, CoresetStartPoints: []int{5, 1}, RandomSubset: []int{2}}}
	path := filepath.Join(t.TempDir(), "draws.npz")
	if err := in.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	out, sum, err := ReadDraws(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) || len(sum) != 64 {
		t.Errorf("read %+v (%s), wrote %+v", out, sum, in)
	}
	if got := strings.Join(out.Keys(), ","); got != strings.Join(DrawKeys, ",") {
		t.Errorf("keys %s", got)
	}
}

// TestReadDrawsBad checks the errors of draws files that cannot be
// replayed: each names the file and what is wrong.
func TestReadDrawsBad(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, es ...npy.Entry) string {
		p := filepath.Join(dir, name)
		if err := writeNPZ(t, p, es); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok := write("ok.npz", npy.Entry{Name: "random_subset", Array: &npy.Array{DType: "<i8", Shape: []int{2}, I64: []int64{1, 2}}})
	b, _ := os.ReadFile(ok)
	cut := filepath.Join(dir, "cut.npz")
	os.WriteFile(cut, b[:len(b)-30], 0o644)
	for _, c := range []struct{ path, want string }{
		{write("shape.npz", npy.Entry{Name: "coreset_projection", Array: &npy.Array{DType: "<f4", Shape: []int{64, 2}, F32: make([]float32, 128)}}), "coreset_projection is <f4 [64 2], want float32 [128, D]"},
		{write("dtype.npz", npy.Entry{Name: "coreset_start_points", Array: &npy.Array{DType: "<f8", Shape: []int{2}, F64: []float64{1, 2}}}), "coreset_start_points is <f8 [2], want a 1-D int64 array"},
		{write("unknown.npz", npy.Entry{Name: "start_points", Array: &npy.Array{DType: "<i8", Shape: []int{1}, I64: []int64{1}}}), `unknown draw "start_points"`},
		{write("aug.npz", npy.Entry{Name: "augment", Array: &npy.Array{DType: "<f8", Shape: []int{1, 5}, F64: make([]float64, 5)}}), "augment is <f8 [1 5]"},
		{cut, "not an .npz file"},
		{filepath.Join("..", "internal", "npy", "testdata", "numpy_pickle.npz"), "pickle"},
	} {
		_, _, err := ReadDraws(c.path)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), filepath.Base(c.path)) {
			t.Errorf("%s: %v, want %q", filepath.Base(c.path), err, c.want)
		}
	}
}

// writeNPZ writes entries to a new file at path.
func writeNPZ(t *testing.T, path string, es []npy.Entry) error {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return npy.WriteNPZ(f, es)
}

// drawsClass is a class of items without images (the draw reads none):
// 20 training images, one normal and 3 anomalous test images.
func drawsClass(root string) *datasets.Class {
	c := &datasets.Class{Name: "k", Root: root, Format: "mvtec", Normal: "good"}
	for i := 0; i < 20; i++ {
		c.Train = append(c.Train, datasets.Item{Class: "k", Split: "train", Type: "good", Path: filepath.Join(root, "k", "train", "good", fmt.Sprintf("%03d.png", i))})
	}
	c.Test = append(c.Test, datasets.Item{Class: "k", Split: "test", Type: "good", Path: filepath.Join(root, "k", "test", "good", "000.png")})
	for i := 0; i < 3; i++ {
		c.Test = append(c.Test, datasets.Item{Class: "k", Split: "test", Type: "cut", Path: filepath.Join(root, "k", "test", "cut", fmt.Sprintf("%03d.png", i)), Anomalous: true})
	}
	return c
}

// TestDrawsResampleRoundTrip writes the draw of a noise ratio beyond the
// class's anomalous images (resampled copies with their affines, with and
// without the augmentation; a capped draw) and replays it: the split is
// the same, affines included.
func TestDrawsResampleRoundTrip(t *testing.T) {
	dir := t.TempDir()
	c := drawsClass(dir)
	for _, n := range []datasets.Noise{
		{Ratio: 0.5, Overlap: true, Fold: 1},
		{Ratio: 0.5, Overlap: true, Fold: 1, Augment: true},
		{Ratio: 0.5, Fold: 1},
	} {
		in, err := c.Inject("mvtec", n)
		if err != nil {
			t.Fatal(err)
		}
		d := &Draws{}
		d.SetNoise(c.Root, in.Drawn, in.Noise.Augment)
		path := filepath.Join(dir, "draws.npz")
		if err := d.WriteFile(path); err != nil {
			t.Fatal(err)
		}
		out, _, err := ReadDraws(path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(out, d) {
			t.Errorf("%+v: read %+v, wrote %+v", n, out, d)
		}
		var wantKeys string
		switch {
		case n.Augment:
			wantKeys = "noise_files,augment"
		case n.Overlap:
			wantKeys = "noise_files,resample"
		default:
			wantKeys = "noise_files"
		}
		if got := strings.Join(out.Keys(), ","); got != wantKeys {
			t.Errorf("%+v: keys %s, want %s", n, got, wantKeys)
		}
		replay := datasets.Noise{Ratio: 0.1, Overlap: n.Overlap, Fold: 7}
		if err := out.ReplayNoise(&replay); err != nil {
			t.Fatal(err)
		}
		re, err := c.Inject("other", replay)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(re.Train, in.Train) || !reflect.DeepEqual(re.Test, in.Test) || !reflect.DeepEqual(re.Drawn, in.Drawn) ||
			re.Noise.Resampled != in.Noise.Resampled {
			t.Errorf("%+v: the replay differs from the draw", n)
		}
	}
	// A replayed list of copies with the augmentation turned on another
	// way is refused, as is a draw in both the file and a noise list.
	in, _ := c.Inject("mvtec", datasets.Noise{Ratio: 0.5, Overlap: true})
	d := &Draws{}
	d.SetNoise(c.Root, in.Drawn, false)
	if err := d.ReplayNoise(&datasets.Noise{Augment: true}); err == nil || !strings.Contains(err.Error(), "resample") {
		t.Errorf("resample with the augmentation: %v", err)
	}
	if err := d.ReplayNoise(&datasets.Noise{Files: []string{"k/test/cut/000.png"}}); err == nil || !strings.Contains(err.Error(), "noise list") {
		t.Errorf("resample with a noise list: %v", err)
	}
}

// TestReadDrawsResampleBad: a resample row that mixes NaN and numbers, or
// shears along y, is refused naming the file and the row.
func TestReadDrawsResampleBad(t *testing.T) {
	dir := t.TempDir()
	nan := math.NaN()
	for name, c := range map[string]struct {
		shape []int
		rows  []float64
		want  string
	}{
		"mixed.npz": {[]int{2, 6}, []float64{nan, nan, nan, nan, nan, nan, 1, 0, 0, 1, nan, 0}, "resample row 1 mixes NaN"},
		"shear.npz": {[]int{2, 6}, []float64{nan, nan, nan, nan, nan, nan, 1, 0, 0, 1, 0, 2}, "resample row 1 has a y shear"},
		"shape.npz": {[]int{1, 5}, []float64{1, 0, 0, 1, 0}, "resample is <f8 [1 5]"},
	} {
		p := filepath.Join(dir, name)
		if err := writeNPZ(t, p, []npy.Entry{{Name: "resample", Array: &npy.Array{DType: "<f8", Shape: c.shape, F64: c.rows}}}); err != nil {
			t.Fatal(err)
		}
		_, _, err := ReadDraws(p)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}
