// Package reports turns a sweep's stored results into what a paper shows:
// tables in the paper's shape (this file), and later plots and anomaly-map
// images. It reads results and never runs a model.
package reports

import (
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"

	"github.com/softpatch/softpatch/experiments"
)

// Metrics are the per-cell metrics a report tabulates, in the paper's
// order (each one of experiments.Metrics).
var Metrics = []string{"pixel_auroc", "image_auroc", "aupro", "pixel_f1max", "image_f1max"}

// OptionalMetrics are tabulated after Metrics when some cell has them
// (results written before they were recorded lack them): the average
// precisions, AUPIMO, defect_bank_fraction (the share of a memory bank
// from defects of injected images), and the decision threshold's false-
// positive and false-negative rates on the test set.
var OptionalMetrics = []string{"image_ap", "pixel_ap", "aupimo", "defect_bank_fraction", "test_fpr", "test_fnr"}

// metricLabels are the metrics' names in tables and figures.
var metricLabels = map[string]string{
	"pixel_auroc": "Pixel AUROC", "image_auroc": "Image AUROC", "aupro": "AUPRO",
	"pixel_f1max": "Pixel F1-max", "image_f1max": "Image F1-max",
	"image_ap": "Image AP", "pixel_ap": "Pixel AP", "aupimo": "AUPIMO",
	"defect_bank_fraction": "Defect bank fraction",
	"test_fpr":             "Decision FPR", "test_fnr": "Decision FNR",
}

// MetricLabel is metric's name for a reader, "Pixel AUROC" for
// "pixel_auroc" (the code name itself when it has none).
func MetricLabel(metric string) string {
	if l, ok := metricLabels[metric]; ok {
		return l
	}
	return metric
}

// backboneMark is what a table or figure of cells says about their
// backbone: the cells' mark ("random-init backbone") when all n have it,
// "MARK in k of n cells" when only k do, "" when none does.
func backboneMark(marks []string) string {
	k, mark := 0, ""
	for _, m := range marks {
		if m != "" {
			k, mark = k+1, m
		}
	}
	switch {
	case k == 0:
		return ""
	case k == len(marks):
		return mark
	}
	return fmt.Sprintf("%s in %d of %d cells", mark, k, len(marks))
}

// Table is one table of the paper's shape for one noise setting and one
// metric: a row per class, then "Average" (the mean over classes) and, for
// noisy settings, "Gap" (Average minus the clean-data Average of the same
// method); a column per method. Values are means over replicates (a
// setting's folds and seeds, experiments.Cell.Replicate), with their
// sample standard deviations and replicate counts in each Row's Std and N;
// NaN marks a missing cell. Mark is the cells' backbone mark
// ("random-init backbone"), shown in the table's heading.
type Table struct {
	Metric  string
	Ratio   float64
	Overlap bool
	Methods []string
	Rows    []Row
	Mark    string
}

// Row is a table row: per method (the table's Methods, in order) a value,
// its sample standard deviation and the number of replicate values behind
// both.
//
//   - A class row's value is the mean over the replicates of that
//     (setting, class, method); Std is their sample standard deviation
//     (denominator n-1, as numpy.std(ddof=1)), NaN when n < 2; N is n.
//   - The Average row's value is the mean of the class values (NaN when a
//     class lacks the cell). When every class has the same replicates, Std
//     is the sample standard deviation of the per-replicate averages (for
//     each replicate, the mean over classes of its values; their mean is
//     the Average itself) and N their number (Std NaN when N < 2). When the
//     classes' replicates differ, Std is NaN and N is 0.
//   - The Gap row's value is the Average minus the clean setting's
//     Average; Std is NaN and N is 0: a difference of two means, not
//     paired replicate by replicate (clean training has one replicate per
//     seed, noisy settings one per fold and seed).
//
// Std and N may be nil (a Row built by hand): every std is then NaN.
type Row struct {
	Name   string
	Values []float64 // one per method
	Std    []float64 // sample std per method; NaN where there is none
	N      []int     // replicate values per method behind Values and Std
}

// std is the row's standard deviation for method j, NaN where there is
// none.
func (r Row) std(j int) float64 {
	if j < len(r.Std) {
		return r.Std[j]
	}
	return math.NaN()
}

// n is the row's replicate count for method j, 0 where it has none.
func (r Row) n(j int) int {
	if j < len(r.N) {
		return r.N[j]
	}
	return 0
}

// hasStd reports whether the row's value for method j has a std to show.
func (r Row) hasStd(j int) bool {
	return !math.IsNaN(r.std(j)) && r.n(j) >= 2
}

// Title names the table, e.g. "Pixel AUROC, noise 0.1, overlap".
func (t Table) Title() string {
	return MetricLabel(t.Metric) + ", " + t.Setting()
}

// Setting names the table's noise setting, e.g. "noise 0.1, overlap".
func (t Table) Setting() string {
	switch {
	case t.Ratio == 0:
		return "clean training (noise 0)"
	case t.Overlap:
		return fmt.Sprintf("noise %g, overlap", t.Ratio)
	}
	return fmt.Sprintf("noise %g, no overlap", t.Ratio)
}

// Heading is the title with the backbone mark, e.g. "Pixel AUROC, noise
// 0.1, overlap, random-init backbone".
func (t Table) Heading() string {
	if t.Mark == "" {
		return t.Title()
	}
	return t.Title() + ", " + t.Mark
}

type setting struct {
	ratio   float64
	overlap bool
}

// Tables builds every table of recs: one per noise setting present (clean
// first, then by ratio, no overlap before overlap) and metric (of the
// OptionalMetrics, those some cell has). Methods are
// ordered as detector.Names(), each "X+Y" right after Y (the
// paper's column order), classes by name. Each value is a mean over the
// replicates of its cell with a sample standard deviation (see Row).
func Tables(recs map[string]experiments.Record) ([]Table, error) {
	type key struct {
		s      setting
		class  string
		method string
		metric string
	}
	reps := map[key]map[string]float64{} // value by replicate (fold and seed)
	present := map[string]bool{}         // the metrics some cell has
	var settings []setting
	var classes, methods, marks []string
	for k, r := range recs {
		res, err := r.Decode()
		if err != nil {
			return nil, fmt.Errorf("reports: result %s: %w", k, err)
		}
		marks = append(marks, res.Mark)
		s := setting{r.Cell.Ratio, r.Cell.Overlap}
		if !slices.Contains(settings, s) {
			settings = append(settings, s)
		}
		if !slices.Contains(classes, r.Cell.Class) {
			classes = append(classes, r.Cell.Class)
		}
		if !slices.Contains(methods, r.Cell.Method) {
			methods = append(methods, r.Cell.Method)
		}
		for _, metric := range slices.Concat(Metrics, OptionalMetrics) {
			if v, ok := res.Metric(metric); ok {
				k := key{s, r.Cell.Class, r.Cell.Method, metric}
				if reps[k] == nil {
					reps[k] = map[string]float64{}
				}
				reps[k][r.Cell.Replicate()] = v
				present[metric] = true
			}
		}
	}
	slices.SortFunc(settings, func(a, b setting) int {
		if a.ratio != b.ratio {
			if a.ratio < b.ratio {
				return -1
			}
			return 1
		}
		if a.overlap == b.overlap {
			return 0
		}
		if !a.overlap {
			return -1
		}
		return 1
	})
	slices.Sort(classes)
	slices.SortStableFunc(methods, func(a, b string) int { return methodIndex(a) - methodIndex(b) })

	// value is a class's mean over replicates, its sample std and n.
	value := func(s setting, class, method, metric string) (float64, float64, int) {
		byRep := reps[key{s, class, method, metric}]
		if len(byRep) == 0 {
			return math.NaN(), math.NaN(), 0
		}
		var xs []float64
		for _, r := range slices.Sorted(maps.Keys(byRep)) {
			xs = append(xs, byRep[r])
		}
		mean, std := meanStd(xs)
		return mean, std, len(xs)
	}
	// average is the mean of the class means (NaN when a class is
	// missing) and, when every class has the same replicates, the sample
	// std of the per-replicate class averages and their number.
	average := func(s setting, method, metric string) (float64, float64, int) {
		sum := 0.0
		for _, c := range classes {
			v, _, _ := value(s, c, method, metric)
			sum += v
		}
		mean := sum / float64(len(classes)) // NaN when a class is missing
		if math.IsNaN(mean) {
			return mean, math.NaN(), 0
		}
		first := slices.Sorted(maps.Keys(reps[key{s, classes[0], method, metric}]))
		for _, c := range classes[1:] {
			if !slices.Equal(first, slices.Sorted(maps.Keys(reps[key{s, c, method, metric}]))) {
				return mean, math.NaN(), 0 // the classes' replicates differ
			}
		}
		avgs := make([]float64, len(first))
		for i, r := range first {
			for _, c := range classes {
				avgs[i] += reps[key{s, c, method, metric}][r]
			}
			avgs[i] /= float64(len(classes))
		}
		_, std := meanStd(avgs)
		return mean, std, len(avgs)
	}
	clean := setting{0, false}
	mark := backboneMark(marks)
	var tables []Table
	for _, s := range settings {
		for _, metric := range slices.Concat(Metrics, OptionalMetrics) {
			if !present[metric] && slices.Contains(OptionalMetrics, metric) {
				continue
			}
			t := Table{Metric: metric, Ratio: s.ratio, Overlap: s.overlap, Methods: methods, Mark: mark}
			for _, c := range classes {
				r := Row{Name: c}
				for _, m := range methods {
					v, std, n := value(s, c, m, metric)
					r.Values, r.Std, r.N = append(r.Values, v), append(r.Std, std), append(r.N, n)
				}
				t.Rows = append(t.Rows, r)
			}
			avg := Row{Name: "Average"}
			gap := Row{Name: "Gap"}
			for _, m := range methods {
				a, std, n := average(s, m, metric)
				avg.Values, avg.Std, avg.N = append(avg.Values, a), append(avg.Std, std), append(avg.N, n)
				c, _, _ := average(clean, m, metric)
				gap.Values, gap.Std, gap.N = append(gap.Values, a-c), append(gap.Std, math.NaN()), append(gap.N, 0)
			}
			t.Rows = append(t.Rows, avg)
			if s.ratio > 0 && slices.Contains(settings, clean) {
				t.Rows = append(t.Rows, gap)
			}
			tables = append(tables, t)
		}
	}
	return tables, nil
}

// meanStd is the mean of xs and their sample standard deviation (n-1
// denominator; NaN for fewer than two values).
func meanStd(xs []float64) (mean, std float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if len(xs) < 2 {
		return mean, math.NaN()
	}
	ss := 0.0
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss / float64(len(xs)-1))
}

// percentMetrics are shown as percentages with two decimals: shares too
// small for three decimals of a fraction.
var percentMetrics = []string{"defect_bank_fraction"}

// cells formats the table's rows as strings: three decimals (a percentage
// with two for percentMetrics), gaps signed, "-" for a missing value; a
// value with a std (Row.Std, two or more replicates) as "mean ± std", both
// in that format ("0.912 ± 0.004", "25.00% ± 1.50%").
func (t Table) cells() (header []string, rows [][]string) {
	header = append([]string{"class"}, t.Methods...)
	scale, format := 1.0, "%.3f"
	if slices.Contains(percentMetrics, t.Metric) {
		scale, format = 100, "%.2f%%"
	}
	for _, r := range t.Rows {
		row := []string{r.Name}
		for j, v := range r.Values {
			var cell string
			switch {
			case math.IsNaN(v):
				cell = "-"
			case r.Name == "Gap":
				cell = fmt.Sprintf("%+"+format[1:], v*scale)
			default:
				cell = fmt.Sprintf(format, v*scale)
			}
			if !math.IsNaN(v) && r.hasStd(j) {
				cell += " ± " + fmt.Sprintf(format, r.std(j)*scale)
			}
			row = append(row, cell)
		}
		rows = append(rows, row)
	}
	return header, rows
}

// Spread is the line under the heading that says what a "±" in the table
// means, e.g. "mean ± sample std over 3 replicates (folds × seeds)", with
// a note on the values shown without one; "" when no value has a std
// (one replicate everywhere).
func (t Table) Spread() string {
	var ns []int
	bare := false // a class or Average value without a std
	for _, r := range t.Rows {
		for j, v := range r.Values {
			switch {
			case math.IsNaN(v):
			case r.hasStd(j):
				if !slices.Contains(ns, r.n(j)) {
					ns = append(ns, r.n(j))
				}
			case r.Name != "Gap":
				bare = true
			}
		}
	}
	if len(ns) == 0 {
		return ""
	}
	slices.Sort(ns)
	over := strconv.Itoa(ns[0])
	if len(ns) > 1 {
		over += " to " + strconv.Itoa(ns[len(ns)-1])
	}
	line := "mean ± sample std (n-1) over " + over + " replicates (folds × seeds)"
	if bare {
		line += "; values without ± rest on one replicate, or (Average) on classes with different replicates"
	}
	if slices.ContainsFunc(t.Rows, func(r Row) bool { return r.Name == "Gap" }) {
		line += "; Gap: difference of means, no std"
	}
	return line
}

// WriteText writes the table for a terminal, under its title (and the
// Spread line when some value has a std).
func (t Table) WriteText(w io.Writer) error {
	return t.write(w, nil)
}

// WriteMarkdown writes the table as a Markdown table under a bold title
// (and the Spread line in italics when some value has a std).
func (t Table) WriteMarkdown(w io.Writer) error {
	return t.write(w, renderer.NewMarkdown())
}

func (t Table) write(w io.Writer, r tw.Renderer) error {
	header, rows := t.cells()
	title := t.Heading()
	spread := t.Spread()
	if r != nil {
		title = "**" + title + "**"
		if spread != "" {
			spread = "_" + spread + "_"
		}
	}
	if _, err := fmt.Fprintf(w, "%s\n\n", title); err != nil {
		return err
	}
	if spread != "" {
		if _, err := fmt.Fprintf(w, "%s\n\n", spread); err != nil {
			return err
		}
	}
	opts := []tablewriter.Option{tablewriter.WithHeaderAutoFormat(tw.Off)}
	if r != nil {
		opts = append(opts, tablewriter.WithRenderer(r))
	}
	tb := tablewriter.NewTable(w, opts...)
	tb.Header(header)
	for _, row := range rows {
		if err := tb.Append(row); err != nil {
			return err
		}
	}
	if err := tb.Render(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w)
	return err
}

// WriteCSV writes every table as rows of one CSV: metric, noise, overlap,
// the backbone mark (empty with pretrained weights), row name, then one
// column per method (the methods of the first table). A row with a std
// for some method (Row.Std: two or more replicates) is followed by two
// rows of the same columns named "NAME std" (the sample std per method,
// empty where there is none) and "NAME n" (Row.N, the replicate values
// behind each value, empty for 0), e.g. "wood", "wood std", "wood n".
// The columns and the value rows are the same as without replicates, so
// that a reader of the values alone skips the rows ending in " std" and
// " n".
func WriteCSV(w io.Writer, tables []Table) error {
	cw := csv.NewWriter(w)
	if len(tables) > 0 {
		if err := cw.Write(append([]string{"metric", "noise", "overlap", "mark", "row"}, tables[0].Methods...)); err != nil {
			return err
		}
	}
	for _, t := range tables {
		for _, r := range t.Rows {
			lead := []string{t.Metric, strconv.FormatFloat(t.Ratio, 'g', -1, 64), strconv.FormatBool(t.Overlap), t.Mark}
			values, stds, ns := append(slices.Clone(lead), r.Name), append(slices.Clone(lead), r.Name+" std"), append(slices.Clone(lead), r.Name+" n")
			spread := false
			for j, v := range r.Values {
				values, stds, ns = append(values, ""), append(stds, ""), append(ns, "")
				if !math.IsNaN(v) {
					values[len(values)-1] = strconv.FormatFloat(v, 'f', 6, 64)
				}
				if !math.IsNaN(v) && r.hasStd(j) {
					spread = true
					stds[len(stds)-1] = strconv.FormatFloat(r.std(j), 'f', 6, 64)
				}
				if r.n(j) > 0 {
					ns[len(ns)-1] = strconv.Itoa(r.n(j))
				}
			}
			rows := [][]string{values}
			if spread {
				rows = append(rows, stds, ns)
			}
			for _, row := range rows {
				if err := cw.Write(row); err != nil {
					return err
				}
			}
		}
	}
	cw.Flush()
	return cw.Error()
}
