package experiments

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"testing"
)

// aupimoCase is a case of testdata/aupimo_golden.json (gen_aupimo.py): the parameters of its
// maps and the reference's AUPIMO of each image (null for normal images).
type aupimoCase struct {
	Name      string     `json:"name"`
	N, H, W   int        `json:"-"`
	Seed      uint64     `json:"seed"`
	FPRBounds [2]float64 `json:"fpr_bounds"`
	Threshs   int        `json:"threshs"`
	Defects   [][6]int   `json:"defects"`
	AUPIMO    []*float64 `json:"aupimo"`
	Points    int        `json:"points"`
}

func (c *aupimoCase) UnmarshalJSON(b []byte) error {
	type plain aupimoCase
	var dims struct{ N, H, W int }
	if err := json.Unmarshal(b, &dims); err != nil {
		return err
	}
	if err := json.Unmarshal(b, (*plain)(c)); err != nil {
		return err
	}
	c.N, c.H, c.W = dims.N, dims.H, dims.W
	return nil
}

// fmix32 is MurmurHash3's 32-bit finaliser.
func fmix32(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// pimoMaps makes a case's maps and masks with gen_aupimo.py's recipe (see there).
func pimoMaps(c aupimoCase) ([][]float32, [][]uint8) {
	hw := c.H * c.W
	maps, masks := make([][]float32, c.N), make([][]uint8, c.N)
	for i := range c.N {
		maps[i] = make([]float32, hw)
		for p := range hw {
			key := uint32(c.Seed)*2654435761 + uint32(i)*1000003 + uint32(p)*7919
			k := fmix32(key) % (1 << 24)
			maps[i][p] = 1 / float32(1<<24-k)
		}
		for _, d := range c.Defects {
			if d[0] != i {
				continue
			}
			if masks[i] == nil {
				masks[i] = make([]uint8, hw)
			}
			for y := d[1]; y < d[2]; y++ {
				for x := d[3]; x < d[4]; x++ {
					masks[i][y*c.W+x] = 1
					maps[i][y*c.W+x] += float32(d[5]) / (1 << 24)
				}
			}
		}
	}
	return maps, masks
}

// TestAUPIMOGolden: the reference numpy implementation's AUPIMO of every anomalous image, within
// 1e-9, and the same number of integration points.
func TestAUPIMOGolden(t *testing.T) {
	b, err := os.ReadFile("testdata/aupimo_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []aupimoCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range cases {
		maps, masks := pimoMaps(c)
		r, err := AUPIMO(maps, masks, c.H, c.W, c.FPRBounds[0], c.FPRBounds[1], c.Threshs)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if r.Points != c.Points {
			t.Errorf("%s: %d integration points, reference %d", c.Name, r.Points, c.Points)
		}
		worst, sum, n := 0.0, 0.0, 0
		for i, want := range c.AUPIMO {
			got := r.Scores[i]
			if want == nil {
				if !math.IsNaN(got) {
					t.Errorf("%s: normal image %d has AUPIMO %v", c.Name, i, got)
				}
				continue
			}
			worst = max(worst, math.Abs(got-*want))
			sum, n = sum+*want, n+1
		}
		t.Logf("%s: %d points, FPR [%.3g, %.3g], largest difference %.2g", c.Name, r.Points, r.FPRLow, r.FPRHigh, worst)
		if worst > 1e-9 {
			t.Errorf("%s: AUPIMO %v, reference %v", c.Name, r.Scores, c.AUPIMO)
		}
		if math.Abs(r.Mean-sum/float64(n)) > 1e-9 {
			t.Errorf("%s: mean %v, want %v", c.Name, r.Mean, sum/float64(n))
		}
	}
}

// TestAUPIMOErrors: what the reference refuses, refused with a reason.
func TestAUPIMOErrors(t *testing.T) {
	c := aupimoCase{N: 3, H: 16, W: 16, Seed: 3, Defects: [][6]int{{2, 0, 4, 0, 4, 1000}}}
	maps, masks := pimoMaps(c)
	if _, err := AUPIMO(maps, masks, 16, 16, 1e-5, 1e-4, 1000); err == nil {
		t.Error("512 normal pixels resolved an FPR of 1e-5")
	}
	if _, err := AUPIMO(maps, masks, 16, 16, 1e-2, 1e-1, 10); !errors.Is(err, ErrAUPIMORange) {
		t.Errorf("10 thresholds: err = %v, want ErrAUPIMORange", err)
	}
	if _, err := AUPIMO(maps[:2], masks[:2], 16, 16, 1e-2, 1e-1, 1000); !errors.Is(err, ErrOneClass) {
		t.Errorf("no anomalous image: err = %v", err)
	}
	if _, err := AUPIMO(maps, masks, 16, 16, 1e-1, 1e-2, 1000); err == nil {
		t.Error("reversed bounds accepted")
	}
	maps[0][5] = float32(math.NaN())
	if _, err := AUPIMO(maps, masks, 16, 16, 1e-2, 1e-1, 1000); !errors.Is(err, ErrNaN) {
		t.Errorf("NaN: err = %v", err)
	}
}
