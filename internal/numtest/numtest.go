// Package numtest measures how far a computed array is from a reference,
// the way every golden test of the project states its tolerance.
package numtest

import (
	"encoding/binary"
	"math"
	"os"
	"testing"
)

// RelErr is max|got[i]-want[i]| / max|want[i]|: the largest absolute error
// relative to the reference's largest magnitude. It is +Inf when got holds
// a NaN or an infinity (so that a tolerance check cannot pass on them),
// when the lengths differ, or when want is all zero and got is not.
func RelErr[G, W ~float32 | ~float64](got []G, want []W) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var maxErr, maxRef float64
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) || math.IsInf(g, 0) {
			return math.Inf(1)
		}
		maxErr = max(maxErr, math.Abs(g-w))
		maxRef = max(maxRef, math.Abs(w))
	}
	switch {
	case maxErr == 0:
		return 0
	case maxRef == 0:
		return math.Inf(1)
	}
	return maxErr / maxRef
}

// ReadFloat32File reads a golden file of raw little-endian float32 values
// (the format the fixture generators write with numpy's tofile), failing
// tb on error.
func ReadFloat32File(tb testing.TB, path string) []float32 {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if len(b)%4 != 0 {
		tb.Fatalf("%s: %d bytes is not a whole number of float32 values", path, len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}
