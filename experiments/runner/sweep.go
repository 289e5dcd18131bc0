package runner

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/datasets/synth"
	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/experiments"
	"github.com/softpatch/softpatch/internal/atomicfile"
	"github.com/softpatch/softpatch/internal/progress"
)

// SweepPlan is a sweep's cells in one shard, and which of them a results
// folder already holds.
type SweepPlan struct {
	Cells []experiments.Cell
	Todo  []experiments.Cell
	Done  map[string]experiments.Record
}

// PlanSweep lists the cells of cfg in shard and reads which are done in
// the results folder dir. It generates nothing: with a generated dataset
// not written yet, the config must name its classes.
func PlanSweep(cfg *experiments.Config, dir string, shard experiments.Shard) (*SweepPlan, error) {
	format, err := datasets.ParseFormat(cfg.Dataset.Format)
	if err != nil {
		return nil, err
	}
	classes := cfg.Dataset.Classes
	if len(classes) == 0 {
		if classes, err = datasets.Classes(cfg.Dataset.Root, datasets.Layout{Format: format}); err != nil {
			return nil, err
		}
	}
	p := &SweepPlan{Cells: shard.Select(experiments.Plan(cfg, classes))}
	if p.Done, err = experiments.ReadResults(dir); err != nil {
		return nil, err
	}
	p.Todo = experiments.Pending(p.Cells, p.Done)
	return p, nil
}

// SweepOptions are where a sweep writes and what it reports.
type SweepOptions struct {
	// Dir is the results folder.
	Dir   string
	Shard experiments.Shard
	// Out, when set, gets one line per finished cell.
	Out io.Writer
	// AfterCell, when set (tests), is called after each finished cell with
	// the number finished so far; an error stops the sweep as a crash
	// would.
	AfterCell func(done int) error
}

// OptionsFrom returns the backbone and device options of a sweep config.
func OptionsFrom(cfg *experiments.Config) Options {
	bb := cfg.Backbone
	return Options{Weights: bb.Weights, Arch: bb.Arch, Layers: bb.Layers, Resize: bb.Resize, ImageSize: bb.ImageSize,
		ResizeMode: bb.ResizeMode, CheckpointBN: bb.BNPass == backbone.BNCheckpoint, PaDiMKeep: bb.PaDiMChannels,
		PaDiMSeed: bb.PaDiMSeed, Threads: cfg.Run.Threads, Device: cfg.Run.Device}
}

// ParamsFrom returns the detector params of a sweep config.
func ParamsFrom(cfg *experiments.Config) detector.Params {
	d := cfg.Detector
	return detector.Params{Coreset: d.Coreset, Threshold: d.Threshold, LOFK: d.LOFK, Seed: d.Seed,
		NoSoftWeight: d.SoftWeight != nil && !*d.SoftWeight, Options: cfg.MethodOptions}
}

// sweepCell draws the split of sweep cell c of class and sets up its
// detector from the sweep config.
func sweepCell(class *datasets.Class, c experiments.Cell, cfg *experiments.Config) (*Cell, error) {
	filter, method, err := detector.Split(c.Method)
	if err != nil {
		return nil, err
	}
	var f *Filter
	if filter != "" {
		f = &Filter{Method: filter, Drop: experiments.DefaultDrop, Threshold: cfg.Filter.Threshold}
		if cfg.Filter.Drop != nil {
			f.Drop = *cfg.Filter.Drop
		}
	}
	noise := datasets.Noise{Ratio: c.Ratio, Overlap: c.Overlap, Fold: c.Fold, Augment: cfg.Noise.Augment}
	return NewCell(class, noise, method, ParamsFrom(cfg), f)
}

// Sweep runs the cells of cfg in o.Shard that o.Dir does not hold yet,
// appending each cell's result to the folder as it finishes, so that a
// sweep stopped at any point resumes where it stopped. It writes the
// generated dataset first when the config asks for one that is not there,
// and the config as config.json. It returns the plan it ran.
func Sweep(cfg *experiments.Config, o SweepOptions) (*SweepPlan, error) {
	if g := cfg.Dataset.Generate; g != nil {
		if _, err := os.Stat(cfg.Dataset.Root); os.IsNotExist(err) {
			slog.Info("generating the dataset", "root", cfg.Dataset.Root)
			sc := synth.Config{Classes: cfg.Dataset.Classes, Seed: g.Seed, Size: g.Size, Train: g.Train, TestGood: g.TestGood, TestDefect: g.TestDefect}
			if err := synth.Generate(cfg.Dataset.Root, sc, nil); err != nil {
				return nil, err
			}
		}
	}
	// The results file is locked before the plan reads what is done, so
	// that a sweep on the same file cannot run cells between the two.
	app, err := experiments.OpenAppender(experiments.ResultsFile(o.Dir, o.Shard))
	if err != nil {
		return nil, err
	}
	defer app.Close()
	plan, err := PlanSweep(cfg, o.Dir, o.Shard)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(o.Dir, "config.json"), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(cfg)
	}); err != nil {
		return nil, err
	}
	todo := plan.Todo
	if len(todo) == 0 {
		return plan, nil
	}
	// Every pipeline the cells need is set up before the first cell runs,
	// so that a bad setting (backbone.padim_channels) fails at once.
	methods, err := cellMethods(todo)
	if err != nil {
		return nil, err
	}
	b, err := Open(OptionsFrom(cfg), methods, nil)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	disk, err := featureCache(cfg)
	if err != nil {
		return nil, err
	}
	format, _ := datasets.ParseFormat(cfg.Dataset.Format) // checked by PlanSweep
	opts := CellOptions{Batch: cfg.Run.Batch, FeatureMemoryMiB: cfg.Run.FeatureMemoryMiB, ResultsDir: o.Dir}
	var (
		class *datasets.Class
		cache classSources
		memo  filterMemo
	)
	bar := progress.New("sweep", len(todo), "cells")
	defer bar.Finish()
	for i, c := range todo {
		slog.Info("cell", "n", fmt.Sprintf("%d/%d", i+1, len(todo)), "key", c.Key())
		if class == nil || class.Name != c.Class {
			if class, err = datasets.Load(cfg.Dataset.Root, c.Class, datasets.Layout{Format: format}, datasets.LoadOptions{}); err != nil {
				return nil, err
			}
			// The class's features are computed here, once per pipeline its
			// cells use, so that every cell's "features" time is only its
			// own reading of them.
			if cache, err = classCache(b, todo[i:], class, cfg, disk); err != nil {
				return nil, err
			}
			memo = filterMemo{}
		}
		cl, err := sweepCell(class, c, cfg)
		if err != nil {
			return nil, err
		}
		opts.CellDir = c.Dir()
		res, err := cl.run(b, opts, cache.source, memo)
		if err != nil {
			return nil, fmt.Errorf("cell %s: %w", c.Key(), err)
		}
		raw, err := json.Marshal(res)
		if err != nil {
			return nil, err
		}
		if err := app.Append(experiments.Record{Key: c.Key(), Cell: c, Result: raw}); err != nil {
			return nil, err
		}
		if o.Out != nil {
			fmt.Fprintf(o.Out, "%s: image AUROC %.4f, pixel AUROC %.4f, AUPRO %.4f\n", c.Key(), res.ImageAUROC, res.PixelAUROC, res.AUPRO)
		}
		runtime.GC() // the cell's model is garbage: free it before the next cell allocates its own
		bar.Add(1)
		if o.AfterCell != nil {
			if err := o.AfterCell(i + 1); err != nil {
				return nil, err
			}
		}
	}
	return plan, nil
}

// cellMethods returns the detector methods that cells fit, as detector or
// as filter, each once.
func cellMethods(cells []experiments.Cell) ([]string, error) {
	var out []string
	for _, c := range cells {
		filter, method, err := detector.Split(c.Method)
		if err != nil {
			return nil, err
		}
		for _, m := range []string{filter, method} {
			if m != "" && !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	return out, nil
}

// featureCache is the sweep's disk cache of features, nil when
// run.cache_dir is off.
func featureCache(cfg *experiments.Config) (*experiments.FeatureCache, error) {
	if cfg.Run.CacheDir == "off" {
		return nil, nil
	}
	dir := cfg.Run.CacheDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("run: no cache folder (%v): set run.cache_dir, or run.cache_dir=off", err)
		}
		dir = filepath.Join(base, "softpatch", "features")
	}
	return &experiments.FeatureCache{Dir: dir, MaxBytes: int64(cfg.Run.CacheMaxGiB * (1 << 30))}, nil
}

// classCache computes (or finds in disk) the features of class for every
// pipeline that the cells of the class among cells use.
func classCache(b *Backbone, cells []experiments.Cell, class *datasets.Class, cfg *experiments.Config, disk *experiments.FeatureCache) (classSources, error) {
	var same []experiments.Cell
	for _, c := range cells {
		if c.Class == class.Name {
			same = append(same, c)
		}
	}
	methods, err := cellMethods(same)
	if err != nil {
		return nil, err
	}
	var pipes []*Pipeline
	for _, m := range methods {
		p, err := b.Pipeline(m)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(pipes, p) {
			pipes = append(pipes, p)
		}
	}
	cache := classSources{}
	var cfs []*classFeatures
	for _, p := range pipes {
		// The bound is shared by the pipelines (PatchCore's, PaDiM's).
		cf := newClassFeatures(p, class, cfg.Run.Batch, cfg.Run.FeatureMemoryMiB<<20/int64(len(pipes)), disk)
		cache[p] = cf
		cfs = append(cfs, cf)
	}
	return cache, fillClass(cfs)
}
