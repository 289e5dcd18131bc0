package reports

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/experiments"
)

// recSeed is rec with a detector seed.
func recSeed(class string, ratio float64, overlap bool, fold int, seed uint64, method string, pix float64) experiments.Record {
	c := experiments.Cell{Class: class, Ratio: ratio, Overlap: overlap, Fold: fold, Seed: seed, Method: method}
	b, _ := json.Marshal(map[string]any{"pixel_auroc": pix, "image_auroc": pix - 0.1})
	return experiments.Record{Key: c.Key(), Cell: c, Result: b}
}

// spreadRecs is a sweep with replicates: clean training with seeds 1 and
// 2 (fold 0), noise 0.1 with overlap over folds 0 to 2 (seed 0), two
// classes and two methods; softpatch-lof lacks fold 2 of pill.
func spreadRecs() map[string]experiments.Record {
	recs := map[string]experiments.Record{}
	for _, r := range []experiments.Record{
		recSeed("wood", 0, false, 0, 1, "patchcore", 0.92), recSeed("wood", 0, false, 0, 2, "patchcore", 0.94),
		recSeed("pill", 0, false, 0, 1, "patchcore", 0.84), recSeed("pill", 0, false, 0, 2, "patchcore", 0.86),
		recSeed("wood", 0, false, 0, 1, "softpatch-lof", 0.90), recSeed("wood", 0, false, 0, 2, "softpatch-lof", 0.90),
		recSeed("pill", 0, false, 0, 1, "softpatch-lof", 0.80), recSeed("pill", 0, false, 0, 2, "softpatch-lof", 0.80),

		rec("wood", 0.1, true, 0, "patchcore", 0.70), rec("wood", 0.1, true, 1, "patchcore", 0.80), rec("wood", 0.1, true, 2, "patchcore", 0.90),
		rec("pill", 0.1, true, 0, "patchcore", 0.60), rec("pill", 0.1, true, 1, "patchcore", 0.60), rec("pill", 0.1, true, 2, "patchcore", 0.90),
		rec("wood", 0.1, true, 0, "softpatch-lof", 0.88), rec("wood", 0.1, true, 1, "softpatch-lof", 0.90), rec("wood", 0.1, true, 2, "softpatch-lof", 0.92),
		rec("pill", 0.1, true, 0, "softpatch-lof", 0.80), rec("pill", 0.1, true, 1, "softpatch-lof", 0.84), // no fold 2
	} {
		recs[r.Key] = r
	}
	return recs
}

// TestTablesSpread checks the means, sample stds and replicate counts of
// a sweep with replicates against values worked out by hand, and their
// text, Markdown and CSV renderings.
func TestTablesSpread(t *testing.T) {
	tables, err := Tables(spreadRecs())
	if err != nil {
		t.Fatal(err)
	}
	clean, noisy := tables[0], tables[5] // pixel_auroc of each setting
	if clean.Metric != "pixel_auroc" || clean.Ratio != 0 || noisy.Metric != "pixel_auroc" || noisy.Ratio != 0.1 ||
		strings.Join(noisy.Methods, ",") != "patchcore,softpatch-lof" {
		t.Fatalf("tables %s, %s, methods %v", clean.Title(), noisy.Title(), noisy.Methods)
	}
	nan := math.NaN()
	type want struct {
		values, std []float64
		n           []int
	}
	check := func(tb Table, wants map[string]want) {
		t.Helper()
		if len(tb.Rows) != len(wants) {
			t.Fatalf("%s: %d rows, want %d", tb.Title(), len(tb.Rows), len(wants))
		}
		for _, r := range tb.Rows {
			w, ok := wants[r.Name]
			if !ok {
				t.Fatalf("%s: row %s", tb.Title(), r.Name)
			}
			for j, m := range tb.Methods {
				if math.Abs(r.Values[j]-w.values[j]) > 1e-12 {
					t.Errorf("%s, %s, %s: mean %v, want %v", tb.Title(), r.Name, m, r.Values[j], w.values[j])
				}
				if got := r.Std[j]; math.IsNaN(got) != math.IsNaN(w.std[j]) || math.Abs(got-w.std[j]) > 1e-12 {
					t.Errorf("%s, %s, %s: std %v, want %v", tb.Title(), r.Name, m, got, w.std[j])
				}
				if r.N[j] != w.n[j] {
					t.Errorf("%s, %s, %s: n %d, want %d", tb.Title(), r.Name, m, r.N[j], w.n[j])
				}
			}
		}
	}
	// Noise 0.1, patchcore, folds 0, 1, 2:
	//   wood 0.70 0.80 0.90: mean 0.80, deviations -0.1 0 +0.1, squares
	//     summed 0.02, over n-1 = 2: 0.01, std 0.1.
	//   pill 0.60 0.60 0.90: mean 0.70, deviations -0.1 -0.1 +0.2, squares
	//     summed 0.06, /2 = 0.03, std sqrt(0.03) = 0.1732.
	//   Average: per fold the mean over classes, (0.70+0.60)/2 = 0.65,
	//     (0.80+0.60)/2 = 0.70, (0.90+0.90)/2 = 0.90; their mean 0.75 is the
	//     mean of the class means (0.80+0.70)/2; deviations -0.10 -0.05
	//     +0.15, squares summed 0.035, /2 = 0.0175, std sqrt(0.0175) = 0.1323.
	// softpatch-lof:
	//   wood 0.88 0.90 0.92: mean 0.90, squares summed 0.0008, /2, std 0.02.
	//   pill 0.80 0.84 (no fold 2): mean 0.82, squares summed 0.0008, /1,
	//     std sqrt(0.0008) = 0.0283.
	//   Average: the classes' folds differ, so the mean of the class means
	//     (0.90+0.82)/2 = 0.86 without a std (n 0).
	// Gap: Average minus the clean Average (below), no std:
	//   0.75-0.89 = -0.14, 0.86-0.85 = +0.01.
	check(noisy, map[string]want{
		"wood":    {[]float64{0.80, 0.90}, []float64{0.1, 0.02}, []int{3, 3}},
		"pill":    {[]float64{0.70, 0.82}, []float64{math.Sqrt(0.03), math.Sqrt(0.0008)}, []int{3, 2}},
		"Average": {[]float64{0.75, 0.86}, []float64{math.Sqrt(0.0175), nan}, []int{3, 0}},
		"Gap":     {[]float64{0.75 - 0.89, 0.86 - 0.85}, []float64{nan, nan}, []int{0, 0}},
	})
	// Clean training, seeds 1 and 2 (fold 0):
	//   patchcore wood 0.92 0.94: mean 0.93, deviations -+0.01, squares
	//     summed 0.0002, /1, std sqrt(0.0002) = 0.01414; pill 0.84 0.86:
	//     mean 0.85, std 0.01414; Average: per seed (0.92+0.84)/2 = 0.88,
	//     (0.94+0.86)/2 = 0.90, mean 0.89, std 0.01414.
	//   softpatch-lof: the same value for both seeds, std 0 (shown: n 2).
	check(clean, map[string]want{
		"wood":    {[]float64{0.93, 0.90}, []float64{math.Sqrt(0.0002), 0}, []int{2, 2}},
		"pill":    {[]float64{0.85, 0.80}, []float64{math.Sqrt(0.0002), 0}, []int{2, 2}},
		"Average": {[]float64{0.89, 0.85}, []float64{math.Sqrt(0.0002), 0}, []int{2, 2}},
	})
	// Where the classes share their replicates, the Average is the mean of
	// the per-replicate averages, as well as of the class means.
	if a := (0.65 + 0.70 + 0.90) / 3; math.Abs(noisy.Rows[2].Values[0]-a) > 1e-12 {
		t.Errorf("Average %v, mean of the per-fold averages %v", noisy.Rows[2].Values[0], a)
	}

	var md, txt bytes.Buffer
	if err := noisy.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if err := clean.WriteText(&txt); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"**Pixel AUROC, noise 0.1, overlap**\n\n_mean ± sample std (n-1) over 2 to 3 replicates (folds × seeds); " +
			"values without ± rest on one replicate, or (Average) on classes with different replicates; Gap: difference of means, no std_\n\n",
		"| wood    | 0.800 ± 0.100 | 0.900 ± 0.020 |", "| pill    | 0.700 ± 0.173 | 0.820 ± 0.028 |",
		"| Average | 0.750 ± 0.132 | 0.860         |", "| Gap     | -0.140        | +0.010        |",
	} {
		if !strings.Contains(md.String(), s) {
			t.Errorf("markdown lacks %q:\n%s", s, md.String())
		}
	}
	if h := "Pixel AUROC, clean training (noise 0)\n\nmean ± sample std (n-1) over 2 replicates (folds × seeds)\n\n"; !strings.HasPrefix(txt.String(), h) ||
		!strings.Contains(txt.String(), "0.890 ± 0.014") || !strings.Contains(txt.String(), "0.850 ± 0.000") {
		t.Errorf("text:\n%s", txt.String())
	}

	var csv bytes.Buffer
	if err := WriteCSV(&csv, tables); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"metric,noise,overlap,mark,row,patchcore,softpatch-lof\n", // the header of one replicate
		"pixel_auroc,0.1,true,,wood,0.800000,0.900000\npixel_auroc,0.1,true,,wood std,0.100000,0.020000\npixel_auroc,0.1,true,,wood n,3,3\n",
		"pixel_auroc,0.1,true,,pill std,0.173205,0.028284\npixel_auroc,0.1,true,,pill n,3,2\n",
		"pixel_auroc,0.1,true,,Average,0.750000,0.860000\npixel_auroc,0.1,true,,Average std,0.132288,\npixel_auroc,0.1,true,,Average n,3,\n",
		"pixel_auroc,0.1,true,,Gap,-0.140000,0.010000\nimage_auroc,", // no std rows for the Gap
		"pixel_auroc,0,false,,Average std,0.014142,0.000000\n",
	} {
		if !strings.Contains(csv.String(), s) {
			t.Errorf("csv lacks %q:\n%s", s, csv.String())
		}
	}
	if strings.Contains(csv.String(), "aupro,0.1,true,,wood std") {
		t.Error("std rows for a metric without values")
	}
}

// TestSpreadPercent checks "mean ± std" in the percent format of
// percentMetrics, on a table built by hand.
func TestSpreadPercent(t *testing.T) {
	tb := Table{Metric: "defect_bank_fraction", Ratio: 0.1, Methods: []string{"patchcore", "padim"}, Rows: []Row{
		{Name: "wood", Values: []float64{0.25, 0.125}, Std: []float64{0.015, math.NaN()}, N: []int{3, 1}},
		{Name: "Average", Values: []float64{0.25, 0.125}}, // no Std or N: no std
	}}
	_, rows := tb.cells()
	if got := strings.Join(rows[0], "|") + "/" + strings.Join(rows[1], "|"); got != "wood|25.00% ± 1.50%|12.50%/Average|25.00%|12.50%" {
		t.Errorf("cells %s", got)
	}
	if got, want := tb.Spread(), "mean ± sample std (n-1) over 3 replicates (folds × seeds); values without ± rest on one replicate, or (Average) on classes with different replicates"; got != want {
		t.Errorf("spread %q, want %q", got, want)
	}
}

// TestSpreadOneReplicate checks that tables of one replicate per cell say
// nothing about a spread: no "±", no line under the heading, no std rows
// in the CSV, every std NaN and every class n 1.
func TestSpreadOneReplicate(t *testing.T) {
	recs := map[string]experiments.Record{}
	for _, r := range []experiments.Record{
		rec("wood", 0, false, 0, "patchcore", 0.92), rec("pill", 0, false, 0, "patchcore", 0.84),
		rec("wood", 0.1, true, 0, "patchcore", 0.60), rec("pill", 0.1, true, 0, "patchcore", 0.50),
	} {
		recs[r.Key] = r
	}
	tables, err := Tables(recs)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, tb := range tables {
		if tb.Spread() != "" {
			t.Errorf("%s: spread %q", tb.Title(), tb.Spread())
		}
		for _, r := range tb.Rows {
			if !math.IsNaN(r.Std[0]) || (r.Name != "Gap" && !math.IsNaN(r.Values[0]) && r.N[0] != 1) {
				t.Errorf("%s, %s: std %v, n %d", tb.Title(), r.Name, r.Std[0], r.N[0])
			}
		}
		tb.WriteText(&out)
		tb.WriteMarkdown(&out)
	}
	WriteCSV(&out, tables)
	if strings.Contains(out.String(), "±") || strings.Contains(out.String(), " std") || strings.Contains(out.String(), "replicates") {
		t.Errorf("one replicate per cell, yet:\n%s", out.String())
	}
}

// TestBandRuns checks the pieces of a robustness curve's band: the runs
// of points with a std, each ring going along y+std and back along y-std.
func TestBandRuns(t *testing.T) {
	pts := []curvePoint{{0, 0.89, 0.01}, {0.1, 0.75, 0.13}, {0.2, 0.70, math.NaN()}, {0.3, 0.60, 0.05}, {0.4, 0.5, math.NaN()}}
	runs := bandRuns(pts)
	if len(runs) != 2 || len(runs[0]) != 2 || len(runs[1]) != 1 || runs[1][0].x != 0.3 {
		t.Fatalf("runs %v", runs)
	}
	want := []float64{0, 0.90, 0.1, 0.88, 0.1, 0.62, 0, 0.88}
	ring := bandRing(runs[0])
	if len(ring) != 4 {
		t.Fatalf("ring %v", ring)
	}
	for i, xy := range ring {
		if math.Abs(xy.X-want[2*i]) > 1e-12 || math.Abs(xy.Y-want[2*i+1]) > 1e-12 {
			t.Errorf("ring %v, want %v", ring, want)
			break
		}
	}
	if r := bandRing(runs[1]); len(r) != 2 || math.Abs(r[0].Y-0.65) > 1e-12 || math.Abs(r[1].Y-0.55) > 1e-12 {
		t.Errorf("one point's ring %v", r)
	}
	if runs := bandRuns([]curvePoint{{0, 0.9, math.NaN()}}); len(runs) != 0 {
		t.Errorf("runs without a std %v", runs)
	}
}

// colorHex is c as vgsvg writes a fill colour (not premultiplied).
func colorHex(c color.Color) string {
	r, g, b, a := c.RGBA()
	k := 255.0 / float64(a)
	return fmt.Sprintf("#%02X%02X%02X", int(float64(r)*k), int(float64(g)*k), int(float64(b)*k))
}

// TestRobustnessCurveBands draws the curve of a sweep with replicates and
// checks that the SVG has the bands (fills at opacity 0.2 in each
// method's colour, both panels) and their legend entry; a sweep of one
// replicate per cell has neither.
func TestRobustnessCurveBands(t *testing.T) {
	tables, err := Tables(spreadRecs())
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(t.TempDir(), "curve")
	files, err := RobustnessCurve(tables, "pixel_auroc", "Pixel AUROC against the noise ratio", base)
	if err != nil || len(files) != 3 {
		t.Fatalf("%v %v", files, err)
	}
	svg, err := os.ReadFile(base + ".svg")
	if err != nil {
		t.Fatal(err)
	}
	// Both panels start at clean training, where both methods have a std
	// (softpatch-lof's is 0): a bar each in the no-overlap panel (ratio 0
	// only). In the overlap panel patchcore's band spans ratios 0 and 0.1
	// and softpatch-lof's is a bar at 0 (its Average at 0.1 has no std).
	// The legend's thumbnail is one more fill.
	if n := strings.Count(string(svg), "fill-opacity:0.2"); n != 5 {
		t.Errorf("%d fills at opacity 0.2, want 5", n)
	}
	for _, m := range []string{"patchcore", "softpatch-lof"} {
		if c := colorHex(bandColor(methodColor(m))); !strings.Contains(string(svg), "fill:"+c+";fill-opacity:0.2") {
			t.Errorf("no band of %s in %s", m, c)
		}
	}
	if !strings.Contains(string(svg), ">"+bandLegend+"<") {
		t.Errorf("svg lacks the legend entry %q", bandLegend)
	}

	recs := map[string]experiments.Record{}
	for _, r := range []experiments.Record{rec("wood", 0, false, 0, "patchcore", 0.92), rec("wood", 0.1, true, 0, "patchcore", 0.60)} {
		recs[r.Key] = r
	}
	if tables, err = Tables(recs); err != nil {
		t.Fatal(err)
	}
	if _, err := RobustnessCurve(tables, "pixel_auroc", "x", base); err != nil {
		t.Fatal(err)
	}
	if svg, _ = os.ReadFile(base + ".svg"); strings.Contains(string(svg), "fill-opacity:0.2") || strings.Contains(string(svg), "band:") {
		t.Error("a band without replicates")
	}
}
