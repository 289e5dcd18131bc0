package compute

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestDgemm compares Dgemm with a plain triple loop in float64, for every
// transposition, sizes that split across threads and ones that do not,
// and padded leading dimensions.
func TestDgemm(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	fill := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = r.NormFloat64()
		}
		return v
	}
	for _, s := range []struct{ m, n, k int }{{3, 5, 4}, {130, 120, 110}, {1, 7, 0}} {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				ar, ac, br, bc := storedShapes(s.m, s.n, s.k, ta, tb)
				lda, ldb, ldc := ac+2, bc+1, s.n+3
				a, b, c := fill(ar*lda), fill(br*ldb), fill(s.m*ldc)
				want := append([]float64(nil), c...)
				at := func(i, l int) float64 {
					if ta {
						return a[l*lda+i]
					}
					return a[i*lda+l]
				}
				bt := func(l, j int) float64 {
					if tb {
						return b[j*ldb+l]
					}
					return b[l*ldb+j]
				}
				for i := range s.m {
					for j := range s.n {
						sum := 0.0
						for l := range s.k {
							sum += at(i, l) * bt(l, j)
						}
						want[i*ldc+j] = 1.5*sum - 0.5*want[i*ldc+j]
					}
				}
				Dgemm(ta, tb, s.m, s.n, s.k, 1.5, a, lda, b, ldb, -0.5, c, ldc)
				for i, v := range c {
					if math.Abs(v-want[i]) > 1e-12*(1+math.Abs(want[i])) {
						t.Fatalf("%+v ta=%v tb=%v: c[%d] = %v, want %v", s, ta, tb, i, v, want[i])
					}
				}
			}
		}
	}
}
