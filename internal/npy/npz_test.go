package npy

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestReadNPZNumpy reads the archives numpy.savez and savez_compressed
// wrote (testdata/gen_npz.py) and checks every value.
func TestReadNPZNumpy(t *testing.T) {
	for _, f := range []string{"numpy_savez.npz", "numpy_compressed.npz"} {
		a, err := ReadNPZ(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a["f32"].F32, []float32{0, 0.25, 0.5, 0.75, 1, 1.25}) || !slices.Equal(a["f32"].Shape, []int{2, 3}) {
			t.Errorf("%s f32 %v %v", f, a["f32"].Shape, a["f32"].F32)
		}
		if !slices.Equal(a["f64"].F64, []float64{0.5, -1.25, 1e300}) {
			t.Errorf("%s f64 %v", f, a["f64"].F64)
		}
		if !slices.Equal(a["i64"].I64, []int64{3, -1, 1 << 40}) {
			t.Errorf("%s i64 %v", f, a["i64"].I64)
		}
		if !slices.Equal(a["names"].Str, []string{"wood/test/hole/000.png", "wood/test/färbung/1.png"}) {
			t.Errorf("%s names %q", f, a["names"].Str)
		}
	}
}

// TestNPZRoundTrip writes every dtype and reads it back.
func TestNPZRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.npz")
	in := []Entry{
		{"p", &Array{DType: "<f4", Shape: []int{2, 2}, F32: []float32{1, 2, 3, 4}}},
		{"a", &Array{DType: "<f8", Shape: []int{1, 2}, F64: []float64{0.1, 0.2}}},
		{"s", &Array{DType: "<i8", Shape: []int{3}, I64: []int64{7, 0, -2}}},
		{"names", &Array{DType: "<U", Shape: []int{2}, Str: []string{"a", "ünï"}}},
	}
	if err := writeNPZ(t, path, in); err != nil {
		t.Fatal(err)
	}
	out, err := ReadNPZ(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 4 || !slices.Equal(out["p"].F32, in[0].Array.F32) || !slices.Equal(out["a"].F64, in[1].Array.F64) ||
		!slices.Equal(out["s"].I64, in[2].Array.I64) || !slices.Equal(out["names"].Str, in[3].Array.Str) || out["names"].DType != "<U3" {
		t.Errorf("round trip: %+v", out)
	}
	if err := writeNPZ(t, path, []Entry{{"x", &Array{DType: "<f4", Shape: []int{3}, F32: []float32{1}}}}); err == nil {
		t.Error("a shape the data does not fill was written")
	}
}

// TestReadNPZBad checks the errors: a pickle inside, a truncated archive,
// another file format; each names the file.
func TestReadNPZBad(t *testing.T) {
	_, err := ReadNPZ(filepath.Join("testdata", "numpy_pickle.npz"))
	if !errors.Is(err, ErrUnsupportedDType) || !strings.Contains(err.Error(), `"obj.npy"`) || !strings.Contains(err.Error(), "pickle") {
		t.Errorf("pickle: %v", err)
	}
	b, err := os.ReadFile(filepath.Join("testdata", "numpy_savez.npz"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, data := range map[string][]byte{"cut.npz": b[:len(b)-40], "half.npz": b[:len(b)/2], "text.npz": []byte("hello")} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o644)
		if _, err := ReadNPZ(p); !errors.Is(err, ErrNotNPZ) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// writeNPZ writes entries to a new file at path.
func writeNPZ(t *testing.T, path string, es []Entry) error {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return WriteNPZ(f, es)
}
