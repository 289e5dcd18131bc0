package detector

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"sync"

	"github.com/softpatch/softpatch/engine/coreset"
	"github.com/softpatch/softpatch/engine/denoise"
	"github.com/softpatch/softpatch/engine/knn"
)

// Defaults of the published code.
const (
	DefaultCoreset   = 0.1
	DefaultThreshold = 0.15
)

// Config configures Fit. Its variant is PatchCore by default: the
// approximate greedy coreset (10 start points) over all training patches.
// Random replaces the coreset by a uniform random subset of the same size
// (PatchCore-random); a Discriminator makes it SoftPatch: the patch-level
// noise discriminator, the filtered weighted coreset (128 start points)
// and, with SoftWeight, soft weights.
type Config struct {
	// Random selects the bank uniformly at random (PatchCore-random).
	Random bool
	// Coreset is the fraction of training patches kept in the memory bank,
	// in (0, 1); the bank has floor(Coreset*N) entries (Python's
	// int(N*ratio)).
	Coreset float64
	// Threshold is SoftPatch's tau in [0, 1): patches whose outlier score
	// exceeds the (1-tau) quantile of all scores get sampling weight 0.
	Threshold float64
	// Discriminator is SoftPatch's noise discriminator.
	Discriminator denoise.Discriminator
	// LOFK is the LOF neighbourhood size (denoise.DefaultK = 5 is what the
	// published code actually uses).
	LOFK int
	// SoftWeight turns on SoftPatch's soft weights: test patch scores are
	// multiplied by the clamped outlier score of their nearest bank entry.
	SoftWeight bool
	// StrictExclusion removes the published quirk of
	// docs/method.md#55-weighted-coreset-and-the-first-pick-quirk (the
	// weighted sampler's initial keys are not multiplied by the sampling
	// weights, so an excluded patch can be selected first); with it set an
	// excluded patch never enters the bank. Off by default, as published.
	StrictExclusion bool
	// Seed seeds every random draw of Fit.
	Seed uint64
	// Search is how Score searches the bank on the CPU (knn.Mode: auto,
	// exact or brute); every mode gives the same scores.
	Search knn.Mode `json:",omitempty"`
}

// UnmarshalJSON reads a Config, also as model files before the Random
// field wrote it: {"Method": "patchcore-random", ...} is Random.
func (c *Config) UnmarshalJSON(b []byte) error {
	type plain Config
	var v struct {
		plain
		Method string
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*c = Config(v.plain)
	if v.Method == "patchcore-random" {
		c.Random = true
	}
	return nil
}

// softPatch reports whether c is SoftPatch: it has a noise discriminator.
func (c Config) softPatch() bool { return !c.Discriminator.IsZero() }

// Model is a fitted memory bank.
type Model struct {
	// Config is the configuration the model was fitted with.
	Config Config
	// Bank is the memory bank, [N][D] row-major: full-dimensional copies of
	// the selected training patches, in selection order.
	Bank []float32
	// N and D are the bank's size and the feature dimension.
	N, D int
	// Weights holds the soft weight cw[j] of each bank entry (the entry's
	// outlier score clamped at 0); nil when soft weights are off.
	Weights []float32
	// Indices are the selected training patches (i*positions+p), in
	// selection order.
	Indices []int
	// CoresetSeed and DiscriminatorSeed are the seeds of the coreset's and
	// the discriminator's random draws.
	CoresetSeed, DiscriminatorSeed uint64
	// ScoreThreshold is SoftPatch's q, the (1-tau) quantile of the outlier
	// scores (torch.quantile), and Excluded the number of training patches
	// whose score exceeds it (sampling weight 0). Zero for PatchCore.
	ScoreThreshold float64
	Excluded       int

	// Principal holds the bank's principal coordinates, with which Score
	// prunes its nearest-neighbour search (knn.Principal); nil when the
	// search is brute force. Fit computes them when the bank is large
	// enough, Save stores them, and Score computes them when missing.
	Principal *knn.Principal

	mu       sync.Mutex
	ix       *knn.Index
	searcher Searcher
}

// Searcher finds each query's nearest bank entry (k = 1) as knn.Index
// does: an alternative to the CPU search for Score, such as the GPU's
// (cuda.Index).
type Searcher interface {
	// Search1 writes the squared L2 distance of each of the nq queries
	// ([nq][D]) to its nearest bank entry into dist and the entry into idx
	// (lowest index on ties); budget bounds its scratch memory in bytes (0:
	// its default).
	Search1(dist []float32, idx []int32, queries []float32, nq int, budget int64) error
}

// UseSearcher makes Score search with s, which must have been built on
// the model's bank, instead of the CPU index; nil goes back to the CPU
// index.
func (m *Model) UseSearcher(s Searcher) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.searcher = s
}

// projDim is the dimension of SoftPatch's discriminator projection.
const projDim = coreset.DefaultDim

// discriminatorSeed derives the discriminator projection's seed from the
// configured seed (a splitmix64 step, so that it differs from the
// coreset's).
func discriminatorSeed(seed uint64) uint64 {
	z := seed + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Fit builds the memory bank from the training features feats
// [nImages][positions][dim] following docs/method.md#4-patchcore and
// docs/method.md#5-softpatch; it is a Fitter given all the images at once
// (feats is read, not kept).
//
// SoftPatch, in the published order (softpatch.py _fill_memory_bank):
// project all features to 128 dims (its own draw; the features are used as
// they are when dim is 128, as the published _reduce_features does), score
// every patch with denoise.Scores within its position's group ([N][P]
// scores, the order of the features), q = Quantile(scores, 1-tau), sampling
// weight 0 where score > q (float32 comparison) else 1, weighted
// approximate greedy selection on the full features with 128 start points
// (its own 128-d projection draw inside the sampler), and cw = the selected
// entries' scores clamped at 0.
func Fit(cfg Config, feats []float32, nImages, positions, dim int) (*Model, error) {
	if nImages <= 0 || positions <= 0 || dim <= 0 || len(feats) != nImages*positions*dim {
		return nil, fmt.Errorf("detector: %d features for %d images x %d positions x %d dims", len(feats), nImages, positions, dim)
	}
	f, err := NewFitter(cfg, nImages, positions, dim, FitterOptions{})
	if err != nil {
		return nil, err
	}
	if err := f.add(feats, nImages, false); err != nil {
		f.Close()
		return nil, err
	}
	return f.Fit()
}

// searcher1 returns what Score searches with: the Searcher set by
// UseSearcher, else the model's CPU index, built on first use.
func (m *Model) searcher1() (Searcher, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.N <= 0 || m.D <= 0 || len(m.Bank) != m.N*m.D {
		return nil, fmt.Errorf("detector: bank has %d entries for N=%d D=%d", len(m.Bank), m.N, m.D)
	}
	if m.Weights != nil && len(m.Weights) != m.N {
		return nil, fmt.Errorf("detector: %d soft weights for %d bank entries", len(m.Weights), m.N)
	}
	if m.searcher != nil {
		return m.searcher, nil
	}
	if m.ix == nil {
		ix := knn.NewIndex(m.Bank, m.N, m.D)
		mode := m.Config.Search
		if m.Principal == nil && knn.Prunable(m.N, mode) {
			// A bank with values the bounds cannot handle keeps the
			// brute force.
			m.Principal, _ = knn.NewPrincipal(m.Bank, m.N, m.D)
		}
		if err := ix.UsePrincipal(m.Principal, mode); err != nil {
			slog.Warn("nearest-neighbour search: principal coordinates unusable, searching by brute force", "err", err)
			m.Principal = nil
			ix.UsePrincipal(nil, mode)
		}
		m.ix = ix
	}
	return cpuSearcher{m.ix}, nil
}

// PrepareSearch builds the CPU search index of the bank (and its principal
// coordinates, when the search prunes) ahead of the first Score.
func (m *Model) PrepareSearch() error {
	_, err := m.searcher1()
	return err
}

// SearchStats says how Score searched the bank: the mode ("gpu" when a
// Searcher replaced the CPU index) and the work of the CPU index so far.
func (m *Model) SearchStats() (string, knn.Stats) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.searcher != nil {
		return "gpu", knn.Stats{}
	}
	if m.ix == nil {
		return m.Config.Search.String(), knn.Stats{}
	}
	return m.Config.Search.String(), m.ix.Stats()
}

// cpuSearcher is a knn.Index as a Searcher.
type cpuSearcher struct{ ix *knn.Index }

func (c cpuSearcher) Search1(dist []float32, idx []int32, queries []float32, nq int, budget int64) error {
	return c.ix.Search(dist, idx, queries, nq, 1, int(budget))
}

// Score writes the patch scores of the test features feats
// [nImages][positions][D] into dst [nImages][positions]: the squared L2
// distance to the nearest bank entry j (exact search, k = 1, float32 as
// knn.Index computes it), times Weights[j] in float32 when soft weights are
// on. The bank must not be modified after the first Score.
func (m *Model) Score(dst []float32, feats []float32, nImages, positions int) error {
	s, err := m.searcher1()
	if err != nil {
		return err
	}
	nq := nImages * positions
	if nImages < 0 || positions < 0 || len(feats) != nq*m.D || len(dst) < nq {
		return fmt.Errorf("detector: %d features and %d outputs for %d images x %d positions x %d dims", len(feats), len(dst), nImages, positions, m.D)
	}
	idx := make([]int32, nq)
	if err := s.Search1(dst[:nq], idx, feats, nq, 0); err != nil {
		return err
	}
	if m.Weights != nil {
		for i, j := range idx {
			dst[i] *= m.Weights[j]
		}
	}
	return nil
}

// ImageScores returns each image's score, the maximum of its patch scores
// (patchScores [nImages][positions]).
func ImageScores(patchScores []float32, nImages, positions int) []float32 {
	if nImages < 0 || positions <= 0 || len(patchScores) != nImages*positions {
		panic(fmt.Sprintf("detector.ImageScores: %d scores for %d images x %d positions", len(patchScores), nImages, positions))
	}
	out := make([]float32, nImages)
	for i := range out {
		v := float32(math.Inf(-1))
		for _, s := range patchScores[i*positions : (i+1)*positions] {
			v = max(v, s)
		}
		out[i] = v
	}
	return out
}
