package main

import (
	"fmt"
	"os"

	"github.com/softpatch/softpatch/reports"
)

func runReport(args []string) error {
	fs := newFlags("report", "report DIR [--all] [--roc-class C]", "softpatch report runs/quickstart --roc-class pill")
	all := fs.Bool("all", false, "print every metric's tables, not only pixel AUROC")
	rocClass := fs.String("roc-class", "", "class whose image ROC curves are drawn (default: the first by name)")
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("report: want one results folder, got %d arguments", fs.NArg())
	}
	return reports.Write(fs.Arg(0), os.Stdout, *all, *rocClass)
}
