package experiments

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
)

// golden is testdata/metrics_golden.json, written by testdata/gen_metrics.py.
type golden struct {
	Image []struct {
		Name        string
		Scale       float32
		K           []int64
		Labels      []int
		AUROC       float64
		AP          float64
		F1Max       float64
		F1Threshold float32 `json:"f1_threshold"`
	}
	Pixel []struct {
		Name              string
		H, W              int
		Scale             float32
		Maps              [][]int64
		Masks             []string
		Regions           []int
		PixelAUROC        float64      `json:"pixel_auroc"`
		PixelAP           float64      `json:"pixel_ap"`
		PixelF1Max        float64      `json:"pixel_f1max"`
		PixelF1Threshold  float32      `json:"pixel_f1_threshold"`
		AUPRO             [][2]float64 `json:"aupro"`
		AUPROMVTecFloat32 float64      `json:"aupro_mvtec_f32"`
	}
}

func loadGolden(t *testing.T) golden {
	t.Helper()
	b, err := os.ReadFile("testdata/metrics_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Image) == 0 || len(g.Pixel) == 0 {
		t.Fatal("empty golden file")
	}
	return g
}

// scaled is float32(k)/scale, the generator's float32 scores.
func scaled(k []int64, scale float32) []float32 {
	s := make([]float32, len(k))
	for i, v := range k {
		s[i] = float32(v) / scale
	}
	return s
}

func TestImageGolden(t *testing.T) {
	for _, c := range loadGolden(t).Image {
		scores := scaled(c.K, c.Scale)
		labels := make([]bool, len(c.Labels))
		for i, l := range c.Labels {
			labels[i] = l != 0
		}
		auc, err := AUROC(scores, labels)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if d := math.Abs(auc - c.AUROC); d > 1e-9 {
			t.Errorf("%s: AUROC %.17g, sklearn %.17g (diff %.3g)", c.Name, auc, c.AUROC, d)
		}
		f1, thr, err := F1Max(scores, labels)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if d := math.Abs(f1 - c.F1Max); d > 1e-9 || thr != c.F1Threshold {
			t.Errorf("%s: F1max %.17g at %v, sklearn %.17g at %v", c.Name, f1, thr, c.F1Max, c.F1Threshold)
		}
		ap, err := AP(scores, labels)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if d := math.Abs(ap - c.AP); d > 1e-12 {
			t.Errorf("%s: AP %.17g, sklearn %.17g (diff %.3g)", c.Name, ap, c.AP, d)
		}
		t.Logf("%s: |AUROC diff| %.3g, |F1 diff| %.3g, |AP diff| %.3g", c.Name, math.Abs(auc-c.AUROC), math.Abs(f1-c.F1Max), math.Abs(ap-c.AP))
	}
}

// pixelInput decodes one golden pixel case.
func pixelInput(t *testing.T, maps [][]int64, masks []string, scale float32, hw int) ([][]float32, [][]uint8) {
	t.Helper()
	m := make([][]float32, len(maps))
	k := make([][]uint8, len(masks))
	for i := range maps {
		m[i] = scaled(maps[i], scale)
		if len(masks[i]) != hw {
			t.Fatalf("mask %d has %d pixels", i, len(masks[i]))
		}
		any := false
		k[i] = make([]uint8, hw)
		for j := range hw {
			k[i][j] = masks[i][j] - '0'
			any = any || k[i][j] != 0
		}
		if !any && i%2 == 0 {
			k[i] = nil // a nil mask is a good image
		}
	}
	return m, k
}

func TestPixelGolden(t *testing.T) {
	for _, c := range loadGolden(t).Pixel {
		maps, masks := pixelInput(t, c.Maps, c.Masks, c.Scale, c.H*c.W)
		for _, lim := range c.AUPRO {
			r, err := EvaluatePixels(maps, masks, c.H, c.W, lim[0])
			if err != nil {
				t.Fatalf("%s: %v", c.Name, err)
			}
			if d := math.Abs(r.AUPRO - lim[1]); d > 1e-6 {
				t.Errorf("%s: AUPRO@%v %.17g, reference %.17g", c.Name, lim[0], r.AUPRO, lim[1])
			} else {
				t.Logf("%s: |AUPRO@%v diff| %.3g", c.Name, lim[0], d)
			}
			if d := math.Abs(r.AUROC - c.PixelAUROC); d > 1e-9 {
				t.Errorf("%s: pixel AUROC %.17g, sklearn %.17g", c.Name, r.AUROC, c.PixelAUROC)
			}
			if d := math.Abs(r.AP - c.PixelAP); d > 1e-12 {
				t.Errorf("%s: pixel AP %.17g, sklearn %.17g", c.Name, r.AP, c.PixelAP)
			}
			if d := math.Abs(r.F1Max - c.PixelF1Max); d > 1e-9 || r.F1Threshold != c.PixelF1Threshold {
				t.Errorf("%s: pixel F1max %.17g at %v, sklearn %.17g at %v", c.Name, r.F1Max, r.F1Threshold, c.PixelF1Max, c.PixelF1Threshold)
			}
			regions := 0
			for _, n := range c.Regions {
				regions += n
			}
			if r.Regions != regions {
				t.Errorf("%s: %d regions, scipy %d", c.Name, r.Regions, regions)
			}
			if lim[0] == DefaultFPRLimit {
				t.Logf("%s: |AUPRO - MVTec float32-FPR original| %.3g; |pixel AUROC diff| %.3g; |F1 diff| %.3g",
					c.Name, math.Abs(r.AUPRO-c.AUPROMVTecFloat32), math.Abs(r.AUROC-c.PixelAUROC), math.Abs(r.F1Max-c.PixelF1Max))
			}
		}
		// Per image, the component counts match scipy.ndimage.label with a 3x3 structure.
		lab := make([]uint32, c.H*c.W)
		for i, m := range masks {
			if m == nil {
				continue
			}
			sizes, _, err := label8(m, c.H, c.W, lab, []int64{0}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(sizes)-1 != c.Regions[i] {
				t.Errorf("%s image %d: %d regions, scipy %d", c.Name, i, len(sizes)-1, c.Regions[i])
			}
		}
	}
}

// TestPixelMatchesImage checks that the pixel path's AUROC and F1 equal the Curve path's on the
// flattened pixels (both exact).
func TestPixelMatchesImage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n, h, w = 5, 40, 70 // 14000 pixels: the radix path
	maps := make([][]float32, n)
	masks := make([][]uint8, n)
	var flat []float32
	var labels []bool
	for i := range n {
		maps[i] = make([]float32, h*w)
		masks[i] = make([]uint8, h*w)
		for j := range maps[i] {
			a := rng.IntN(5) == 0
			if a {
				masks[i][j] = 1
			}
			v := float32(rng.NormFloat64())
			if a {
				v += 1
			}
			if j%3 == 0 {
				v = float32(math.Round(float64(v)*4) / 4) // ties, incl. -0
			}
			maps[i][j] = v
			flat = append(flat, v)
			labels = append(labels, a)
		}
	}
	r, err := EvaluatePixels(maps, masks, h, w, DefaultFPRLimit)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCurve(flat, labels)
	if err != nil {
		t.Fatal(err)
	}
	auc, _ := c.AUROC()
	f1, thr, _ := c.F1Max()
	if auc != r.AUROC || f1 != r.F1Max || thr != r.F1Threshold {
		t.Errorf("pixel path %v %v %v, curve path %v %v %v", r.AUROC, r.F1Max, r.F1Threshold, auc, f1, thr)
	}
	// Brute force AUROC: P(pos > neg) + P(pos == neg)/2 over all pairs (the Mann-Whitney U form).
	var pos, neg []float32
	for i, v := range flat {
		if labels[i] {
			pos = append(pos, v)
		} else {
			neg = append(neg, v)
		}
	}
	slices.Sort(neg)
	var u float64
	for _, p := range pos {
		lt, _ := slices.BinarySearch(neg, p)
		le := lt
		for le < len(neg) && neg[le] == p {
			le++
		}
		u += float64(lt) + 0.5*float64(le-lt)
	}
	u /= float64(len(pos)) * float64(len(neg))
	if math.Abs(u-auc) > 1e-12 {
		t.Errorf("AUROC %v, Mann-Whitney %v", auc, u)
	}
}

func TestCurveTies(t *testing.T) {
	negZero := float32(math.Copysign(0, -1))
	c, err := NewCurve([]float32{0, negZero, 1, 1, -2}, []bool{true, false, true, false, false})
	if err != nil {
		t.Fatal(err)
	}
	want := &Curve{Thresholds: []float32{1, 0, -2}, TP: []int64{1, 2, 2}, FP: []int64{1, 2, 3}, P: 2, N: 3}
	if !slices.Equal(c.Thresholds, want.Thresholds) || !slices.Equal(c.TP, want.TP) || !slices.Equal(c.FP, want.FP) || c.P != 2 || c.N != 3 {
		t.Errorf("curve %+v, want %+v", c, want)
	}
	// ROC points (0,0) (1/3,1/2) (2/3,1) (1,1): area 1/12 + 1/4 + 1/3 = 2/3.
	if auc, _ := c.AUROC(); auc != 2.0/3 {
		t.Errorf("AUROC %v, want 2/3", auc)
	}
	// Infinities are ordinary scores.
	inf := float32(math.Inf(1))
	if auc, err := AUROC([]float32{-inf, inf, 0}, []bool{false, true, false}); err != nil || auc != 1 {
		t.Errorf("AUROC with infinities %v, %v", auc, err)
	}
}

func TestErrors(t *testing.T) {
	nan := float32(math.NaN())
	if _, err := AUROC([]float32{1, 2}, []bool{true, true}); !errors.Is(err, ErrOneClass) {
		t.Errorf("all positive: %v", err)
	}
	if _, err := AUROC([]float32{1, 2}, []bool{false, false}); !errors.Is(err, ErrOneClass) {
		t.Errorf("all negative: %v", err)
	}
	if _, _, err := F1Max([]float32{1, 2}, []bool{false, false}); !errors.Is(err, ErrNoPositives) {
		t.Errorf("F1 without positives: %v", err)
	}
	if f1, thr, err := F1Max([]float32{1, 2}, []bool{true, true}); err != nil || f1 != 1 || thr != 1 {
		t.Errorf("F1 without negatives: %v at %v, %v", f1, thr, err)
	}
	if _, err := AUROC(nil, nil); !errors.Is(err, ErrNoScores) {
		t.Errorf("empty: %v", err)
	}
	if _, err := AUROC([]float32{1, nan}, []bool{true, false}); !errors.Is(err, ErrNaN) {
		t.Errorf("NaN: %v", err)
	}
	if _, err := AUROC([]float32{1}, []bool{true, false}); err == nil {
		t.Error("length mismatch accepted")
	}
	m := [][]float32{{1, 2, 3, 4}}
	if _, err := EvaluatePixels(m, [][]uint8{nil}, 2, 2, 0.3); !errors.Is(err, ErrOneClass) {
		t.Errorf("no anomalous pixels: %v", err)
	}
	if _, err := EvaluatePixels(m, [][]uint8{{1, 1, 1, 1}}, 2, 2, 0.3); !errors.Is(err, ErrOneClass) {
		t.Errorf("no normal pixels: %v", err)
	}
	if _, err := EvaluatePixels(m, [][]uint8{{0, 1, 0, 1}}, 2, 2, 0); err == nil {
		t.Error("limit 0 accepted")
	}
	if _, err := EvaluatePixels(m, [][]uint8{{0, 1, 0}}, 2, 2, 0.3); err == nil {
		t.Error("short mask accepted")
	}
	if _, err := EvaluatePixels([][]float32{{1, nan, 3, 4}}, [][]uint8{{0, 1, 0, 1}}, 2, 2, 0.3); !errors.Is(err, ErrNaN) {
		t.Errorf("NaN pixel: %v", err)
	}
}

// TestAUPROSmall checks a hand-computed case: one 2x3 image, mask 0 1 1 / 0 0 0 (one region of
// two pixels), scores 5 4 1 / 3 2 0.
func TestAUPROSmall(t *testing.T) {
	maps := [][]float32{{5, 4, 1, 3, 2, 0}}
	masks := [][]uint8{{0, 1, 1, 0, 0, 0}}
	// Thresholds 5,4,3,2,1,0 give (FPR, PRO): (1/4,0) (1/4,1/2) (2/4,1/2) (3/4,1/2) (3/4,1) (1,1).
	// Up to 0.3: (0,0)-(0.25,0) area 0, (0.25,0)-(0.25,0.5) 0, then to 0.3 at PRO 0.5:
	// 0.05*0.5 = 0.025; AUPRO = 0.025/0.3.
	r, err := EvaluatePixels(maps, masks, 2, 3, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	if want := 0.025 / 0.3; math.Abs(r.AUPRO-want) > 1e-15 {
		t.Errorf("AUPRO %v, want %v", r.AUPRO, want)
	}
	// Up to 1: 0 + 0.25*0.5 + 0.25*0.5 + 0 + 0.25*1 = 0.5.
	if a, _ := AUPRO(maps, masks, 2, 3, 1); math.Abs(a-0.5) > 1e-15 {
		t.Errorf("AUPRO@1 %v, want 0.5", a)
	}
	// Up to 0.5, a point exactly at the limit: 0.125 / 0.5.
	if a, _ := AUPRO(maps, masks, 2, 3, 0.5); math.Abs(a-0.25) > 1e-15 {
		t.Errorf("AUPRO@0.5 %v, want 0.25", a)
	}
}

func TestSortByScore(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 100, radixMin, 50000} {
		keys := make([]uint64, n)
		for i := range keys {
			var s float32
			switch rng.IntN(4) {
			case 0:
				s = float32(rng.IntN(7) - 3)
			case 1:
				s = float32(rng.NormFloat64() * 1e30)
			default:
				s = float32(rng.NormFloat64())
			}
			keys[i] = uint64(scoreKey(s))<<32 | uint64(i)
		}
		sortByScore(keys)
		seen := make([]bool, n)
		for i, k := range keys {
			seen[uint32(k)] = true
			if i > 0 && keyScore(uint32(keys[i-1]>>32)) > keyScore(uint32(k>>32)) {
				t.Fatalf("n=%d: not sorted at %d", n, i)
			}
		}
		if slices.Contains(seen, false) {
			t.Fatalf("n=%d: lost a key", n)
		}
	}
}

// benchMaps makes n anomaly maps of h*w with elliptic defects in every other image.
func benchMaps(n, h, w int) ([][]float32, [][]uint8) {
	rng := rand.New(rand.NewPCG(5, 6))
	maps := make([][]float32, n)
	masks := make([][]uint8, n)
	for i := range n {
		maps[i] = make([]float32, h*w)
		if i%2 == 1 {
			masks[i] = make([]uint8, h*w)
			for range 1 + rng.IntN(3) {
				cy, cx := rng.Float64()*float64(h), rng.Float64()*float64(w)
				ry, rx := 3+rng.Float64()*20, 3+rng.Float64()*20
				for y := range h {
					for x := range w {
						dy, dx := (float64(y)-cy)/ry, (float64(x)-cx)/rx
						if dy*dy+dx*dx <= 1 {
							masks[i][y*w+x] = 1
						}
					}
				}
			}
		}
		for j := range maps[i] {
			v := rng.NormFloat64()
			if masks[i] != nil && masks[i][j] != 0 {
				v += 1.5
			}
			maps[i][j] = float32(v)
		}
	}
	return maps, masks
}

// BenchmarkEvaluatePixels: pixel AUROC, F1-max and AUPRO of 100 maps of 224x224 (5M pixels).
func BenchmarkEvaluatePixels(b *testing.B) {
	maps, masks := benchMaps(100, 224, 224)
	b.ResetTimer()
	for b.Loop() {
		if _, err := EvaluatePixels(maps, masks, 224, 224, DefaultFPRLimit); err != nil {
			b.Fatal(err)
		}
	}
}
