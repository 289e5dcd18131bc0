package main

import (
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"runtime"
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
	"padim":              {Method: detector.MethodPaDiM},
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

// evalOverlay is an anomaly-map overlay written for a cell.
type evalOverlay struct {
	Which string  `json:"which"` // highest or lowest scored test image
	File  string  `json:"file"`  // the overlay PNG, relative to the results folder
	Image string  `json:"image"` // the test image, relative to the dataset root
	Score float32 `json:"score"`
}

// evalResult is the JSON of one cell.
type evalResult struct {
	Commit     string             `json:"commit"`
	Date       string             `json:"date"`   // when the cell finished, UTC RFC 3339
	Device     string             `json:"device"` // BLAS, kernels and threads; the GPU when one was used
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
	Filter     *filterResult      `json:"filter,omitempty"`
	ImageAUROC float64            `json:"image_auroc"`
	PixelAUROC float64            `json:"pixel_auroc"`
	AUPRO      float64            `json:"aupro"`
	ImageF1Max float64            `json:"image_f1max"`
	PixelF1Max float64            `json:"pixel_f1max"`
	PerImage   []evalImage        `json:"per_image"`
	Overlays   []evalOverlay      `json:"overlays,omitempty"`
	Seconds    map[string]float64 `json:"seconds"`
}

func runEval(args []string) error {
	fs := newFlags("eval", "eval --data ROOT --class C --method M [--noise R --overlap --fold F] [flags] --json OUT",
		"softpatch eval --data data/synth --class wood --method softpatch-lof --noise 0.1 --overlap --json wood.json")
	var cf cellFlags
	cf.register(fs)
	out := fs.String("json", "", "write the cell's JSON here (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return fmt.Errorf("eval: --json OUT is required and it takes no arguments")
	}
	cl, err := cf.load("eval")
	if err != nil {
		return err
	}
	p, err := cf.features.open()
	if err != nil {
		return err
	}
	res, err := runCell(p, cl, methodLabel(cl), cf.batch, cf.featureMemory, (*pipeline).eachBatch, "", nil)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(*out, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", " ")
		return enc.Encode(res)
	}); err != nil {
		return err
	}
	fmt.Printf("%s %s noise %g overlap %t: image AUROC %.4f, pixel AUROC %.4f, AUPRO %.4f (%d training images) -> %s\n",
		res.Class, res.Method, res.Noise.Ratio, res.Noise.Overlap, res.ImageAUROC, res.PixelAUROC, res.AUPRO, res.Train, *out)
	if f := res.Filter; f != nil {
		fmt.Printf("filter %s dropped %d training images, %d of the %d injected: precision %.3f, recall %.3f\n",
			f.Method, len(f.Dropped), f.DroppedNoise, f.Injected, f.Precision, f.Recall)
	}
	return nil
}

// featureSource yields the features that pipeline p computes for items,
// batch images at a time (see pipeline.eachBatch, which computes them).
type featureSource func(p *pipeline, label string, items []datasets.Item, batch int, fn func(lo, hi int, feats []float32, positions int) error) error

// runCell fits the cell's detector on its training items (behind its
// image-level filter, if any) and evaluates it on its test items, with
// features from src, keeping at most memMiB MiB of training features in
// memory; method names the cell's method in the result. With overlayDir
// set, the anomaly maps of the highest- and the lowest-scored test image
// are written there as overlays, and a memory bank's 2-D view as
// bank2d.json. memo, when not nil, shares filter runs between cells.
func runCell(p *pipeline, cl *cell, method string, batch int, memMiB int64, src featureSource, overlayDir string, memo filterMemo) (*evalResult, error) {
	c, n, train, test := cl.class, cl.noise, cl.train, cl.test
	res := evalResult{Commit: commit(), Data: c.Root, Class: c.Name, Method: method, Noise: n, Backbone: p.id,
		Test: len(test), NoiseDrawn: cl.noiseFiles(), Seconds: map[string]float64{}}
	if p.id.RandomInit {
		res.Mark = randomInitMark
	}
	st := stages(res.Seconds)
	if cl.filter != nil {
		var err error
		if train, res.Filter, err = cl.applyFilter(p, batch, memMiB, src, st, memo); err != nil {
			return nil, err
		}
		if len(train) == 0 {
			return nil, fmt.Errorf("the %s filter dropped all %d training images", cl.filter.method, len(cl.train))
		}
		// The filter's model and features (1.9 GB and more for PaDiM at
		// 224 px) are garbage now: collect them before the detector's
		// allocate, so that the two never add up.
		runtime.GC()
	}
	res.Train = len(train)
	t, err := fitOn(p, cl.method, cl.cfg, train, batch, memMiB, src, st, "")
	if err != nil {
		return nil, err
	}
	defer t.close()
	if m := t.bank; m != nil {
		res.BankSize, res.Excluded = m.N, m.Excluded
		if overlayDir != "" {
			if err := writeBank2D(filepath.Join(overlayDir, "bank2d.json"), m, t.positions, train, cl.drawn); err != nil {
				return nil, err
			}
		}
	}

	// Test features are scored batch by batch, so that only the patch
	// scores of the whole test set are held.
	t0 := time.Now()
	patch, scoring, err := t.score("features and scoring test", test, batch, src)
	if err != nil {
		return nil, err
	}
	st.add("features", time.Since(t0).Seconds()-scoring)
	st.add("scoring", scoring)

	t0 = time.Now()
	anomalyMaps, err := t.maps(patch, len(test))
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	imageScores := t.imageScores(patch, len(test), anomalyMaps)
	masks := make([][]uint8, len(test))
	labels := make([]bool, len(test))
	for i, it := range test {
		labels[i] = it.Anomalous
		label := 0
		if it.Anomalous {
			label = 1
			if masks[i], err = p.pre.LoadMask(it.MaskPath); err != nil {
				return nil, err
			}
		}
		res.PerImage = append(res.PerImage, evalImage{File: datasets.RelPath(c.Root, it), Label: label, Type: it.Type, Score: imageScores[i]})
	}
	if overlayDir != "" {
		if res.Overlays, err = writeExtremes(p, c.Root, test, imageScores, anomalyMaps, overlayDir); err != nil {
			return nil, err
		}
	}
	st.done("maps", t0)

	t0 = time.Now()
	size := p.pre.ImageSize
	if res.ImageAUROC, err = experiments.AUROC(imageScores, labels); err != nil {
		return nil, fmt.Errorf("eval: image AUROC: %w", err)
	}
	if res.ImageF1Max, _, err = experiments.F1Max(imageScores, labels); err != nil {
		return nil, fmt.Errorf("eval: image F1-max: %w", err)
	}
	pm, err := experiments.EvaluatePixels(anomalyMaps, masks, size, size, experiments.DefaultFPRLimit)
	if err != nil {
		return nil, fmt.Errorf("eval: pixel metrics: %w", err)
	}
	res.PixelAUROC, res.PixelF1Max, res.AUPRO = pm.AUROC, pm.F1Max, pm.AUPRO
	st.done("metrics", t0)

	res.Date = time.Now().UTC().Format(time.RFC3339)
	res.Device = p.deviceName()
	return &res, nil
}

// eachBatch embeds dataset items (augmented noise images included) batch
// images at a time and calls fn with each batch's features
// [hi-lo][positions][dim], items[lo:hi]; feats is reused after fn returns.
func (p *pipeline) eachBatch(label string, items []datasets.Item, batch int, fn func(lo, hi int, feats []float32, positions int) error) error {
	return eachBatchOf([]*pipeline{p}, label, items, batch, func(lo, hi int, feats [][]float32, positions []int) error {
		return fn(lo, hi, feats[0], positions[0])
	})
}

// eachBatchOf is eachBatch for several pipelines on one backbone: one
// forward pass per batch gives each pipeline's features (featuresOf).
func eachBatchOf(pipes []*pipeline, label string, items []datasets.Item, batch int, fn func(lo, hi int, feats [][]float32, positions []int) error) error {
	p := pipes[0]
	s := p.pre.ImageSize
	per := 3 * s * s
	x := make([]float32, batch*per)
	bar := progress.New(label, len(items), "images")
	defer bar.Finish()
	for lo := 0; lo < len(items); lo += batch {
		hi := min(lo+batch, len(items))
		for i, it := range items[lo:hi] {
			img, err := p.pre.LoadItem(it)
			if err != nil {
				return err
			}
			copy(x[i*per:(i+1)*per], img)
		}
		feats, pos, err := featuresOf(pipes, x[:(hi-lo)*per], hi-lo)
		if err != nil {
			return err
		}
		if err := fn(lo, hi, feats, pos); err != nil {
			return err
		}
		bar.Add(hi - lo)
	}
	return nil
}

// writeExtremes writes overlays of the highest- and lowest-scored test
// images' anomaly maps (normalised over all the cell's maps) into dir as
// highest.png and lowest.png; File is relative to dir's parent's parent
// (the results folder, for dir = results/overlays/<cell>).
func writeExtremes(p *pipeline, root string, test []datasets.Item, scores []float32, maps [][]float32, dir string) ([]evalOverlay, error) {
	if len(test) == 0 {
		return nil, nil
	}
	lo, hi := mapRange(maps)
	top, bottom := 0, 0
	for i, s := range scores {
		if s > scores[top] {
			top = i
		}
		if s < scores[bottom] {
			bottom = i
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []evalOverlay
	for _, e := range []struct {
		which string
		i     int
	}{{"highest", top}, {"lowest", bottom}} {
		it := test[e.i]
		img, err := datasets.DecodeRGBFile(it.Path)
		if err != nil {
			return nil, err
		}
		ov := overlay(p.pre.Image(img), maps[e.i], lo, hi)
		file := e.which + ".png"
		if err := atomicfile.WriteFile(filepath.Join(dir, file), func(w io.Writer) error { return png.Encode(w, ov) }); err != nil {
			return nil, err
		}
		out = append(out, evalOverlay{Which: e.which, File: filepath.Join(filepath.Base(filepath.Dir(dir)), filepath.Base(dir), file),
			Image: datasets.RelPath(root, it), Score: scores[e.i]})
	}
	return out, nil
}

// bank2D is a memory bank in two dimensions, for the memory-bank figure:
// each entry's coordinates on the bank's two principal directions and
// whether it comes from an injected (noisy) training image.
type bank2D struct {
	X     []float32 `json:"x"`
	Y     []float32 `json:"y"`
	Noisy []bool    `json:"noisy"`
}

// writeBank2D writes the bank of m (fitted on train, positions patches an
// image) projected to 2-D, with the entries from drawn images marked.
func writeBank2D(path string, m *detector.Model, positions int, train, drawn []datasets.Item) error {
	injected := map[string]bool{}
	for _, it := range drawn {
		injected[it.Path] = true
	}
	var b bank2D
	b.X, b.Y = experiments.PCA2(m.Bank, m.N, m.D)
	for _, i := range m.Indices {
		b.Noisy = append(b.Noisy, injected[train[i/positions].Path])
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, func(w io.Writer) error { return json.NewEncoder(w).Encode(b) })
}
