package runner

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/experiments"
)

// cellSettings resolves everything cell c's numbers depend on, under the
// options o of a backbone arch with identity id.
func cellSettings(o Options, arch backbone.Arch, id backbone.Identity, c *Cell) (*experiments.Settings, error) {
	root, err := filepath.Abs(c.Class.Root)
	if err != nil {
		return nil, err
	}
	images, err := c.Class.FilesHash()
	if err != nil {
		return nil, err
	}
	p := c.Params
	s := &experiments.Settings{
		Numerics: experiments.NumericsVersion,
		Data:     experiments.DataSettings{Root: root, Format: string(c.Class.Format), Class: c.Class.Name, Images: images},
		Noise:    c.Noise,
		Method:   c.Label(),
		Detector: experiments.DetectorSettings{Coreset: p.Coreset, Threshold: p.Threshold, LOFK: p.LOFK, Seed: p.Seed, SoftWeight: !p.NoSoftWeight},
		Features: experiments.FeatureSettings{Arch: id.Arch, Weights: "sha256 " + id.SHA256, BNPass: id.BNPass,
			Resize: o.Resize, ImageSize: o.ImageSize, ResizeMode: o.ResizeMode},
	}
	if id.RandomInit {
		s.Features.Weights = fmt.Sprintf("random-init seed %d", id.Seed)
	}
	if c.decisionSource() != "" {
		d := c.Decision
		s.Decision = &d
	}
	if f := c.Filter; f != nil {
		s.Detector.Filter = &experiments.FilterRule{Method: f.Method, Drop: f.Drop, Threshold: f.Threshold}
	}
	for _, m := range c.Methods() {
		if opt, ok := p.Options[m]; ok {
			if s.Detector.Options == nil {
				s.Detector.Options = map[string]any{}
			}
			s.Detector.Options[m] = opt
		}
		method, err := detector.Lookup(m)
		if err != nil {
			return nil, err
		}
		spec, err := method.Features(detector.FeatureSettings{Layers: o.Layers, Arch: arch, PaDiMKeep: o.PaDiMKeep, PaDiMSeed: o.PaDiMSeed,
			Options: p.Options[m]})
		if err != nil {
			return nil, err
		}
		emb, err := json.Marshal(spec.Embed)
		if err != nil {
			return nil, fmt.Errorf("settings of %s: %w", m, err)
		}
		s.Features.Pipelines = append(s.Features.Pipelines, experiments.PipelineSettings{Method: m, Layers: spec.Layers,
			Embedding: fmt.Sprintf("%T", spec.Embed), Embed: emb})
	}
	return s, nil
}

// settings resolves cell c's settings on b.
func (b *Backbone) settings(c *Cell) (*experiments.Settings, error) {
	return cellSettings(b.opts, b.net.Arch, b.id, c)
}
