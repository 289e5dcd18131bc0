package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/detector"
)

// runFit fits one detector on one class's (noisy) training set, as eval
// does up to its fit stage, and saves the model with the feature
// pipeline's description (detector.Meta) for predict.
func runFit(args []string) error {
	fs := newFlags("fit", "fit --data ROOT --class C --method M [--noise R --overlap --fold F --noise-list FILE] [flags] --out MODEL",
		"softpatch fit --data data/synth --class wood --method softpatch-lof --noise 0.1 --out wood.model")
	var cf cellFlags
	cf.register(fs)
	out := fs.String("out", "", "model file to write (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return fmt.Errorf("fit: --out MODEL is required and it takes no arguments")
	}
	cl, err := cf.load("fit")
	if err != nil {
		return err
	}
	c, n, train := cl.class, cl.noise, cl.train
	p, err := cf.features.open()
	if err != nil {
		return err
	}
	st := stages{}
	if cl.filter != nil {
		if train, _, err = cl.applyFilter(p, cf.batch, cf.featureMemory, (*pipeline).eachBatch, st, nil); err != nil {
			return err
		}
	}
	t, err := fitOn(p, cl.method, cl.cfg, train, cf.batch, cf.featureMemory, (*pipeline).eachBatch, st, "")
	if err != nil {
		return err
	}
	defer t.close()
	gh, gw, err := t.p.grid(t.positions)
	if err != nil {
		return err
	}
	meta := t.p.meta(gh, gw)
	meta.Method, meta.Data, meta.Class, meta.Train = methodLabel(cl), c.Root, c.Name, len(train)
	meta.NoiseFiles = cl.noiseFiles()
	if m := t.padim; m != nil {
		if err := m.SaveFile(*out, meta); err != nil {
			return err
		}
		fmt.Printf("%s %s noise %g: %d positions x %d channels (%.2f GB), backbone %s -> %s\n",
			c.Name, meta.Method, n.Ratio, m.Positions, m.Dim, float64(detector.PaDiMBytes(m.Positions, m.Dim))/1e9, p.id, *out)
		return nil
	}
	model := t.bank
	if err := model.SaveFile(*out, meta); err != nil {
		return err
	}
	fmt.Printf("%s %s noise %g: bank %d x %d (%d excluded), backbone %s -> %s\n",
		c.Name, meta.Method, n.Ratio, model.N, model.D, model.Excluded, p.id, *out)
	return nil
}

// methodLabel is the cell's method as results name it: the detector, or
// "FILTER+DETECTOR".
func methodLabel(cl *cell) string {
	if cl.filter != nil {
		return cl.filter.method + "+" + cl.method
	}
	return cl.method
}

// grid returns the patch grid of one image at the pipeline's image size
// and checks that it has positions cells.
func (p *pipeline) grid(positions int) (int, int, error) {
	size := p.pre.ImageSize
	first, err := backbone.LayerIndex(p.layers[0])
	if err != nil {
		return 0, 0, err
	}
	stride := 4 << first // layer1: 4, layer2: 8, layer3: 16
	gh, gw := p.embed.Grid((size+stride-1)/stride, (size+stride-1)/stride)
	if gh*gw != positions {
		return 0, 0, fmt.Errorf("%d patch positions do not form the %dx%d grid of %s at %d px", positions, gh, gw, p.layers[0], size)
	}
	return gh, gw, nil
}

// meta describes the pipeline for a model file.
func (p *pipeline) meta(gh, gw int) detector.Meta {
	emb := ""
	if p.isPaDiM() {
		emb = detector.MethodPaDiM
	}
	return detector.Meta{
		Embedding: emb,
		Backbone:  p.id, Layers: slices.Clone(p.layers), Resize: p.pre.Resize, ImageSize: p.pre.ImageSize,
		ResizeMode: p.pre.Mode.String(), GridH: gh, GridW: gw, Channels: p.channels(),
		Created: time.Now().UTC().Format(time.RFC3339), SoftpatchVersion: version, Commit: commit(),
	}
}
