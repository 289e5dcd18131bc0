package reports

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/softpatch/softpatch/experiments"
	"github.com/softpatch/softpatch/internal/atomicfile"
)

// Options choose what Write prints and draws beyond what it always
// writes.
type Options struct {
	// Metrics are the metrics whose tables are printed, listed in
	// RESULTS.md and drawn as robustness curves (each one of
	// experiments.Metrics); nil means pixel AUROC printed, pixel and image
	// AUROC drawn.
	Metrics []string
	// All prints every metric's tables.
	All bool
	// ROCClass is the class whose image ROC curves and memory banks are
	// drawn ("" the first by name).
	ROCClass string
}

// CheckMetrics reports a name in metrics that is not a metric of a cell.
func CheckMetrics(metrics []string) error {
	for _, m := range metrics {
		if !slices.Contains(experiments.Metrics, m) {
			return fmt.Errorf("report: unknown metric %q (metrics: %s)", m, strings.Join(experiments.Metrics, ", "))
		}
	}
	return nil
}

// Write reports on the results folder dir: every cell's metrics to
// results.csv, the tables to tables.md and tables.csv, RESULTS.md
// (provenance, config, tables, figures), per-class bar charts of pixel
// AUROC and image ROC curves of one class (o.ROCClass) for every setting,
// the memory banks of that class, and the robustness curves of o's
// metrics (robustness_<metric>.png and .svg). It prints the tables of o's
// metrics to w.
func Write(dir string, w io.Writer, o Options) error {
	if err := CheckMetrics(o.Metrics); err != nil {
		return err
	}
	rocClass := o.ROCClass
	printed, drawn := o.Metrics, o.Metrics
	if len(o.Metrics) == 0 {
		printed, drawn = []string{"pixel_auroc"}, []string{"pixel_auroc", "image_auroc"}
	}
	recs, err := experiments.ReadResults(dir)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return fmt.Errorf("report: no results in %s", dir)
	}
	tables, err := Tables(recs)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "tables.md"), func(f io.Writer) error {
		for _, t := range tables {
			if err := t.WriteMarkdown(f); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "tables.csv"), func(f io.Writer) error {
		return WriteCSV(f, tables)
	}); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "results.csv"), func(f io.Writer) error {
		return experiments.WriteResultsCSV(f, recs)
	}); err != nil {
		return err
	}
	var figures []string
	for _, metric := range drawn {
		if !slices.ContainsFunc(tables, func(t Table) bool { return t.Metric == metric }) {
			slog.Info("no robustness curve: no cell has the metric", "metric", metric)
			continue
		}
		fs, err := RobustnessCurve(tables, metric, MetricLabel(metric)+" against the noise ratio", filepath.Join(dir, "robustness_"+metric))
		if err != nil {
			return err
		}
		figures = append(figures, fs...)
	}
	for _, t := range tables {
		if t.Metric != "pixel_auroc" {
			continue
		}
		name := fmt.Sprintf("bars_%s_noise%g", t.Metric, t.Ratio)
		if t.Overlap {
			name += "_overlap"
		}
		fs, err := ClassBars(t, filepath.Join(dir, name))
		if err != nil {
			return err
		}
		figures = append(figures, fs...)
		if rocClass == "" {
			rocClass = t.Rows[0].Name
		}
		// A sweep still running may not have the class's cells yet.
		if fs, err = ImageROC(recs, rocClass, t.Ratio, t.Overlap, filepath.Join(dir, "roc_"+rocClass+strings.TrimPrefix(name, "bars_pixel_auroc"))); err != nil {
			slog.Info("no ROC figure", "reason", err)
			continue
		}
		figures = append(figures, fs...)
	}
	if rocClass != "" { // the class of the ROC curves, also for the banks
		fs, err := BankFigure(dir, recs, rocClass, filepath.Join(dir, "banks_"+rocClass))
		if err == nil {
			figures = append(figures, fs...)
		} else {
			slog.Info("no memory-bank figure", "reason", err)
		}
	}
	if err := removeStale(dir, figures); err != nil {
		return err
	}
	cfgJSON, _ := os.ReadFile(filepath.Join(dir, "config.json")) // absent for folders not written by run
	if err := atomicfile.WriteFile(filepath.Join(dir, "RESULTS.md"), func(f io.Writer) error {
		return WriteResultsMarkdown(f, recs, tables, cfgJSON, figures, o.Metrics)
	}); err != nil {
		return err
	}
	for _, t := range tables {
		if o.All || slices.Contains(printed, t.Metric) {
			if err := t.WriteText(w); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(w, "%d cells; %s, tables.md, tables.csv and %d figures in %s\n", len(recs), "RESULTS.md", len(figures), dir)
	return nil
}

// figurePatterns are the names of the figures Write owns in a results
// folder.
var figurePatterns = []string{"robustness_*", "bars_*", "roc_*", "banks_*"}

// removeStale removes the figures Write owns in dir that this run did not
// write (keep): those of a class, setting or ROC class no longer reported.
func removeStale(dir string, keep []string) error {
	for _, pat := range figurePatterns {
		old, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return err
		}
		for _, f := range old {
			switch filepath.Ext(f) {
			case ".png", ".svg", ".pdf":
			default:
				continue
			}
			if !slices.Contains(keep, f) {
				if err := os.Remove(f); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
