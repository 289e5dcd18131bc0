package experiments

import (
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
