package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/softpatch/softpatch/engine/compute"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/engine/knn"
	"github.com/softpatch/softpatch/internal/buildinfo"
	"github.com/softpatch/softpatch/internal/npy"
)

// KNNResult is the nearest-neighbour scoring of one set of test features
// against one memory bank by the brute force and by the pruned search
// (knn.Index), timed in alternation in one process.
type KNNResult struct {
	Commit    string `json:"commit"`
	Data      string `json:"data"` // the model and features files, or "isotropic"
	Bank      int    `json:"bank"`
	Dim       int    `json:"dim"`
	Queries   int    `json:"queries"`
	Positions int    `json:"positions"`
	Search    string `json:"search"` // the pruned side's mode: auto or exact
	Threads   int    `json:"threads"`
	BLAS      string `json:"blas"`
	// PrincipalSeconds is the time to compute the bank's principal
	// coordinates (at fit time in a cell).
	PrincipalSeconds float64 `json:"principal_seconds"`
	// BruteSeconds and PrunedSeconds are the fastest of Reps rounds of
	// scoring all queries (Batch images per Search call, as a cell scores
	// a batch of test images), and SpeedUp their ratio.
	BruteSeconds  float64 `json:"brute_seconds"`
	PrunedSeconds float64 `json:"pruned_seconds"`
	SpeedUp       float64 `json:"speed_up"`
	Reps          int     `json:"reps"`
	Batch         int     `json:"batch"`
	// Computed is the share of the query-bank distances the pruned search
	// computed in full in its last round.
	Computed float64 `json:"computed"`
	// Differences counts the queries whose neighbour or distance differs
	// (bit for bit) between the two searches.
	Differences int     `json:"differences"`
	PeakRSSMB   float64 `json:"peak_rss_mb"`
}

// KNNOptions are the settings of KNN.
type KNNOptions struct {
	// Model and Features name a memory-bank model file (softpatch fit) and
	// test features (softpatch embed, [images][positions][dim]); with
	// Isotropic > 0 they are not read and a Gaussian bank of Isotropic rows
	// and Images x 784 Gaussian queries of dimension Dim are drawn
	// instead (the worst case for pruning).
	Model, Features string
	Isotropic       int
	Dim, Images     int
	// Search is the pruned side's mode (knn.Auto or knn.Pruned).
	Search knn.Mode
	// Reps is the number of timed rounds of each search; Batch the images
	// per Search call.
	Reps, Batch int
}

// KNN times the brute force and the pruned search on the same bank and
// queries, alternating their rounds, and counts the results that differ.
func KNN(o KNNOptions) (*KNNResult, error) {
	if o.Reps < 1 || o.Batch < 1 {
		return nil, fmt.Errorf("bench knn: want reps and batch >= 1")
	}
	var bank, queries []float32
	var n, d, positions int
	data := "isotropic"
	if o.Isotropic > 0 {
		if o.Dim < 1 || o.Images < 1 {
			return nil, fmt.Errorf("bench knn: want dim and images >= 1")
		}
		n, d, positions = o.Isotropic, o.Dim, 784
		r := rand.New(rand.NewPCG(1, 2))
		gauss := func(k int) []float32 {
			x := make([]float32, k)
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			return x
		}
		bank, queries = gauss(n*d), gauss(o.Images*positions*d)
	} else {
		m, _, err := detector.LoadModelFile(o.Model)
		if err != nil {
			return nil, err
		}
		a, err := npy.ReadFile(o.Features)
		if err != nil {
			return nil, err
		}
		if a.F32 == nil || len(a.Shape) != 3 || a.Shape[2] != m.D {
			return nil, fmt.Errorf("bench knn: %s: want float32 [images][positions][%d], got %s %v", o.Features, m.D, a.DType, a.Shape)
		}
		bank, n, d, positions, queries = m.Bank, m.N, m.D, a.Shape[1], a.F32
		if o.Images > 0 && o.Images < a.Shape[0] {
			queries = queries[:o.Images*positions*d]
		}
		data = o.Model + " " + o.Features
	}
	nq := len(queries) / d
	t0 := time.Now()
	pr, err := knn.NewPrincipal(bank, n, d)
	if err != nil {
		return nil, err
	}
	res := &KNNResult{Commit: buildinfo.Commit(), Data: data, Bank: n, Dim: d, Queries: nq, Positions: positions, Search: o.Search.String(),
		Threads: compute.Threads(), BLAS: compute.BLASInfo(), PrincipalSeconds: time.Since(t0).Seconds(), Reps: o.Reps, Batch: o.Batch}
	brute := knn.NewIndex(bank, n, d)
	bd, bi := make([]float32, nq), make([]int32, nq)
	pd, pi := make([]float32, nq), make([]int32, nq)
	step := o.Batch * positions
	round := func(ix *knn.Index, dist []float32, idx []int32) (float64, error) {
		t := time.Now()
		for lo := 0; lo < nq; lo += step {
			hi := min(nq, lo+step)
			if err := ix.Search(dist[lo:hi], idx[lo:hi], queries[lo*d:hi*d], hi-lo, 1, 0); err != nil {
				return 0, err
			}
		}
		return time.Since(t).Seconds(), nil
	}
	res.BruteSeconds, res.PrunedSeconds = math.Inf(1), math.Inf(1)
	for range o.Reps {
		s, err := round(brute, bd, bi)
		if err != nil {
			return nil, err
		}
		res.BruteSeconds = min(res.BruteSeconds, s)
		// A fresh index per round: Auto's judgement of whether pruning
		// pays starts over, as in a new cell.
		pruned := knn.NewIndex(bank, n, d)
		if err := pruned.UsePrincipal(pr, o.Search); err != nil {
			return nil, err
		}
		if s, err = round(pruned, pd, pi); err != nil {
			return nil, err
		}
		res.PrunedSeconds = min(res.PrunedSeconds, s)
		st := pruned.Stats()
		res.Computed = float64(st.Computed) / float64(st.Pairs)
	}
	res.SpeedUp = res.BruteSeconds / res.PrunedSeconds
	for i := range bd {
		if math.Float32bits(bd[i]) != math.Float32bits(pd[i]) || bi[i] != pi[i] {
			res.Differences++
		}
	}
	res.PeakRSSMB = buildinfo.PeakRSSMB()
	return res, nil
}
