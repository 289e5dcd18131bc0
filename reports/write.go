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

// Write reports on the results folder dir: every cell's metrics to
// results.csv, the tables to tables.md and tables.csv, RESULTS.md
// (provenance, config, tables, figures), per-class bar charts of pixel
// AUROC and image ROC curves of one class (rocClass, default the first)
// for every setting, the memory banks of that class, and the robustness
// curves of pixel and image AUROC (robustness_<metric>.png and .svg). It
// prints the tables to w (pixel AUROC only unless all).
func Write(dir string, w io.Writer, all bool, rocClass string) error {
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
	for _, metric := range []string{"pixel_auroc", "image_auroc"} {
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
		return WriteResultsMarkdown(f, recs, tables, cfgJSON, figures)
	}); err != nil {
		return err
	}
	for _, t := range tables {
		if all || t.Metric == "pixel_auroc" {
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
