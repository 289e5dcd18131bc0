package main

import (
	"fmt"

	"github.com/softpatch/softpatch/experiments/runner"
)

func runPredict(args []string) error {
	fs := newFlags("predict", "predict --model MODEL --out DIR [--weights FILE] IMAGE...",
		"softpatch predict --model wood.model --out pred data/synth/wood/test/*/*.png")
	var o runner.PredictOptions
	fs.StringVar(&o.Model, "model", "", "model file written by fit (required)")
	fs.StringVar(&o.Out, "out", "", "output folder (required): scores.json, <stem>_map.npy, <stem>_overlay.png")
	fs.StringVar(&o.Weights, "weights", "", "checkpoint of the model's backbone; default: the path the model records if it exists, then the usual search (see fit -h)")
	fs.IntVar(&o.Threads, "threads", 0, "compute threads (0: GOMAXPROCS, normally all cores)")
	fs.StringVar(&o.Device, "device", "auto", "auto, cpu or gpu (see eval -h)")
	fs.IntVar(&o.Batch, "batch", 8, "images per forward pass")
	if err := fs.Parse(args); err != nil {
		return err
	}
	images := fs.Args()
	if o.Model == "" || o.Out == "" || len(images) == 0 {
		return fmt.Errorf("predict: --model, --out and at least one image are required")
	}
	_, err := runner.Predict(images, o)
	return err
}
