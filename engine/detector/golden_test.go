package detector

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/softpatch/softpatch/internal/numtest"
)

// Fixtures made by testdata/gen_golden.py with torch and scipy.
type goldenFile struct {
	Maps []struct {
		Name         string
		GH, GW, Size int
	} `json:"maps"`
	Quantiles []struct {
		Name   string    `json:"name"`
		Values []float64 `json:"values"`
		Q      []float64 `json:"q"`
		Want   []float64 `json:"want"`
	} `json:"quantiles"`
}

func loadGolden(t *testing.T) goldenFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g goldenFile
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestGoldenMap compares Map with torch F.interpolate followed by scipy's
// gaussian_filter (sigma 4), including maps smaller than the filter radius.
func TestGoldenMap(t *testing.T) {
	g := loadGolden(t)
	if len(g.Maps) == 0 {
		t.Fatal("no map fixtures")
	}
	for _, c := range g.Maps {
		data := numtest.ReadFloat32File(t, filepath.Join("testdata", "map_"+c.Name+".f32"))
		in, want := data[:c.GH*c.GW], data[c.GH*c.GW:]
		if len(want) != c.Size*c.Size {
			t.Fatalf("%s: fixture has %d outputs", c.Name, len(want))
		}
		got := make([]float32, c.Size*c.Size)
		Map(got, in, c.GH, c.GW, c.Size)
		worst, exact := 0.0, 0
		for i := range got {
			if got[i] == want[i] {
				exact++
			}
			d := math.Abs(float64(got[i])-float64(want[i])) / max(math.Abs(float64(want[i])), 1e-30)
			worst = max(worst, d)
		}
		if worst > 1e-5 {
			t.Errorf("%s: worst relative difference %.3g", c.Name, worst)
		}
		t.Logf("%s (%dx%d -> %d): worst relative difference %.3g, %d/%d bit-exact", c.Name, c.GH, c.GW, c.Size, worst, exact, len(got))
	}
}

// TestGoldenQuantile compares Quantile with torch.quantile (float32).
func TestGoldenQuantile(t *testing.T) {
	g := loadGolden(t)
	for _, c := range g.Quantiles {
		xs := make([]float32, len(c.Values))
		for i, v := range c.Values {
			xs[i] = float32(v)
		}
		for i, q := range c.Q {
			if got := Quantile(xs, q); got != c.Want[i] {
				t.Errorf("%s q=%v: got %v, torch %v", c.Name, q, got, c.Want[i])
			}
		}
	}
}
