package denoise

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/softpatch/softpatch/engine/compute"
)

// randFeats returns n*p*d seeded standard-normal float32 features.
func randFeats(seed uint64, n, p, d int) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	x := make([]float32, n*p*d)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// TestErrors checks the argument validation.
func TestErrors(t *testing.T) {
	x := randFeats(1, 4, 3, 2)
	bad := []struct {
		m          Discriminator
		feats      []float32
		n, p, d, k int
	}{
		{Discriminator{}, x, 4, 3, 2, 5},
		{Nearest, x, 0, 3, 2, 5},
		{Nearest, x, 4, -3, 2, 5},
		{Nearest, x, 4, 3, 0, 5},
		{Nearest, x[:5], 4, 3, 2, 5},
		{Gaussian, x[:6], 1, 3, 2, 5},
		{LOF, x, 4, 3, 2, 0},
		{LOFDense, x, 4, 3, 2, -1},
	}
	for _, b := range bad {
		if _, err := Scores(b.m, b.feats, b.n, b.p, b.d, b.k); err == nil {
			t.Errorf("Scores(%q, len %d, n=%d p=%d d=%d k=%d): no error", b.m, len(b.feats), b.n, b.p, b.d, b.k)
		}
	}
	for _, m := range Discriminators() {
		if _, err := Scores(m, x, 4, 3, 2, 1); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
	if _, err := Scores(Nearest, x, 4, 3, 2, 0); err != nil {
		t.Errorf("nearest ignores k: %v", err)
	}
}

// TestParse checks the discriminator names and the lof_gpu alias.
func TestParse(t *testing.T) {
	for _, m := range Discriminators() {
		if got, err := Parse(m.Name()); err != nil || got != m {
			t.Errorf("Parse(%q) = %q, %v", m, got, err)
		}
	}
	if got, err := Parse("lof_gpu"); err != nil || got != LOFDense {
		t.Errorf("Parse(lof_gpu) = %q, %v", got, err)
	}
	if _, err := Parse("LOF"); err == nil {
		t.Error("Parse(LOF): no error")
	}
}

// TestWorkersInvariant checks that the scores do not depend on the number
// of goroutines.
func TestWorkersInvariant(t *testing.T) {
	const n, p, d, k = 30, 17, 16, 5
	x := randFeats(2, n, p, d)
	old := compute.Threads()
	compute.SetThreads(1)
	var one [][]float32
	for _, m := range Discriminators() {
		w, err := Scores(m, x, n, p, d, k)
		if err != nil {
			t.Fatal(err)
		}
		one = append(one, w)
	}
	compute.SetThreads(max(old, 3))
	defer compute.SetThreads(old)
	for i, m := range Discriminators() {
		w, err := Scores(m, x, n, p, d, k)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(w, one[i]) {
			t.Errorf("%s: scores differ between 1 and %d goroutines", m, compute.Threads())
		}
	}
}

// TestLayout checks that position q of image i reads feats[(i*p+q)*d:] and
// writes w[i*p+q]: a far outlier planted at one (image, position) gets the
// largest score of its position under every method, and its image's other
// positions do not stand out.
func TestLayout(t *testing.T) {
	const n, p, d = 20, 6, 4
	x := randFeats(3, n, p, d)
	const oi, oq = 7, 4
	for c := range d {
		x[(oi*p+oq)*d+c] += 50
	}
	for _, m := range Discriminators() {
		w, err := Scores(m, x, n, p, d, DefaultK)
		if err != nil {
			t.Fatal(err)
		}
		for q := range p {
			best := 0
			for i := range n {
				if w[i*p+q] > w[best*p+q] {
					best = i
				}
			}
			if q == oq && best != oi {
				t.Errorf("%s: position %d: top image %d, want %d", m, q, best, oi)
			}
		}
	}
}

// TestDuplicates checks the duplicate semantics on a tiny hand-made group:
// nearest gives exactly 1 to duplicated points, and LOF gives exactly 1 to
// points with more than k duplicates (density 1e10 all round).
func TestDuplicates(t *testing.T) {
	const n, d, k = 8, 3, 2
	x := make([]float32, n*d)
	for i := range 4 { // images 0..3 identical
		copy(x[i*d:], []float32{1, 2, 3})
	}
	for i := 4; i < n; i++ {
		copy(x[i*d:], []float32{float32(i * i), float32(-i), 0.5 * float32(i)})
	}
	w, err := Scores(Nearest, x, n, 1, d, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if w[i] != 1 {
			t.Errorf("nearest[%d] = %g, want 1", i, w[i])
		}
	}
	w, err = Scores(LOF, x, n, 1, d, k)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if w[i] != 1 {
			t.Errorf("lof[%d] = %g, want 1", i, w[i])
		}
	}
}

// benchSoftPatch scores an MVTec-sized problem (200 images, 784 positions,
// 128 dims) with method m.
func benchSoftPatch(b *testing.B, m Discriminator) {
	const n, p, d = 200, 784, 128
	x := randFeats(4, n, p, d)
	b.ResetTimer()
	for range b.N {
		if _, err := Scores(m, x, n, p, d, DefaultK); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNearest times Nearest at MVTec size.
func BenchmarkNearest(b *testing.B) { benchSoftPatch(b, Nearest) }

// BenchmarkGaussian times Gaussian at MVTec size.
func BenchmarkGaussian(b *testing.B) { benchSoftPatch(b, Gaussian) }

// BenchmarkLOF times LOF at MVTec size.
func BenchmarkLOF(b *testing.B) { benchSoftPatch(b, LOF) }

// BenchmarkLOFDense times LOFDense at MVTec size.
func BenchmarkLOFDense(b *testing.B) { benchSoftPatch(b, LOFDense) }

// TestDiscriminatorText checks that a discriminator travels in JSON as its
// name, that the zero value is the empty name, and that an unknown name is
// refused.
func TestDiscriminatorText(t *testing.T) {
	type holder struct {
		D Discriminator `json:"d"`
	}
	for _, d := range append(Discriminators(), Discriminator{}) {
		b, err := json.Marshal(holder{d})
		if err != nil {
			t.Fatal(err)
		}
		var h holder
		if err := json.Unmarshal(b, &h); err != nil || h.D != d {
			t.Errorf("%s: %s decodes to %q, %v", d, b, h.D, err)
		}
	}
	var h holder
	if err := json.Unmarshal([]byte(`{"d":"knn"}`), &h); err == nil {
		t.Error("unknown discriminator decoded")
	}
	if err := json.Unmarshal([]byte(`{"d":"lof_gpu"}`), &h); err != nil || h.D != LOFDense {
		t.Errorf("lof_gpu decodes to %q, %v", h.D, err)
	}
}
