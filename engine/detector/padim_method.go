package detector

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/embed"
)

// padimName is PaDiM's method name, and padimEmbedding Meta.Embedding for
// its channel selection.
const (
	padimName      = "padim"
	padimEmbedding = "padim"
)

// padimScoreBatch is the number of images PaDiM scores at a time: each
// Score call expands every position's triangle once, which costs about as
// much as the products of 8 images.
const padimScoreBatch = 32

func init() {
	Register(Method{Name: padimName, Order: 0,
		Summary:  "PaDiM: a Gaussian per patch position of layer1..3's drawn channels, Mahalanobis distance",
		Features: padimFeatures,
		New:      func(Params) (Detector, error) { return &padimDetector{}, nil }})
	RegisterFormat(padimMagic, padimName, func(r io.Reader) (Detector, Meta, error) {
		m, meta, err := LoadPaDiM(r)
		if err != nil {
			return nil, meta, err
		}
		switch {
		case meta.Embedding != padimEmbedding || !slices.Equal(meta.Layers, embed.PaDiMLayers):
			return nil, meta, fmt.Errorf("a PaDiM model must record the padim embedding of %v, not %q of %v", embed.PaDiMLayers, meta.Embedding, meta.Layers)
		case len(meta.Channels) != m.Dim:
			return nil, meta, fmt.Errorf("the PaDiM model has %d dims but records %d channels", m.Dim, len(meta.Channels))
		case meta.GridH*meta.GridW != m.Positions:
			return nil, meta, fmt.Errorf("the PaDiM model has %d positions but records a %dx%d grid", m.Positions, meta.GridH, meta.GridW)
		}
		return &padimDetector{m: m}, meta, nil
	})
}

// padimFeatures is PaDiM's feature pipeline: layer1..3, keeping the
// channels s records or those embed.PaDiMChannels draws.
func padimFeatures(s FeatureSettings) (FeatureSpec, error) {
	total := 0
	for _, l := range embed.PaDiMLayers {
		st, err := backbone.LayerIndex(l)
		if err != nil {
			return FeatureSpec{}, err
		}
		total += s.Arch.OutChannels(st)
	}
	channels := s.Channels
	if channels != nil {
		if err := checkIndices("padim_channels", channels, total, -1); err != nil {
			return FeatureSpec{}, err
		}
	} else {
		var err error
		if channels, err = embed.PaDiMChannels(total, s.PaDiMKeep, s.PaDiMSeed); err != nil {
			return FeatureSpec{}, fmt.Errorf("padim: %w", err)
		}
	}
	return FeatureSpec{Layers: slices.Clone(embed.PaDiMLayers), Embed: embed.PaDiM{Channels: channels},
		Embedding: padimEmbedding, Channels: channels}, nil
}

// padimDetector is PaDiM as a Detector: a PaDiMFitter fits its model.
type padimDetector struct{ m *PaDiM }

func (d *padimDetector) Info() Info {
	in := Info{Method: padimName, ScoreBatch: padimScoreBatch, MapScores: true}
	if m := d.m; m != nil {
		in.Dim = m.Dim
		in.Summary = fmt.Sprintf("%d positions x %d channels (%.2f GB)", m.Positions, m.Dim, float64(PaDiMBytes(m.Positions, m.Dim))/1e9)
	}
	return in
}

func (d *padimDetector) Fit(src Stream, opts FitOptions) error {
	f, err := Feed(src, opts, func(x Features) (*PaDiMFitter, error) {
		return NewPaDiMFitter(src.Images, x.Positions, x.Dim, FitterOptions{MaxMemory: opts.MaxMemory, TempDir: opts.TempDir,
			Progress: opts.progress("padim fit", "positions")})
	})
	if f != nil {
		defer f.Close()
	}
	if err != nil {
		return err
	}
	t0 := time.Now()
	if d.m, err = f.Fit(); err != nil {
		return err
	}
	opts.stage("fit", time.Since(t0).Seconds())
	return nil
}

func (d *padimDetector) Score(dst []float32, f Features) error {
	if d.m == nil {
		return errNotFitted
	}
	if f.Positions != d.m.Positions || f.Dim != d.m.Dim {
		return fmt.Errorf("detector: features of %d positions x %d dims, the model has %d x %d", f.Positions, f.Dim, d.m.Positions, d.m.Dim)
	}
	return d.m.Score(dst, f.Data, f.N, f.Positions)
}

// ImageScores is the maximum of each image's smoothed anomaly map.
func (d *padimDetector) ImageScores(_ []float32, n, _ int, maps [][]float32) ([]float32, error) {
	if len(maps) != n {
		return nil, fmt.Errorf("detector: padim's image scores need the %d images' anomaly maps, got %d", n, len(maps))
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = MapScore(maps[i])
	}
	return out, nil
}

func (d *padimDetector) Save(w io.Writer, meta Meta) error {
	if d.m == nil {
		return errNotFitted
	}
	return d.m.Save(w, meta)
}

func (d *padimDetector) Close() error { return nil }
