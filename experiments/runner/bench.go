package runner

import (
	"cmp"
	"encoding/binary"
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
	"github.com/softpatch/softpatch/experiments/runner/device"
	"github.com/softpatch/softpatch/internal/npy"
)

// FeatureBench is one measured batch size of the feature extractor.
type FeatureBench struct {
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

// BenchFeatures measures the backbone (forward passes to the pipeline's
// layers) and the pipeline's embedding, then the features as a cell
// computes them (on a GPU: PatchCore's embedding on the device too), at
// each batch size, over about images images after one warm-up batch.
// openSeconds is the time Open took, reported with each result.
func BenchFeatures(p *Pipeline, batches []int, images int, openSeconds float64) ([]FeatureBench, error) {
	b := p.b
	s := b.pre.ImageSize
	flops := b.net.Arch.FLOPs(s, s, b.deepest)
	var out []FeatureBench
	for _, n := range batches {
		if n < 1 {
			return nil, fmt.Errorf("bench: bad batch size %d", n)
		}
		x := make([]float32, n*3*s*s)
		for i := range x {
			x[i] = float32((i*7919)%2001)/1000 - 1
		}
		if _, err := b.forward(x, n, p.spec.Layers); err != nil { // warm-up: builds the graph
			return nil, err
		}
		rounds := max(1, images/n)
		var fwd, emb time.Duration
		for r := 0; r < rounds; r++ {
			t0 := time.Now()
			feats, err := b.forward(x, n, p.spec.Layers)
			if err != nil {
				return nil, err
			}
			t1 := time.Now()
			if _, _, err := p.spec.Embed.Embed(feats); err != nil {
				return nil, err
			}
			fwd += t1.Sub(t0)
			emb += time.Since(t1)
		}
		t2 := time.Now()
		for r := 0; r < rounds; r++ {
			if _, err := p.features(x, n); err != nil {
				return nil, err
			}
		}
		feat := time.Since(t2)
		imgs := float64(rounds * n)
		out = append(out, FeatureBench{
			Commit: Commit(), Arch: b.net.Arch.Name, Backbone: b.id.String(), RandomInit: b.id.RandomInit, Mark: b.Mark(),
			OpenSeconds: openSeconds, Layer: backbone.Layers[b.deepest], ImageSize: s, Batch: n, Threads: compute.Threads(),
			BLAS: compute.BLASInfo(), SecondsPerImg: fwd.Seconds() / imgs, ImagesPerSec: imgs / fwd.Seconds(),
			GFLOPs: flops * imgs / fwd.Seconds() / 1e9, EmbedSeconds: emb.Seconds() / imgs, FeaturesPerSec: imgs / feat.Seconds(),
			Device: b.Device(), PeakRSSMB: peakRSSMB(),
		})
	}
	return out, nil
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

// CoresetBench is one measured coreset selection.
type CoresetBench struct {
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

// CoresetOptions are the settings of BenchCoreset.
type CoresetOptions struct {
	// Ratio is the fraction of the patches selected, Starts the random
	// start points, Seed the seed of the projection and the start points.
	Ratio  float64
	Starts int
	Seed   uint64
	// Device is where the selection loop runs: cpu, gpu or auto.
	Device string
}

// BenchCoreset times the approximate greedy coreset on the features of
// a float32 .npy file, [images][positions][dim] (EmbedFiles' output) or
// [n][dim].
func BenchCoreset(file string, o CoresetOptions) (*CoresetBench, error) {
	gpu, err := device.Open(o.Device)
	if err != nil {
		return nil, err
	}
	defer gpu.Close()
	a, err := npy.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if a.F32 == nil || len(a.Shape) < 2 || a.Len() == 0 {
		return nil, fmt.Errorf("bench coreset: %s: want a non-empty float32 array of 2 or 3 dimensions, got %s %v", file, a.DType, a.Shape)
	}
	dim := a.Shape[len(a.Shape)-1]
	n, x := a.Len()/dim, a.F32
	a.F32 = nil
	g := coreset.Greedy{Ratio: o.Ratio, Starts: o.Starts, Seed: o.Seed}
	if gpu.Device() != nil {
		g.Steps = gpu.Accelerator().CoresetSteps
	}
	t0 := time.Now()
	if dim != coreset.DefaultDim {
		x = coreset.Project(nil, x, n, dim, coreset.NewProjection(dim, coreset.DefaultDim, o.Seed), coreset.DefaultDim)
	}
	t1 := time.Now()
	sel, err := g.SelectProjected(x, n, coreset.DefaultDim)
	if err != nil {
		return nil, err
	}
	return &CoresetBench{Commit: Commit(), Features: file, N: n, Dim: dim, Picks: len(sel), Starts: o.Starts, Threads: compute.Threads(),
		ProjectSeconds: t1.Sub(t0).Seconds(), SelectSeconds: time.Since(t1).Seconds(), Selection: hashIndices(sel),
		Device: cmp.Or(gpu.Describe(), compute.BLASInfo()), PeakRSSMB: peakRSSMB()}, nil
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

// PaDiMBench is one measured PaDiM fit and scoring.
type PaDiMBench struct {
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

// BenchPaDiM times PaDiM's fit on train images and its Mahalanobis
// scoring of test images, of positions x channels seeded random features
// (the cost does not depend on the values), scoring as many images at a
// time as a cell does.
func BenchPaDiM(train, test, positions, channels int) (*PaDiMBench, error) {
	if train < 2 || test < 1 || positions < 1 || channels < 1 {
		return nil, fmt.Errorf("bench padim: want train >= 2, test, positions, channels >= 1")
	}
	p, d := positions, channels
	r := rand.New(rand.NewPCG(1, 2))
	feats := func(n int) []float32 {
		x := make([]float32, n*p*d)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		return x
	}
	x := feats(train)
	t0 := time.Now()
	m, err := detector.FitPaDiM(x, train, p, d)
	if err != nil {
		return nil, err
	}
	fit := time.Since(t0).Seconds()
	pd, err := detector.New("padim", detector.Params{})
	if err != nil {
		return nil, err
	}
	defer pd.Close()
	group := max(1, pd.Info().ScoreBatch)
	x = feats(min(test, group))
	dist := make([]float32, test*p)
	t0 = time.Now()
	for lo := 0; lo < test; lo += group {
		n := min(group, test-lo)
		if err := m.Score(dist[lo*p:(lo+n)*p], x[:n*p*d], n, p); err != nil {
			return nil, err
		}
	}
	res := &PaDiMBench{Commit: Commit(), Train: train, Test: test, Positions: p, Channels: d, Threads: compute.Threads(),
		BLAS: compute.BLASInfo(), FitSeconds: fit, ScoreSeconds: time.Since(t0).Seconds(),
		ModelGB: float64(detector.PaDiMBytes(p, d)) / 1e9, PeakRSSMB: peakRSSMB()}
	for _, v := range dist {
		res.DistanceChecksum += float64(v)
	}
	return res, nil
}
