// Package reports turns a sweep's stored results into what a paper shows:
// tables in the paper's shape (this file), and later plots and anomaly-map
// images. It reads results and never runs a model.
package reports

import (
	"encoding/csv"
	"fmt"
	"io"
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
// precisions, AUPIMO, and defect_bank_fraction, the share of a memory
// bank from defects of injected images.
var OptionalMetrics = []string{"image_ap", "pixel_ap", "aupimo", "defect_bank_fraction"}

// metricLabels are the metrics' names in tables and figures.
var metricLabels = map[string]string{
	"pixel_auroc": "Pixel AUROC", "image_auroc": "Image AUROC", "aupro": "AUPRO",
	"pixel_f1max": "Pixel F1-max", "image_f1max": "Image F1-max",
	"image_ap": "Image AP", "pixel_ap": "Pixel AP", "aupimo": "AUPIMO",
	"defect_bank_fraction": "Defect bank fraction",
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
// method); a column per method. Values are means over folds; NaN marks a
// missing cell. Mark is the cells' backbone mark ("random-init backbone"),
// shown in the table's heading.
type Table struct {
	Metric  string
	Ratio   float64
	Overlap bool
	Methods []string
	Rows    []Row
	Mark    string
}

// Row is a table row.
type Row struct {
	Name   string
	Values []float64 // one per method
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
// paper's column order), classes by name.
func Tables(recs map[string]experiments.Record) ([]Table, error) {
	type key struct {
		s      setting
		class  string
		method string
		metric string
	}
	sums := map[key][2]float64{} // sum, count over folds
	present := map[string]bool{} // the metrics some cell has
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
				a := sums[k]
				sums[k] = [2]float64{a[0] + v, a[1] + 1}
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

	value := func(s setting, class, method, metric string) float64 {
		a, ok := sums[key{s, class, method, metric}]
		if !ok {
			return math.NaN()
		}
		return a[0] / a[1]
	}
	average := func(s setting, method, metric string) float64 {
		sum := 0.0
		for _, c := range classes {
			sum += value(s, c, method, metric)
		}
		return sum / float64(len(classes)) // NaN when a class is missing
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
					r.Values = append(r.Values, value(s, c, m, metric))
				}
				t.Rows = append(t.Rows, r)
			}
			avg := Row{Name: "Average"}
			gap := Row{Name: "Gap"}
			for _, m := range methods {
				a := average(s, m, metric)
				avg.Values = append(avg.Values, a)
				gap.Values = append(gap.Values, a-average(clean, m, metric))
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

// percentMetrics are shown as percentages with two decimals: shares too
// small for three decimals of a fraction.
var percentMetrics = []string{"defect_bank_fraction"}

// cells formats the table's rows as strings: three decimals (a percentage
// with two for percentMetrics), gaps signed, "-" for a missing value.
func (t Table) cells() (header []string, rows [][]string) {
	header = append([]string{"class"}, t.Methods...)
	scale, format := 1.0, "%.3f"
	if slices.Contains(percentMetrics, t.Metric) {
		scale, format = 100, "%.2f%%"
	}
	for _, r := range t.Rows {
		row := []string{r.Name}
		for _, v := range r.Values {
			switch {
			case math.IsNaN(v):
				row = append(row, "-")
			case r.Name == "Gap":
				row = append(row, fmt.Sprintf("%+"+format[1:], v*scale))
			default:
				row = append(row, fmt.Sprintf(format, v*scale))
			}
		}
		rows = append(rows, row)
	}
	return header, rows
}

// WriteText writes the table for a terminal, under its title.
func (t Table) WriteText(w io.Writer) error {
	return t.write(w, nil)
}

// WriteMarkdown writes the table as a Markdown table under a bold title.
func (t Table) WriteMarkdown(w io.Writer) error {
	return t.write(w, renderer.NewMarkdown())
}

func (t Table) write(w io.Writer, r tw.Renderer) error {
	header, rows := t.cells()
	title := t.Heading()
	if r != nil {
		title = "**" + title + "**"
	}
	if _, err := fmt.Fprintf(w, "%s\n\n", title); err != nil {
		return err
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
// column per method (the methods of the first table).
func WriteCSV(w io.Writer, tables []Table) error {
	cw := csv.NewWriter(w)
	if len(tables) > 0 {
		if err := cw.Write(append([]string{"metric", "noise", "overlap", "mark", "row"}, tables[0].Methods...)); err != nil {
			return err
		}
	}
	for _, t := range tables {
		for _, r := range t.Rows {
			row := []string{t.Metric, strconv.FormatFloat(t.Ratio, 'g', -1, 64), strconv.FormatBool(t.Overlap), t.Mark, r.Name}
			for _, v := range r.Values {
				if math.IsNaN(v) {
					row = append(row, "")
				} else {
					row = append(row, strconv.FormatFloat(v, 'f', 6, 64))
				}
			}
			if err := cw.Write(row); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}
