package detector

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/softpatch/softpatch/engine/denoise"
	"github.com/softpatch/softpatch/engine/embed"
)

// The memory-bank methods: PatchCore, PatchCore-random and SoftPatch with
// each noise discriminator ("softpatch-" + its name).
func init() {
	// Costs: the quickstart's cells (RESULTS.md) took 6.5 s for PatchCore,
	// 5.4 s for PatchCore-random and 6.7 to 7.2 s for SoftPatch.
	bankMethod := func(name, summary string, order int, def bool, base Config) Method {
		cost := 1.0
		switch {
		case base.Random:
			cost = 0.8
		case !base.Discriminator.IsZero():
			cost = 1.1
		}
		return Method{Name: name, Summary: summary, Order: order, Default: def, Cost: cost, Features: bankFeatures,
			New: func(p Params) (Detector, error) { return &bankDetector{name: name, cfg: p.apply(base)}, nil }}
	}
	Register(bankMethod("patchcore", "PatchCore: approximate greedy coreset (10 start points) of all training patches", 10, true, Config{}))
	Register(bankMethod("patchcore-random", "PatchCore with a uniform random subset instead of the coreset", 20, true, Config{Random: true}))
	for i, d := range denoise.Discriminators() {
		Register(bankMethod("softpatch-"+d.Name(), "SoftPatch: "+d.Summary()+"; weighted coreset of the kept patches, soft weights",
			30+i, d.InPaper(), Config{Discriminator: d, SoftWeight: true}))
	}
	RegisterFormat(modelMagic, "patchcore", func(r io.Reader) (Detector, Meta, error) {
		m, meta, err := LoadModel(r)
		if err != nil {
			return nil, meta, err
		}
		if meta.GridH <= 0 || meta.GridW <= 0 {
			return nil, meta, fmt.Errorf("detector: load: the model records no patch grid (%dx%d)", meta.GridH, meta.GridW)
		}
		return &bankDetector{name: meta.Method, cfg: m.Config, m: m, positions: meta.GridH * meta.GridW}, meta, nil
	})
}

// bankFeatures is the memory banks' feature pipeline: PatchCore's patch
// embedding of the configured layers.
func bankFeatures(s FeatureSettings) (FeatureSpec, error) {
	return FeatureSpec{Layers: slices.Clone(s.Layers), Embed: embed.Default()}, nil
}

// apply returns base with the params set.
func (p Params) apply(base Config) Config {
	base.Coreset, base.Threshold, base.LOFK, base.Seed, base.Search = p.Coreset, p.Threshold, p.LOFK, p.Seed, p.Search
	if p.NoSoftWeight {
		base.SoftWeight = false
	}
	return base
}

// bankDetector is a memory-bank method as a Detector: a Fitter fits its
// Model.
type bankDetector struct {
	name      string
	cfg       Config
	m         *Model
	positions int
	searcher  Searcher // from an Accelerator; closed by Close
}

func (b *bankDetector) Info() Info {
	in := Info{Method: b.name}
	if m := b.m; m != nil {
		in.Dim, in.BankSize, in.Excluded = m.D, m.N, m.Excluded
		in.Summary = fmt.Sprintf("bank %d x %d (%d excluded)", m.N, m.D, m.Excluded)
		in.Search, in.SearchStats = m.SearchStats()
	}
	return in
}

// Bank returns the fitted model (nil before Fit).
func (b *bankDetector) Bank() *Model { return b.m }

func (b *bankDetector) Fit(src Stream, opts FitOptions) error {
	f, err := Feed(src, opts, func(x Features) (*Fitter, error) {
		b.positions = x.Positions
		return NewFitter(b.cfg, src.Images, x.Positions, x.Dim, FitterOptions{MaxMemory: opts.MaxMemory, TempDir: opts.TempDir, Draws: opts.Draws,
			Accelerator: opts.Accelerator, Progress: opts.progress("coreset", "picks")})
	})
	if f != nil {
		defer f.Close()
	}
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := f.Discriminate(); err != nil {
		return err
	}
	opts.stage("discriminator", time.Since(t0).Seconds())
	t0 = time.Now()
	if b.m, err = f.Fit(); err != nil {
		return err
	}
	opts.stage("coreset", time.Since(t0).Seconds())
	if opts.Accelerator != nil {
		return b.Accelerate(opts.Accelerator)
	}
	// The CPU search's index, with the bank's principal coordinates when
	// it prunes (stored in the model file by Save).
	t0 = time.Now()
	if err := b.m.PrepareSearch(); err != nil {
		return err
	}
	opts.stage("search index", time.Since(t0).Seconds())
	return nil
}

// Accelerate makes the model search its bank with a's Searcher, when a
// gives one.
func (b *bankDetector) Accelerate(a Accelerator) error {
	if b.m == nil {
		return errNotFitted
	}
	if err := b.Close(); err != nil {
		return err
	}
	s, err := a.Searcher(b.m.Bank, b.m.N, b.m.D)
	if err != nil || s == nil {
		return err
	}
	b.searcher = s
	b.m.UseSearcher(s)
	return nil
}

func (b *bankDetector) Score(dst []float32, f Features) error {
	if b.m == nil {
		return errNotFitted
	}
	if f.Positions != b.positions || f.Dim != b.m.D {
		return fmt.Errorf("detector: features of %d positions x %d dims, the model has %d x %d", f.Positions, f.Dim, b.positions, b.m.D)
	}
	return b.m.Score(dst, f.Data, f.N, f.Positions)
}

func (b *bankDetector) ImageScores(patch []float32, n, positions int, _ [][]float32) ([]float32, error) {
	if n < 0 || positions <= 0 || len(patch) != n*positions {
		return nil, fmt.Errorf("detector: %d patch scores for %d images x %d positions", len(patch), n, positions)
	}
	return ImageScores(patch, n, positions), nil
}

func (b *bankDetector) Save(w io.Writer, meta Meta) error {
	if b.m == nil {
		return errNotFitted
	}
	return b.m.Save(w, meta)
}

// Close closes the accelerator's searcher; later scoring runs on the CPU.
func (b *bankDetector) Close() error {
	s := b.searcher
	if s == nil {
		return nil
	}
	b.searcher = nil
	b.m.UseSearcher(nil)
	if c, ok := s.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
