package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/softpatch/softpatch/engine/knn"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

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
	// Cells are the planned cells; Done the results folder's records by
	// key, Todo the cells to run: those without a record, and with
	// RedoChanged those in Changed.
	Cells []experiments.Cell
	Done  map[string]experiments.Record
	Todo  []experiments.Cell
	// Changed are the cells whose stored record was computed with other
	// settings (or records none), and Changes how the settings differ
	// ("key old -> new", each difference once).
	Changed []experiments.Cell
	Changes []string
	// ShardCosts are the estimated seconds of every shard of a sharded
	// plan (planCosts), the shards being balanced by them.
	ShardCosts []float64
	// settings are the planned cells' resolved settings, by key.
	settings map[string]*experiments.Settings
}

// State is what the plan does with cell c: "changed" (stored with other
// settings), "done" (stored, reused) or "todo".
func (p *SweepPlan) State(c experiments.Cell) string {
	if slices.ContainsFunc(p.Changed, func(d experiments.Cell) bool { return d.Key() == c.Key() }) {
		return "changed"
	}
	if _, ok := p.Done[c.Key()]; ok {
		return "done"
	}
	return "todo"
}

// ErrDatasetMissing is returned when a sweep's dataset root does not exist
// (and the config does not generate it).
var ErrDatasetMissing = errors.New("dataset root not found")

// ChangedError is returned by Sweep when stored cells were computed with
// other settings than the planned ones and RedoChanged is off: the folder
// is left as it is rather than mixing settings in one table.
type ChangedError struct {
	Cells   int
	Changes []string
}

func (e *ChangedError) Error() string {
	ch := e.Changes
	if len(ch) > 6 {
		ch = append(slices.Clone(ch[:6]), fmt.Sprintf("and %d more", len(e.Changes)-6))
	}
	return fmt.Sprintf("%d cells were computed with other settings: %s; rerun them with --redo-changed, or use another --out",
		e.Cells, strings.Join(ch, ", "))
}

// PlanSweep lists the cells of cfg in shard, reads which are done in the
// results folder dir, and resolves every planned cell's settings (the
// dataset's files, the weights' hash) to tell stored cells computed with
// other settings (Changed) from those it can reuse. It generates nothing:
// with a generated dataset not written yet, every cell is to run. A
// dataset root that does not exist is ErrDatasetMissing, with the plan's
// Done still read.
func PlanSweep(cfg *experiments.Config, dir string, shard experiments.Shard, redoChanged bool) (*SweepPlan, error) {
	p := &SweepPlan{settings: map[string]*experiments.Settings{}}
	var err error
	if p.Done, err = experiments.ReadResults(dir); err != nil {
		return nil, err
	}
	layout, err := cfg.Dataset.Layout()
	if err != nil {
		return nil, err
	}
	_, statErr := os.Stat(cfg.Dataset.Root)
	if os.IsNotExist(statErr) && cfg.Dataset.Generate == nil {
		return p, fmt.Errorf("%s: %w", cfg.Dataset.Root, ErrDatasetMissing)
	}
	classes := cfg.Dataset.Classes
	if len(classes) == 0 {
		if classes, err = datasets.Classes(cfg.Dataset.Root, layout); err != nil {
			return nil, err
		}
	}
	all := experiments.Plan(cfg, classes)
	p.Cells = all
	if shard.N > 1 {
		costs, err := planCosts(cfg, classes, layout, statErr != nil)
		if err != nil {
			return nil, err
		}
		for _, part := range experiments.Partition(all, shard.N, costs) {
			p.ShardCosts = append(p.ShardCosts, costs.Cost(part))
		}
		p.Cells = shard.Select(all, costs)
	}
	if statErr != nil { // to be generated: nothing stored can be reused
		p.Todo = p.Cells
		return p, nil
	}
	o := OptionsFrom(cfg)
	arch, err := backbone.ArchByName(o.Arch)
	if err != nil {
		return nil, err
	}
	id, err := backbone.Resolve(arch, backbone.Options{Weights: o.Weights, PublishedBN: !o.CheckpointBN})
	if err != nil {
		return nil, err
	}
	var class *datasets.Class
	seen := map[string]bool{}
	for _, c := range p.Cells {
		if class == nil || class.Name != c.Class {
			if class, err = LoadClass(cfg.Dataset.Root, c.Class, layout, cfg.Dataset.SkipBad); err != nil {
				return nil, err
			}
		}
		cl, err := sweepCell(class, c, cfg)
		if err != nil {
			return nil, err
		}
		st, err := cellSettings(o, arch, id, cl)
		if err != nil {
			return nil, err
		}
		p.settings[c.Key()] = st
		rec, ok := p.Done[c.Key()]
		if !ok {
			p.Todo = append(p.Todo, c)
			continue
		}
		res, err := rec.Decode()
		if err != nil {
			return nil, fmt.Errorf("results record %s: %w", c.Key(), err)
		}
		if res.SettingsHash == st.Hash() {
			continue
		}
		p.Changed = append(p.Changed, c)
		diff := []string{"settings (none recorded) -> resolved"}
		if res.Settings != nil {
			diff = experiments.Diff(res.Settings, st)
		}
		for _, d := range diff {
			if !seen[d] {
				seen[d] = true
				p.Changes = append(p.Changes, d)
			}
		}
		if redoChanged {
			p.Todo = append(p.Todo, c)
		}
	}
	return p, nil
}

// SweepOptions are where a sweep writes and what it reports.
type SweepOptions struct {
	// Dir is the results folder.
	Dir   string
	Shard experiments.Shard
	// Out, when set, gets one line per finished cell.
	Out io.Writer
	// RedoChanged reruns the stored cells computed with other settings;
	// without it they make Sweep fail with a ChangedError.
	RedoChanged bool
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
		PaDiMSeed: bb.PaDiMSeed, Threads: cfg.Run.Threads, Device: cfg.Run.Device, MethodOptions: cfg.MethodOptions}
}

// ParamsFrom returns the detector params of a sweep config.
func ParamsFrom(cfg *experiments.Config) detector.Params {
	d := cfg.Detector
	search, _ := knn.ParseMode(d.KNN) // checked with the config
	return detector.Params{Coreset: d.Coreset, Threshold: d.Threshold, LOFK: d.LOFK, Seed: d.Seed,
		NoSoftWeight: d.SoftWeight != nil && !*d.SoftWeight, Search: search, Options: cfg.MethodOptions}
}

// LoadClass loads a class (datasets.Load); with skipBad, unusable files
// are left out and each is logged.
func LoadClass(root, name string, l datasets.Layout, skipBad bool) (*datasets.Class, error) {
	c, err := datasets.Load(root, name, l, datasets.LoadOptions{SkipBad: skipBad})
	if err != nil {
		return nil, err
	}
	for _, p := range c.Problems {
		slog.Warn("skipped an unusable file", "file", p.Path, "reason", p.Reason)
	}
	return c, nil
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
	params := ParamsFrom(cfg)
	if len(cfg.Detector.Seeds) > 0 {
		params.Seed = c.Seed
	}
	cell, err := NewCell(class, noise, method, params, f)
	if err != nil {
		return nil, err
	}
	cell.Decision = cfg.Decision
	return cell, nil
}

// Sweep runs the cells of cfg in o.Shard that o.Dir does not hold yet,
// appending each cell's result to the folder as it finishes, so that a
// sweep stopped at any point resumes where it stopped. It writes the
// generated dataset first when the config asks for one that is not there,
// and the config as config.json. It returns the plan it ran.
func Sweep(cfg *experiments.Config, o SweepOptions) (*SweepPlan, error) {
	if g := cfg.Dataset.Generate; g != nil {
		if err := generate(cfg.Dataset.Root, synth.Config{Classes: cfg.Dataset.Classes, Seed: g.Seed, Size: g.Size, Train: g.Train, TestGood: g.TestGood, TestDefect: g.TestDefect}); err != nil {
			return nil, err
		}
	}
	// The results file is locked before the plan reads what is done, so
	// that a sweep on the same file cannot run cells between the two.
	app, err := experiments.OpenAppender(experiments.ResultsFile(o.Dir, o.Shard))
	if err != nil {
		return nil, err
	}
	defer app.Close()
	plan, err := PlanSweep(cfg, o.Dir, o.Shard, o.RedoChanged)
	if err != nil {
		return plan, err
	}
	if len(plan.Changed) > 0 && !o.RedoChanged {
		return plan, &ChangedError{Cells: len(plan.Changed), Changes: plan.Changes}
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
	layout, _ := cfg.Dataset.Layout() // checked by PlanSweep
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
			if class, err = LoadClass(cfg.Dataset.Root, c.Class, layout, cfg.Dataset.SkipBad); err != nil {
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
		cl.Settings = plan.settings[c.Key()]
		opts.CellDir = c.Dir()
		res, err := cl.run(b, opts, cache.source, true, memo)
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

// Per-image seconds of the shard plan's estimates (planCosts), measured on
// the quickstart at 224 px on 2 cores (RESULTS.md): a class's features take
// about 0.18 s an image (5.5 images/s), a PatchCore cell about 0.06 s for
// each of its training and test images (6.5 s for 110).
const (
	featureSecondsPerImage = 0.18
	cellSecondsPerImage    = 0.06
)

// planCosts estimates the cost of cfg's cells on classes for balancing
// shards: a cell costs its method's detector.Method.Cost (X+Y: both) times
// its class's images times cellSecondsPerImage, a class's features its
// images times featureSecondsPerImage. The images are counted from the
// class folders, or from the config's generate section when the dataset
// is yet to be written.
func planCosts(cfg *experiments.Config, classes []string, layout datasets.Layout, generated bool) (experiments.Costs, error) {
	images := map[string]float64{}
	for _, name := range classes {
		if generated {
			g := cfg.Dataset.Generate
			images[name] = float64(g.Train + g.TestGood + g.TestDefect)
			continue
		}
		c, err := datasets.Load(cfg.Dataset.Root, name, layout, datasets.LoadOptions{SkipBad: cfg.Dataset.SkipBad})
		if err != nil {
			return experiments.Costs{}, err
		}
		images[name] = float64(len(c.Train) + len(c.Test))
	}
	weight := func(name string) float64 {
		if m, err := detector.Lookup(name); err == nil && m.Cost > 0 {
			return m.Cost
		}
		return 1
	}
	return experiments.Costs{
		Cell: func(c experiments.Cell) float64 {
			filter, method, _ := detector.Split(c.Method)
			w := weight(method)
			if filter != "" {
				w += weight(filter)
			}
			return w * images[c.Class] * cellSecondsPerImage
		},
		Class: func(class string) float64 { return images[class] * featureSecondsPerImage },
	}, nil
}

// generate writes the generated dataset into root when root does not
// exist. It is written beside root and renamed into place, so that shards
// of a sweep started together (Slurm array tasks) never see a half-written
// dataset: the first rename wins, and the others' copies, identical, are
// removed.
func generate(root string, sc synth.Config) error {
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		return err
	}
	slog.Info("generating the dataset", "root", root)
	if err := os.MkdirAll(filepath.Dir(root), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(root), "."+filepath.Base(root)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // nothing left after a successful rename
	if err := synth.Generate(tmp, sc, nil); err != nil {
		return err
	}
	if err := os.Rename(tmp, root); err != nil {
		if _, statErr := os.Stat(root); statErr == nil {
			return nil // another shard's copy is in place
		}
		return fmt.Errorf("generating the dataset: %w", err)
	}
	return nil
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
