package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/engine/knn"
	"github.com/softpatch/softpatch/internal/npy"
)

// TestBenches runs both measurements on tiny inputs: sizes and counts as
// asked, a selection hash that repeats, and the errors for bad input.
func TestBenches(t *testing.T) {
	p, err := PaDiM(3, 2, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	if p.Train != 3 || p.Test != 2 || p.Positions != 4 || p.Channels != 3 || !(p.DistanceChecksum > 0) {
		t.Errorf("padim %+v", p)
	}
	if _, err := PaDiM(1, 1, 1, 1); err == nil {
		t.Error("one training image accepted")
	}
	file := filepath.Join(t.TempDir(), "f.npy")
	x := make([]float32, 50*8)
	for i := range x {
		x[i] = float32(i%17) - float32(i%5)
	}
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := npy.WriteFloat32(f, []int{50, 8}, x); err != nil {
		t.Fatal(err)
	}
	f.Close()
	o := CoresetOptions{Ratio: 0.2, Starts: 2, Device: "cpu"}
	a, err := Coreset(file, o)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Coreset(file, o)
	if a.N != 50 || a.Dim != 8 || a.Picks != 10 || a.Selection != b.Selection {
		t.Errorf("coreset %+v vs %+v", a, b)
	}
	if _, err := Coreset(filepath.Join(t.TempDir(), "none.npy"), o); err == nil || !strings.Contains(err.Error(), "none.npy") {
		t.Errorf("missing file: %v", err)
	}
}

// TestKNNBench runs the nearest-neighbour benchmark on tiny isotropic
// data with the pruned search forced: both sides agree, and the sizes are
// those asked for.
func TestKNNBench(t *testing.T) {
	r, err := KNN(KNNOptions{Isotropic: 300, Dim: 40, Images: 2, Search: knn.Pruned, Reps: 2, Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Bank != 300 || r.Dim != 40 || r.Queries != 2*784 || r.Differences != 0 || !(r.Computed > 0 && r.Computed <= 1) || !(r.BruteSeconds > 0 && r.PrunedSeconds > 0) {
		t.Errorf("knn %+v", r)
	}
	if _, err := KNN(KNNOptions{Model: filepath.Join(t.TempDir(), "none.model"), Features: "x.npy", Reps: 1, Batch: 1}); err == nil || !strings.Contains(err.Error(), "none.model") {
		t.Errorf("missing model: %v", err)
	}
}
