package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/softpatch/softpatch/engine/compute"
	"github.com/softpatch/softpatch/engine/coreset"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/engine/knn"
	"github.com/softpatch/softpatch/experiments/bench"
	"github.com/softpatch/softpatch/experiments/runner"
)

func runBench(args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "features":
			return benchFeatures(args[1:])
		case "coreset":
			return benchCoreset(args[1:])
		case "padim":
			return benchPaDiM(args[1:])
		case "knn":
			return benchKNN(args[1:])
		}
	}
	return subverb(args, "features|coreset|padim|knn", "bench features|coreset|padim|knn [flags]")
}

// printJSON prints v as one JSON line.
func printJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}

// benchFeatures measures the backbone and the patch embedding.
func benchFeatures(args []string) error {
	fs := newFlags("bench features", "bench features [--batches 1,8] [--images N] [--json]",
		"softpatch bench features --batches 1,8 --images 16")
	var ff featureFlags
	ff.register(fs, false)
	batches := fs.String("batches", "1,8", "comma-separated batch sizes to measure")
	images := fs.Int("images", 16, "images timed per batch size (after one warm-up batch)")
	asJSON := fs.Bool("json", false, "print results as JSON lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var ns []int
	for _, f := range strings.Split(*batches, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("--batches: bad batch size %q", f)
		}
		ns = append(ns, n)
	}
	t0 := time.Now()
	b, p, err := ff.openPatch()
	if err != nil {
		return err
	}
	defer b.Close()
	res, err := runner.BenchFeatures(p, ns, *images, time.Since(t0).Seconds())
	if err != nil {
		return err
	}
	for _, r := range res {
		if *asJSON {
			if err := printJSON(r); err != nil {
				return err
			}
			continue
		}
		fmt.Printf("%s to %s at %d, batch %d, %d threads (%s): %.3f s/image, %.2f images/s, %.1f GFLOP/s; embedding %.4f s/image; features %.2f images/s on %s; peak RSS %.0f MB\n",
			r.Backbone, r.Layer, r.ImageSize, r.Batch, r.Threads, r.BLAS, r.SecondsPerImg, r.ImagesPerSec, r.GFLOPs, r.EmbedSeconds, r.FeaturesPerSec, r.Device, r.PeakRSSMB)
	}
	return nil
}

// benchCoreset times the approximate greedy coreset on saved features.
func benchCoreset(args []string) error {
	fs := newFlags("bench coreset", "bench coreset --features FILE.npy [--ratio 0.1] [--starts 10] [--seed S] [--device cpu|gpu] [--json]",
		"softpatch bench coreset --features wood.npy --ratio 0.1")
	file := fs.String("features", "", "float32 .npy of patch features, [images][positions][dim] (softpatch embed) or [n][dim] (required)")
	var o bench.CoresetOptions
	fs.Float64Var(&o.Ratio, "ratio", detector.DefaultCoreset, "fraction of the patches selected")
	fs.IntVar(&o.Starts, "starts", coreset.PatchCoreStarts, "random start points (10 PatchCore, 128 SoftPatch)")
	fs.Uint64Var(&o.Seed, "seed", 0, "seed of the projection and the start points")
	threads := fs.Int("threads", 0, "goroutines (0: all CPUs)")
	fs.StringVar(&o.Device, "device", "cpu", "cpu, gpu or auto: where the selection loop runs")
	asJSON := fs.Bool("json", false, "print the result as a JSON line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" || fs.NArg() > 0 {
		return fmt.Errorf("bench coreset: --features FILE is required and it takes no arguments")
	}
	if *threads > 0 {
		compute.SetThreads(*threads)
	}
	r, err := bench.Coreset(*file, o)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(r)
	}
	fmt.Printf("coreset of %s: %d of %d patches (dim %d, %d start points, %d threads, %s): projection %.2f s, selection %.2f s (selection hash %s); peak RSS %.0f MB\n",
		*file, r.Picks, r.N, r.Dim, r.Starts, r.Threads, r.Device, r.ProjectSeconds, r.SelectSeconds, r.Selection, r.PeakRSSMB)
	return nil
}

// benchPaDiM times PaDiM's fit and Mahalanobis scoring on seeded random
// features of a given size.
func benchPaDiM(args []string) error {
	fs := newFlags("bench padim", "bench padim [--train 220] [--test 80] [--positions 3136] [--channels 550] [--json]",
		"softpatch bench padim --train 220 --test 80")
	train := fs.Int("train", 220, "training images")
	test := fs.Int("test", 80, "test images")
	positions := fs.Int("positions", 3136, "patch positions per image (3136: 56x56, layer1 at 224 px)")
	channels := fs.Int("channels", 550, "channels kept")
	threads := fs.Int("threads", 0, "goroutines (0: all CPUs)")
	asJSON := fs.Bool("json", false, "print the result as a JSON line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *train < 2 || *test < 1 || *positions < 1 || *channels < 1 || fs.NArg() > 0 {
		return fmt.Errorf("bench padim: want --train >= 2, --test, --positions, --channels >= 1 and no arguments")
	}
	if *threads > 0 {
		compute.SetThreads(*threads)
	}
	r, err := bench.PaDiM(*train, *test, *positions, *channels)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(r)
	}
	fmt.Printf("padim: fit %d images x %d positions x %d channels in %.2f s, scored %d images in %.2f s (%d threads, %s); model %.2f GB, peak RSS %.0f MB\n",
		r.Train, r.Positions, r.Channels, r.FitSeconds, r.Test, r.ScoreSeconds, r.Threads, r.BLAS, r.ModelGB, r.PeakRSSMB)
	return nil
}

// benchKNN times the nearest-neighbour scoring, brute force against the
// pruned exact search, on a fitted bank and test features or on isotropic
// Gaussian data.
func benchKNN(args []string) error {
	fs := newFlags("bench knn", "bench knn (--model FILE --features FILE.npy | --isotropic N) [--images 80] [--knn auto|exact] [--reps 2] [--json]",
		"softpatch bench knn --model wood.model --features wood-test.npy")
	var o bench.KNNOptions
	fs.StringVar(&o.Model, "model", "", "memory-bank model file (softpatch fit)")
	fs.StringVar(&o.Features, "features", "", "float32 .npy of test patch features, [images][positions][dim] (softpatch embed)")
	fs.IntVar(&o.Isotropic, "isotropic", 0, "instead of --model and --features: a Gaussian bank of N rows and Gaussian queries (the worst case for pruning)")
	fs.IntVar(&o.Dim, "dim", 1024, "dimension of the isotropic data")
	fs.IntVar(&o.Images, "images", 80, "test images (of 784 queries with --isotropic; the first N of --features, 0: all)")
	fs.TextVar(&o.Search, "knn", knn.Auto, "the pruned side's mode: auto (falls back to the brute force where pruning does not pay) or exact (always prunes)")
	fs.IntVar(&o.Reps, "reps", 2, "timed rounds of each search (the fastest is reported)")
	fs.IntVar(&o.Batch, "batch", 8, "images per search call, as a cell scores its test batches")
	threads := fs.Int("threads", 0, "goroutines (0: all CPUs)")
	asJSON := fs.Bool("json", false, "print the result as a JSON line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || (o.Isotropic > 0) == (o.Model != "" || o.Features != "") || o.Isotropic == 0 && (o.Model == "" || o.Features == "") {
		return fmt.Errorf("bench knn: give --model and --features, or --isotropic N, and no arguments")
	}
	if o.Search == knn.Brute {
		return fmt.Errorf("bench knn: --knn brute: the brute force is always the other side")
	}
	if *threads > 0 {
		compute.SetThreads(*threads)
	}
	r, err := bench.KNN(o)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(r)
	}
	fmt.Printf("knn on %s: bank %d x %d, %d queries, %d threads (%s): brute force %.2f s, pruned (%s) %.2f s: %.2fx; %.4f of the distances computed; %d differences; principal coordinates %.2f s; peak RSS %.0f MB\n",
		r.Data, r.Bank, r.Dim, r.Queries, r.Threads, r.BLAS, r.BruteSeconds, r.Search, r.PrunedSeconds, r.SpeedUp, r.Computed, r.Differences, r.PrincipalSeconds, r.PeakRSSMB)
	return nil
}
