package detector

import "github.com/softpatch/softpatch/engine/denoise"

// Accelerator is the work a detector can hand to another device instead
// of running its CPU code: a GPU (cuda.Device implements it, bit for bit
// with the CPU). Each method returns what the CPU function it names
// returns for the same arguments; an error means the device failed, and
// the caller may run the CPU function instead.
//
// The engine's other hand-over points are narrower: Searcher (the
// nearest-neighbour search of scoring, one memory bank on the device) and
// the backbone and patch embedding, which the experiment runner runs on
// the device it picks (cuda.Backbone, cuda.Embedder).
type Accelerator interface {
	// CoresetSteps runs the greedy coreset's selection loop:
	// coreset.RunSteps(x, dim, init, weights, picks).
	CoresetSteps(x []float32, dim int, init []float64, weights []float32, picks int) ([]int, error)
	// NoiseScores runs a patch-level noise discriminator:
	// denoise.Scores(disc, feats, n, p, d, k).
	NoiseScores(disc denoise.Discriminator, feats []float32, n, p, d, k int) ([]float32, error)
}
