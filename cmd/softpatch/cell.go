package main

import (
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/denoise"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/experiments"
)

// cellFlags are the dataset, noise and detector flags of one cell, shared
// by eval and fit.
type cellFlags struct {
	features                    featureFlags
	root, class, format, method string
	list, filter                string
	ratio, threshold, coreset   float64
	overlap, augment, noSoft    bool
	fold, lofK, batch           int
	featureMemory               int64
	seed                        uint64
}

func (cf *cellFlags) register(fs *flag.FlagSet) {
	cf.features.register(fs)
	fs.StringVar(&cf.root, "data", "", "dataset root (required)")
	fs.StringVar(&cf.class, "class", "", "class (required)")
	fs.StringVar(&cf.format, "format", "", "layout: mvtec, btad or folder (default: detect)")
	fs.StringVar(&cf.method, "method", "softpatch-lof", strings.Join(experiments.MethodNames, ", ")+", or FILTER+METHOD (see --filter)")
	fs.StringVar(&cf.filter, "filter", "", "image-level denoising: METHOD[:DROP] fits METHOD on the training set, drops the floor(DROP*N) training images it scores highest (DROP default 0.1), then fits --method on the rest; METHOD:>SCORE drops those scoring above SCORE")
	fs.Float64Var(&cf.ratio, "noise", 0, "noise ratio: floor(r * n_train) anomalous test images join training")
	fs.BoolVar(&cf.overlap, "overlap", false, "keep the injected images in the test set too")
	fs.IntVar(&cf.fold, "fold", 0, "fold: names an independent noise draw")
	fs.StringVar(&cf.list, "noise-list", "", "JSON list of the injected images (paths relative to ROOT), instead of drawing")
	fs.BoolVar(&cf.augment, "augment", false, "seeded random affine on each injected image (the published --noise_augmentation)")
	fs.Float64Var(&cf.threshold, "threshold", detector.DefaultThreshold, "SoftPatch's tau: the fraction of training patches excluded from the coreset")
	fs.IntVar(&cf.lofK, "lof-k", denoise.DefaultK, "LOF neighbours")
	fs.Float64Var(&cf.coreset, "coreset", detector.DefaultCoreset, "memory-bank fraction of the training patches")
	fs.BoolVar(&cf.noSoft, "no-soft-weight", false, "SoftPatch without soft weights (the filtered coreset is still used)")
	fs.Uint64Var(&cf.seed, "seed", 0, "seed of the detector's random draws")
	fs.IntVar(&cf.batch, "batch", 8, "images per forward pass")
	fs.Int64Var(&cf.featureMemory, "feature-memory", 2048, "MiB of full training features kept in memory: when a class's take more, all go to a temporary file in $TMPDIR (put it on disk, not tmpfs)")
}

// cell is one class's noisy split and the detector to fit on it.
type cell struct {
	class              *datasets.Class
	noise              datasets.Noise
	train, test, drawn []datasets.Item
	// method is the cell's detector (a key of evalMethods) and cfg its
	// configuration (memory-bank methods); filter, when set, drops
	// training images first.
	method string
	cfg    detector.Config
	filter *imageFilter
}

// imageFilter is image-level denoising (SOFTPATCH.md section 6): the
// rule's method, fitted on the noisy training set with configuration cfg,
// scores the training images themselves and drops the floor(drop*N)
// highest-scored, or with threshold set those scoring above it.
type imageFilter struct {
	filterRule
	cfg detector.Config
}

// parseFilter parses --filter: METHOD, METHOD:DROP or METHOD:>SCORE.
func parseFilter(s string) (filterRule, error) {
	method, arg, _ := strings.Cut(s, ":")
	if _, ok := evalMethods[method]; !ok {
		return filterRule{}, fmt.Errorf("--filter %q: unknown method %q (known: %s)", s, method, strings.Join(experiments.MethodNames, ", "))
	}
	fr := filterRule{method: method, drop: experiments.DefaultDrop}
	switch {
	case arg == "":
	case strings.HasPrefix(arg, ">"):
		t, err := strconv.ParseFloat(arg[1:], 64)
		if err != nil || math.IsNaN(t) {
			return filterRule{}, fmt.Errorf("--filter %q: %q is not a score", s, arg[1:])
		}
		fr.threshold = &t
	default:
		d, err := strconv.ParseFloat(arg, 64)
		if err != nil || !(d >= 0 && d < 1) {
			return filterRule{}, fmt.Errorf("--filter %q: the fraction dropped %q is not in [0, 1)", s, arg)
		}
		fr.drop = d
	}
	return fr, nil
}

// load checks the flags, loads the class and draws the noisy split; verb
// prefixes the errors.
func (cf *cellFlags) load(verb string) (*cell, error) {
	filter, method, err := experiments.SplitMethod(cf.method)
	if err != nil {
		return nil, fmt.Errorf("%s: --method: %w", verb, err)
	}
	fr := filterRule{method: filter, drop: experiments.DefaultDrop}
	if cf.filter != "" {
		if filter != "" {
			return nil, fmt.Errorf("%s: --method %s already names a filter; give --filter with a plain method", verb, cf.method)
		}
		if fr, err = parseFilter(cf.filter); err != nil {
			return nil, fmt.Errorf("%s: %w", verb, err)
		}
	}
	if cf.root == "" || cf.class == "" {
		return nil, fmt.Errorf("%s: --data and --class are required", verb)
	}
	if cf.featureMemory < 1 {
		return nil, fmt.Errorf("%s: --feature-memory must be at least 1 MiB, got %d", verb, cf.featureMemory)
	}
	if cf.batch < 1 {
		return nil, fmt.Errorf("%s: --batch must be at least 1, got %d", verb, cf.batch)
	}
	f, err := datasets.ParseFormat(cf.format)
	if err != nil {
		return nil, err
	}
	noise := datasets.Noise{Ratio: cf.ratio, Overlap: cf.overlap, Fold: cf.fold, Augment: cf.augment}
	class, err := datasets.Load(cf.root, cf.class, datasets.Layout{Format: f}, datasets.LoadOptions{})
	if err != nil {
		return nil, err
	}
	if cf.list != "" {
		if noise.Files, err = datasets.ReadNoiseList(cf.list); err != nil {
			return nil, err
		}
	}
	return newCell(class, noise, method, detectorParams{cf.coreset, cf.threshold, cf.lofK, cf.seed, cf.noSoft, fr})
}

// detectorParams are the detector settings a cell takes from the flags or
// the sweep config.
type detectorParams struct {
	coreset, threshold float64
	lofK               int
	seed               uint64
	noSoft             bool
	filter             filterRule
}

// filterRule is the image-level filter of a cell: method ("" for none)
// and how many images it drops.
type filterRule struct {
	method    string
	drop      float64
	threshold *float64
}

// newCell draws the noisy split of class and sets up the detector method
// (a key of evalMethods) with params applied, behind params.filter when it
// names a method.
func newCell(class *datasets.Class, noise datasets.Noise, method string, params detectorParams) (*cell, error) {
	c := &cell{class: class, noise: noise, method: method}
	var err error
	if c.train, c.test, c.drawn, err = class.Noisy(string(class.Format), noise); err != nil {
		return nil, err
	}
	if c.cfg, err = params.config(method); err != nil {
		return nil, err
	}
	if fr := params.filter; fr.method != "" {
		c.filter = &imageFilter{filterRule: fr}
		if c.filter.cfg, err = params.config(fr.method); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// config is method's detector configuration with the params applied.
func (params detectorParams) config(method string) (detector.Config, error) {
	cfg, ok := evalMethods[method]
	if !ok {
		return cfg, fmt.Errorf("unknown method %q (known: %s)", method, strings.Join(experiments.MethodNames, ", "))
	}
	cfg.Coreset, cfg.Threshold, cfg.LOFK, cfg.Seed = params.coreset, params.threshold, params.lofK, params.seed
	if params.noSoft {
		cfg.SoftWeight = false
	}
	return cfg, nil
}

// noiseFiles lists the injected images relative to the dataset root.
func (c *cell) noiseFiles() []string {
	var fs []string
	for _, it := range c.drawn {
		fs = append(fs, datasets.RelPath(c.class.Root, it))
	}
	return fs
}
