package main

import (
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/denoise"
	"github.com/softpatch/softpatch/engine/detector"
)

// cellFlags are the dataset, noise and detector flags of one cell, shared
// by eval and fit.
type cellFlags struct {
	features                    featureFlags
	root, class, format, method string
	list                        string
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
	fs.StringVar(&cf.method, "method", "softpatch-lof", strings.Join(slices.Sorted(maps.Keys(evalMethods)), ", "))
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
	cfg                detector.Config
}

// load checks the flags, loads the class and draws the noisy split; verb
// prefixes the errors.
func (cf *cellFlags) load(verb string) (*cell, error) {
	base, ok := evalMethods[cf.method]
	if !ok {
		return nil, fmt.Errorf("%s: unknown --method %q (known: %s)", verb, cf.method, strings.Join(slices.Sorted(maps.Keys(evalMethods)), ", "))
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
	return newCell(class, noise, base, detectorParams{cf.coreset, cf.threshold, cf.lofK, cf.seed, cf.noSoft})
}

// detectorParams are the detector settings a cell takes from the flags or
// the sweep config.
type detectorParams struct {
	coreset, threshold float64
	lofK               int
	seed               uint64
	noSoft             bool
}

// newCell draws the noisy split of class and sets up the detector: the
// method's configuration base with params applied.
func newCell(class *datasets.Class, noise datasets.Noise, base detector.Config, params detectorParams) (*cell, error) {
	c := &cell{class: class, noise: noise}
	var err error
	if c.train, c.test, c.drawn, err = class.Noisy(string(class.Format), noise); err != nil {
		return nil, err
	}
	c.cfg = base
	c.cfg.Coreset, c.cfg.Threshold, c.cfg.LOFK, c.cfg.Seed = params.coreset, params.threshold, params.lofK, params.seed
	if params.noSoft {
		c.cfg.SoftWeight = false
	}
	return c, nil
}

// noiseFiles lists the injected images relative to the dataset root.
func (c *cell) noiseFiles() []string {
	var fs []string
	for _, it := range c.drawn {
		fs = append(fs, datasets.RelPath(c.class.Root, it))
	}
	return fs
}
