package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/datasets/synth"
	"github.com/softpatch/softpatch/experiments"
	"github.com/softpatch/softpatch/internal/progress"
)

// setFlags collects repeated --set key=value flags.
type setFlags []string

func (s *setFlags) String() string     { return strings.Join(*s, " ") }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

// runHook, when set (tests), is called after each finished cell; an error
// stops the sweep as a crash would.
var runHook func(done int) error

func runRun(args []string) error {
	fs := newFlags("run", "run CONFIG [--set key=value ...] [--out DIR] [--shard i/n] [--dry-run]",
		"softpatch run configs/quickstart.yaml --set noise.ratios=[0,0.1] --out runs/quick")
	var sets setFlags
	fs.Var(&sets, "set", "override a config value, key.path=YAML value (repeatable)")
	out := fs.String("out", "", "results folder (default: runs/<config name>)")
	shardFlag := fs.String("shard", "", "run only shard i of n (0 <= i < n): every n-th cell")
	dry := fs.Bool("dry-run", false, "print the planned cells and which are done, run nothing")
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("run: want one CONFIG file, got %d arguments", fs.NArg())
	}
	cfg, err := experiments.LoadConfig(fs.Arg(0), sets)
	if err != nil {
		return err
	}
	shard, err := experiments.ParseShard(*shardFlag)
	if err != nil {
		return err
	}
	dir := *out
	if dir == "" {
		name := cfg.Name
		if name == "" {
			name = strings.TrimSuffix(filepath.Base(fs.Arg(0)), filepath.Ext(fs.Arg(0)))
		}
		dir = filepath.Join("runs", name)
	}
	if g := cfg.Dataset.Generate; g != nil && !*dry {
		if _, err := os.Stat(cfg.Dataset.Root); os.IsNotExist(err) {
			slog.Info("generating the dataset", "root", cfg.Dataset.Root)
			sc := synth.Config{Classes: cfg.Dataset.Classes, Seed: g.Seed, Size: g.Size, Train: g.Train, TestGood: g.TestGood, TestDefect: g.TestDefect}
			if err := synth.Generate(cfg.Dataset.Root, sc, nil); err != nil {
				return err
			}
		}
	}
	format, err := datasets.ParseFormat(cfg.Dataset.Format)
	if err != nil {
		return err
	}
	classes := cfg.Dataset.Classes
	if len(classes) == 0 {
		if classes, err = datasets.Classes(cfg.Dataset.Root, datasets.Layout{Format: format}); err != nil {
			return err
		}
	}
	plan := shard.Select(experiments.Plan(cfg, classes))
	done, err := experiments.ReadResults(dir)
	if err != nil {
		return err
	}
	todo := experiments.Pending(plan, done)
	if *dry {
		for _, c := range plan {
			state := "todo"
			if _, ok := done[c.Key()]; ok {
				state = "done"
			}
			fmt.Printf("%-4s %s\n", state, c.Key())
		}
		fmt.Printf("%d cells in shard %d/%d: %d done, %d to run -> %s\n", len(plan), shard.Index, shard.N, len(plan)-len(todo), len(todo), dir)
		return nil
	}
	if len(todo) == 0 {
		fmt.Printf("all %d cells done -> %s\n", len(plan), dir)
		return report(dir, os.Stdout, false)
	}
	ff := featureFlags{weights: cfg.Backbone.Weights, arch: cfg.Backbone.Arch, mode: cfg.Backbone.ResizeMode,
		layers: strings.Join(cfg.Backbone.Layers, ","), resize: cfg.Backbone.Resize, imagesize: cfg.Backbone.ImageSize,
		threads: cfg.Run.Threads, checkpointBN: cfg.Backbone.BNPass == "checkpoint"}
	p, err := ff.open()
	if err != nil {
		return err
	}
	app, err := experiments.OpenAppender(experiments.ResultsFile(dir, shard))
	if err != nil {
		return err
	}
	defer app.Close()
	var (
		class *datasets.Class
		cache *classFeatures
	)
	bar := progress.New("sweep", len(todo), "cells")
	defer bar.Finish()
	for i, c := range todo {
		slog.Info("cell", "n", fmt.Sprintf("%d/%d", i+1, len(todo)), "key", c.Key())
		if class == nil || class.Name != c.Class {
			if class, err = datasets.Load(cfg.Dataset.Root, c.Class, datasets.Layout{Format: format}, datasets.LoadOptions{}); err != nil {
				return err
			}
			// The class's features are computed here, once, so that every
			// cell's "features" time is only its own reading of them.
			cache = newClassFeatures(p, class, cfg.Run.Batch, cfg.Run.FeatureMemoryMiB<<20)
			if err := cache.fill(); err != nil {
				return err
			}
		}
		cl, err := newCell(class, c, cfg)
		if err != nil {
			return err
		}
		res, err := runCell(p, cl, c.Method, cfg.Run.Batch, cfg.Run.FeatureMemoryMiB, cache.source)
		if err != nil {
			return fmt.Errorf("cell %s: %w", c.Key(), err)
		}
		b, err := json.Marshal(res)
		if err != nil {
			return err
		}
		if err := app.Append(experiments.Record{Key: c.Key(), Cell: c, Result: b}); err != nil {
			return err
		}
		fmt.Printf("%s: image AUROC %.4f, pixel AUROC %.4f, AUPRO %.4f\n", c.Key(), res.ImageAUROC, res.PixelAUROC, res.AUPRO)
		bar.Add(1)
		if runHook != nil {
			if err := runHook(i + 1); err != nil {
				return err
			}
		}
	}
	fmt.Printf("%d cells run, %d done before -> %s\n", len(todo), len(plan)-len(todo), dir)
	return report(dir, os.Stdout, false)
}

// reorder moves the positional arguments after the flags, so that
// "run CONFIG --set x=y" parses as "run --set x=y CONFIG".
func reorder(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
				continue
			}
			if i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
		}
	}
	return append(flags, pos...)
}

// newCell draws the cell's noisy split of class and its detector
// configuration from the sweep config.
func newCell(class *datasets.Class, c experiments.Cell, cfg *experiments.Config) (*cell, error) {
	base, ok := evalMethods[c.Method]
	if !ok {
		return nil, fmt.Errorf("unknown method %q", c.Method)
	}
	cl := &cell{class: class, noise: datasets.Noise{Ratio: c.Ratio, Overlap: c.Overlap, Fold: c.Fold, Augment: cfg.Noise.Augment}}
	var err error
	if cl.train, cl.test, cl.drawn, err = class.Noisy(string(class.Format), cl.noise); err != nil {
		return nil, err
	}
	cl.cfg = base
	d := cfg.Detector
	cl.cfg.Coreset, cl.cfg.Threshold, cl.cfg.LOFK, cl.cfg.Seed = d.Coreset, d.Threshold, d.LOFK, d.Seed
	if d.SoftWeight != nil && !*d.SoftWeight {
		cl.cfg.SoftWeight = false
	}
	return cl, nil
}

// classFeatures computes the features of a class's images once and serves
// them to every cell of the class: the training normals and every test
// image (noisy training sets draw from the test images). When they would
// take more than max bytes, or for augmented images, they are computed per
// cell instead. A cell's Fitter may hold its own copy of its training
// features (up to the same bound), so a sweep can use about twice
// run.feature_memory_mib.
type classFeatures struct {
	p         *pipeline
	class     *datasets.Class
	batch     int
	max       int64
	feats     map[string][]float32 // by image path
	positions int
	tried     bool
}

func newClassFeatures(p *pipeline, class *datasets.Class, batch int, max int64) *classFeatures {
	return &classFeatures{p: p, class: class, batch: batch, max: max}
}

// fill computes every image's features once, if they fit in max bytes
// (measured from the first batch).
func (cf *classFeatures) fill() error {
	cf.tried = true
	items := append(append([]datasets.Item{}, cf.class.Train...), cf.class.Test...)
	feats := map[string][]float32{}
	err := cf.p.eachBatch("features "+cf.class.Name, items, cf.batch, func(lo, hi int, f []float32, pos int) error {
		per := len(f) / (hi - lo)
		if int64(per)*4*int64(len(items)) > cf.max {
			return errTooBig
		}
		cf.positions = pos
		for i, it := range items[lo:hi] {
			feats[it.Path] = append([]float32(nil), f[i*per:(i+1)*per]...)
		}
		return nil
	})
	if err == errTooBig {
		slog.Info("class features exceed the feature memory: computed per cell", "class", cf.class.Name)
		return nil
	}
	if err != nil {
		return err
	}
	cf.feats = feats
	return nil
}

var errTooBig = errors.New("class features too big to keep")

// source is a featureSource serving the cached features (computing
// augmented images, and everything when nothing is cached).
func (cf *classFeatures) source(label string, items []datasets.Item, batch int, fn func(lo, hi int, feats []float32, positions int) error) error {
	if !cf.tried {
		if err := cf.fill(); err != nil {
			return err
		}
	}
	cached := cf.feats != nil
	for _, it := range items {
		if _, ok := cf.feats[it.Path]; !ok || it.Augment != nil {
			cached = false
			break
		}
	}
	if !cached {
		return cf.p.eachBatch(label, items, batch, fn)
	}
	var buf []float32
	for lo := 0; lo < len(items); lo += batch {
		hi := min(lo+batch, len(items))
		buf = buf[:0]
		for _, it := range items[lo:hi] {
			buf = append(buf, cf.feats[it.Path]...)
		}
		if err := fn(lo, hi, buf, cf.positions); err != nil {
			return err
		}
	}
	return nil
}
