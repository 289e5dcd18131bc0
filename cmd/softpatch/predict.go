package main

import (
	"fmt"
	"github.com/softpatch/softpatch/engine/knn"
	"math"
	"strconv"

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
	threshold := fs.String("threshold", "", "decision threshold to use instead of the model's (images scoring above it are anomalous)")
	search := fs.String("knn", "", "memory banks' nearest-neighbour search on the CPU, instead of the model's: auto, exact or brute (the same scores)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	images := fs.Args()
	if o.Model == "" || o.Out == "" || len(images) == 0 {
		return fmt.Errorf("predict: --model, --out and at least one image are required")
	}
	if *threshold != "" {
		t, err := strconv.ParseFloat(*threshold, 64)
		if err != nil || math.IsNaN(t) {
			return fmt.Errorf("predict: --threshold %q is not a number", *threshold)
		}
		o.Threshold = &t
	}
	if *search != "" {
		m, err := knn.ParseMode(*search)
		if err != nil {
			return fmt.Errorf("predict: --knn: %w", err)
		}
		o.Search = &m
	}
	res, err := runner.Predict(images, o)
	if err != nil {
		return err
	}
	if d := res.Decision; d != nil {
		for _, s := range res.Scores {
			verdict, cmp := "normal", "<="
			if *s.Anomalous {
				verdict, cmp = "anomalous", ">"
			}
			fmt.Printf("%s: %s (score %.6g %s threshold %.6g)\n", s.File, verdict, s.Score, cmp, d.Threshold)
		}
	} else {
		for _, s := range res.Scores {
			fmt.Printf("%s: score %.6g (the model has no decision threshold: fit it with --decision, or give --threshold)\n", s.File, s.Score)
		}
	}
	return nil
}
