package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/softpatch/softpatch/experiments"
	"github.com/softpatch/softpatch/reports"
)

func runReport(args []string) error {
	fs := newFlags("report", "report DIR [--all] [--metric M,...] [--roc-class C]", "softpatch report runs/quickstart --metric pixel_auroc,aupimo")
	all := fs.Bool("all", false, "print every metric's tables, not only pixel AUROC")
	metric := fs.String("metric", "", "metrics to print, list in RESULTS.md and draw as robustness curves, comma-separated ("+
		strings.Join(experiments.Metrics, ", ")+"; default: pixel_auroc printed, pixel and image AUROC drawn)")
	rocClass := fs.String("roc-class", "", "class whose image ROC curves are drawn (default: the first by name)")
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("report: want one results folder, got %d arguments", fs.NArg())
	}
	var metrics []string
	for _, m := range strings.Split(*metric, ",") {
		if m = strings.TrimSpace(m); m != "" {
			metrics = append(metrics, m)
		}
	}
	if err := reports.CheckMetrics(metrics); err != nil {
		return err
	}
	return reports.Write(fs.Arg(0), os.Stdout, reports.Options{Metrics: metrics, All: *all, ROCClass: *rocClass})
}
