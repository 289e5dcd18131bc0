// Package numtest measures how far a computed array is from a reference,
// the way every golden test of the project states its tolerance.
package numtest

import "math"

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
