package compute

import (
	"math/rand"
	"strings"
	"testing"
)

func TestBLASInfo(t *testing.T) {
	info := BLASInfo()
	if !strings.HasPrefix(info, "OpenBLAS") || !strings.HasSuffix(info, " threads") {
		t.Errorf("BLASInfo() = %q", info)
	}
	if want := " + softpatch " + useKernel.String() + " SGEMM, "; ours() != strings.Contains(info, want) {
		t.Errorf("BLASInfo() = %q, kernel %v", info, useKernel)
	}
	t.Log(info)
}

func TestSetThreads(t *testing.T) {
	defer SetThreads(Threads())
	SetThreads(1)
	if Threads() != 1 || !strings.Contains(BLASInfo(), "1 threads") {
		t.Errorf("after SetThreads(1): Threads()=%d, BLASInfo()=%q", Threads(), BLASInfo())
	}
	SetThreads(0)
	if Threads() < 1 {
		t.Errorf("SetThreads(0): Threads()=%d", Threads())
	}
}

// TestSgemm checks all transpose combinations with padded leading
// dimensions and alpha/beta against a float64 reference, including sizes
// that Sgemm splits by rows and by columns. Tolerance 1e-6 relative (k <= 100
// float32 products); measured up to 4.6e-7.
func TestSgemm(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, sz := range [][3]int{{1, 1, 1}, {7, 5, 3}, {33, 17, 67}, {64, 65, 1}, {130, 97, 100}, {20, 600, 100}} {
		m, n, k := sz[0], sz[1], sz[2]
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				ar, ac, br, bc := storedShapes(m, n, k, ta, tb)
				lda, ldb, ldc := ac+2, bc+1, n+3
				a := randSlice(rng, ar*lda)
				b := randSlice(rng, br*ldb)
				c := randSlice(rng, m*ldc)
				alpha, beta := float32(0.75), float32(-0.5)
				want := refGemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
				Sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
				checkRel(t, "Sgemm", c, want, 1e-6)
			}
		}
	}
	// k == 0 scales C by beta; beta == 0 clears NaNs.
	c := []float32{1, 2, 3, 4}
	Sgemm(false, false, 2, 2, 0, 1, nil, 1, nil, 2, 0.5, c, 2)
	if c[0] != 0.5 || c[3] != 2 {
		t.Errorf("k=0: C=%v", c)
	}
}

func TestSgemmPanics(t *testing.T) {
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), "compute.Sgemm") {
			t.Errorf("recover() = %v", r)
		}
	}()
	Sgemm(false, false, 2, 2, 2, 1, make([]float32, 3), 2, make([]float32, 4), 2, 0, make([]float32, 4), 2)
}
