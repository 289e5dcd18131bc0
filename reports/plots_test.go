package reports

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/experiments"
)

// TestRobustnessCurve draws the curve of a small stored sweep and checks
// that both files are written, the PNG decodes at the figure's size and
// the SVG names every method.
func TestRobustnessCurve(t *testing.T) {
	recs := map[string]experiments.Record{}
	for _, r := range []experiments.Record{
		rec("wood", 0, false, 0, "patchcore", 0.92), rec("wood", 0, false, 0, "softpatch-lof", 0.90),
		rec("wood", 0.1, false, 0, "patchcore", 0.91), rec("wood", 0.1, false, 0, "softpatch-lof", 0.90),
		rec("wood", 0.1, true, 0, "patchcore", 0.60), rec("wood", 0.1, true, 0, "softpatch-lof", 0.88),
	} {
		recs[r.Key] = r
	}
	tables, err := Tables(recs)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(t.TempDir(), "curve")
	files, err := RobustnessCurve(tables, "pixel_auroc", "pixel AUROC", base)
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
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 300 {
		t.Errorf("png %v", b)
	}
	svg, err := os.ReadFile(base + ".svg")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"patchcore", "softpatch-lof", "overlap", "noise ratio"} {
		if !strings.Contains(string(svg), s) {
			t.Errorf("svg lacks %q", s)
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
	if err := WriteResultsMarkdown(&b, recs, tables, []byte(`{"Name":"q"}`), []string{"/x/curve.png", "/x/curve.svg"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"from 2 cells", "commit: abc1234", "**random-init backbone** (seed 0", "device: 2 threads",
		"coreset 3.0", "features 4.0", "total 7.0", `{"Name":"q"}`, "**pixel_auroc, noise 0.1, overlap**", "![curve](curve.png)", "2026-11-28T15:00:00Z"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("RESULTS.md lacks %q:\n%s", s, b.String())
		}
	}
}

func TestClassBars(t *testing.T) {
	recs := map[string]experiments.Record{}
	for _, r := range []experiments.Record{
		rec("wood", 0.1, true, 0, "patchcore", 0.60), rec("wood", 0.1, true, 0, "softpatch-lof", 0.88),
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
	for _, s := range []string{"wood", "pill", "Average", "softpatch-lof"} {
		if !strings.Contains(string(svg), s) {
			t.Errorf("svg lacks %q", s)
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
	for _, s := range []string{"patchcore (AUROC 0.750)", "softpatch-lof (AUROC 0.750)", "false positive rate"} {
		if !strings.Contains(string(svg), s) {
			t.Errorf("svg lacks %q", s)
		}
	}
	if _, err := ImageROC(recs, "wood", 0.1, true, base); err == nil {
		t.Error("a class without cells drawn")
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
	for _, s := range []string{"patchcore: 1 of 3 from noisy images", "softpatch-lof: 1 of 3", "noisy", "clean"} {
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
	if err := WriteResultsMarkdown(&b, recs, nil, nil, nil); err != nil {
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
