package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/softpatch/softpatch/internal/atomicfile"
)

func runEval(args []string) error {
	fs := newFlags("eval", "eval --data ROOT --class C --method M [--noise R --overlap --fold F] [flags] --json OUT",
		"softpatch eval --data data/synth --class wood --method softpatch-lof --noise 0.1 --overlap --json wood.json")
	var cf cellFlags
	cf.register(fs)
	out := fs.String("json", "", "write the cell's JSON here (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return fmt.Errorf("eval: --json OUT is required and it takes no arguments")
	}
	if err := atomicfile.CheckWritable(*out); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	cl, b, err := cf.load("eval")
	if err != nil {
		return err
	}
	defer b.Close()
	res, err := cl.Run(b, cf.options(*out))
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(*out, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", " ")
		return enc.Encode(res)
	}); err != nil {
		return err
	}
	fmt.Printf("%s %s noise %g overlap %t: image AUROC %.4f, pixel AUROC %.4f, AUPRO %.4f (%d training images) -> %s\n",
		res.Class, res.Method, res.Noise.Ratio, res.Noise.Overlap, res.ImageAUROC, res.PixelAUROC, res.AUPRO, res.Train, *out)
	if f := res.Filter; f != nil {
		fmt.Printf("filter %s dropped %d training images, %d of the %d injected: precision %.3f, recall %.3f\n",
			f.Method, len(f.Dropped), f.DroppedNoise, f.Injected, f.Precision, f.Recall)
	}
	if d := res.Decision; d != nil {
		fmt.Printf("decision threshold %.6g (%s, %d images, false-positive rate %g asked): on the test set false-positive rate %s, false-negative rate %s\n",
			d.Threshold, d.Source, d.Images, d.FPR, rate(d.TestFPR), rate(d.TestFNR))
	}
	return nil
}

// rate formats a rate that may be undefined (nil).
func rate(r *float64) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("%.3f", *r)
}
