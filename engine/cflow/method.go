package cflow

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/softpatch/softpatch/engine/detector"
)

// Name is the method's registered name.
const Name = "cflow"

// embedding is Meta.Embedding of a CFLOW model file.
const embedding = "cflow-fibers"

func init() {
	// Cost: a rough order of magnitude. Its shortened CPU schedule
	// (configs/cflow_quick.yaml) trained for about 15 minutes a cell where
	// PatchCore's cell takes seconds; the published schedule trains longer.
	detector.Register(detector.Method{Name: Name, Order: 5, Cost: 100,
		Summary:  "CFLOW-AD: a conditional normalizing flow per layer (layer2..4) on the fibers, trained with Adam",
		Features: features,
		New:      newDetector,
		Options:  func() any { return DefaultOptions() }})
	detector.RegisterFormat(magic, Name, load)
}

// optionsOf returns the CFLOW options in o (nil: the defaults), checked.
func optionsOf(o any) (*Options, error) {
	if o == nil {
		return DefaultOptions(), nil
	}
	opts, ok := o.(*Options)
	if !ok {
		return nil, fmt.Errorf("cflow: options of type %T, want *cflow.Options", o)
	}
	if err := opts.Check(); err != nil {
		return nil, err
	}
	return opts.clone(), nil
}

// features is CFLOW's feature pipeline: the fibers of its layers.
func features(s detector.FeatureSettings) (detector.FeatureSpec, error) {
	o, err := optionsOf(s.Options)
	if err != nil {
		return detector.FeatureSpec{}, err
	}
	f, err := NewFibers(s.Arch, o.Layers)
	if err != nil {
		return detector.FeatureSpec{}, err
	}
	return detector.FeatureSpec{Layers: f.Layers, Embed: f, Embedding: embedding}, nil
}

// errNotFitted is returned by the methods that need a fitted model.
var errNotFitted = errors.New("cflow: not fitted")

// cflowDetector is CFLOW as a detector.Detector.
type cflowDetector struct {
	opts   *Options
	seed   uint64
	fibers Fibers
	m      *Model
	flows  []*Flow // scoring, per layer, made at the first Score
}

func newDetector(p detector.Params) (detector.Detector, error) {
	o, err := optionsOf(p.Options[Name])
	if err != nil {
		return nil, err
	}
	d := &cflowDetector{opts: o, seed: p.Seed}
	if p.Features.Embed != nil {
		f, ok := p.Features.Embed.(Fibers)
		if !ok {
			return nil, fmt.Errorf("cflow: features embedded by %T, want cflow.Fibers", p.Features.Embed)
		}
		d.fibers = f
	}
	return d, nil
}

func (d *cflowDetector) Info() detector.Info {
	// Scoring runs fixed batches of FiberBatch fibers: whole image
	// batches fill them better than the backbone's batches would.
	in := detector.Info{Method: Name, MapScores: true, ScoreBatch: d.opts.ImageBatch}
	if m := d.m; m != nil {
		in.Dim = m.Width
		params := 0
		for _, dec := range m.Decoders {
			params += dec.Learnable()
		}
		in.Summary = fmt.Sprintf("%d decoders of %d blocks (%.1f M parameters), layers %v", len(m.Decoders), len(m.Decoders[0].Blocks), float64(params)/1e6, m.layerNames())
	}
	return in
}

// Options returns the detector's settings (detector.Configured).
func (d *cflowDetector) Options() any { return d.opts.clone() }

func (d *cflowDetector) Fit(src detector.Stream, opts detector.FitOptions) error {
	if len(d.fibers.Layers) == 0 {
		return fmt.Errorf("cflow: the detector was made without its feature pipeline (detector.Params.Features)")
	}
	var rows, width int
	st, err := detector.Feed(src, opts, func(x detector.Features) (*store, error) {
		rows, width = x.Positions, x.Dim
		return newStore(src.Images, x.Positions*x.Dim, opts.MaxMemory, opts.TempDir)
	})
	if st != nil {
		defer st.Close()
	}
	if err != nil {
		return err
	}
	layout, err := d.fibers.layoutOf(rows, width)
	if err != nil {
		return err
	}
	accel, _ := opts.Accelerator.(Accelerator)
	err = d.train(st, layout, width, accel, opts)
	if errors.Is(err, ErrDeviceOff) {
		slog.Warn("cflow: the device failed: training again from the start on the CPU", "err", err)
		err = d.train(st, layout, width, nil, opts)
	}
	return err
}

// train makes a fresh model of layout and trains it on st, on a's device
// when it takes the decoders.
func (d *cflowDetector) train(st *store, layout []Layer, width int, a Accelerator, opts detector.FitOptions) (err error) {
	if d.m != nil {
		d.m.closeDevice()
	}
	t0 := time.Now()
	if d.m, err = NewModel(d.opts, layout, width, d.seed); err != nil {
		return err
	}
	if err := d.m.useDevice(a); err != nil {
		return err
	}
	if opts.Stage != nil {
		opts.Stage("init", time.Since(t0).Seconds())
	}
	t0 = time.Now()
	var progress func(done, total int)
	if opts.Progress != nil {
		progress = opts.Progress("cflow train", "image batches")
	}
	// The caller's epoch callback (the published protocol's test runs) is
	// not training time.
	var outside time.Duration
	var epoch func(e, epochs int) error
	if opts.Epoch != nil {
		epoch = func(e, epochs int) error {
			t := time.Now()
			defer func() { outside += time.Since(t) }()
			return opts.Epoch(e, epochs)
		}
	}
	if err := d.m.Train(st, d.seed, progress, epoch); err != nil {
		return err
	}
	if opts.Stage != nil {
		opts.Stage("train", (time.Since(t0) - outside).Seconds())
	}
	return nil
}

// layoutOf finds the layers' grids of images stored as rows x width.
func (f Fibers) layoutOf(rows, width int) ([]Layer, error) {
	if width != f.Width {
		return nil, fmt.Errorf("cflow: features %d values wide, the fibers of %v are stored %d wide", width, f.Layers, f.Width)
	}
	for h := 1; ; h++ {
		ls := f.Layout(h, h)
		switch v := values(ls); {
		case v == rows*width:
			return ls, nil
		case v > rows*width:
			return nil, fmt.Errorf("cflow: %d rows of %d values are not the square grids of layers %v", rows, width, f.Layers)
		}
	}
}

// Score writes each position's log p / C into the first values of the
// image's row scores, layer after layer; the rest are 0.
func (d *cflowDetector) Score(dst []float32, f detector.Features) error {
	m := d.m
	if m == nil {
		return errNotFitted
	}
	per := values(m.Layout)
	if f.Dim != m.Width || f.Positions*f.Dim != per {
		return fmt.Errorf("cflow: features of %d rows x %d values, the model takes %d x %d", f.Positions, f.Dim, per/m.Width, m.Width)
	}
	clear(dst[:f.N*f.Positions])
	if m.onDevice() {
		err := m.logProbs(nil, dst, f.Data, f.N, f.Positions)
		if !errors.Is(err, ErrDeviceOff) {
			return err
		}
		slog.Warn("cflow: the device failed: scoring on the CPU", "err", err)
		m.closeDevice()
	}
	if d.flows == nil {
		for _, dec := range m.Decoders {
			fl, err := NewFlow(dec, m.Options.FiberBatch)
			if err != nil {
				return err
			}
			d.flows = append(d.flows, fl)
		}
	}
	return m.logProbs(d.flows, dst, f.Data, f.N, f.Positions)
}

// Maps are the published anomaly maps (Model.Maps).
func (d *cflowDetector) Maps(patch []float32, n, positions, size int) ([][]float32, error) {
	if d.m == nil {
		return nil, errNotFitted
	}
	return d.m.Maps(patch, n, positions, size)
}

// ImageScores is the maximum of each image's anomaly map.
func (d *cflowDetector) ImageScores(_ []float32, n, _ int, maps [][]float32) ([]float32, error) {
	if len(maps) != n {
		return nil, fmt.Errorf("cflow: image scores need the %d images' anomaly maps, got %d", n, len(maps))
	}
	out := make([]float32, n)
	for i, mp := range maps {
		out[i] = detector.MapScore(mp)
	}
	return out, nil
}

func (d *cflowDetector) Save(w io.Writer, meta detector.Meta) error {
	if d.m == nil {
		return errNotFitted
	}
	return d.m.Save(w, meta)
}

// Accelerate puts the fitted (or loaded) decoders on a's device when a is
// an Accelerator that takes them (detector.Accelerable).
func (d *cflowDetector) Accelerate(a detector.Accelerator) error {
	if d.m == nil {
		return errNotFitted
	}
	ca, ok := a.(Accelerator)
	if !ok {
		return nil
	}
	return d.m.useDevice(ca)
}

func (d *cflowDetector) Close() error {
	if d.m != nil {
		if err := d.m.closeDevice(); err != nil {
			slog.Warn("cflow: freeing the device's memory", "err", err)
		}
	}
	for _, f := range d.flows {
		if err := f.Close(); err != nil {
			slog.Warn("cflow: closing a flow", "err", err)
		}
	}
	d.flows = nil
	return nil
}
