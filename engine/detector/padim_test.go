package detector

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	goreflect "reflect"
	"slices"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/engine/compute"
)

// padimFixture fits a small PaDiM model on random features.
func padimFixture(t *testing.T, nImg, pos, dim int) (*PaDiM, []float32) {
	t.Helper()
	feats := randFeats(rand.New(rand.NewPCG(21, 22)), nImg*pos*dim)
	m, err := FitPaDiM(feats, nImg, pos, dim)
	if err != nil {
		t.Fatal(err)
	}
	return m, feats
}

// TestPaDiMStreamedSpilled checks that a PaDiMFitter given the images in
// uneven batches, with its features spilled to a file, fits the same model
// bit for bit as FitPaDiM on everything in memory, with one thread or more
// (the positions are independent), and leaves no file behind.
func TestPaDiMStreamedSpilled(t *testing.T) {
	const nImg, pos, dim = 7, 19, 13
	want, feats := padimFixture(t, nImg, pos, dim)
	for _, threads := range []int{1, 3} {
		defer compute.SetThreads(compute.Threads())
		compute.SetThreads(threads)
		dir := t.TempDir()
		var calls, last int
		f, err := NewPaDiMFitter(nImg, pos, dim, FitterOptions{MaxMemory: 100, TempDir: dir, Progress: func(done, total int) { calls, last = calls+1, done }})
		if err != nil {
			t.Fatal(err)
		}
		if !f.Spilled() {
			t.Fatal("features not spilled")
		}
		per := pos * dim
		for _, r := range [][2]int{{0, 3}, {3, 4}, {4, 7}} {
			if err := f.Add(feats[r[0]*per:r[1]*per], r[1]-r[0]); err != nil {
				t.Fatal(err)
			}
		}
		got, err := f.Fit()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Mean, want.Mean) || !slices.Equal(got.Factor, want.Factor) {
			t.Errorf("threads %d: streamed, spilled fit differs", threads)
		}
		if calls != pos || last != pos {
			t.Errorf("progress called %d times, last %d, want %d", calls, last, pos)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Errorf("left %d files in the temporary folder", len(left))
		}
	}
}

// TestPaDiMScoreDirect compares Score with a float64 evaluation of
// sqrt((x-m)^T S^-1 (x-m)) where S^-1 = W^T W from the stored factor, and
// checks that the training mean scores 0.
func TestPaDiMScoreDirect(t *testing.T) {
	const nImg, pos, dim = 9, 5, 11
	m, _ := padimFixture(t, nImg, pos, dim)
	test := randFeats(rand.New(rand.NewPCG(23, 24)), 4*pos*dim)
	copy(test[:pos*dim], m.Mean) // image 0 is the mean itself
	got := make([]float32, 4*pos)
	if err := m.Score(got, test, 4, pos); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		for q := 0; q < pos; q++ {
			w := m.Factor[q*triangle(dim):]
			s := 0.0
			for r := 0; r < dim; r++ {
				y := 0.0
				for c := 0; c <= r; c++ {
					y += float64(w[triangle(r)+c]) * (float64(test[(i*pos+q)*dim+c]) - float64(m.Mean[q*dim+c]))
				}
				s += y * y
			}
			want := math.Sqrt(s)
			if d := math.Abs(float64(got[i*pos+q]) - want); d > 1e-5*max(1, want) {
				t.Errorf("image %d position %d: %v, want %v", i, q, got[i*pos+q], want)
			}
		}
	}
	for q := 0; q < pos; q++ {
		if got[q] != 0 {
			t.Errorf("the mean scores %v at position %d", got[q], q)
		}
	}
}

func TestPaDiMErrors(t *testing.T) {
	if _, err := NewPaDiMFitter(1, 4, 3, FitterOptions{}); err == nil || !strings.Contains(err.Error(), "at least 2") {
		t.Errorf("one image: %v", err)
	}
	f, err := NewPaDiMFitter(2, 4, 3, FitterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Add(make([]float32, 5), 1); err == nil {
		t.Error("wrong feature count accepted")
	}
	if err := f.Add(make([]float32, 3*4*3), 3); err == nil || !strings.Contains(err.Error(), "3 images added") {
		t.Errorf("too many images: %v", err)
	}
	if err := f.Add(make([]float32, 4*3), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Fit(); err == nil || !strings.Contains(err.Error(), "1 of 2") {
		t.Errorf("missing image: %v", err)
	}
	if err := f.Add(make([]float32, 4*3), 1); err == nil {
		t.Error("Add after Fit accepted")
	}
	m, _ := padimFixture(t, 3, 4, 3)
	if err := m.Score(make([]float32, 8), make([]float32, 2*5*3), 2, 5); err == nil {
		t.Error("wrong positions accepted")
	}
	// A NaN feature makes a covariance non-positive-definite: an error
	// that names the position, not a panic or NaN scores.
	feats := randFeats(rand.New(rand.NewPCG(1, 1)), 3*4*3)
	feats[2*4*3+3*3+1] = float32(math.NaN())
	if _, err = FitPaDiM(feats, 3, 4, 3); err == nil || !strings.Contains(err.Error(), "position 3 is not finite") {
		t.Errorf("NaN feature: %v", err)
	}
	// Identical features everywhere with no ridge would be singular; the
	// ridge keeps them fittable (covariance 0.01*I).
	if _, err := FitPaDiM(make([]float32, 3*4*3), 3, 4, 3); err != nil {
		t.Errorf("constant features: %v", err)
	}
}

func TestPaDiMSaveLoad(t *testing.T) {
	m, _ := padimFixture(t, 4, 6, 5)
	meta := Meta{Layers: []string{"layer1", "layer2", "layer3"}, Embedding: "padim", Channels: []int{1, 5, 9, 20, 30},
		ImageSize: 24, GridH: 2, GridW: 3, Method: "padim"}
	path := filepath.Join(t.TempDir(), "m.padim")
	if err := m.SaveFile(path, meta); err != nil {
		t.Fatal(err)
	}
	if d, _, method, err := LoadFile(path); err != nil || method != "padim" || d.Info().Method != "padim" {
		t.Fatalf("LoadFile: method %q, %v", method, err)
	}
	got, gotMeta, err := LoadPaDiMFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !goreflect.DeepEqual(got, m) || !goreflect.DeepEqual(gotMeta, meta) {
		t.Error("model or meta differ after loading")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		data []byte
		want string
	}{
		"magic":     {append([]byte("SOFTPATCH-MODEL\n"), b[16:]...), "bad magic"},
		"empty":     {nil, "bad magic"},
		"cut mean":  {b[:len(b)-4*len(m.Factor)-7], "truncated"},
		"cut bulk":  {b[:len(b)-9], "truncated"},
		"trailing":  {append(slices.Clone(b), 0), "after the factors"},
		"version":   {append(append([]byte(padimMagic), 9, 0, 0, 0), b[20:]...), "version 9"},
		"no header": {b[:24], "truncated"},
	} {
		_, _, err := LoadPaDiM(bytes.NewReader(c.data))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
		p := filepath.Join(t.TempDir(), "bad")
		if err := os.WriteFile(p, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := LoadPaDiMFile(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s from a file: %v, want an error naming it", name, err)
		}
	}
	// A header claiming 2^38 positions, from a stream: an error, not an
	// allocation of the claimed size.
	var huge bytes.Buffer
	huge.WriteString(padimMagic)
	h := []byte(`{"positions":274877906944,"dim":1,"images":2,"ridge":0.01,"meta":{}}`)
	huge.Write([]byte{1, 0, 0, 0, byte(len(h)), 0, 0, 0})
	huge.Write(h)
	huge.Write(make([]byte, 1000))
	if _, _, err := LoadPaDiM(&huge); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("huge header: %v", err)
	}
	if _, _, _, err := LoadFile(path + ".none"); err == nil {
		t.Error("missing file loaded")
	}
}

// BenchmarkPaDiMFit fits 32 positions of PaDiM at MVTec size (200 training
// images, 550 channels); a 224 px class has 3136 positions.
func BenchmarkPaDiMFit(b *testing.B) {
	const nImg, pos, dim = 200, 32, 550
	feats := randFeats(rand.New(rand.NewPCG(31, 32)), nImg*pos*dim)
	b.ResetTimer()
	for range b.N {
		if _, err := FitPaDiM(feats, nImg, pos, dim); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Seconds())/float64(b.N*pos)*3136, "s/class224")
}

// BenchmarkPaDiMScore scores 32 test images at 32 positions of 550
// channels (a 224 px image has 3136).
func BenchmarkPaDiMScore(b *testing.B) {
	const nImg, pos, dim = 200, 32, 550
	r := rand.New(rand.NewPCG(33, 34))
	m, err := FitPaDiM(randFeats(r, nImg*pos*dim), nImg, pos, dim)
	if err != nil {
		b.Fatal(err)
	}
	const nTest = 32
	test := randFeats(r, nTest*pos*dim)
	dst := make([]float32, nTest*pos)
	b.ResetTimer()
	for range b.N {
		if err := m.Score(dst, test, nTest, pos); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Seconds())/float64(b.N*pos*nTest)*3136, "s/image224")
}
