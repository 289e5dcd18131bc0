package main

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/softpatch/softpatch/cuda"
	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/internal/progress"
)

// trained is a fitted detector: a memory bank (PatchCore, SoftPatch) or a
// PaDiM model, with the pipeline that computes its features.
type trained struct {
	p         *pipeline
	bank      *detector.Model
	padim     *detector.PaDiM
	positions int
	gpuIndex  *cuda.Index // the bank on the GPU, when one is used
}

// useGPU puts a memory bank on the pipeline's GPU for scoring, when there
// is one with cuBLAS.
func (t *trained) useGPU() error {
	d := t.p.gpu.device()
	if d == nil || t.bank == nil || !d.HasBLAS() {
		return nil
	}
	ix, err := d.NewIndex(t.bank.Bank, t.bank.N, t.bank.D)
	if err != nil {
		return t.p.gpu.fail("scoring", err)
	}
	t.gpuIndex = ix
	t.bank.UseSearcher(&gpuSearcher{g: t.p.gpu, ix: ix, m: t.bank})
	return nil
}

// close frees the detector's GPU memory.
func (t *trained) close() error {
	if t.gpuIndex == nil {
		return nil
	}
	err := t.gpuIndex.Close()
	t.gpuIndex = nil
	return err
}

// forMethod returns the pipeline computing the features of detector
// method (a key of evalMethods), building the PaDiM pipeline on first use.
func (p *pipeline) forMethod(method string) (*pipeline, error) {
	if method != detector.MethodPaDiM {
		return p, nil
	}
	if p.padim == nil {
		if p.isPaDiM() {
			return nil, errors.New("padim: no PaDiM pipeline on a PaDiM pipeline")
		}
		if err := p.withPaDiM(p.padimKeep, p.padimSeed, nil); err != nil {
			return nil, err
		}
	}
	return p.padim, nil
}

// stages records the seconds of a cell's stages and logs each.
type stages map[string]float64

func (s stages) done(name string, t0 time.Time) { s.add(name, time.Since(t0).Seconds()) }

func (s stages) add(name string, sec float64) {
	s[name] += sec
	slog.Info("stage done", "stage", name, "seconds", fmt.Sprintf("%.2f", sec))
}

// fitOn fits detector method (configured by cfg for the memory-bank
// methods) on items, with features from src batch images at a time,
// keeping at most memMiB MiB of them in memory; st gets the stages
// "features" and "discriminator" + "coreset" (memory banks) or "fit"
// (PaDiM), each prefixed by prefix.
func fitOn(p *pipeline, method string, cfg detector.Config, items []datasets.Item, batch int, memMiB int64, src featureSource, st stages, prefix string) (*trained, error) {
	q, err := p.forMethod(method)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, errors.New("no training images")
	}
	t := &trained{p: q}
	opts := detector.FitterOptions{MaxMemory: memMiB << 20}
	if q.gpu.device() != nil {
		opts.Accelerator = gpuAccel{q.gpu}
	}
	var (
		bank  *detector.Fitter
		padim *detector.PaDiMFitter
	)
	defer func() {
		if bank != nil {
			bank.Close()
		}
		if padim != nil {
			padim.Close()
		}
	}()
	t0 := time.Now()
	err = src(q, prefix+"features train", items, batch, func(lo, hi int, feats []float32, pos int) error {
		if t.positions == 0 {
			var err error
			t.positions = pos
			dim := len(feats) / ((hi - lo) * pos)
			if method == detector.MethodPaDiM {
				opts.Progress = stepBar(prefix+"padim fit", "positions")
				padim, err = detector.NewPaDiMFitter(len(items), pos, dim, opts)
			} else {
				opts.Progress = stepBar(prefix+"coreset", "picks")
				bank, err = detector.NewFitter(cfg, len(items), pos, dim, opts)
			}
			if err != nil {
				return err
			}
		}
		if padim != nil {
			return padim.Add(feats, hi-lo)
		}
		return bank.Add(feats, hi-lo)
	})
	if err != nil {
		return nil, err
	}
	st.done(prefix+"features", t0)
	if (bank != nil && bank.Spilled()) || (padim != nil && padim.Spilled()) {
		slog.Info("training features above the feature memory bound went to a temporary file", "MiB", memMiB)
	}
	t0 = time.Now()
	if padim != nil {
		if t.padim, err = padim.Fit(); err != nil {
			return nil, err
		}
		st.done(prefix+"fit", t0)
		return t, nil
	}
	if err := bank.Discriminate(); err != nil {
		return nil, err
	}
	st.done(prefix+"discriminator", t0)
	t0 = time.Now()
	if t.bank, err = bank.Fit(); err != nil {
		return nil, err
	}
	st.done(prefix+"coreset", t0)
	if err := t.useGPU(); err != nil {
		return nil, err
	}
	return t, nil
}

// dim is the feature dimension the detector takes.
func (t *trained) dim() int {
	if t.padim != nil {
		return t.padim.Dim
	}
	return t.bank.D
}

// scoreBatch writes the patch scores [n][positions] of features
// [n][positions][dim] into dst.
func (t *trained) scoreBatch(dst, feats []float32, n int) error {
	if t.padim != nil {
		return t.padim.Score(dst, feats, n, t.positions)
	}
	return t.bank.Score(dst, feats, n, t.positions)
}

// padimGroup is the number of images PaDiM scores at a time: each call
// expands every position's triangle once, which costs about as much as
// the products of 8 images.
const padimGroup = 32

// score returns the patch scores [len(items)][positions] of items (from
// src, batch images at a time) and the seconds spent scoring them, apart
// from computing their features.
func (t *trained) score(label string, items []datasets.Item, batch int, src featureSource) ([]float32, float64, error) {
	pos := t.positions
	patch := make([]float32, len(items)*pos)
	var scoring time.Duration
	run := func(lo, hi int, feats []float32) error {
		ts := time.Now()
		defer func() { scoring += time.Since(ts) }()
		return t.scoreBatch(patch[lo*pos:hi*pos], feats, hi-lo)
	}
	// PaDiM's features are gathered into groups of padimGroup images.
	var group []float32
	start := 0
	err := src(t.p, label, items, batch, func(lo, hi int, feats []float32, fpos int) error {
		if fpos != pos {
			return fmt.Errorf("features of %d positions, the detector has %d", fpos, pos)
		}
		if t.padim == nil {
			return run(lo, hi, feats)
		}
		if group == nil {
			group = make([]float32, 0, min(padimGroup+batch, len(items))*pos*t.padim.Dim)
		}
		group = append(group, feats...)
		if n := hi - start; n >= padimGroup || hi == len(items) {
			if err := run(start, hi, group); err != nil {
				return err
			}
			group, start = group[:0], hi
		}
		return nil
	})
	return patch, scoring.Seconds(), err
}

// imageScores returns the image scores of n images from their patch
// scores and anomaly maps: the maximum patch score for memory banks (the
// published PatchCore; maps may be nil), the maximum of the smoothed map
// for PaDiM.
func (t *trained) imageScores(patch []float32, n int, maps [][]float32) []float32 {
	if t.padim == nil {
		return detector.ImageScores(patch, n, t.positions)
	}
	out := make([]float32, len(maps))
	for i, m := range maps {
		out[i] = detector.MapScore(m)
	}
	return out
}

// maps returns the anomaly maps [size][size] of n images' patch scores.
func (t *trained) maps(patch []float32, n int) ([][]float32, error) {
	gh, gw, err := t.p.grid(t.positions)
	if err != nil {
		return nil, err
	}
	size := t.p.pre.ImageSize
	out := make([][]float32, n)
	if d := t.p.gpu.device(); d != nil {
		flat, err := d.Maps(patch[:n*t.positions], n, gh, gw, size, detector.Smoothing)
		if err == nil {
			for i := range out {
				out[i] = flat[i*size*size : (i+1)*size*size : (i+1)*size*size]
			}
			return out, nil
		}
		if err := t.p.gpu.fail("maps", err); err != nil {
			return nil, err
		}
	}
	for i := range out {
		out[i] = make([]float32, size*size)
		detector.Map(out[i], patch[i*t.positions:(i+1)*t.positions], gh, gw, size)
	}
	return out, nil
}

// filterResult is what an image-level filter did, in a cell's JSON.
type filterResult struct {
	// Method is the filter's detector; Drop the fraction dropped, or
	// Threshold the score above which images were dropped.
	Method    string   `json:"method"`
	Drop      *float64 `json:"drop,omitempty"`
	Threshold *float64 `json:"threshold,omitempty"`
	// Dropped are the dropped training images (relative to the dataset
	// root), highest score first, with their scores.
	Dropped      []string  `json:"dropped"`
	DroppedScore []float32 `json:"dropped_scores"`
	// Injected is the number of injected (noise) images in the training
	// set, DroppedNoise how many of them were dropped; Precision is
	// DroppedNoise/len(Dropped) and Recall DroppedNoise/Injected (0 when
	// undefined).
	Injected     int     `json:"injected"`
	DroppedNoise int     `json:"dropped_noise"`
	Precision    float64 `json:"precision"`
	Recall       float64 `json:"recall"`
	// Reused is set when a sweep reused the filter run of an earlier cell
	// with the same training set and filter.
	Reused bool `json:"reused,omitempty"`
}

// filterMemo keeps the outcome of each filter a sweep has run, so that
// cells sharing a noisy training set and a filter (padim+padim and
// padim+patchcore of one setting) fit and score the filter once.
type filterMemo map[string]filterOutcome

type filterOutcome struct {
	kept []datasets.Item
	res  filterResult
}

// key identifies a cell's filter run: the class, the noise draw and the
// filter with its rule.
func (cl *cell) filterKey() string {
	f := cl.filter
	th := "-"
	if f.threshold != nil {
		th = fmt.Sprint(*f.threshold)
	}
	return fmt.Sprintf("%s|%s|%v|%v|%d|%v|%q|%s|%v|%s|%+v", cl.class.Root, cl.class.Name, cl.noise.Ratio, cl.noise.Overlap,
		cl.noise.Fold, cl.noise.Augment, cl.noise.Files, f.method, f.drop, th, f.cfg)
}

// applyFilter fits the cell's filter on its training images, scores them,
// and returns the images kept with what was dropped. With memo set, a
// filter run before on the same training set is reused (Reused is set in
// the result, and the "filter" stage takes no time).
func (cl *cell) applyFilter(p *pipeline, batch int, memMiB int64, src featureSource, st stages, memo filterMemo) ([]datasets.Item, *filterResult, error) {
	f := cl.filter
	t0 := time.Now()
	if o, ok := memo[cl.filterKey()]; ok {
		res := o.res
		res.Reused = true
		st.done("filter", t0)
		return o.kept, &res, nil
	}
	sub := stages{}
	t, err := fitOn(p, f.method, f.cfg, cl.train, batch, memMiB, src, sub, "filter ")
	if err != nil {
		return nil, nil, fmt.Errorf("filter %s: %w", f.method, err)
	}
	defer t.close()
	patch, _, err := t.score("filter scoring train", cl.train, batch, src)
	if err != nil {
		return nil, nil, fmt.Errorf("filter %s: %w", f.method, err)
	}
	var maps [][]float32 // PaDiM's image scores need them
	if t.padim != nil {
		if maps, err = t.maps(patch, len(cl.train)); err != nil {
			return nil, nil, err
		}
	}
	scores := t.imageScores(patch, len(cl.train), maps)
	drop := dropped(scores, f.drop, f.threshold)
	res := &filterResult{Method: f.method, Threshold: f.threshold, Injected: len(cl.drawn)}
	if f.threshold == nil {
		res.Drop = &f.drop
	}
	injected := map[string]bool{}
	for _, it := range cl.drawn {
		injected[it.Path] = true
	}
	out := make([]bool, len(cl.train))
	for _, i := range drop {
		it := cl.train[i]
		out[i] = true
		res.Dropped = append(res.Dropped, datasets.RelPath(cl.class.Root, it))
		res.DroppedScore = append(res.DroppedScore, scores[i])
		if injected[it.Path] {
			res.DroppedNoise++
		}
	}
	if len(drop) > 0 {
		res.Precision = float64(res.DroppedNoise) / float64(len(drop))
	}
	if res.Injected > 0 {
		res.Recall = float64(res.DroppedNoise) / float64(res.Injected)
	}
	var kept []datasets.Item
	for i, it := range cl.train {
		if !out[i] {
			kept = append(kept, it)
		}
	}
	if memo != nil {
		memo[cl.filterKey()] = filterOutcome{kept: kept, res: *res}
	}
	st.done("filter", t0)
	slog.Info("filter", "method", f.method, "dropped", len(drop), "of", len(cl.train), "injected dropped", res.DroppedNoise, "injected", res.Injected)
	return kept, res, nil
}

// dropped returns the indices of the images a filter drops, highest score
// first (ties: lower index first): those scoring above threshold when it
// is set, else the floor(drop*n) highest.
func dropped(scores []float32, drop float64, threshold *float64) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(scores[b], scores[a]) })
	if threshold != nil {
		k := 0
		for k < len(idx) && float64(scores[idx[k]]) > *threshold {
			k++
		}
		return idx[:k]
	}
	// floor(drop*n), forgiving the rounding of drop (0.29*100 is 28.99...).
	return idx[:min(len(idx), int(drop*float64(len(scores))+1e-9))]
}

// stepBar returns a progress callback that shows a bar once the steps
// have started.
func stepBar(label, unit string) func(done, total int) {
	var bar *progress.Bar
	return func(done, total int) {
		if bar == nil {
			bar = progress.New(label, total, unit)
		}
		bar.Add(1)
		if done == total {
			bar.Finish()
		}
	}
}
