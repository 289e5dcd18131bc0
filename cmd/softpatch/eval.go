package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/denoise"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/experiments"
	"github.com/softpatch/softpatch/internal/atomicfile"
	"github.com/softpatch/softpatch/internal/progress"
)

// evalMethods maps the CLI's method names to detector configurations.
var evalMethods = map[string]detector.Config{
	"patchcore":          {Method: detector.MethodPatchCore},
	"patchcore-random":   {Method: detector.MethodPatchCoreRandom},
	"softpatch-nearest":  {Method: detector.MethodSoftPatch, Discriminator: denoise.Nearest, SoftWeight: true},
	"softpatch-gaussian": {Method: detector.MethodSoftPatch, Discriminator: denoise.Gaussian, SoftWeight: true},
	"softpatch-lof":      {Method: detector.MethodSoftPatch, Discriminator: denoise.LOF, SoftWeight: true},
}

// evalImage is one test image's result.
type evalImage struct {
	File  string  `json:"file"`
	Label int     `json:"label"`
	Type  string  `json:"type"`
	Score float32 `json:"score"`
}

// evalResult is the JSON of one cell.
type evalResult struct {
	Commit     string             `json:"commit"`
	Data       string             `json:"data"`
	Class      string             `json:"class"`
	Method     string             `json:"method"`
	Noise      datasets.Noise     `json:"noise"`
	NoiseDrawn []string           `json:"noise_files"`
	Backbone   backbone.Identity  `json:"backbone"`
	Mark       string             `json:"mark,omitempty"`
	Train      int                `json:"train_images"`
	Test       int                `json:"test_images"`
	BankSize   int                `json:"bank_size"`
	Excluded   int                `json:"excluded_patches,omitempty"`
	ImageAUROC float64            `json:"image_auroc"`
	PixelAUROC float64            `json:"pixel_auroc"`
	AUPRO      float64            `json:"aupro"`
	ImageF1Max float64            `json:"image_f1max"`
	PixelF1Max float64            `json:"pixel_f1max"`
	PerImage   []evalImage        `json:"per_image"`
	Seconds    map[string]float64 `json:"seconds"`
}

func runEval(args []string) error {
	names := slices.Sorted(maps.Keys(evalMethods))
	fs := newFlags("eval", "eval --data ROOT --class C --method M [--noise R --overlap --fold F] [flags] --json OUT",
		"softpatch eval --data data/synth --class wood --method softpatch-lof --noise 0.1 --overlap --json wood.json")
	var ff featureFlags
	ff.register(fs)
	root := fs.String("data", "", "dataset root (required)")
	class := fs.String("class", "", "class (required)")
	format := fs.String("format", "", "layout: mvtec, btad or folder (default: detect)")
	method := fs.String("method", "softpatch-lof", "patchcore, patchcore-random, softpatch-nearest, softpatch-gaussian or softpatch-lof")
	ratio := fs.Float64("noise", 0, "noise ratio: floor(r * n_train) anomalous test images join training")
	overlap := fs.Bool("overlap", false, "keep the injected images in the test set too")
	fold := fs.Int("fold", 0, "fold: names an independent noise draw")
	list := fs.String("noise-list", "", "JSON list of the injected images (paths relative to ROOT), instead of drawing")
	augment := fs.Bool("augment", false, "seeded random affine on each injected image (the published --noise_augmentation)")
	threshold := fs.Float64("threshold", detector.DefaultThreshold, "SoftPatch's tau: the fraction of training patches excluded from the coreset")
	lofK := fs.Int("lof-k", denoise.DefaultK, "LOF neighbours")
	coresetRatio := fs.Float64("coreset", detector.DefaultCoreset, "memory-bank fraction of the training patches")
	noSoft := fs.Bool("no-soft-weight", false, "SoftPatch without soft weights (the filtered coreset is still used)")
	seed := fs.Uint64("seed", 0, "seed of the detector's random draws")
	batch := fs.Int("batch", 8, "images per forward pass")
	out := fs.String("json", "", "write the cell's JSON here (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	base, ok := evalMethods[*method]
	if !ok {
		return fmt.Errorf("eval: unknown --method %q (known: %s)", *method, strings.Join(names, ", "))
	}
	if *root == "" || *class == "" || *out == "" || fs.NArg() > 0 {
		return fmt.Errorf("eval: --data, --class and --json are required and it takes no arguments")
	}
	f, err := datasets.ParseFormat(*format)
	if err != nil {
		return err
	}
	c, err := datasets.Load(*root, *class, datasets.Layout{Format: f}, datasets.LoadOptions{})
	if err != nil {
		return err
	}
	n := datasets.Noise{Ratio: *ratio, Overlap: *overlap, Fold: *fold, Augment: *augment}
	if *list != "" {
		if n.Files, err = datasets.ReadNoiseList(*list); err != nil {
			return err
		}
	}
	train, test, drawn, err := c.Noisy(string(c.Format), n)
	if err != nil {
		return err
	}
	p, err := ff.open()
	if err != nil {
		return err
	}
	cfg := base
	cfg.Coreset, cfg.Threshold, cfg.LOFK, cfg.Seed = *coresetRatio, *threshold, *lofK, *seed
	if *noSoft {
		cfg.SoftWeight = false
	}
	res := evalResult{Commit: commit(), Data: c.Root, Class: c.Name, Method: *method, Noise: n, Backbone: p.id,
		Train: len(train), Test: len(test), Seconds: map[string]float64{}}
	for _, it := range drawn {
		res.NoiseDrawn = append(res.NoiseDrawn, datasets.RelPath(c.Root, it))
	}
	if p.id.RandomInit {
		res.Mark = randomInitMark
	}
	stage := func(name string, t0 time.Time) {
		res.Seconds[name] = time.Since(t0).Seconds()
		slog.Info("stage done", "stage", name, "seconds", fmt.Sprintf("%.2f", res.Seconds[name]))
	}

	t0 := time.Now()
	trainFeats, positions, dim, err := p.embedItems("features train", train, *batch)
	if err != nil {
		return err
	}
	testFeats, _, _, err := p.embedItems("features test", test, *batch)
	if err != nil {
		return err
	}
	stage("features", t0)

	t0 = time.Now()
	model, err := detector.Fit(cfg, trainFeats, len(train), positions, dim)
	if err != nil {
		return err
	}
	trainFeats = nil
	res.BankSize, res.Excluded = model.N, model.Excluded
	stage("fit", t0) // discriminator and coreset

	t0 = time.Now()
	patch := make([]float32, len(test)*positions)
	if err := model.Score(patch, testFeats, len(test), positions); err != nil {
		return err
	}
	imageScores := detector.ImageScores(patch, len(test), positions)
	stage("scoring", t0)

	t0 = time.Now()
	size := p.pre.ImageSize
	first, _ := backbone.LayerIndex(p.layers[0])
	stride := 4 << first // layer1: 4, layer2: 8, layer3: 16
	gh, gw := p.embed.Grid((size+stride-1)/stride, (size+stride-1)/stride)
	if gh*gw != positions {
		return fmt.Errorf("eval: %d patch positions do not form the %dx%d grid of %s at %d px", positions, gh, gw, p.layers[0], size)
	}
	anomalyMaps := make([][]float32, len(test))
	masks := make([][]uint8, len(test))
	labels := make([]bool, len(test))
	for i, it := range test {
		anomalyMaps[i] = make([]float32, size*size)
		detector.Map(anomalyMaps[i], patch[i*positions:(i+1)*positions], gh, gw, size)
		labels[i] = it.Anomalous
		if it.Anomalous {
			if masks[i], err = p.pre.LoadMask(it.MaskPath); err != nil {
				return err
			}
		}
		label := 0
		if it.Anomalous {
			label = 1
		}
		res.PerImage = append(res.PerImage, evalImage{File: datasets.RelPath(c.Root, it), Label: label, Type: it.Type, Score: imageScores[i]})
	}
	stage("maps", t0)

	t0 = time.Now()
	if res.ImageAUROC, err = experiments.AUROC(imageScores, labels); err != nil {
		return fmt.Errorf("eval: image AUROC: %w", err)
	}
	if res.ImageF1Max, _, err = experiments.F1Max(imageScores, labels); err != nil {
		return fmt.Errorf("eval: image F1-max: %w", err)
	}
	pm, err := experiments.EvaluatePixels(anomalyMaps, masks, size, size, experiments.DefaultFPRLimit)
	if err != nil {
		return fmt.Errorf("eval: pixel metrics: %w", err)
	}
	res.PixelAUROC, res.PixelF1Max, res.AUPRO = pm.AUROC, pm.F1Max, pm.AUPRO
	stage("metrics", t0)

	if err := atomicfile.WriteFile(*out, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", " ")
		return enc.Encode(res)
	}); err != nil {
		return err
	}
	fmt.Printf("%s %s noise %g overlap %t: image AUROC %.4f, pixel AUROC %.4f, AUPRO %.4f (bank %d) -> %s\n",
		c.Name, *method, n.Ratio, n.Overlap, res.ImageAUROC, res.PixelAUROC, res.AUPRO, res.BankSize, *out)
	return nil
}

// embedItems embeds dataset items (augmented noise images included) and
// returns [len(items)][positions][dim].
func (p *pipeline) embedItems(label string, items []datasets.Item, batch int) ([]float32, int, int, error) {
	s := p.pre.ImageSize
	per := 3 * s * s
	x := make([]float32, batch*per)
	var all []float32
	var positions, dim int
	bar := progress.New(label, len(items), "images")
	defer bar.Finish()
	for lo := 0; lo < len(items); lo += batch {
		hi := min(lo+batch, len(items))
		for i, it := range items[lo:hi] {
			img, err := p.pre.LoadItem(it)
			if err != nil {
				return nil, 0, 0, err
			}
			copy(x[i*per:(i+1)*per], img)
		}
		feats, pos, err := p.features(x[:(hi-lo)*per], hi-lo)
		if err != nil {
			return nil, 0, 0, err
		}
		if all == nil {
			positions, dim = pos, len(feats)/((hi-lo)*pos)
			all = make([]float32, 0, len(items)*positions*dim)
		}
		all = append(all, feats...)
		bar.Add(hi - lo)
	}
	return all, positions, dim, nil
}
