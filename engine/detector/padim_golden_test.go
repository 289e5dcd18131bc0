package detector

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/embed"
	"github.com/softpatch/softpatch/internal/npy"
)

// padimCase is one case of testdata/padim.json (gen_padim.py).
type padimCase struct {
	Name        string `json:"name"`
	Train, Test int
	Channels    []int `json:"channels"`
	Grid, Size  int
}

func padimArray(t *testing.T, c padimCase, key string) *npy.Array {
	t.Helper()
	a, err := npy.ReadFile(filepath.Join("testdata", fmt.Sprintf("padim_%s_%s.npy", c.Name, key)))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// padimLayers reads a case's layer1..3 outputs of the train or test images.
func padimLayers(t *testing.T, c padimCase, set string) []backbone.Feature {
	t.Helper()
	var fs []backbone.Feature
	for k := 1; k <= 3; k++ {
		a := padimArray(t, c, fmt.Sprintf("%s_l%d", set, k))
		fs = append(fs, backbone.Feature{Layer: fmt.Sprintf("layer%d", k), N: a.Shape[0], C: a.Shape[1], H: a.Shape[2], W: a.Shape[3], Data: a.F32})
	}
	return fs
}

// relErr is max |got-want| / max |want|.
func relErr(got, want []float32) float64 {
	num, den := 0.0, 0.0
	for i := range want {
		num = max(num, math.Abs(float64(got[i])-float64(want[i])))
		den = max(den, math.Abs(float64(want[i])))
	}
	return num / den
}

// worstRel is the largest elementwise relative difference.
func worstRel(got, want []float32) float64 {
	w := 0.0
	for i := range want {
		w = max(w, math.Abs(float64(got[i])-float64(want[i]))/math.Abs(float64(want[i])))
	}
	return w
}

// TestGoldenPaDiM runs the published PaDiM steps (gen_padim.py: torch's
// unfold/fold concatenation and index_select, numpy's float64 covariance
// and inverse, scipy's Mahalanobis distance, torch's bilinear resize and
// scipy's Gaussian filter) against PaDiMSelect, PaDiMFitter, Score and Map,
// for more training images than channels and for fewer (rank-deficient
// covariances, as at MVTec size), against the exact (float64) covariances
// and inverses. Tolerances: the embedding is exact; the
// mean within 1e-6 of the largest (float64 sum vs torch's float32 mean);
// every distance, map pixel and image score within 1e-5 relative (float32
// products against the float64 reference).
func TestGoldenPaDiM(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "padim.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct{ Cases []padimCase }
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range g.Cases {
		t.Run(c.Name, func(t *testing.T) {
			train, positions, err := embed.PaDiMSelect(padimLayers(t, c, "train"), c.Channels)
			if err != nil {
				t.Fatal(err)
			}
			d := len(c.Channels)
			want := padimArray(t, c, "embed_train").F32
			if positions != c.Grid*c.Grid || len(train) != len(want) {
				t.Fatalf("embedding: %d positions, %d values; want %d, %d", positions, len(train), c.Grid*c.Grid, len(want))
			}
			for i := range want {
				if train[i] != want[i] {
					t.Fatalf("embedding value %d: %v, published %v", i, train[i], want[i])
				}
			}
			// Two batches through a spilling fitter, as a large class goes.
			f, err := NewPaDiMFitter(c.Train, positions, d, FitterOptions{MaxMemory: 1, TempDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			half := c.Train / 2 * positions * d
			if err := f.Add(train[:half], c.Train/2); err != nil {
				t.Fatal(err)
			}
			if err := f.Add(train[half:], c.Train-c.Train/2); err != nil {
				t.Fatal(err)
			}
			m, err := f.Fit()
			if err != nil {
				t.Fatal(err)
			}
			if e := relErr(m.Mean, padimArray(t, c, "mean").F32); e > 1e-6 {
				t.Errorf("mean: relative error %.3g", e)
			}
			test, _, err := embed.PaDiMSelect(padimLayers(t, c, "test"), c.Channels)
			if err != nil {
				t.Fatal(err)
			}
			dist := make([]float32, c.Test*positions)
			if err := m.Score(dist, test, c.Test, positions); err != nil {
				t.Fatal(err)
			}
			wantDist := padimArray(t, c, "dist").F32
			if e := worstRel(dist, wantDist); e > 1e-5 {
				t.Errorf("distances: worst relative difference %.3g", e)
			} else {
				t.Logf("distances: worst relative difference %.3g", e)
			}
			// The published code keeps its covariances in a float32 array, so
			// its inverses and products are float32: it differs from the
			// exact distances (and from ours) by the rounding of ill-
			// conditioned inverses. Measured, bounded loosely.
			pub := padimArray(t, c, "dist_published").F32
			t.Logf("published float32 path vs ours: worst relative difference %.3g (vs exact: %.3g)", worstRel(dist, pub), worstRel(pub, wantDist))
			if e := worstRel(dist, pub); e > 1e-4 {
				t.Errorf("distances differ from the published float32 path by %.3g relative", e)
			}
			maps := padimArray(t, c, "maps").F32
			scores := padimArray(t, c, "scores").F32
			per := c.Size * c.Size
			got := make([]float32, per)
			for i := 0; i < c.Test; i++ {
				Map(got, dist[i*positions:(i+1)*positions], c.Grid, c.Grid, c.Size)
				if e := worstRel(got, maps[i*per:(i+1)*per]); e > 1e-5 {
					t.Errorf("map %d: worst relative difference %.3g", i, e)
				}
				if s := MapScore(got); math.Abs(float64(s)/float64(scores[i])-1) > 1e-5 {
					t.Errorf("image %d: score %v, published %v", i, s, scores[i])
				}
			}
		})
	}
}
