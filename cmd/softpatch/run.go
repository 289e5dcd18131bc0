package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/datasets/synth"
	"github.com/softpatch/softpatch/experiments"
	"github.com/softpatch/softpatch/internal/atomicfile"
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
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "config.json"), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(cfg)
	}); err != nil {
		return err
	}
	if len(todo) == 0 {
		fmt.Printf("all %d cells done -> %s\n", len(plan), dir)
		return report(dir, os.Stdout, false, "")
	}
	ff := featureFlags{weights: cfg.Backbone.Weights, arch: cfg.Backbone.Arch, mode: cfg.Backbone.ResizeMode,
		layers: strings.Join(cfg.Backbone.Layers, ","), resize: cfg.Backbone.Resize, imagesize: cfg.Backbone.ImageSize,
		threads: cfg.Run.Threads, checkpointBN: cfg.Backbone.BNPass == "checkpoint",
		padimKeep: cfg.Backbone.PaDiMChannels, padimSeed: cfg.Backbone.PaDiMSeed, device: cfg.Run.Device}
	p, err := ff.open()
	if err != nil {
		return err
	}
	// Every pipeline the cells need is set up before the first cell runs,
	// so that a bad setting (backbone.padim_channels) fails at once.
	if _, err := pipelinesFor(p, todo, ""); err != nil {
		return err
	}
	var disk *experiments.FeatureCache
	if cfg.Run.CacheDir != "off" {
		cdir := cfg.Run.CacheDir
		if cdir == "" {
			base, err := os.UserCacheDir()
			if err != nil {
				return fmt.Errorf("run: no cache folder (%v): set run.cache_dir, or run.cache_dir=off", err)
			}
			cdir = filepath.Join(base, "softpatch", "features")
		}
		disk = &experiments.FeatureCache{Dir: cdir, MaxBytes: int64(cfg.Run.CacheMaxGiB * (1 << 30))}
	}
	app, err := experiments.OpenAppender(experiments.ResultsFile(dir, shard))
	if err != nil {
		return err
	}
	defer app.Close()
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
				return err
			}
			// The class's features are computed here, once per pipeline its
			// cells use, so that every cell's "features" time is only its
			// own reading of them.
			cache, memo = classSources{}, filterMemo{}
			pipes, err := pipelinesFor(p, todo[i:], c.Class)
			if err != nil {
				return err
			}
			var cfs []*classFeatures
			for _, q := range pipes {
				// The bound is shared by the pipelines (PatchCore's, PaDiM's).
				cf := newClassFeatures(q, class, cfg.Run.Batch, cfg.Run.FeatureMemoryMiB<<20/int64(len(pipes)), disk)
				cache[q] = cf
				cfs = append(cfs, cf)
			}
			if err := fillClass(cfs); err != nil {
				return err
			}
		}
		cl, err := sweepCell(class, c, cfg)
		if err != nil {
			return err
		}
		ovDir := filepath.Join(dir, "overlays", c.Dir())
		res, err := runCell(p, cl, c.Method, cfg.Run.Batch, cfg.Run.FeatureMemoryMiB, cache.source, ovDir, memo)
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
		runtime.GC() // the cell's model is garbage: free it before the next cell allocates its own
		bar.Add(1)
		if runHook != nil {
			if err := runHook(i + 1); err != nil {
				return err
			}
		}
	}
	fmt.Printf("%d cells run, %d done before -> %s\n", len(todo), len(plan)-len(todo), dir)
	return report(dir, os.Stdout, false, "")
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

// sweepCell draws the split of sweep cell c of class and sets up its
// detector from the sweep config.
func sweepCell(class *datasets.Class, c experiments.Cell, cfg *experiments.Config) (*cell, error) {
	filter, method, err := experiments.SplitMethod(c.Method)
	if err != nil {
		return nil, err
	}
	d := cfg.Detector
	fr := filterRule{method: filter, drop: experiments.DefaultDrop, threshold: cfg.Filter.Threshold}
	if cfg.Filter.Drop != nil {
		fr.drop = *cfg.Filter.Drop
	}
	noise := datasets.Noise{Ratio: c.Ratio, Overlap: c.Overlap, Fold: c.Fold, Augment: cfg.Noise.Augment}
	return newCell(class, noise, method, detectorParams{d.Coreset, d.Threshold, d.LOFK, d.Seed, d.SoftWeight != nil && !*d.SoftWeight, fr})
}

// pipelinesFor returns the pipelines (p or its PaDiM variant) that the
// cells of class among cells use, as detector or as filter ("" for every
// class).
func pipelinesFor(p *pipeline, cells []experiments.Cell, class string) ([]*pipeline, error) {
	var out []*pipeline
	for _, c := range cells {
		if class != "" && c.Class != class {
			continue
		}
		filter, method, err := experiments.SplitMethod(c.Method)
		if err != nil {
			return nil, err
		}
		for _, m := range []string{filter, method} {
			if m == "" {
				continue
			}
			q, err := p.forMethod(m)
			if err != nil {
				return nil, err
			}
			if !slices.Contains(out, q) {
				out = append(out, q)
			}
		}
	}
	return out, nil
}

// classSources serves each pipeline's features of a class from its
// classFeatures, and computes those of other pipelines.
type classSources map[*pipeline]*classFeatures

func (cs classSources) source(p *pipeline, label string, items []datasets.Item, batch int, fn func(lo, hi int, feats []float32, positions int) error) error {
	if cf, ok := cs[p]; ok {
		return cf.source(label, items, batch, fn)
	}
	return p.eachBatch(label, items, batch, fn)
}

// classFeatures computes the features of a class's images once and serves
// them to every cell of the class: the training normals and every test
// image (noisy training sets draw from the test images). With a disk cache
// each image's features are looked up there first (by the image file's
// contents and the pipeline) and stored after computing, so later runs
// reuse them. They are kept in memory when they fit in max bytes; beyond
// that they are read back from the disk cache batch by batch, or computed
// per cell without one. Augmented images are always computed per cell.
// When a class's cells use two pipelines (PatchCore's and PaDiM's), each
// gets half of the bound. A cell's fitter may hold its own copy of its
// training features (up to the same bound), so a sweep can use about twice
// run.feature_memory_mib for features, plus a PaDiM model (1.9 GB at
// 224 px, detector.PaDiMBytes).
type classFeatures struct {
	p         *pipeline
	class     *datasets.Class
	batch     int
	max       int64
	disk      *experiments.FeatureCache // nil: no disk cache
	pipeKey   string
	keys      map[string]string    // image path -> disk cache key
	feats     map[string][]float32 // image path -> features, when in memory
	positions int
}

func newClassFeatures(p *pipeline, class *datasets.Class, batch int, max int64, disk *experiments.FeatureCache) *classFeatures {
	return &classFeatures{p: p, class: class, batch: batch, max: max, disk: disk, pipeKey: p.cacheKey()}
}

// cacheKey identifies what the features of an image depend on besides the
// image itself: backbone, weights (by hash), BatchNorm statistics, layers,
// preprocessing and embedding.
func (p *pipeline) cacheKey() string {
	b, _ := json.Marshal(struct {
		Version                           int
		Arch, WeightsSHA256, BNPass, Mode string
		RandomInit                        bool
		Seed                              uint64
		Layers                            []string
		Resize, ImageSize                 int
		Embed                             any
	}{1, p.id.Arch, p.id.SHA256, p.id.BNPass, p.pre.Mode.String(), p.id.RandomInit, p.id.Seed, p.layers, p.pre.Resize, p.pre.ImageSize, p.embed})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// fillState is one pipeline's part of fillClass.
type fillState struct {
	cf       *classFeatures
	items    int // the class's images
	feats    map[string][]float32
	missing  map[string]bool
	inMemory bool
}

// begin looks every item up in the disk cache and returns the state with
// the items still to compute.
func (cf *classFeatures) begin(items []datasets.Item) (*fillState, []datasets.Item, error) {
	st := &fillState{cf: cf, items: len(items), feats: map[string][]float32{}, missing: map[string]bool{}, inMemory: true}
	cf.keys = map[string]string{}
	var missing []datasets.Item
	for _, it := range items {
		if cf.disk == nil {
			missing = append(missing, it)
			continue
		}
		b, err := os.ReadFile(it.Path)
		if err != nil {
			return nil, nil, err
		}
		h := sha256.Sum256(append(b, cf.pipeKey...))
		key := hex.EncodeToString(h[:])
		cf.keys[it.Path] = key
		f, pos, _, ok := cf.disk.Get(key)
		if !ok {
			missing = append(missing, it)
			continue
		}
		cf.positions = pos
		if st.inMemory && int64(len(f))*4*int64(len(items)) <= cf.max {
			st.feats[it.Path] = f
		} else {
			st.inMemory = false
		}
	}
	for _, it := range missing {
		st.missing[it.Path] = true
	}
	return st, missing, nil
}

// put stores one computed item's features [positions][dim].
func (st *fillState) put(it datasets.Item, one []float32, pos int) error {
	cf := st.cf
	cf.positions = pos
	if cf.disk != nil {
		if err := cf.disk.Put(cf.keys[it.Path], one, pos, len(one)/pos); err != nil {
			return err
		}
	}
	if st.inMemory && int64(len(one))*4*int64(st.items) <= cf.max {
		st.feats[it.Path] = append([]float32(nil), one...)
	} else {
		st.inMemory = false
	}
	return nil
}

// useless reports whether computing more features serves this pipeline
// nothing: they are neither kept nor cached.
func (st *fillState) useless() bool { return !st.inMemory && st.cf.disk == nil }

// finish trims the disk cache and keeps the features in memory when they
// all fit.
func (st *fillState) finish() error {
	cf := st.cf
	if cf.disk != nil {
		if err := cf.disk.Trim(); err != nil {
			return err
		}
	}
	if st.inMemory {
		cf.feats = st.feats
	} else {
		slog.Info("class features exceed their share of run.feature_memory_mib: read per cell", "class", cf.class.Name,
			"padim", cf.p.isPaDiM(), "disk cache", cf.disk != nil)
	}
	return nil
}

// fillClass computes (or finds in the disk cache) every image's features
// of the class once for each of cfs (pipelines on one backbone: one
// forward pass per image serves them all).
func fillClass(cfs []*classFeatures) error {
	if len(cfs) == 0 {
		return nil
	}
	class := cfs[0].class
	items := append(append([]datasets.Item{}, class.Train...), class.Test...)
	states := make([]*fillState, len(cfs))
	pipes := make([]*pipeline, len(cfs))
	var union []datasets.Item
	seen := map[string]bool{}
	for i, cf := range cfs {
		st, missing, err := cf.begin(items)
		if err != nil {
			return err
		}
		states[i], pipes[i] = st, cf.p
		for _, it := range missing {
			if !seen[it.Path] {
				seen[it.Path] = true
				union = append(union, it)
			}
		}
	}
	if len(union) > 0 {
		slog.Info("class features", "class", class.Name, "computed", len(union), "of", len(items), "pipelines", len(cfs))
	}
	err := eachBatchOf(pipes, "features "+class.Name, union, cfs[0].batch, func(lo, hi int, f [][]float32, pos []int) error {
		stop := true
		for i, st := range states {
			per := len(f[i]) / (hi - lo)
			for j, it := range union[lo:hi] {
				if st.missing[it.Path] {
					if err := st.put(it, f[i][j*per:(j+1)*per], pos[i]); err != nil {
						return err
					}
				}
			}
			stop = stop && st.useless()
		}
		if stop {
			return errTooBig
		}
		return nil
	})
	if err != nil && err != errTooBig {
		return err
	}
	for _, st := range states {
		if err := st.finish(); err != nil {
			return err
		}
	}
	return nil
}

var errTooBig = errors.New("class features too big to keep")

// source is a featureSource serving the class's features from memory or
// from the disk cache, and computing them when those do not have them all
// (augmented images always).
func (cf *classFeatures) source(label string, items []datasets.Item, batch int, fn func(lo, hi int, feats []float32, positions int) error) error {
	if !cf.servesAll(items) {
		return cf.p.eachBatch(label, items, batch, fn)
	}
	var buf []float32
	for lo := 0; lo < len(items); lo += batch {
		hi := min(lo+batch, len(items))
		buf = buf[:0]
		for _, it := range items[lo:hi] {
			f, ok := cf.feats[it.Path]
			if !ok {
				if f, _, _, ok = cf.disk.Get(cf.keys[it.Path]); !ok {
					// Gone from the disk cache since fill (trimmed or
					// damaged by another run): compute this one again.
					var err error
					if f, err = cf.computeOne(it); err != nil {
						return err
					}
				}
			}
			buf = append(buf, f...)
		}
		if err := fn(lo, hi, buf, cf.positions); err != nil {
			return err
		}
	}
	return nil
}

// servesAll reports whether every item is served without computing: none
// is augmented, and all are in memory or, when the class is not kept in
// memory, known to the disk cache.
func (cf *classFeatures) servesAll(items []datasets.Item) bool {
	for _, it := range items {
		if it.Augment != nil {
			return false
		}
		if cf.feats != nil {
			if _, ok := cf.feats[it.Path]; !ok {
				return false
			}
		} else if _, ok := cf.keys[it.Path]; !ok || cf.disk == nil {
			return false
		}
	}
	return true
}

// computeOne computes one image's features and stores them in the disk
// cache.
func (cf *classFeatures) computeOne(it datasets.Item) ([]float32, error) {
	var out []float32
	err := cf.p.eachBatch("features "+filepath.Base(it.Path), []datasets.Item{it}, 1, func(_, _ int, f []float32, pos int) error {
		out = append([]float32(nil), f...)
		return cf.disk.Put(cf.keys[it.Path], out, pos, len(f)/pos)
	})
	return out, err
}
