package compute

import (
	"math/rand"
	"testing"

	"github.com/softpatch/softpatch/internal/numtest"
)

// randSlice returns n seeded uniform values in [-1, 1).
func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = rng.Float32()*2 - 1
	}
	return s
}

// relErr is numtest.RelErr: max|got-want| / max|want|, +Inf on NaN.
func relErr(got []float32, want []float64) float64 { return numtest.RelErr(got, want) }

// checkRel fails t when relErr(got, want) > tol, and logs the error.
func checkRel(t *testing.T, name string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: len %d, want %d", name, len(got), len(want))
	}
	e := relErr(got, want)
	if !(e <= tol) {
		t.Errorf("%s: relative error %.3g > %.3g", name, e, tol)
	} else if testing.Verbose() {
		t.Logf("%s: relative error %.3g (tol %.3g)", name, e, tol)
	}
}
