package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/softpatch/softpatch/experiments"
	"github.com/softpatch/softpatch/experiments/runner"
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

// TestRunTwoSweepsOneFolder starts a second sweep on a results folder
// while the first is running a cell: it must fail at once, naming the
// first one's pid, and run nothing; the first one completes.
func TestRunTwoSweepsOneFolder(t *testing.T) {
	dir := withoutWeights(t)
	cfgPath := filepath.Join(dir, "tiny.yaml")
	if err := os.WriteFile(cfgPath, []byte(runYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	var second error
	runHook = func(done int) error {
		if done == 1 {
			second = runRun([]string{cfgPath, "--out", out})
		}
		return nil
	}
	defer func() { runHook = nil }()
	if err := runRun([]string{cfgPath, "--out", out}); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(second, experiments.ErrLocked) || !strings.Contains(second.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("second sweep: %v", second)
	}
	b, err := os.ReadFile(filepath.Join(out, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := experiments.ReadResults(out)
	if err != nil {
		t.Fatal(err)
	}
	if lines := bytes.Count(b, []byte("\n")); lines != len(recs) {
		t.Errorf("%d lines for %d cells: a cell ran twice", lines, len(recs))
	}
}

// TestRunChangedSettings reruns a finished sweep with one setting
// changed: it must refuse, name the change and leave the folder as it was;
// with --redo-changed it recomputes every cell with the new setting. A
// folder whose dataset is gone still reports, and says so.
func TestRunChangedSettings(t *testing.T) {
	dir := withoutWeights(t)
	cfgPath := filepath.Join(dir, "tiny.yaml")
	if err := os.WriteFile(cfgPath, []byte(runYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := runRun([]string{cfgPath, "--out", out}); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(filepath.Join(out, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	err = runRun([]string{cfgPath, "--out", out, "--set", "detector.coreset=0.5"})
	var ch *runner.ChangedError
	if !errors.As(err, &ch) || ch.Cells != 6 || !strings.Contains(err.Error(), "detector.coreset 0.25 -> 0.5") || !strings.Contains(err.Error(), "--redo-changed") {
		t.Fatalf("changed coreset: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(out, "results.jsonl"))
	if !bytes.Equal(before, after) {
		t.Error("the refused sweep changed the results file")
	}
	if err := runRun([]string{cfgPath, "--out", out, "--set", "detector.coreset=0.5", "--redo-changed"}); err != nil {
		t.Fatal(err)
	}
	recs, err := experiments.ReadResults(out)
	if err != nil {
		t.Fatal(err)
	}
	for k, r := range recs {
		res, err := r.Decode()
		if err != nil || res.Settings == nil || res.Settings.Detector.Coreset != 0.5 || res.SettingsHash != res.Settings.Hash() {
			t.Errorf("%s after --redo-changed: %v %+v", k, err, res.Settings)
		}
	}
	if err := runRun([]string{cfgPath, "--out", out, "--set", "detector.coreset=0.5"}); err != nil {
		t.Errorf("a rerun with the new settings: %v", err)
	}
	err = runRun([]string{cfgPath, "--out", out, "--set", "detector.coreset=0.5", "--set", "dataset.generate=null",
		"--set", "dataset.root=" + filepath.Join(dir, "gone")})
	if !errors.Is(err, runner.ErrDatasetMissing) || !strings.Contains(err.Error(), "reported the 6 stored cells") {
		t.Errorf("dataset gone: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "RESULTS.md")); err != nil {
		t.Error(err)
	}
}

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
	// The features went to the disk cache (XDG_CACHE_HOME is dir here): one
	// entry per image of the class. A damaged entry is recomputed, and a
	// run without the cache gives the same cells.
	entries, _ := filepath.Glob(filepath.Join(dir, "softpatch", "features", "*", "*.f32"))
	if len(entries) != 6+2+6 {
		t.Fatalf("%d cache entries, want 14", len(entries))
	}
	if err := os.WriteFile(entries[0], []byte("damaged"), 0o644); err != nil {
		t.Fatal(err)
	}
	nocache := filepath.Join(dir, "nocache")
	if err := runRun([]string{cfgPath, "--out", nocache, "--set", "run.cache_dir=off"}); err != nil {
		t.Fatal(err)
	}
	recached := filepath.Join(dir, "recached")
	if err := runRun([]string{cfgPath, "--out", recached}); err != nil {
		t.Fatal(err)
	}
	d, _ := experiments.ReadResults(nocache)
	e, _ := experiments.ReadResults(recached)
	// The repaired image was embedded alone, not in a batch of 8: its
	// features differ in the last bits (README), so that run is compared
	// within 1e-4.
	for k, rb := range b {
		want, rep := metrics(t, rb), metrics(t, e[k])
		if metrics(t, d[k]) != want {
			t.Errorf("%s: without cache %v, first run %v", k, metrics(t, d[k]), want)
		}
		for i := range want {
			if math.Abs(rep[i]-want[i]) > 1e-4 {
				t.Errorf("%s: after repair %v, first run %v", k, rep, want)
			}
		}
	}

	// The run wrote its tables; report rewrites them.
	if err := runReport([]string{whole}); err != nil {
		t.Fatal(err)
	}
	res, err := os.ReadFile(filepath.Join(whole, "RESULTS.md"))
	if err != nil || !strings.Contains(string(res), "## Anomaly maps (noise 0.34, overlap)") ||
		!strings.Contains(string(res), "(overlays/nut_noise0.34_overlaptrue_fold0_softpatch-lof/highest.png)") {
		t.Errorf("RESULTS.md (%v):\n%s", err, res)
	}
	for _, f := range []string{"lowest.png", "bank2d.json", "draws.npz"} {
		if _, err := os.Stat(filepath.Join(whole, "overlays", "nut_noise0.34_overlaptrue_fold0_softpatch-lof", f)); err != nil {
			t.Error(err)
		}
	}
	if csv, err := os.ReadFile(filepath.Join(whole, "results.csv")); err != nil || strings.Count(string(csv), "\n") != 7 {
		t.Errorf("results.csv (%v):\n%s", err, csv)
	}
	md, err := os.ReadFile(filepath.Join(whole, "tables.md"))
	if err != nil || !strings.Contains(string(md), "**Pixel AUROC, noise 0.34, overlap, random-init backbone**") || !strings.Contains(string(md), "| nut") {
		t.Errorf("tables.md (%v):\n%s", err, md)
	}
}

// metrics returns a record's image AUROC, pixel AUROC and AUPRO.
func metrics(t *testing.T, r experiments.Record) [3]float64 {
	t.Helper()
	var res experiments.Result
	if err := json.Unmarshal(r.Result, &res); err != nil {
		t.Fatal(err)
	}
	return [3]float64{res.ImageAUROC, res.PixelAUROC, res.AUPRO}
}

// TestRunHelperProcess is not a test: TestRunSurvivesKill runs the test
// binary again with SOFTPATCH_RUN_HELPER set, so that this function runs a
// sweep in a separate process that can be killed.
func TestRunHelperProcess(t *testing.T) {
	args := os.Getenv("SOFTPATCH_RUN_HELPER")
	if args == "" {
		t.Skip("helper process only")
	}
	if err := runRun(strings.Split(args, "\n")); err != nil {
		t.Fatal(err)
	}
}

// TestRunSurvivesKill kills a sweep process with SIGKILL once its first
// cell is stored, reruns the sweep, and compares every cell with an
// uninterrupted run.
func TestRunSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs sweeps")
	}
	dir := withoutWeights(t)
	cfgPath := filepath.Join(dir, "tiny.yaml")
	if err := os.WriteFile(cfgPath, []byte(runYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	killed := filepath.Join(dir, "killed")
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunHelperProcess$")
	cmd.Env = append(os.Environ(), "SOFTPATCH_RUN_HELPER="+strings.Join([]string{cfgPath, "--out", killed}, "\n"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	results := experiments.ResultsFile(killed, experiments.Shard{Index: 0, N: 1})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if b, err := os.ReadFile(results); err == nil && bytes.Count(b, []byte("\n")) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no cell stored within 2 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	before, err := experiments.ReadResults(killed)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) == 0 || len(before) >= 6 {
		t.Fatalf("%d cells stored when killed; want some but not all of 6", len(before))
	}
	t.Logf("%d of 6 cells stored when the process was killed", len(before))
	if err := runRun([]string{cfgPath, "--out", killed}); err != nil {
		t.Fatal(err)
	}
	whole := filepath.Join(dir, "whole")
	if err := runRun([]string{cfgPath, "--out", whole}); err != nil {
		t.Fatal(err)
	}
	a, _ := experiments.ReadResults(killed)
	b, _ := experiments.ReadResults(whole)
	if len(a) != 6 || len(b) != 6 {
		t.Fatalf("cells: killed and resumed %d, whole %d", len(a), len(b))
	}
	for k, rb := range b {
		if metrics(t, a[k]) != metrics(t, rb) {
			t.Errorf("%s: killed and resumed %v, whole %v", k, metrics(t, a[k]), metrics(t, rb))
		}
	}
}
