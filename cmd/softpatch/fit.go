package main

import (
	"fmt"
	"log/slog"
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

	t0 := time.Now()
	fitter, positions, err := cl.fitTrain(cf.batch, cf.featureMemory, p.eachBatch)
	if err != nil {
		return err
	}
	defer fitter.Close()
	gh, gw, err := p.grid(positions)
	if err != nil {
		return err
	}
	slog.Info("stage done", "stage", "features", "seconds", fmt.Sprintf("%.2f", time.Since(t0).Seconds()))
	t0 = time.Now()
	model, err := fitter.Fit()
	if err != nil {
		return err
	}
	slog.Info("stage done", "stage", "fit", "seconds", fmt.Sprintf("%.2f", time.Since(t0).Seconds()))

	meta := p.meta(gh, gw)
	meta.Method, meta.Data, meta.Class, meta.Train = cf.method, c.Root, c.Name, len(train)
	meta.NoiseFiles = cl.noiseFiles()
	if err := model.SaveFile(*out, meta); err != nil {
		return err
	}
	fmt.Printf("%s %s noise %g: bank %d x %d (%d excluded), backbone %s -> %s\n",
		c.Name, cf.method, n.Ratio, model.N, model.D, model.Excluded, p.id, *out)
	return nil
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
	return detector.Meta{
		Backbone: p.id, Layers: slices.Clone(p.layers), Resize: p.pre.Resize, ImageSize: p.pre.ImageSize,
		ResizeMode: p.pre.Mode.String(), GridH: gh, GridW: gw,
		Created: time.Now().UTC().Format(time.RFC3339), SoftpatchVersion: version, Commit: commit(),
	}
}
