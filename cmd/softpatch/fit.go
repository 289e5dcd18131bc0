package main

import (
	"fmt"

	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/internal/atomicfile"
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
	if !flagGiven(fs, "decision-rounds") {
		// A model is fitted once and used long: its threshold is set
		// from every training image, held out once (five extra fits).
		cf.decision.Rounds = 0
	}
	if *out == "" || fs.NArg() > 0 {
		return fmt.Errorf("fit: --out MODEL is required and it takes no arguments")
	}
	if err := atomicfile.CheckWritable(*out); err != nil {
		return fmt.Errorf("fit: %w", err)
	}
	cl, b, err := cf.load("fit")
	if err != nil {
		return err
	}
	defer b.Close()
	d, meta, err := cl.Fit(b, cf.options(*out))
	if err != nil {
		return err
	}
	defer d.Close()
	if err := detector.SaveFile(*out, d, meta); err != nil {
		return err
	}
	fmt.Printf("%s %s noise %g: %s, backbone %s -> %s\n", cl.Class.Name, meta.Method, cl.Noise.Ratio, d.Info().Summary, b.Identity(), *out)
	if dc := meta.Decision; dc != nil {
		fmt.Printf("decision threshold %.6g: false-positive rate %g on %d normal %s images\n", dc.Threshold, dc.FPR, dc.Images, dc.Source)
	}
	return nil
}
