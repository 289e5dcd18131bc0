package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/experiments"
)

const runYAML = `name: tiny
dataset:
  root: data
  classes: [nut]
  generate: {train: 6, test_good: 2, test_defect: 6, size: 64}
backbone: {resize: 64, imagesize: 64}
noise:
  ratios: [0, 0.34]
  overlap: [false, true]
methods: [patchcore, softpatch-lof]
detector: {coreset: 0.25}
`

// TestRunResumes runs a tiny sweep that "crashes" after two cells, reruns
// it, and compares every cell with an uninterrupted run and with a run in
// two shards; a third run has nothing left to do.
func TestRunResumes(t *testing.T) {
	dir := withoutWeights(t)
	cfgPath := filepath.Join(dir, "tiny.yaml")
	if err := os.WriteFile(cfgPath, []byte(runYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	crash := errors.New("simulated crash")
	runHook = func(done int) error {
		if done == 2 {
			return crash
		}
		return nil
	}
	resumed := filepath.Join(dir, "resumed")
	if err := runRun([]string{cfgPath, "--out", resumed}); !errors.Is(err, crash) {
		t.Fatalf("first run: %v", err)
	}
	runHook = nil
	got, err := experiments.ReadResults(resumed)
	if err != nil || len(got) != 2 {
		t.Fatalf("%d cells after the crash (%v)", len(got), err)
	}
	if err := runRun([]string{cfgPath, "--out", resumed}); err != nil {
		t.Fatal(err)
	}
	whole := filepath.Join(dir, "whole")
	if err := runRun([]string{"--out", whole, cfgPath}); err != nil {
		t.Fatal(err)
	}
	sharded := filepath.Join(dir, "sharded")
	for _, s := range []string{"0/2", "1/2"} {
		if err := runRun([]string{cfgPath, "--out", sharded, "--shard", s}); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := experiments.ReadResults(resumed)
	b, _ := experiments.ReadResults(whole)
	c, _ := experiments.ReadResults(sharded)
	// Per method: one clean cell and two noisy ones (overlap off and on).
	if len(a) != 6 || len(b) != 6 || len(c) != 6 {
		t.Fatalf("cells: resumed %d, whole %d, sharded %d; want 6", len(a), len(b), len(c))
	}
	for k, rb := range b {
		for name, r := range map[string]map[string]experiments.Record{"resumed": a, "sharded": c} {
			ra, ok := r[k]
			if !ok {
				t.Fatalf("%s run lacks %s", name, k)
			}
			if metrics(t, ra) != metrics(t, rb) {
				t.Errorf("%s: %s run %v, whole run %v", k, name, metrics(t, ra), metrics(t, rb))
			}
		}
	}
	// Nothing left: the rerun runs no cell (a backbone is not even opened).
	if err := runRun([]string{cfgPath, "--out", whole}); err != nil {
		t.Fatal(err)
	}
	if err := runRun([]string{cfgPath, "--out", whole, "--dry-run", "--set", "noise.ratios=[0, 0.34, 0.5]"}); err != nil {
		t.Fatal(err)
	}
	// The run wrote its tables; report rewrites them.
	if err := runReport([]string{whole}); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(whole, "tables.md"))
	if err != nil || !strings.Contains(string(md), "**pixel_auroc, noise 0.34, overlap**") || !strings.Contains(string(md), "| nut") {
		t.Errorf("tables.md (%v):\n%s", err, md)
	}
}

// metrics returns a record's image AUROC, pixel AUROC and AUPRO.
func metrics(t *testing.T, r experiments.Record) [3]float64 {
	t.Helper()
	var res evalResult
	if err := json.Unmarshal(r.Result, &res); err != nil {
		t.Fatal(err)
	}
	return [3]float64{res.ImageAUROC, res.PixelAUROC, res.AUPRO}
}
