package denoise

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"
)

// goldenCase is one case of testdata/golden.json (see gen_golden.py).
type goldenCase struct {
	Name  string    `json:"name"`
	N     int       `json:"n"`
	P     int       `json:"p"`
	D     int       `json:"d"`
	Ks    []int     `json:"ks"`
	Clean []int     `json:"clean_positions"`
	Feats []float32 `json:"feats"`
	// Scores by reference name ("nearest", "lof_k5", ...), each [N][P].
	Ref map[string][]float64 `json:"-"`
}

// loadGolden reads testdata/golden.json.
func loadGolden(t *testing.T) []goldenCase {
	t.Helper()
	raw, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []json.RawMessage `json:"cases"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	var cases []goldenCase
	for _, m := range file.Cases {
		var c goldenCase
		if err := json.Unmarshal(m, &c); err != nil {
			t.Fatal(err)
		}
		var all map[string]json.RawMessage
		if err := json.Unmarshal(m, &all); err != nil {
			t.Fatal(err)
		}
		c.Ref = map[string][]float64{}
		for key, v := range all {
			var f []float64
			if json.Unmarshal(v, &f) == nil && len(f) == c.N*c.P && key != "feats" {
				c.Ref[key] = f
			}
		}
		cases = append(cases, c)
	}
	return cases
}

// relErr returns the largest |got-want|/|want| over the positions in
// positions (all positions when nil) and its flat index.
func relErr(got []float32, want []float64, n, p int, positions []int) (float64, int) {
	worst, at := 0.0, -1
	for i := range n {
		for q := range p {
			if positions != nil && !contains(positions, q) {
				continue
			}
			w := want[i*p+q]
			e := math.Abs(float64(got[i*p+q])-w) / math.Max(math.Abs(w), 1e-30)
			if e > worst || at < 0 {
				worst, at = e, i*p+q
			}
		}
	}
	return worst, at
}

// contains reports whether xs holds x.
func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// TestGolden compares every method with the reference libraries' scores:
// the exact methods at 1e-5 relative, and logs the distance to the
// published float32 computations.
func TestGolden(t *testing.T) {
	const tol = 1e-5
	for _, c := range loadGolden(t) {
		check := func(label string, got []float32, ref string, positions []int, tol float64) {
			t.Helper()
			want, ok := c.Ref[ref]
			if !ok {
				t.Fatalf("%s: golden has no %q", c.Name, ref)
			}
			e, at := relErr(got, want, c.N, c.P, positions)
			msg := fmt.Sprintf("%s %s vs %s: max rel err %.3g (image %d, position %d: got %g want %g)",
				c.Name, label, ref, e, at/c.P, at%c.P, got[at], want[at])
			if tol > 0 && e > tol {
				t.Error(msg)
			} else {
				t.Log(msg)
			}
		}
		score := func(m Discriminator, k int) []float32 {
			t.Helper()
			w, err := Scores(m, c.Feats, c.N, c.P, c.D, k)
			if err != nil {
				t.Fatal(err)
			}
			return w
		}
		w := score(Nearest, 0)
		check("nearest", w, "nearest", nil, tol)
		check("nearest", w, "nearest32", nil, 0)
		w = score(Gaussian, 0)
		check("gaussian", w, "gaussian", nil, tol)
		check("gaussian", w, "gaussian32", nil, 0)
		for _, k := range c.Ks {
			w = score(LOF, k)
			check(fmt.Sprintf("lof k=%d", k), w, fmt.Sprintf("lof_k%d", k), nil, tol)
			check(fmt.Sprintf("lof k=%d", k), w, fmt.Sprintf("lof32_k%d", k), nil, 0)
			ref := fmt.Sprintf("lofgpu_k%d", k)
			if _, ok := c.Ref[ref]; !ok {
				continue
			}
			w = score(LOFDense, k)
			check(fmt.Sprintf("lof_dense k=%d clean", k), w, ref, c.Clean, 1e-4)
			check(fmt.Sprintf("lof_dense k=%d all", k), w, ref, nil, 0)
		}
	}
}
