package main

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/compute"
	"github.com/softpatch/softpatch/engine/coreset"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/internal/npy"
)

// benchResult is one measured batch size.
type benchResult struct {
	Commit        string  `json:"commit"`
	Arch          string  `json:"arch"`
	Backbone      string  `json:"backbone"` // identity, with the random-init mark when no checkpoint was found
	RandomInit    bool    `json:"random_init"`
	Mark          string  `json:"mark,omitempty"`
	OpenSeconds   float64 `json:"open_seconds"` // checkpoint load, published BatchNorm pass, folding
	Layer         string  `json:"deepest_layer"`
	ImageSize     int     `json:"imagesize"`
	Batch         int     `json:"batch"`
	Threads       int     `json:"threads"`
	BLAS          string  `json:"blas"`
	SecondsPerImg float64 `json:"seconds_per_image"`
	ImagesPerSec  float64 `json:"images_per_second"`
	GFLOPs        float64 `json:"gflop_per_second"`
	EmbedSeconds  float64 `json:"embed_seconds_per_image"`
	// FeaturesPerSec is images/s of backbone + embedding as eval runs them
	// (on Device).
	FeaturesPerSec float64 `json:"features_per_sec"`
	Device         string  `json:"device"`
	PeakRSSMB      float64 `json:"peak_rss_mb"`
}

func runBench(args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "features":
			return benchFeatures(args[1:])
		case "coreset":
			return benchCoreset(args[1:])
		case "padim":
			return benchPaDiM(args[1:])
		}
	}
	return subverb(args, "features|coreset|padim", "bench features|coreset|padim [flags]")
}

// benchFeatures measures the backbone and the patch embedding.
func benchFeatures(args []string) error {
	fs := newFlags("bench features", "bench features [--batches 1,8] [--images N] [--json]",
		"softpatch bench features --batches 1,8 --images 16")
	var ff featureFlags
	ff.register(fs)
	batches := fs.String("batches", "1,8", "comma-separated batch sizes to measure")
	images := fs.Int("images", 16, "images timed per batch size (after one warm-up batch)")
	asJSON := fs.Bool("json", false, "print results as JSON lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	t0 := time.Now()
	p, err := ff.open()
	if err != nil {
		return err
	}
	openSeconds := time.Since(t0).Seconds()
	mark := ""
	if p.id.RandomInit {
		mark = randomInitMark
	}
	deepest := p.deepest
	s := p.pre.ImageSize
	flops := p.net.Arch.FLOPs(s, s, deepest)
	for _, f := range strings.Split(*batches, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("--batches: bad batch size %q", f)
		}
		x := make([]float32, n*3*s*s)
		for i := range x {
			x[i] = float32((i*7919)%2001)/1000 - 1
		}
		if _, err := p.forward(x, n, p.layers); err != nil { // warm-up: builds the graph
			return err
		}
		rounds := max(1, *images/n)
		var fwd, emb time.Duration
		for r := 0; r < rounds; r++ {
			t0 := time.Now()
			feats, err := p.forward(x, n, p.layers)
			if err != nil {
				return err
			}
			t1 := time.Now()
			if _, _, err := p.embed.Embed(feats); err != nil {
				return err
			}
			fwd += t1.Sub(t0)
			emb += time.Since(t1)
		}
		// Features as eval computes them (on a GPU: the embedding on the
		// device too), timed on their own.
		t2 := time.Now()
		for r := 0; r < rounds; r++ {
			if _, _, err := p.features(x, n); err != nil {
				return err
			}
		}
		feat := time.Since(t2)
		imgs := float64(rounds * n)
		res := benchResult{
			Commit: commit(), Arch: p.net.Arch.Name, Backbone: p.id.String(), RandomInit: p.id.RandomInit, Mark: mark,
			OpenSeconds: openSeconds, Layer: backbone.Layers[deepest], ImageSize: s, Batch: n, Threads: compute.Threads(),
			BLAS: compute.BLASInfo(), SecondsPerImg: fwd.Seconds() / imgs, ImagesPerSec: imgs / fwd.Seconds(),
			GFLOPs: flops * imgs / fwd.Seconds() / 1e9, EmbedSeconds: emb.Seconds() / imgs, FeaturesPerSec: imgs / feat.Seconds(),
			Device: p.deviceName(), PeakRSSMB: peakRSSMB(),
		}
		if *asJSON {
			b, _ := json.Marshal(res)
			fmt.Println(string(b))
			continue
		}
		fmt.Printf("%s to %s at %d, batch %d, %d threads (%s): %.3f s/image, %.2f images/s, %.1f GFLOP/s; embedding %.4f s/image; features %.2f images/s on %s; peak RSS %.0f MB\n",
			res.Backbone, res.Layer, s, n, res.Threads, res.BLAS, res.SecondsPerImg, res.ImagesPerSec, res.GFLOPs, res.EmbedSeconds, res.FeaturesPerSec, res.Device, res.PeakRSSMB)
	}
	return nil
}

// peakRSSMB reads the process's peak resident set size (VmHWM) on Linux, 0 elsewhere.
func peakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// coresetResult is one measured coreset selection.
type coresetResult struct {
	Commit         string  `json:"commit"`
	Features       string  `json:"features"`
	N              int     `json:"n"`
	Dim            int     `json:"dim"`
	Picks          int     `json:"picks"`
	Starts         int     `json:"starts"`
	Threads        int     `json:"threads"`
	ProjectSeconds float64 `json:"project_seconds"`
	SelectSeconds  float64 `json:"select_seconds"`
	Selection      string  `json:"selection_fnv64a"` // hash of the selected indices in order, to compare runs
	Device         string  `json:"device"`           // where the selection ran
	PeakRSSMB      float64 `json:"peak_rss_mb"`
}

// benchCoreset times the approximate greedy coreset on saved features.
func benchCoreset(args []string) error {
	fs := newFlags("bench coreset", "bench coreset --features FILE.npy [--ratio 0.1] [--starts 10] [--seed S] [--device cpu|gpu] [--json]",
		"softpatch bench coreset --features wood.npy --ratio 0.1")
	file := fs.String("features", "", "float32 .npy of patch features, [images][positions][dim] (softpatch embed) or [n][dim] (required)")
	ratio := fs.Float64("ratio", detector.DefaultCoreset, "fraction of the patches selected")
	starts := fs.Int("starts", coreset.PatchCoreStarts, "random start points (10 PatchCore, 128 SoftPatch)")
	seed := fs.Uint64("seed", 0, "seed of the projection and the start points")
	threads := fs.Int("threads", 0, "goroutines (0: all CPUs)")
	device := fs.String("device", "cpu", "cpu, gpu or auto: where the selection loop runs")
	asJSON := fs.Bool("json", false, "print the result as a JSON line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" || fs.NArg() > 0 {
		return fmt.Errorf("bench coreset: --features FILE is required and it takes no arguments")
	}
	gpu, err := openGPU(*device)
	if err != nil {
		return err
	}
	if *threads > 0 {
		compute.SetThreads(*threads)
	}
	a, err := npy.ReadFile(*file)
	if err != nil {
		return err
	}
	if a.F32 == nil || len(a.Shape) < 2 || a.Len() == 0 {
		return fmt.Errorf("bench coreset: %s: want a non-empty float32 array of 2 or 3 dimensions, got %s %v", *file, a.DType, a.Shape)
	}
	d := a.Shape[len(a.Shape)-1]
	n := a.Len() / d
	g := coreset.Greedy{Ratio: *ratio, Starts: *starts, Seed: *seed}
	if gpu.device() != nil {
		g.Steps = gpuAccel{gpu}.CoresetSteps
	}
	x := a.F32
	t0 := time.Now()
	if d != coreset.DefaultDim {
		x = coreset.Project(nil, x, n, d, coreset.NewProjection(d, coreset.DefaultDim, *seed), coreset.DefaultDim)
		a.F32 = nil
	}
	t1 := time.Now()
	sel, err := g.SelectProjected(x, n, coreset.DefaultDim)
	if err != nil {
		return err
	}
	res := coresetResult{Commit: commit(), Features: *file, N: n, Dim: d, Picks: len(sel), Starts: *starts, Threads: compute.Threads(),
		ProjectSeconds: t1.Sub(t0).Seconds(), SelectSeconds: time.Since(t1).Seconds(), Selection: hashIndices(sel), Device: cmp.Or(gpu.describe(), compute.BLASInfo()), PeakRSSMB: peakRSSMB()}
	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
		return nil
	}
	fmt.Printf("coreset of %s: %d of %d patches (dim %d, %d start points, %d threads, %s): projection %.2f s, selection %.2f s (selection hash %s); peak RSS %.0f MB\n",
		*file, res.Picks, n, d, *starts, res.Threads, res.Device, res.ProjectSeconds, res.SelectSeconds, res.Selection, res.PeakRSSMB)
	return nil
}

// hashIndices returns the FNV-1a 64-bit hash of the indices as
// little-endian int64 values, in hex.
func hashIndices(idx []int) string {
	h := fnv.New64a()
	var b [8]byte
	for _, i := range idx {
		binary.LittleEndian.PutUint64(b[:], uint64(i))
		h.Write(b[:])
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// padimResult is one measured PaDiM fit and scoring.
type padimResult struct {
	Commit           string  `json:"commit"`
	Train            int     `json:"train"`
	Test             int     `json:"test"`
	Positions        int     `json:"positions"`
	Channels         int     `json:"channels"`
	Threads          int     `json:"threads"`
	BLAS             string  `json:"blas"`
	FitSeconds       float64 `json:"fit_seconds"`
	ScoreSeconds     float64 `json:"score_seconds"`
	ModelGB          float64 `json:"model_gb"`
	PeakRSSMB        float64 `json:"peak_rss_mb"`
	DistanceChecksum float64 `json:"distance_sum"`
}

// benchPaDiM times PaDiM's fit and Mahalanobis scoring on seeded random
// features of a given size (the cost does not depend on the values).
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
	p, d := *positions, *channels
	r := rand.New(rand.NewPCG(1, 2))
	feats := func(n int) []float32 {
		x := make([]float32, n*p*d)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		return x
	}
	x := feats(*train)
	t0 := time.Now()
	m, err := detector.FitPaDiM(x, *train, p, d)
	if err != nil {
		return err
	}
	fit := time.Since(t0).Seconds()
	x = feats(min(*test, padimGroup))
	dist := make([]float32, *test*p)
	t0 = time.Now()
	for lo := 0; lo < *test; lo += padimGroup {
		n := min(padimGroup, *test-lo)
		if err := m.Score(dist[lo*p:(lo+n)*p], x[:n*p*d], n, p); err != nil {
			return err
		}
	}
	res := padimResult{Commit: commit(), Train: *train, Test: *test, Positions: p, Channels: d, Threads: compute.Threads(),
		BLAS: compute.BLASInfo(), FitSeconds: fit, ScoreSeconds: time.Since(t0).Seconds(),
		ModelGB: float64(detector.PaDiMBytes(p, d)) / 1e9, PeakRSSMB: peakRSSMB()}
	for _, v := range dist {
		res.DistanceChecksum += float64(v)
	}
	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
		return nil
	}
	fmt.Printf("padim: fit %d images x %d positions x %d channels in %.2f s, scored %d images in %.2f s (%d threads, %s); model %.2f GB, peak RSS %.0f MB\n",
		*train, p, d, res.FitSeconds, *test, res.ScoreSeconds, res.Threads, res.BLAS, res.ModelGB, res.PeakRSSMB)
	return nil
}
