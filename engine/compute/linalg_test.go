package compute

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// TestDsyrk compares Dsyrk's lower triangle with a direct sum, with row
// strides larger than the sizes, and checks that the upper triangle is left
// alone.
func TestDsyrk(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, sz := range [][2]int{{1, 1}, {5, 3}, {17, 40}, {64, 9}} {
		n, k := sz[0], sz[1]
		lda, ldc := n+3, n+1
		a := make([]float64, k*lda)
		for i := range a {
			a[i] = r.NormFloat64()
		}
		c := make([]float64, n*ldc)
		for i := range c {
			c[i] = 7
		}
		Dsyrk(n, k, 0.5, a, lda, 2, c, ldc)
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				got := c[i*ldc+j]
				if j > i {
					if got != 7 {
						t.Fatalf("n=%d k=%d: upper (%d,%d) changed to %v", n, k, i, j, got)
					}
					continue
				}
				want := 14.0
				for l := 0; l < k; l++ {
					want += 0.5 * a[l*lda+i] * a[l*lda+j]
				}
				if math.Abs(got-want) > 1e-12*max(1, math.Abs(want)) {
					t.Fatalf("n=%d k=%d: (%d,%d) = %v, want %v", n, k, i, j, got, want)
				}
			}
		}
	}
}

// TestInverseCholesky checks W = L^-1 for random covariances with a ridge
// (the shape PaDiM inverts: fewer samples than dimensions): W is lower
// triangular with a positive diagonal and W*A*W^T = I.
func TestInverseCholesky(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, sz := range [][2]int{{1, 3}, {6, 20}, {40, 12}, {130, 50}} {
		n, samples := sz[0], sz[1]
		x := make([]float64, samples*n)
		for i := range x {
			x[i] = r.NormFloat64() * float64(1+i%n)
		}
		a := make([]float64, n*n)
		Dsyrk(n, samples, 1/float64(samples), x, n, 0, a, n)
		for i := 0; i < n; i++ {
			a[i*n+i] += 0.01
			for j := i + 1; j < n; j++ {
				a[i*n+j] = a[j*n+i]
			}
		}
		w := append([]float64(nil), a...)
		for i := 0; i < n; i++ { // only the lower triangle is read
			for j := i + 1; j < n; j++ {
				w[i*n+j] = math.NaN()
			}
		}
		if err := InverseCholesky(w, n); err != nil {
			t.Fatal(err)
		}
		at := func(i, j int) float64 {
			if j > i {
				return 0
			}
			return w[i*n+j]
		}
		worst := 0.0
		for i := 0; i < n; i++ {
			if at(i, i) <= 0 {
				t.Fatalf("n=%d: W[%d][%d] = %v", n, i, i, at(i, i))
			}
			for j := 0; j <= i; j++ {
				s := 0.0 // (W A W^T)[i][j]
				for p := 0; p <= i; p++ {
					for q := 0; q <= j; q++ {
						s += at(i, p) * a[p*n+q] * at(j, q)
					}
				}
				if i == j {
					s--
				}
				worst = max(worst, math.Abs(s))
			}
		}
		if worst > 1e-9 {
			t.Errorf("n=%d: |W A W^T - I| up to %.3g", n, worst)
		}
	}
}

// TestInverseCholeskyNotPositiveDefinite checks the error for a matrix
// with a negative leading minor of order 2.
func TestInverseCholeskyNotPositiveDefinite(t *testing.T) {
	a := []float64{1, 0, 0, 2, 1, 0, 0, 0, 1}
	var e NotPositiveDefiniteError
	if err := InverseCholesky(a, 3); !errors.As(err, &e) || e.Order != 2 {
		t.Fatalf("got %v, want not positive definite at order 2", err)
	}
}

// TestSgemmSerial compares SgemmSerial with Sgemm on a product large
// enough for Sgemm to split.
func TestSgemmSerial(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	m, n, k := 37, 129, 300
	a, b := make([]float32, m*k), make([]float32, n*k)
	for i := range a {
		a[i] = float32(r.NormFloat64())
	}
	for i := range b {
		b[i] = float32(r.NormFloat64())
	}
	got, want := make([]float32, m*n), make([]float32, m*n)
	SgemmSerial(false, true, m, n, k, 1, a, k, b, k, 0, got, n)
	Sgemm(false, true, m, n, k, 1, a, k, b, k, 0, want, n)
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > 1e-4*max(1, math.Abs(float64(want[i]))) {
			t.Fatalf("element %d: %v, Sgemm %v", i, got[i], want[i])
		}
	}
}
