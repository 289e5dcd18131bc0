package detector

import "github.com/softpatch/softpatch/engine/denoise"

// Accelerator is the work a detector can hand to another device instead
// of running its CPU code: a GPU (the experiment runner's adapter over
// cuda.Device, bit for bit with the CPU). Each method returns what the CPU
// function it names returns for the same arguments; an error means the
// device failed, and the caller may run the CPU function instead.
//
// The backbone and the patch embedding are not here: the experiment
// runner runs them on the device it picks (cuda.Backbone, cuda.Embedder).
type Accelerator interface {
	// CoresetSteps runs the greedy coreset's selection loop:
	// coreset.RunSteps(x, dim, init, weights, picks).
	CoresetSteps(x []float32, dim int, init []float64, weights []float32, picks int) ([]int, error)
	// NoiseScores runs a patch-level noise discriminator:
	// denoise.Scores(disc, feats, n, p, d, k).
	NoiseScores(disc denoise.Discriminator, feats []float32, n, p, d, k int) ([]float32, error)
	// Searcher returns a nearest-neighbour search over a memory bank
	// [n][dim] on the device, or nil (and no error) when scoring should
	// stay on the CPU. The detector closes it (io.Closer) when it is one.
	Searcher(bank []float32, n, dim int) (Searcher, error)
}
