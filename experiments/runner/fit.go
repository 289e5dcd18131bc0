package runner

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/internal/progress"
)

// source yields the features that pipeline p computes for items, batch
// images at a time: (*Pipeline).each computes them, a classFeatures
// serves them from memory or the disk cache.
type source func(p *Pipeline, label string, items []datasets.Item, batch int, fn func(lo, hi int, f detector.Features) error) error

// stages records the seconds of a cell's stages and logs each.
type stages map[string]float64

func (s stages) done(name string, t0 time.Time) { s.add(name, time.Since(t0).Seconds()) }

func (s stages) add(name string, sec float64) {
	s[name] += sec
	slog.Info("stage done", "stage", name, "seconds", fmt.Sprintf("%.2f", sec))
}

// fitted is a fitted detector with the pipeline of its features.
type fitted struct {
	d         detector.Detector
	p         *Pipeline
	positions int
}

// fitOn fits detector method with params on items, with features from src
// batch images at a time, keeping at most memMiB MiB of them in memory;
// st gets the detector's stages ("features", then "discriminator" and
// "coreset" for memory banks, "fit" for PaDiM), each prefixed by prefix.
// draws, when set, are replayed and receive the fit's draws; epoch, when
// set, is called after each training epoch of detectors that train in
// epochs (detector.FitOptions.Epoch).
func fitOn(b *Backbone, method string, params detector.Params, items []datasets.Item, batch int, memMiB int64, src source, st stages, prefix string,
	draws *detector.Draws, epoch func(f *fitted, e, epochs int) error) (*fitted, error) {
	p, err := b.Pipeline(method)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, errors.New("no training images")
	}
	params.Features = p.spec
	d, err := detector.New(method, params)
	if err != nil {
		return nil, err
	}
	f := &fitted{d: d, p: p}
	opts := detector.FitOptions{MaxMemory: memMiB << 20,
		Progress: func(stage, unit string) func(done, total int) { return stepBar(prefix+stage, unit) },
		Stage:    func(name string, sec float64) { st.add(prefix+name, sec) }, Draws: draws}
	if b.gpu.Device() != nil {
		opts.Accelerator = b.gpu.Accelerator()
	}
	if epoch != nil {
		opts.Epoch = func(e, epochs int) error { return epoch(f, e, epochs) }
	}
	stream := detector.Stream{Images: len(items), Each: func(fn func(detector.Features) error) error {
		return src(p, prefix+"features train", items, batch, func(_, _ int, x detector.Features) error {
			f.positions = x.Positions
			return fn(x)
		})
	}}
	if err := d.Fit(stream, opts); err != nil {
		d.Close()
		return nil, err
	}
	return f, nil
}

// close frees the detector's device memory.
func (f *fitted) close() error { return f.d.Close() }

// score returns the patch scores [len(items)][positions] of items (from
// src, batch images at a time) and the seconds spent scoring them, apart
// from computing their features. Features are gathered to the number of
// images the detector scores at a time (detector.Info.ScoreBatch).
func (f *fitted) score(label string, items []datasets.Item, batch int, src source) ([]float32, float64, error) {
	pos := f.positions
	patch := make([]float32, len(items)*pos)
	var scoring time.Duration
	run := func(lo, hi int, x detector.Features) error {
		ts := time.Now()
		defer func() { scoring += time.Since(ts) }()
		return f.d.Score(patch[lo*pos:hi*pos], x)
	}
	group := f.d.Info().ScoreBatch
	var gathered detector.Features
	start := 0
	err := src(f.p, label, items, batch, func(lo, hi int, x detector.Features) error {
		if x.Positions != pos {
			return fmt.Errorf("features of %d positions, the detector has %d", x.Positions, pos)
		}
		if group == 0 {
			return run(lo, hi, x)
		}
		if gathered.Data == nil {
			gathered = detector.Features{Data: make([]float32, 0, min(group+batch, len(items))*pos*x.Dim), Positions: pos, Dim: x.Dim}
		}
		gathered.Data = append(gathered.Data, x.Data...)
		if n := hi - start; n >= group || hi == len(items) {
			gathered.N = n
			if err := run(start, hi, gathered); err != nil {
				return err
			}
			gathered.Data, start = gathered.Data[:0], hi
		}
		return nil
	})
	return patch, scoring.Seconds(), err
}

// maps returns the anomaly maps [size][size] of n images' patch scores:
// the detector's own (detector.Mapper), else the pipeline's.
func (f *fitted) maps(patch []float32, n int) ([][]float32, error) {
	return mapsOf(f.d, f.p, patch, n, f.positions)
}

// mapsOf returns the anomaly maps of n images' patch scores
// [n][positions] from detector d on pipeline p.
func mapsOf(d detector.Detector, p *Pipeline, patch []float32, n, positions int) ([][]float32, error) {
	if m, ok := d.(detector.Mapper); ok {
		return m.Maps(patch[:n*positions], n, positions, p.b.pre.ImageSize)
	}
	return p.maps(patch, n, positions)
}

// imageScores returns n images' scores from their patch scores and maps
// (needed only by detectors whose image scores come from the maps).
func (f *fitted) imageScores(patch []float32, n int, maps [][]float32) ([]float32, error) {
	return f.d.ImageScores(patch, n, f.positions, maps)
}

// maps returns the anomaly maps [size][size] of n images' patch scores
// [n][positions]: on the GPU when there is one, else on the CPU.
func (p *Pipeline) maps(patch []float32, n, positions int) ([][]float32, error) {
	gh, gw, err := p.Grid(positions)
	if err != nil {
		return nil, err
	}
	b := p.b
	size := b.pre.ImageSize
	out := make([][]float32, n)
	if d := b.gpu.Device(); d != nil {
		flat, err := d.Maps(patch[:n*positions], n, gh, gw, size, detector.Smoothing)
		if err == nil {
			for i := range out {
				out[i] = flat[i*size*size : (i+1)*size*size : (i+1)*size*size]
			}
			return out, nil
		}
		if err := b.gpu.Fail("maps", err); err != nil {
			return nil, err
		}
	}
	for i := range out {
		out[i] = make([]float32, size*size)
		detector.Map(out[i], patch[i*positions:(i+1)*positions], gh, gw, size)
	}
	return out, nil
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
