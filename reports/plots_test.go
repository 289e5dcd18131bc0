package reports

import (
	"bytes"
	"encoding/json"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/experiments"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// marked gives the records the random-init mark.
func marked(rs ...experiments.Record) []experiments.Record {
	for i := range rs {
		rs[i].Result = []byte(strings.Replace(string(rs[i].Result), "{", `{"mark":"random-init backbone",`, 1))
	}
	return rs
}

// TestRobustnessCurve draws the curve of a small stored sweep and checks
// that the three files are written, the PNG decodes at the figure's
// printed size (two panels at the text width, 300 dpi), and the SVG has
// the human labels, the backbone mark and one legend for both panels.
func TestRobustnessCurve(t *testing.T) {
	recs := map[string]experiments.Record{}
	for _, r := range marked(
		rec("wood", 0, false, 0, "patchcore", 0.92), rec("wood", 0, false, 0, "softpatch-lof", 0.90),
		rec("wood", 0.1, false, 0, "patchcore", 0.91), rec("wood", 0.1, false, 0, "softpatch-lof", 0.90),
		rec("wood", 0.1, true, 0, "patchcore", 0.60), rec("wood", 0.1, true, 0, "softpatch-lof", 0.88),
	) {
		recs[r.Key] = r
	}
	tables, err := Tables(recs)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(t.TempDir(), "curve")
	files, err := RobustnessCurve(tables, "pixel_auroc", "Pixel AUROC against the noise ratio", base)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Fatalf("files %v", files)
	}
	if b, err := os.ReadFile(base + ".pdf"); err != nil || !bytes.HasPrefix(b, []byte("%PDF")) {
		t.Errorf("the PDF is not one (%v)", err)
	}
	f, err := os.Open(base + ".png")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b, want := img.Bounds(), int(textWidth)*pngDPI/72; b.Dx() < want || b.Dx() > want*11/10 || b.Dy() < want/3 {
		t.Errorf("png %v, want about %d px wide", b, want)
	}
	svg, err := os.ReadFile(base + ".svg")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{">No overlap<", ">Overlap<", ">Noise ratio<", ">Pixel AUROC, mean over classes<", ">random-init backbone<"} {
		if !strings.Contains(string(svg), s) {
			t.Errorf("svg lacks %q", s)
		}
	}
	for _, m := range []string{">patchcore<", ">softpatch-lof<"} {
		if n := strings.Count(string(svg), m); n != 1 {
			t.Errorf("legend entry %s drawn %d times, want once", m, n)
		}
	}
	if _, err := RobustnessCurve(tables, "aupro", "x", base); err == nil {
		t.Error("a metric without values plotted")
	}
}

func TestResultsMarkdown(t *testing.T) {
	recs := map[string]experiments.Record{}
	for _, r := range []experiments.Record{rec("wood", 0, false, 0, "patchcore", 0.92), rec("wood", 0.1, true, 0, "patchcore", 0.6)} {
		r.Result = []byte(strings.Replace(string(r.Result), "{", `{"commit":"abc1234","date":"2026-11-28T15:00:00Z","device":"2 threads","mark":"random-init backbone","seconds":{"coreset":1.5,"features":2},"backbone":{"arch":"wide_resnet50_2","random_init":true,"seed":0,"bn_pass":"published"},`, 1))
		recs[r.Key] = r
	}
	tables, err := Tables(recs)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := WriteResultsMarkdown(&b, recs, tables, []byte(`{"Name":"q"}`), []string{"/x/curve.png", "/x/curve.svg"}, nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"from 2 cells", "commit: abc1234", "**random-init backbone** (seed 0", "device: 2 threads",
		"coreset 3.0", "features 4.0", "total 7.0", `{"Name":"q"}`, "**Pixel AUROC, noise 0.1, overlap, random-init backbone**", "![curve](curve.png)", "2026-11-28T15:00:00Z"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("RESULTS.md lacks %q:\n%s", s, b.String())
		}
	}
}

// TestClassBars checks the bar chart's labels: classes, methods, the x
// label, and a y label that says where the axis starts (at chance when
// every value is above it, below the smallest value otherwise); no mark
// without random-init cells.
func TestClassBars(t *testing.T) {
	for _, c := range []struct {
		patchcoreWood float64
		ylabel        string
	}{{0.60, ">Pixel AUROC (y axis from 0.5, chance)<"}, {0.42, ">Pixel AUROC (y axis from 0.4)<"}} {
		recs := map[string]experiments.Record{}
		for _, r := range []experiments.Record{
			rec("wood", 0.1, true, 0, "patchcore", c.patchcoreWood), rec("wood", 0.1, true, 0, "softpatch-lof", 0.88),
			rec("pill", 0.1, true, 0, "patchcore", 0.70), rec("pill", 0.1, true, 0, "softpatch-lof", 0.80),
		} {
			recs[r.Key] = r
		}
		tables, _ := Tables(recs)
		base := filepath.Join(t.TempDir(), "bars")
		files, err := ClassBars(tables[0], base)
		if err != nil || len(files) != 3 {
			t.Fatalf("%v %v", files, err)
		}
		f, _ := os.Open(base + ".png")
		defer f.Close()
		if _, err := png.Decode(f); err != nil {
			t.Fatal(err)
		}
		svg, _ := os.ReadFile(base + ".svg")
		for _, s := range []string{">wood<", ">pill<", ">Average<", ">softpatch-lof<", ">Class<", c.ylabel, ">Pixel AUROC, noise 0.1, overlap<"} {
			if !strings.Contains(string(svg), s) {
				t.Errorf("svg lacks %q", s)
			}
		}
		if strings.Contains(string(svg), "random-init") {
			t.Error("the random-init mark without random-init cells")
		}
	}
}

func TestImageROC(t *testing.T) {
	recs := map[string]experiments.Record{}
	for _, m := range []string{"patchcore", "softpatch-lof"} {
		c := experiments.Cell{Class: "pill", Ratio: 0.1, Overlap: true, Method: m}
		res := `{"image_auroc":0.75,"per_image":[{"label":1,"score":0.9},{"label":0,"score":0.8},{"label":1,"score":0.7},{"label":0,"score":0.1}]}`
		recs[c.Key()] = experiments.Record{Key: c.Key(), Cell: c, Result: []byte(res)}
	}
	base := filepath.Join(t.TempDir(), "roc")
	if _, err := ImageROC(recs, "pill", 0.1, true, base); err != nil {
		t.Fatal(err)
	}
	svg, _ := os.ReadFile(base + ".svg")
	// Scores 0.9+ 0.8- 0.7+ 0.1-: AUROC 0.75.
	for _, s := range []string{">patchcore 0.750<", ">softpatch-lof 0.750<", ">chance 0.500<", ">False positive rate<", ">pill: image ROC, noise 0.1, overlap<"} {
		if !strings.Contains(string(svg), s) {
			t.Errorf("svg lacks %q", s)
		}
	}
	if _, err := ImageROC(recs, "wood", 0.1, true, base); err == nil {
		t.Error("a class without cells drawn")
	}
}

// TestSquareHeight checks that a panel of squareHeight's height has a
// square data area (the ROC plot's equal aspect).
func TestSquareHeight(t *testing.T) {
	p := newPlot("title", "False positive rate", "True positive rate")
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	h := squareHeight(p, columnWidth)
	dc := p.DataCanvas(draw.New(vgimg.New(columnWidth, h)))
	if w, h := dc.Max.X-dc.Min.X, dc.Max.Y-dc.Min.Y; math.Abs(float64(w-h)) > 0.5 {
		t.Errorf("data area %.1f x %.1f pt, want square", w, h)
	}
}

// TestNeatTicks checks the tick labels: a step of 1, 2, 2.5 or 5 times a
// power of ten, five to eight labels, no "-0".
func TestNeatTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		want   string
	}{
		{-0.02, 1.02, "0.0 0.2 0.4 0.6 0.8 1.0"},
		{0.605, 0.81, "0.625 0.650 0.675 0.700 0.725 0.750 0.775 0.800"},
		{0.5, 0.9, "0.5 0.6 0.7 0.8 0.9"},
	} {
		var got []string
		for _, tk := range neatTicks(c.lo, c.hi) {
			if tk.Label != "" {
				got = append(got, tk.Label)
			}
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("ticks over [%g, %g]: %v, want %s", c.lo, c.hi, got, c.want)
		}
	}
}

func TestBankFigure(t *testing.T) {
	dir := t.TempDir()
	recs := map[string]experiments.Record{}
	for _, m := range []string{"patchcore", "softpatch-lof"} {
		r := rec("pill", 0.1, true, 0, m, 0.8)
		recs[r.Key] = r
		sub := filepath.Join(dir, "overlays", r.Cell.Dir())
		os.MkdirAll(sub, 0o755)
		os.WriteFile(filepath.Join(sub, "bank2d.json"), []byte(`{"x":[0,1,2],"y":[1,0,2],"noisy":[false,true,false]}`), 0o644)
	}
	base := filepath.Join(dir, "banks")
	if _, err := BankFigure(dir, recs, "pill", base); err != nil {
		t.Fatal(err)
	}
	svg, _ := os.ReadFile(base + ".svg")
	for _, s := range []string{">1 of 3 from injected images<", ">patchcore<", ">softpatch-lof<", ">entry from a clean image<", ">inside a defect of an injected image<"} {
		if !strings.Contains(string(svg), s) {
			t.Errorf("svg lacks %q", s)
		}
	}
	if _, err := BankFigure(dir, recs, "wood", base); err == nil {
		t.Error("a class without cells drawn")
	}
}

// TestResultsMarkdownSettings checks the settings in RESULTS.md's
// provenance: those all cells share with their values, the names of
// those that differ, and a count of cells that record none.
func TestResultsMarkdownSettings(t *testing.T) {
	recs := map[string]experiments.Record{}
	for i, m := range []string{"patchcore", "softpatch-lof", "padim"} {
		res := experiments.Result{Class: "wood", Method: m, PixelAUROC: 0.9}
		if i < 2 {
			res.Settings = &experiments.Settings{Numerics: 1, Method: m, Detector: experiments.DetectorSettings{Coreset: 0.1}}
		}
		raw, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		recs[m] = experiments.Record{Key: m, Cell: experiments.Cell{Class: "wood", Method: m}, Result: raw}
	}
	var b bytes.Buffer
	if err := WriteResultsMarkdown(&b, recs, nil, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"`detector.coreset` 0.1", "settings that differ between cells: `method`", "1 cells record no settings"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("RESULTS.md lacks %q:\n%s", want, b.String())
		}
	}
}

// TestRemoveStale checks that a report removes the figures it owns that
// it did not write again, and nothing else.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	names := []string{"roc_wood_noise0.1.png", "roc_pill_noise0.1.png", "roc_pill_noise0.1.pdf", "banks_pill.svg", "tables.md", "roc_notes.txt", "mine.png"}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := removeStale(dir, []string{filepath.Join(dir, "roc_wood_noise0.1.png")}); err != nil {
		t.Fatal(err)
	}
	var left []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if want := []string{"mine.png", "roc_notes.txt", "roc_wood_noise0.1.png", "tables.md"}; !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
}

// TestWriteROCClass reports one results folder twice, with --roc-class
// pill and then wood: the second report leaves no figure of pill behind.
func TestWriteROCClass(t *testing.T) {
	dir := t.TempDir()
	var lines []byte
	for _, class := range []string{"pill", "wood"} {
		for _, ratio := range []float64{0, 0.1} {
			c := experiments.Cell{Class: class, Ratio: ratio, Overlap: ratio > 0, Method: "patchcore"}
			res := `{"pixel_auroc":0.8,"image_auroc":0.75,"per_image":[{"label":1,"score":0.9},{"label":0,"score":0.8},{"label":1,"score":0.7},{"label":0,"score":0.1}]}`
			b, err := json.Marshal(experiments.Record{Key: c.Key(), Cell: c, Result: []byte(res)})
			if err != nil {
				t.Fatal(err)
			}
			lines = append(append(lines, b...), '\n')
		}
	}
	if err := os.WriteFile(experiments.ResultsFile(dir, experiments.Shard{Index: 0, N: 1}), lines, 0o644); err != nil {
		t.Fatal(err)
	}
	rocs := func() []string {
		fs, _ := filepath.Glob(filepath.Join(dir, "roc_*"))
		for i := range fs {
			fs[i] = filepath.Base(fs[i])
		}
		return fs
	}
	for _, class := range []string{"pill", "wood"} {
		if err := Write(dir, io.Discard, Options{ROCClass: class}); err != nil {
			t.Fatal(err)
		}
		got := rocs()
		want := []string{"roc_" + class + "_noise0.1_overlap.pdf", "roc_" + class + "_noise0.1_overlap.png", "roc_" + class + "_noise0.1_overlap.svg",
			"roc_" + class + "_noise0.pdf", "roc_" + class + "_noise0.png", "roc_" + class + "_noise0.svg"}
		if !slices.Equal(got, want) {
			t.Errorf("--roc-class %s: ROC figures %v, want %v", class, got, want)
		}
	}
}

func TestWriteBestEpochs(t *testing.T) {
	results := map[string]*experiments.Result{
		"wood/noise=0/cflow":     {ImageAUROC: 0.7, PixelAUROC: 0.8, BestEpoch: &experiments.BestEpoch{Epochs: 3, ImageAUROC: 0.75, ImageEpoch: 2, PixelAUROC: 0.8, PixelEpoch: 3}},
		"wood/noise=0/patchcore": {ImageAUROC: 0.9},
	}
	var b strings.Builder
	if err := writeBestEpochs(&b, results, []string{"wood/noise=0/cflow", "wood/noise=0/patchcore"}); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); !strings.Contains(got, "| wood/noise=0/cflow | 3 | 0.7000 | 0.7500 (2) | 0.8000 | 0.8000 (3) |") || strings.Contains(got, "patchcore") {
		t.Errorf("best epochs:\n%s", got)
	}
	b.Reset()
	if err := writeBestEpochs(&b, results, []string{"wood/noise=0/patchcore"}); err != nil || b.Len() != 0 {
		t.Errorf("no epochal cells wrote %q, %v", b.String(), err)
	}
}
