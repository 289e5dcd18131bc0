package main

import (
	"flag"
	"fmt"
	"github.com/softpatch/softpatch/engine/knn"
	"strings"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/denoise"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/engine/embed"
	"github.com/softpatch/softpatch/experiments"
	"github.com/softpatch/softpatch/experiments/runner"
)

// featureFlags are the flags of every verb that computes features.
type featureFlags struct {
	runner.Options
	layers string
}

// register adds the feature flags to fs; padim adds PaDiM's channel draw,
// for the verbs that can fit PaDiM.
func (f *featureFlags) register(fs *flag.FlagSet, padim bool) {
	def := runner.DefaultOptions()
	fs.StringVar(&f.Weights, "weights", "", "torchvision checkpoint (.pth) or a folder holding one; default: $SOFTPATCH_WEIGHTS, then $TORCH_HOME/hub/checkpoints, then ~/.cache/torch/hub/checkpoints; none found: random-init backbone")
	fs.StringVar(&f.Arch, "arch", def.Arch, "backbone: "+strings.Join(backbone.ArchNames(), ", "))
	fs.IntVar(&f.Resize, "resize", def.Resize, "shorter side after resizing, before the centre crop (shorter mode only)")
	fs.IntVar(&f.ImageSize, "imagesize", def.ImageSize, "side of the square image fed to the network")
	fs.StringVar(&f.ResizeMode, "resize-mode", def.ResizeMode, "shorter (resize the shorter side to --resize, centre crop --imagesize) or square (resize straight to imagesize x imagesize, no crop)")
	fs.StringVar(&f.layers, "layers", strings.Join(def.Layers, ","), "comma-separated backbone layers to embed, first sets the patch grid")
	fs.StringVar(&f.Device, "device", def.Device, "auto (a GPU when the driver finds one, else the CPU), cpu or gpu (fail without one); see softpatch version")
	fs.IntVar(&f.Threads, "threads", 0, "compute threads (0: GOMAXPROCS, normally all cores)")
	fs.BoolVar(&f.CheckpointBN, "checkpoint-bn", false, "use the checkpoint's BatchNorm statistics as stored, instead of the published code's one train-mode pass of a ones image (see README)")
	f.PaDiMKeep, f.PaDiMSeed = embed.DefaultPaDiMKeep, embed.DefaultPaDiMSeed
	if !padim {
		return
	}
	fs.IntVar(&f.PaDiMKeep, "padim-channels", embed.DefaultPaDiMKeep, "PaDiM: channels kept of layer1..3's concatenation (a model takes 4*positions*(c+c*(c+1)/2) bytes: 1.9 GB for 550 at 224 px)")
	fs.Uint64Var(&f.PaDiMSeed, "padim-seed", embed.DefaultPaDiMSeed, "PaDiM: seed of the channel draw")
}

// open opens the backbone for methods, with PaDiM's channels when set.
func (f *featureFlags) open(channels []int, methods ...string) (*runner.Backbone, error) {
	o := f.Options
	o.Layers = nil
	for _, l := range strings.Split(f.layers, ",") {
		o.Layers = append(o.Layers, strings.TrimSpace(l))
	}
	return runner.Open(o, methods, channels)
}

// openPatch opens the backbone and the patch embedding of embedMethod.
func (f *featureFlags) openPatch() (*runner.Backbone, *runner.Pipeline, error) {
	b, err := f.open(nil, embedMethod)
	if err != nil {
		return nil, nil, err
	}
	p, err := b.Pipeline(embedMethod)
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	return b, p, nil
}

// cellFlags are the dataset, noise and detector flags of one cell, shared
// by eval and fit.
type cellFlags struct {
	features                    featureFlags
	root, class, format, method string
	splitFile                   string
	list, filter, draws         string
	ratio                       float64
	overlap, augment, skipBad   bool
	fold, batch                 int
	featureMemory               int64
	params                      detector.Params
	decision                    experiments.DecisionConfig
	sets                        setFlags
}

func (cf *cellFlags) register(fs *flag.FlagSet) {
	cf.features.register(fs, true)
	fs.StringVar(&cf.root, "data", "", "dataset root (required)")
	fs.StringVar(&cf.class, "class", "", "class (required)")
	fs.StringVar(&cf.format, "format", "", "layout: "+strings.Join(datasets.FormatNames()[1:], ", ")+" (default: detect; see docs/datasets.md)")
	fs.StringVar(&cf.splitFile, "split-file", "", splitFileHelp)
	fs.StringVar(&cf.method, "method", "softpatch-lof", "detector, or FILTER+METHOD (see --filter); one of\n"+methodList())
	fs.StringVar(&cf.filter, "filter", "", "image-level denoising: METHOD[:DROP] fits METHOD on the training set, drops the floor(DROP*N) training images it scores highest (DROP default 0.1), then fits --method on the rest; METHOD:>SCORE drops those scoring above SCORE")
	fs.Float64Var(&cf.ratio, "noise", 0, "noise ratio: floor(r * n_train) anomalous test images join training")
	fs.BoolVar(&cf.overlap, "overlap", false, "keep the injected images in the test set too")
	fs.IntVar(&cf.fold, "fold", 0, "fold: names an independent noise draw")
	fs.StringVar(&cf.list, "noise-list", "", "JSON list of the injected images (paths relative to ROOT), instead of drawing")
	fs.StringVar(&cf.draws, "draws", "", "replay the draws of a draws file (npz; every cell writes one: eval beside --json, fit beside --out)")
	fs.BoolVar(&cf.skipBad, "skip-bad", false, "leave out unusable files (listed by data inspect) instead of failing")
	fs.BoolVar(&cf.augment, "augment", false, "seeded random affine on each injected image (the published --noise_augmentation)")
	fs.Float64Var(&cf.params.Threshold, "threshold", detector.DefaultThreshold, "SoftPatch's tau: the fraction of training patches excluded from the coreset")
	fs.IntVar(&cf.params.LOFK, "lof-k", denoise.DefaultK, "LOF neighbours")
	fs.Float64Var(&cf.params.Coreset, "coreset", detector.DefaultCoreset, "memory-bank fraction of the training patches")
	fs.BoolVar(&cf.params.NoSoftWeight, "no-soft-weight", false, "SoftPatch without soft weights (the filtered coreset is still used)")
	fs.Uint64Var(&cf.params.Seed, "seed", 0, "seed of the detector's random draws")
	fs.TextVar(&cf.params.Search, "knn", knn.Auto, "memory banks' nearest-neighbour search on the CPU: auto (pruned where it pays), exact (always the pruned exact search) or brute; all give the same scores")
	fs.Var(&cf.sets, "set", "a method's own setting, METHOD.KEY=YAML value (repeatable), as in a config: e.g. cflow.meta_epochs=2")
	def := experiments.DefaultDecision
	fs.StringVar(&cf.decision.Source, "decision", def.Source, "decision threshold from normal images only: holdout (training images held out of fits of the method), validation (the class's validation split, MVTec AD 2), auto (validation when there is one, else holdout) or none")
	fs.Float64Var(&cf.decision.FPR, "decision-fpr", def.FPR, "decision threshold: false-positive rate on normal images")
	fs.Float64Var(&cf.decision.Holdout, "decision-holdout", def.Holdout, "decision threshold: share of the training images each holdout fit leaves out")
	fs.IntVar(&cf.decision.Rounds, "decision-rounds", def.Rounds, "decision threshold: holdout fits, each leaving out another part (at most 1/holdout; 0: all parts, every training image scored once; fit's default)")
	fs.IntVar(&cf.batch, "batch", 8, "images per forward pass")
	fs.Int64Var(&cf.featureMemory, "feature-memory", 2048, "MiB of full training features kept in memory: when a class's take more, all go to a temporary file in $TMPDIR (put it on disk, not tmpfs)")
}

// methodList lists the registered methods with their summaries, a line
// each, for help texts.
func methodList() string {
	var b strings.Builder
	for _, m := range detector.Methods() {
		fmt.Fprintf(&b, "  %-20s %s\n", m.Name, m.Summary)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// load checks the flags, loads the class, draws the noisy split and opens
// the backbone for the cell's methods; verb prefixes the errors.
func (cf *cellFlags) load(verb string) (*runner.Cell, *runner.Backbone, error) {
	filter, method, err := detector.Split(cf.method)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: --method: %w", verb, err)
	}
	var f *runner.Filter
	if filter != "" {
		f = &runner.Filter{Method: filter, Drop: experiments.DefaultDrop}
	}
	if cf.filter != "" {
		if filter != "" {
			return nil, nil, fmt.Errorf("%s: --method %s already names a filter; give --filter with a plain method", verb, cf.method)
		}
		if f, err = runner.ParseFilter(cf.filter); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", verb, err)
		}
	}
	if cf.root == "" || cf.class == "" {
		return nil, nil, fmt.Errorf("%s: --data and --class are required", verb)
	}
	if ps := cf.params.Check(); len(ps) > 0 {
		return nil, nil, fmt.Errorf("%s: --%s %s", verb, strings.ReplaceAll(ps[0].Key, "_", "-"), ps[0].Problem)
	}
	if err := cf.decision.Check(); err != nil {
		return nil, nil, fmt.Errorf("%s: --%s", verb, strings.Replace(strings.Replace(err.Error(), "decision.source", "decision", 1), "decision.", "decision-", 1))
	}
	if cf.featureMemory < 1 {
		return nil, nil, fmt.Errorf("%s: --feature-memory must be at least 1 MiB, got %d", verb, cf.featureMemory)
	}
	if cf.batch < 1 {
		return nil, nil, fmt.Errorf("%s: --batch must be at least 1, got %d", verb, cf.batch)
	}
	if cf.params.Options, err = experiments.MethodOptions(cf.sets); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", verb, err)
	}
	cf.features.MethodOptions = cf.params.Options
	format, err := datasets.ParseFormat(cf.format)
	if err != nil {
		return nil, nil, err
	}
	noise := datasets.Noise{Ratio: cf.ratio, Overlap: cf.overlap, Fold: cf.fold, Augment: cf.augment}
	class, err := runner.LoadClass(cf.root, cf.class, datasets.Layout{Format: format, SplitFile: cf.splitFile}, cf.skipBad)
	if err != nil {
		return nil, nil, err
	}
	if cf.list != "" {
		if noise.Files, err = datasets.ReadNoiseList(cf.list); err != nil {
			return nil, nil, err
		}
	}
	replay, info := &experiments.Draws{}, (*experiments.DrawsInfo)(nil)
	if cf.draws != "" {
		if replay, info, err = runner.LoadDraws(cf.draws, &noise); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", verb, err)
		}
	}
	c, err := runner.NewCell(class, noise, method, cf.params, f)
	if err != nil {
		return nil, nil, err
	}
	c.Replay, c.ReplayInfo, c.Decision = replay, info, cf.decision
	b, err := cf.features.open(replay.PaDiMChannels, c.Methods()...)
	return c, b, err
}

// options are the cell's run options from the flags; the cell's draws go
// beside out.
func (cf *cellFlags) options(out string) runner.CellOptions {
	return runner.CellOptions{Batch: cf.batch, FeatureMemoryMiB: cf.featureMemory, DrawsPath: runner.DrawsPath(out)}
}

// flagGiven reports whether the command line set the flag name.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}
