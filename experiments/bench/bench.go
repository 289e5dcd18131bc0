// Package bench measures the hot paths that need no backbone: the greedy
// coreset on saved features and PaDiM's fit and scoring (the features'
// benchmark, runner.BenchFeatures, needs an opened backbone). The
// softpatch bench verbs print what these return.
package bench

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"time"

	"github.com/softpatch/softpatch/engine/compute"
	"github.com/softpatch/softpatch/engine/coreset"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/experiments/runner/device"
	"github.com/softpatch/softpatch/internal/buildinfo"
	"github.com/softpatch/softpatch/internal/npy"
)

// CoresetResult is one measured coreset selection.
type CoresetResult struct {
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

// Coreset times the approximate greedy coreset on the features of
// a float32 .npy file, [images][positions][dim] (EmbedFiles' output) or
// [n][dim].
func Coreset(file string, o CoresetOptions) (*CoresetResult, error) {
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
	return &CoresetResult{Commit: buildinfo.Commit(), Features: file, N: n, Dim: dim, Picks: len(sel), Starts: o.Starts, Threads: compute.Threads(),
		ProjectSeconds: t1.Sub(t0).Seconds(), SelectSeconds: time.Since(t1).Seconds(), Selection: hashIndices(sel),
		Device: cmp.Or(gpu.Describe(), compute.BLASInfo()), PeakRSSMB: buildinfo.PeakRSSMB()}, nil
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

// PaDiMResult is one measured PaDiM fit and scoring.
type PaDiMResult struct {
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

// PaDiM times PaDiM's fit on train images and its Mahalanobis
// scoring of test images, of positions x channels seeded random features
// (the cost does not depend on the values), scoring as many images at a
// time as a cell does.
func PaDiM(train, test, positions, channels int) (*PaDiMResult, error) {
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
	res := &PaDiMResult{Commit: buildinfo.Commit(), Train: train, Test: test, Positions: p, Channels: d, Threads: compute.Threads(),
		BLAS: compute.BLASInfo(), FitSeconds: fit, ScoreSeconds: time.Since(t0).Seconds(),
		ModelGB: float64(detector.PaDiMBytes(p, d)) / 1e9, PeakRSSMB: buildinfo.PeakRSSMB()}
	for _, v := range dist {
		res.DistanceChecksum += float64(v)
	}
	return res, nil
}
