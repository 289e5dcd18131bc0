package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/softpatch/softpatch/datasets/synth"
	"github.com/softpatch/softpatch/internal/progress"
)

// runSynth writes the generated dataset (package synth) in the MVTec AD
// layout: softpatch synth --out DIR [flags].
func runSynth(args []string) error {
	fs := newFlags("synth",
		"synth --out DIR [--classes "+strings.Join(synth.AllClasses(), ",")+"] [--seed N] [--train N --test-good N --test-defect N] [--size 256] [--force]",
		"softpatch synth --out data/synth --classes fabric,pill")
	out := fs.String("out", "", "root folder of the dataset (required)")
	classes := fs.String("classes", strings.Join(synth.Classes(), ","), "comma-separated classes to write (capsules, the multi-instance class, only when named)")
	seed := fs.Uint64("seed", 0, "random seed: the same flags give byte-identical files")
	train := fs.Int("train", synth.DefaultTrain, "training normals per class")
	testGood := fs.Int("test-good", synth.DefaultTestGood, "normal test images per class")
	testDefect := fs.Int("test-defect", synth.DefaultTestDefect, "defective test images per class, spread over its defect types")
	size := fs.Int("size", synth.DefaultSize, "image side in pixels")
	force := fs.Bool("force", false, "replace class folders that already exist")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("synth: unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		return fmt.Errorf("synth: --out DIR is required")
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"--train", *train}, {"--test-good", *testGood}, {"--test-defect", *testDefect}} {
		if f.v < 1 {
			return fmt.Errorf("synth: %s must be at least 1, got %d", f.name, f.v)
		}
	}
	if *size < 32 {
		return fmt.Errorf("synth: --size must be at least 32, got %d", *size)
	}
	var names []string
	for _, c := range strings.Split(*classes, ",") {
		if c = strings.TrimSpace(c); c != "" {
			names = append(names, c)
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("synth: --classes names no class (classes: %s)", strings.Join(synth.AllClasses(), ", "))
	}
	for _, c := range names {
		if synth.DefectTypes(c) == nil {
			return fmt.Errorf("synth: unknown class %q (classes: %s)", c, strings.Join(synth.AllClasses(), ", "))
		}
	}
	// Check every class folder before writing anything.
	for _, c := range names {
		dir := filepath.Join(*out, c)
		if err := synth.CheckFree(dir); err != nil {
			if !*force {
				return fmt.Errorf("%w (use --force to replace it)", err)
			}
		}
	}
	cfg := synth.Config{Seed: *seed, Size: *size, Train: *train, TestGood: *testGood, TestDefect: *testDefect}
	for _, c := range names {
		dir := filepath.Join(*out, c)
		// With --force the old class is moved aside and removed only once
		// the new one is complete; a failed run puts it back.
		old := ""
		if *force {
			if _, err := os.Stat(dir); err == nil {
				old = filepath.Join(*out, "."+c+".old")
				if err := os.RemoveAll(old); err != nil {
					return fmt.Errorf("synth: %w", err)
				}
				if err := os.Rename(dir, old); err != nil {
					return fmt.Errorf("synth: moving %s aside: %w", dir, err)
				}
			}
		}
		cfg.Classes = []string{c}
		total := len(synth.Items(c, cfg))
		bar := progress.New("synth "+c, total, "images")
		t0 := time.Now()
		err := synth.Generate(*out, cfg, func(_ string, _, _ int) { bar.Add(1) })
		bar.Finish()
		if err != nil {
			if old != "" {
				os.Rename(old, dir)
			}
			return err
		}
		if old != "" {
			if err := os.RemoveAll(old); err != nil {
				return fmt.Errorf("synth: removing the replaced %s: %w", old, err)
			}
		}
		fmt.Printf("%s: %d images (%d train, %d test good, %d test defective over %s) in %.1f s -> %s\n",
			c, total, *train, *testGood, *testDefect, strings.Join(synth.DefectTypes(c), ","), time.Since(t0).Seconds(), dir)
	}
	return nil
}
