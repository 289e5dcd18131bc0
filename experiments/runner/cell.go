package runner

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/experiments"
	"github.com/softpatch/softpatch/internal/buildinfo"
)

// Cell is one class's noisy split and the detector to fit on it: one
// cell of a sweep, or what the eval and fit commands run.
type Cell struct {
	Class *datasets.Class
	Noise datasets.Noise
	// Train and Test are the split, Drawn the test images injected into
	// Train.
	Train, Test, Drawn []datasets.Item
	// Method is the detector and Params its settings; Filter, when set,
	// drops training images first.
	Method string
	Params detector.Params
	Filter *Filter
	// Decision is how the cell sets its decision threshold (Source ""
	// or "none": it sets none).
	Decision experiments.DecisionConfig
	// Settings are the cell's resolved settings, recorded in its result;
	// Run resolves them when they are nil.
	Settings *experiments.Settings
	// Replay, when set, holds draws of the detector to replay (the noise
	// draw and PaDiM's channels are replayed by the caller, through Noise
	// and Open), and ReplayInfo the file they come from, recorded in the
	// result.
	Replay     *experiments.Draws
	ReplayInfo *experiments.DrawsInfo
}

// Filter is image-level denoising (docs/method.md#63-image-level-denoising-xy):
// Method, fitted on the noisy training set with the cell's Params, scores
// the training images themselves, and the floor(Drop*N) highest-scored are
// dropped, or with Threshold set those scoring above it.
type Filter struct {
	Method    string
	Drop      float64
	Threshold *float64
}

// CellOptions are how a cell runs, apart from what it runs.
type CellOptions struct {
	// Batch is the number of images per forward pass.
	Batch int
	// FeatureMemoryMiB bounds the training features kept in memory.
	FeatureMemoryMiB int64
	// ResultsDir, when set, is the results folder that receives the
	// overlays of the highest- and the lowest-scored test image and a
	// memory bank's 2-D view, in experiments.OverlayDir(ResultsDir,
	// CellDir), and the cell's draws (draws.npz).
	ResultsDir, CellDir string
	// DrawsPath, when set, receives the cell's draws instead (eval, fit).
	DrawsPath string
}

// drawsPath is where the cell's draws go, "" for nowhere.
func (o CellOptions) drawsPath() string {
	if o.DrawsPath == "" && o.ResultsDir != "" {
		return filepath.Join(experiments.OverlayDir(o.ResultsDir, o.CellDir), "draws.npz")
	}
	return o.DrawsPath
}

// detectorDraws returns the detector draws to give a fit: a copy of the
// replayed ones, or none.
func (c *Cell) detectorDraws() *detector.Draws {
	d := &detector.Draws{}
	if c.Replay != nil {
		*d = c.Replay.Detector
	}
	return d
}

// writeDraws writes the draws the cell used to path (nothing when "").
func (c *Cell) writeDraws(path string, p *Pipeline, d *detector.Draws) error {
	if path == "" {
		return nil
	}
	all := experiments.Draws{PaDiMChannels: p.spec.Channels, Detector: *d}
	all.SetNoise(c.Class.Root, c.Drawn, c.Noise.Augment)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return all.WriteFile(path)
}

// NewCell draws the noisy split of class (datasets.Class.Inject: a ratio
// beyond the class's anomalous test images resamples them with overlap and
// is capped without, with a log line) and checks the method (and the
// filter's), which must be registered detector methods.
func NewCell(class *datasets.Class, noise datasets.Noise, method string, params detector.Params, filter *Filter) (*Cell, error) {
	if _, err := detector.Lookup(method); err != nil {
		return nil, err
	}
	if filter != nil {
		if _, err := detector.Lookup(filter.Method); err != nil {
			return nil, err
		}
	}
	in, err := class.Inject(string(class.Format), noise)
	if err != nil {
		return nil, err
	}
	c := &Cell{Class: class, Noise: in.Noise, Train: in.Train, Test: in.Test, Drawn: in.Drawn, Method: method, Params: params, Filter: filter}
	if n := in.Noise; n.Requested > 0 {
		logOnce(slog.LevelWarn, fmt.Sprintf("class %s: noise %g asks for %d anomalous images, the test set has %d: injected %d and kept %d in the test set (no overlap)",
			class.Name, n.Ratio, n.Requested, in.Anomalous, len(in.Drawn), in.Anomalous-len(in.Drawn)))
	}
	if n := in.Noise; n.Resampled > 0 && len(noise.Files) == 0 {
		logOnce(slog.LevelInfo, fmt.Sprintf("class %s: noise %g asks for %d anomalous images, the test set has %d: injected each once and %d resampled copies, each with its own affine (overlap)",
			class.Name, n.Ratio, len(in.Drawn), in.Anomalous, n.Resampled))
	}
	if len(noise.Files) > 0 && len(class.Train) > 0 {
		// A list replaces the draw: the ratio records what it injected.
		c.Noise.Ratio = float64(len(c.Drawn)) / float64(len(class.Train))
	}
	return c, nil
}

// logged holds the messages logOnce has logged.
var logged sync.Map

// logOnce logs msg at level the first time this process sees it: a
// sweep draws each cell's split when it plans and again when it runs, and
// every method and fold of a setting repeats its noise warning.
func logOnce(level slog.Level, msg string) {
	if _, seen := logged.LoadOrStore(msg, true); !seen {
		slog.Log(context.Background(), level, msg)
	}
}

// Label is the cell's method as results name it: the detector, or
// "FILTER+DETECTOR".
func (c *Cell) Label() string {
	if c.Filter != nil {
		return c.Filter.Method + "+" + c.Method
	}
	return c.Method
}

// NoiseFiles lists the injected images relative to the dataset root (nil
// for none).
func (c *Cell) NoiseFiles() []string {
	if len(c.Drawn) == 0 {
		return nil
	}
	return datasets.RelPaths(c.Class.Root, c.Drawn)
}

// Methods are the detector methods the cell fits: its detector and its
// filter's.
func (c *Cell) Methods() []string {
	if c.Filter != nil {
		return []string{c.Filter.Method, c.Method}
	}
	return []string{c.Method}
}

// Run fits the cell's detector on its training images (behind its filter,
// if any) and evaluates it on its test images, computing every feature
// with b.
func (c *Cell) Run(b *Backbone, o CellOptions) (*experiments.Result, error) {
	return c.run(b, o, (*Pipeline).each, false, nil)
}

// Fit fits the cell's detector on its training images (behind its filter,
// if any) and returns it with the Meta of a model file: the pipeline and
// what it was fitted on. The caller closes the detector.
func (c *Cell) Fit(b *Backbone, o CellOptions) (detector.Detector, detector.Meta, error) {
	train := c.Train
	st := stages{}
	src := source((*Pipeline).each)
	if c.Filter != nil {
		var err error
		if train, _, err = c.applyFilter(b, o, src, st, nil); err != nil {
			return nil, detector.Meta{}, err
		}
	}
	var decision *detector.Decision
	if c.decisionSource() == "holdout" {
		var err error
		if decision, src, err = c.holdoutDecision(b, o, src, st, train, true); err != nil {
			return nil, detector.Meta{}, err
		}
	}
	draws := c.detectorDraws()
	f, err := fitOn(b, c.Method, c.Params, train, o.Batch, o.FeatureMemoryMiB, src, st, "", draws, nil)
	if err != nil {
		return nil, detector.Meta{}, err
	}
	if err := c.writeDraws(o.drawsPath(), f.p, draws); err != nil {
		f.close()
		return nil, detector.Meta{}, err
	}
	if c.decisionSource() == "validation" {
		if decision, err = c.validationDecision(f, o, src); err != nil {
			f.close()
			return nil, detector.Meta{}, err
		}
	}
	gh, gw, err := f.p.Grid(f.positions)
	if err != nil {
		f.close()
		return nil, detector.Meta{}, err
	}
	meta := f.p.Meta(gh, gw)
	meta.Method, meta.Data, meta.Class, meta.Train = c.Label(), c.Class.Root, c.Class.Name, len(train)
	meta.NoiseFiles, meta.Decision = c.NoiseFiles(), decision
	return f.d, meta, nil
}

// run is Run with features from src, which serves a class's features
// when cached is set (a sweep); memo, when not nil, shares filter runs
// between cells.
func (c *Cell) run(b *Backbone, o CellOptions, src source, cached bool, memo filterMemo) (*experiments.Result, error) {
	train, test := c.Train, c.Test
	if c.Settings == nil {
		var err error
		if c.Settings, err = b.settings(c); err != nil {
			return nil, err
		}
	}
	res := experiments.Result{Settings: c.Settings, SettingsHash: c.Settings.Hash(), Commit: buildinfo.Commit(), Data: c.Class.Root, Class: c.Class.Name, Method: c.Label(), Noise: c.Noise,
		Backbone: b.id, Mark: b.Mark(), Test: len(test), NoiseDrawn: c.NoiseFiles(), Seconds: map[string]float64{}}
	st := stages(res.Seconds)
	if c.Filter != nil {
		var err error
		if train, res.Filter, err = c.applyFilter(b, o, src, st, memo); err != nil {
			return nil, err
		}
		if len(train) == 0 {
			return nil, fmt.Errorf("the %s filter dropped all %d training images", c.Filter.Method, len(c.Train))
		}
		// The filter's model and features (1.9 GB and more for PaDiM at
		// 224 px) are garbage now: collect them before the detector's
		// allocate, so that the two never add up.
		runtime.GC()
	}
	res.Train = len(train)
	res.Draws = c.ReplayInfo
	var decision *detector.Decision
	if c.decisionSource() == "holdout" {
		// Before the cell's own fit, so that the two never hold memory
		// together.
		var err error
		if decision, src, err = c.holdoutDecision(b, o, src, st, train, !cached); err != nil {
			return nil, err
		}
	}
	draws := c.detectorDraws()
	labels := make([]bool, len(test))
	masks := make([][]uint8, len(test))
	for i, it := range test {
		if labels[i] = it.Anomalous; it.Anomalous {
			var err error
			if masks[i], err = b.pre.LoadItemMask(it); err != nil {
				return nil, err
			}
		}
	}
	// The published CFLOW protocol: the test set evaluated after every
	// epoch, each metric's best kept (Result.BestEpoch).
	epoch := func(f *fitted, e, epochs int) error {
		t0 := time.Now()
		patch, _, err := f.score(fmt.Sprintf("epoch %d/%d test", e, epochs), test, o.Batch, src)
		if err != nil {
			return err
		}
		maps, err := f.maps(patch, len(test))
		if err != nil {
			return err
		}
		scores, err := f.imageScores(patch, len(test), maps)
		if err != nil {
			return err
		}
		img, err := experiments.AUROC(scores, labels)
		if err != nil {
			return fmt.Errorf("epoch %d: image AUROC: %w", e, err)
		}
		size := b.pre.ImageSize
		pm, err := experiments.EvaluatePixels(maps, masks, size, size, experiments.DefaultFPRLimit)
		if err != nil {
			return fmt.Errorf("epoch %d: pixel metrics: %w", e, err)
		}
		be := res.BestEpoch
		if be == nil || e == 1 { // a first epoch: a fresh run, or training again after a GPU failure
			be = &experiments.BestEpoch{}
			res.BestEpoch = be
		}
		be.Epochs = epochs
		if be.ImageEpoch == 0 || img > be.ImageAUROC {
			be.ImageAUROC, be.ImageEpoch = img, e
		}
		if be.PixelEpoch == 0 || pm.AUROC > be.PixelAUROC {
			be.PixelAUROC, be.PixelEpoch = pm.AUROC, e
		}
		st.done("epoch tests", t0)
		slog.Info("test set after an epoch", "epoch", e, "image_auroc", fmt.Sprintf("%.4f", img), "pixel_auroc", fmt.Sprintf("%.4f", pm.AUROC))
		return nil
	}
	f, err := fitOn(b, c.Method, c.Params, train, o.Batch, o.FeatureMemoryMiB, src, st, "", draws, epoch)
	if err != nil {
		return nil, err
	}
	defer f.close()
	if err := c.writeDraws(o.drawsPath(), f.p, draws); err != nil {
		return nil, err
	}
	in := f.d.Info()
	res.BankSize, res.Excluded = in.BankSize, in.Excluded
	if bk, ok := f.d.(detector.Banked); ok {
		defects, n, err := defectEntries(f.p, bk.Bank(), f.positions, train, c.Drawn)
		if err != nil {
			return nil, err
		}
		frac := float64(n) / float64(bk.Bank().N)
		res.DefectBankEntries, res.DefectBankFraction = n, &frac
		if o.ResultsDir != "" {
			if err := writeBank2D(experiments.Bank2DPath(o.ResultsDir, o.CellDir), bk.Bank(), f.positions, train, c.Drawn, defects); err != nil {
				return nil, err
			}
		}
	}

	// Test features are scored batch by batch, so that only the patch
	// scores of the whole test set are held.
	t0 := time.Now()
	before := f.d.Info().SearchStats
	patch, scoring, err := f.score("features and scoring test", test, o.Batch, src)
	if err != nil {
		return nil, err
	}
	if in := f.d.Info(); in.Search != "" {
		res.KNN = &experiments.KNNResult{Search: in.Search, Computed: 1}
		if pairs := in.SearchStats.Pairs - before.Pairs; pairs > 0 {
			res.KNN.Computed = float64(in.SearchStats.Computed-before.Computed) / float64(pairs)
		}
	}
	st.add("features", time.Since(t0).Seconds()-scoring)
	st.add("scoring", scoring)

	t0 = time.Now()
	anomalyMaps, err := f.maps(patch, len(test))
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	imageScores, err := f.imageScores(patch, len(test), anomalyMaps)
	if err != nil {
		return nil, err
	}
	for i, it := range test {
		label := 0
		if it.Anomalous {
			label = 1
		}
		res.PerImage = append(res.PerImage, experiments.ImageScore{File: datasets.RelPath(c.Class.Root, it), Label: label, Type: it.Type, Score: imageScores[i]})
	}
	if c.decisionSource() == "validation" {
		if decision, err = c.validationDecision(f, o, src); err != nil {
			return nil, err
		}
	}
	if decision != nil {
		res.Decision = decisionResult(decision, imageScores, labels)
	}
	if o.ResultsDir != "" {
		if res.Overlays, err = writeExtremes(b, c.Class.Root, test, imageScores, anomalyMaps, o.ResultsDir, o.CellDir); err != nil {
			return nil, err
		}
	}
	st.done("maps", t0)

	t0 = time.Now()
	size := b.pre.ImageSize
	curve, err := experiments.NewCurve(imageScores, labels)
	if err != nil {
		return nil, fmt.Errorf("eval: image metrics: %w", err)
	}
	if res.ImageAUROC, err = curve.AUROC(); err != nil {
		return nil, fmt.Errorf("eval: image AUROC: %w", err)
	}
	if res.ImageF1Max, _, err = curve.F1Max(); err != nil {
		return nil, fmt.Errorf("eval: image F1-max: %w", err)
	}
	if res.ImageAP, err = curve.AP(); err != nil {
		return nil, fmt.Errorf("eval: image AP: %w", err)
	}
	pm, err := experiments.EvaluatePixels(anomalyMaps, masks, size, size, experiments.DefaultFPRLimit)
	if err != nil {
		return nil, fmt.Errorf("eval: pixel metrics: %w", err)
	}
	res.PixelAUROC, res.PixelF1Max, res.AUPRO, res.PixelAP = pm.AUROC, pm.F1Max, pm.AUPRO, pm.AP
	addAUPIMO(&res, anomalyMaps, masks, size)
	st.done("metrics", t0)

	res.Date = time.Now().UTC().Format(time.RFC3339)
	res.Device = b.Device()
	return &res, nil
}

// addAUPIMO sets the cell's AUPIMO, and each anomalous image's, or says
// why there is none (too few normal test pixels for the FPR range, most
// often).
func addAUPIMO(res *experiments.Result, maps [][]float32, masks [][]uint8, size int) {
	p, err := experiments.AUPIMO(maps, masks, size, size, experiments.AUPIMOFPRLow, experiments.AUPIMOFPRHigh, experiments.AUPIMOThresholds)
	if err != nil {
		res.AUPIMONote = err.Error()
		slog.Info("no AUPIMO", "reason", err)
		return
	}
	res.AUPIMO = &p.Mean
	for i, v := range p.Scores {
		if !math.IsNaN(v) {
			res.PerImage[i].AUPIMO = &v
		}
	}
}

// writeBank2D writes the bank of m (fitted on train, positions patches an
// image) projected to 2-D to path, with the entries from drawn images
// and those inside their defects (defects) marked.
func writeBank2D(path string, m *detector.Model, positions int, train, drawn []datasets.Item, defects []bool) error {
	injected := map[string]bool{}
	for _, it := range drawn {
		injected[it.Path] = true
	}
	b := experiments.Bank2D{Defect: defects}
	b.X, b.Y = experiments.PCA2(m.Bank, m.N, m.D)
	for _, i := range m.Indices {
		b.Noisy = append(b.Noisy, injected[train[i/positions].Path])
	}
	return experiments.WriteBank2D(path, &b)
}
