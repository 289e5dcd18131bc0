package reports

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/experiments"
)

func rec(class string, ratio float64, overlap bool, fold int, method string, pix float64) experiments.Record {
	c := experiments.Cell{Class: class, Ratio: ratio, Overlap: overlap, Fold: fold, Method: method}
	b, _ := json.Marshal(map[string]any{"pixel_auroc": pix, "image_auroc": pix - 0.1})
	return experiments.Record{Key: c.Key(), Cell: c, Result: b}
}

// TestTables checks a stored sweep's tables cell by cell: fold means,
// the Average row, the Gap row against clean training, missing values,
// and the Markdown and CSV renderings.
func TestTables(t *testing.T) {
	recs := map[string]experiments.Record{}
	for _, r := range []experiments.Record{
		rec("wood", 0, false, 0, "softpatch-lof", 0.90), rec("wood", 0, false, 0, "patchcore", 0.92),
		rec("pill", 0, false, 0, "softpatch-lof", 0.80), rec("pill", 0, false, 0, "patchcore", 0.84),
		rec("wood", 0.1, true, 0, "patchcore", 0.60), rec("wood", 0.1, true, 1, "patchcore", 0.70),
		rec("pill", 0.1, true, 0, "patchcore", 0.50),
		rec("wood", 0.1, true, 0, "softpatch-lof", 0.88), rec("pill", 0.1, true, 0, "softpatch-lof", 0.78),
		rec("wood", 0.2, false, 0, "patchcore", 0.80), // pill missing at 0.2
	} {
		recs[r.Key] = r
	}
	tables, err := Tables(recs)
	if err != nil {
		t.Fatal(err)
	}
	// 3 settings x 5 metrics, clean first.
	if len(tables) != 15 || tables[0].Ratio != 0 || tables[5].Ratio != 0.1 || tables[10].Ratio != 0.2 {
		t.Fatalf("%d tables", len(tables))
	}
	noisy := tables[5] // pixel_auroc, 0.1, overlap
	if noisy.Metric != "pixel_auroc" || !noisy.Overlap || strings.Join(noisy.Methods, ",") != "patchcore,softpatch-lof" {
		t.Fatalf("table %s %v", noisy.Title(), noisy.Methods)
	}
	want := map[string][]float64{
		"pill":    {0.50, 0.78},
		"wood":    {0.65, 0.88}, // mean of folds 0.60 and 0.70
		"Average": {0.575, 0.83},
		"Gap":     {0.575 - 0.88, 0.83 - 0.85},
	}
	if len(noisy.Rows) != 4 {
		t.Fatalf("%d rows", len(noisy.Rows))
	}
	for _, r := range noisy.Rows {
		for i, v := range r.Values {
			if math.Abs(v-want[r.Name][i]) > 1e-12 {
				t.Errorf("row %s, %s: %v, want %v", r.Name, noisy.Methods[i], v, want[r.Name][i])
			}
		}
	}
	if tables[0].Rows[len(tables[0].Rows)-1].Name != "Average" {
		t.Error("clean table has a Gap row")
	}
	// The 0.2 table misses pill: its Average is missing.
	avg := tables[10].Rows[2]
	if avg.Name != "Average" || !math.IsNaN(avg.Values[0]) {
		t.Errorf("0.2 average %v", avg)
	}

	var md bytes.Buffer
	if err := noisy.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"**Pixel AUROC, noise 0.1, overlap**", "patchcore", "| wood", "0.650", "0.880", "-0.305", "-0.020"} {
		if !strings.Contains(md.String(), s) {
			t.Errorf("markdown lacks %q:\n%s", s, md.String())
		}
	}
	var txt bytes.Buffer
	if err := tables[10].WriteText(&txt); err != nil || !strings.Contains(txt.String(), "-") {
		t.Errorf("text (%v):\n%s", err, txt.String())
	}
	var csv bytes.Buffer
	if err := WriteCSV(&csv, tables); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(csv.String(), "pixel_auroc,0.1,true,,Gap,-0.305000,-0.020000\n") {
		t.Errorf("csv:\n%s", csv.String())
	}
}

// TestTablesMark checks that the random-init mark of the cells heads every
// rendering of a table (terminal, Markdown, CSV), with a count when only
// some cells have it.
func TestTablesMark(t *testing.T) {
	for _, c := range []struct {
		recs []experiments.Record
		want string
	}{
		{marked(rec("wood", 0, false, 0, "patchcore", 0.9), rec("pill", 0, false, 0, "patchcore", 0.8)), "random-init backbone"},
		{append(marked(rec("wood", 0, false, 0, "patchcore", 0.9)), rec("pill", 0, false, 0, "patchcore", 0.8)), "random-init backbone in 1 of 2 cells"},
	} {
		recs := map[string]experiments.Record{}
		for _, r := range c.recs {
			recs[r.Key] = r
		}
		tables, err := Tables(recs)
		if err != nil {
			t.Fatal(err)
		}
		var txt, md, csv bytes.Buffer
		if err := tables[0].WriteText(&txt); err != nil {
			t.Fatal(err)
		}
		if err := tables[0].WriteMarkdown(&md); err != nil {
			t.Fatal(err)
		}
		if err := WriteCSV(&csv, tables); err != nil {
			t.Fatal(err)
		}
		if h := "Pixel AUROC, clean training (noise 0), " + c.want + "\n"; !strings.HasPrefix(txt.String(), h) {
			t.Errorf("text does not start with %q:\n%s", h, txt.String())
		}
		if h := "**Pixel AUROC, clean training (noise 0), " + c.want + "**\n"; !strings.HasPrefix(md.String(), h) {
			t.Errorf("markdown does not start with %q:\n%s", h, md.String())
		}
		if row := "pixel_auroc,0,false," + c.want + ",wood,0.900000\n"; !strings.Contains(csv.String(), row) {
			t.Errorf("csv lacks %q:\n%s", row, csv.String())
		}
	}
}

// TestOptionalMetricTable checks that defect_bank_fraction gets tables
// once a cell has it, blank for cells without it.
func TestOptionalMetricTable(t *testing.T) {
	recs := map[string]experiments.Record{}
	for i, m := range []string{"patchcore", "padim"} {
		res := experiments.Result{Class: "wood", Method: m, PixelAUROC: 0.9}
		if i == 0 {
			f := 0.25
			res.DefectBankFraction = &f
		}
		raw, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		c := experiments.Cell{Class: "wood", Ratio: 0.1, Method: m}
		recs[c.Key()] = experiments.Record{Key: c.Key(), Cell: c, Result: raw}
	}
	tables, err := Tables(recs)
	if err != nil {
		t.Fatal(err)
	}
	last := tables[len(tables)-1]
	if len(tables) != len(Metrics)+3 || last.Metric != "defect_bank_fraction" || last.Rows[0].Values[1] != 0.25 || !math.IsNaN(last.Rows[0].Values[0]) {
		t.Errorf("%d tables, last %s %v %v", len(tables), last.Metric, last.Methods, last.Rows[0].Values)
	}
	var md bytes.Buffer
	if err := last.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "| wood    | -     | 25.00%") {
		t.Errorf("the share is not a percentage:\n%s", md.String())
	}
}
