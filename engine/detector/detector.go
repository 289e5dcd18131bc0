// Package detector holds the anomaly detectors of the harness behind one
// interface, Detector, and the registry of methods (Register, Lookup,
// Methods) from which the experiment runner, the configs and the CLI take
// every method name.
//
// The built-in methods are file sets of this package:
//
//   - memory banks (PatchCore, PatchCore-random, SoftPatch with each noise
//     discriminator; docs/method.md#4-patchcore and
//     docs/method.md#5-softpatch): bank.go (Model, scoring), fitter.go
//     (Fitter), save.go (the model file) and bank_method.go (their
//     Detector and registry entries);
//   - PaDiM (docs/method.md#6-padim): padim.go, padim_save.go and
//     padim_method.go;
//   - shared by all: mapping.go (anomaly maps).
//
// The image-level filter "X+Y" is not a detector: it drops training
// images before Y's features are streamed, so the experiment runner
// applies it (runner.Filter); Split parses the name.
//
// A method in another package registers itself in an init function; one
// blank import wires it into the runner (docs/architecture.md, "How to add
// a method").
//
// # Layout
//
// Patch features are float32 [nImages][positions][dim] row-major (image
// major, as the published code concatenates its per-image features), so
// patch i*positions+p is image i at position p. Patch scores use the same
// [nImages][positions] order.
//
// # Randomness
//
// Fit is seeded end to end by Config.Seed. The coreset's projection and
// start points come from coreset.Greedy with Seed = Model.CoresetSeed (=
// Config.Seed); SoftPatch's discriminator projection is a separate draw,
// coreset.NewProjection(dim, 128, Model.DiscriminatorSeed), as the
// published code draws a fresh torch.nn.Linear for the discriminator and
// another one inside the sampler. PatchCore-random draws
// coreset.Random(N, picks, Config.Seed).
package detector

import (
	"errors"
	"fmt"
	"github.com/softpatch/softpatch/engine/knn"
	"io"
	"log/slog"
	"time"
)

// Features are the patch features of N images: Data is
// [N][Positions][Dim], row-major. The receiver of Features may read Data
// only until it returns.
type Features struct {
	Data              []float32
	N, Positions, Dim int
}

// Stream yields the features of Images images, a batch at a time and in
// order: Each calls fn once per batch and stops at fn's first error.
type Stream struct {
	Images int
	Each   func(fn func(Features) error) error
}

// FitOptions are how a detector fits, apart from what it fits on.
type FitOptions struct {
	// MaxMemory is the most bytes of full-dimensional training features a
	// detector keeps in memory: beyond it they go to a temporary file in
	// TempDir ("" means os.TempDir()). 0 means no bound.
	MaxMemory int64
	TempDir   string
	// Accelerator, when set, runs what it can of fitting and scoring on
	// another device (a GPU).
	Accelerator Accelerator
	// Progress, when set, returns the progress callback of the slow step
	// of fitting (stage names it, unit counts its steps); the callback is
	// called after every step with the steps done and their total.
	Progress func(stage, unit string) func(done, total int)
	// Stage, when set, is called as each stage of fitting ends with its
	// name and its seconds: "features" (reading the stream) and the
	// method's own ("discriminator" and "coreset" for memory banks, "fit"
	// for PaDiM).
	Stage func(name string, seconds float64)
	// Draws, when set, replays its set draws and receives the draws the
	// fit made (memory banks; see Draws).
	Draws *Draws
	// Epoch, when set, is called by detectors that train in epochs (CFLOW:
	// its meta-epochs) after each, with its number from 1 and the total;
	// the detector scores as fitted so far meanwhile. An error stops the
	// fit.
	Epoch func(epoch, epochs int) error
}

// stage reports a finished stage to o.Stage, when set.
func (o FitOptions) stage(name string, seconds float64) {
	if o.Stage != nil {
		o.Stage(name, seconds)
	}
}

// progress returns o.Progress's callback for stage, or nil.
func (o FitOptions) progress(stage, unit string) func(done, total int) {
	if o.Progress == nil {
		return nil
	}
	return o.Progress(stage, unit)
}

// Info describes a detector to its caller.
type Info struct {
	// Method is the detector's registered method name; for a model read by
	// LoadFile, the name its file records (Meta.Method, "X+Y" for a
	// detector fitted behind a filter).
	Method string
	// Dim is the feature dimension the fitted detector takes (0 before
	// Fit).
	Dim int
	// ScoreBatch is the number of images the detector prefers to score in
	// one Score call (0: any number): PaDiM expands every position's
	// covariance factor once per call.
	ScoreBatch int
	// MapScores is set when an image's score is taken from its anomaly
	// map, which callers then pass to ImageScores; otherwise the patch
	// scores decide it.
	MapScores bool
	// BankSize and Excluded are a memory bank's entries and the training
	// patches its noise discriminator excluded (0 for other detectors).
	BankSize, Excluded int
	// Summary is a one-line description of the fitted model, for logs.
	Summary string
	// Search and SearchStats are how a memory bank's nearest neighbours
	// were searched (knn.Mode's name, or "gpu") and the CPU search's work
	// so far; empty for other detectors.
	Search      string
	SearchStats knn.Stats
}

// Detector is one anomaly detection method: fitted on the patch features
// of normal images, it scores every patch of a test image. Anomaly maps
// are the patch scores upsampled and smoothed (Map), and ImageScores
// turns patch scores (and maps) into image scores.
type Detector interface {
	// Info describes the detector.
	Info() Info
	// Fit fits the detector on the training features src yields.
	Fit(src Stream, opts FitOptions) error
	// Score writes the patch scores [f.N][f.Positions] of features f to
	// dst.
	Score(dst []float32, f Features) error
	// ImageScores returns the scores of n images from their patch scores
	// [n][positions] and, when Info().MapScores is set, their anomaly maps
	// (otherwise maps may be nil).
	ImageScores(patch []float32, n, positions int, maps [][]float32) ([]float32, error)
	// Save writes the fitted detector and meta to w in its model file
	// format, which LoadFile reads.
	Save(w io.Writer, meta Meta) error
	// Close releases what the detector holds outside the Go heap
	// (temporary files, device memory). It is safe to call more than once.
	Close() error
}

// Mapper is implemented by detectors that make their anomaly maps
// themselves: the runner calls Maps with the patch scores of a whole set
// of images (a cell's test set, or all images of a predict call) instead
// of upsampling and smoothing each image's with Map. CFLOW needs it: it
// normalises each layer's likelihoods by their maximum over the set.
type Mapper interface {
	// Maps returns the anomaly maps [size*size] of n images from their
	// patch scores [n][positions].
	Maps(patch []float32, n, positions, size int) ([][]float32, error)
}

// Configured is implemented by detectors with settings of their own
// (Method.Options): a loaded model returns those it was fitted with, from
// which its feature pipeline is built again.
type Configured interface {
	Options() any
}

// Accelerable is implemented by detectors that can move their scoring to
// an Accelerator after they were fitted or loaded (Fit does it itself
// with FitOptions.Accelerator).
type Accelerable interface {
	Accelerate(a Accelerator) error
}

// Banked is implemented by detectors whose model is a memory bank, for
// the memory-bank figure.
type Banked interface {
	// Bank returns the fitted memory bank.
	Bank() *Model
}

// errNotFitted is returned by the methods that need a fitted detector.
var errNotFitted = errors.New("detector: not fitted")

// FitSink is what a method's fitter (Fitter, PaDiMFitter) does with the
// streamed training features.
type FitSink interface {
	// Add takes the features [nImages][positions][dim] of the next images.
	Add(feats []float32, nImages int) error
	// Spilled reports whether the features went to a temporary file.
	Spilled() bool
	Close() error
}

// Feed streams src's features into the sink that open makes from the
// first batch, checking that every batch has the first one's grid and
// dimension and that the images add up to src.Images, then reports the
// "features" stage to opts.Stage and logs when the features went to a
// temporary file. The caller closes the sink, which is returned (non-nil)
// also with an error after it was made. Methods use it in their Fit.
func Feed[S FitSink](src Stream, opts FitOptions, open func(first Features) (S, error)) (S, error) {
	var sink S
	t0 := time.Now()
	err := eachChecked(src, func(x Features) error {
		var err error
		sink, err = open(x)
		return err
	}, func(x Features) error { return sink.Add(x.Data, x.N) })
	if err != nil {
		return sink, err
	}
	opts.stage("features", time.Since(t0).Seconds())
	if sink.Spilled() {
		slog.Info("training features above the feature memory bound went to a temporary file", "MiB", opts.MaxMemory>>20)
	}
	return sink, nil
}

// eachChecked runs src's stream, checking that every batch has the
// positions and dimension of the first and that the images add up to
// src.Images; first is called once, with the first batch, before fn.
func eachChecked(src Stream, first func(Features) error, fn func(Features) error) error {
	if src.Images <= 0 {
		return errors.New("no training images")
	}
	var pos, dim, seen int
	err := src.Each(func(f Features) error {
		if f.N <= 0 || len(f.Data) != f.N*f.Positions*f.Dim {
			return fmt.Errorf("detector: a batch of %d values is not %d images x %d positions x %d dims", len(f.Data), f.N, f.Positions, f.Dim)
		}
		if seen == 0 {
			pos, dim = f.Positions, f.Dim
			if err := first(f); err != nil {
				return err
			}
		} else if f.Positions != pos || f.Dim != dim {
			return fmt.Errorf("detector: a batch of %d positions x %d dims after batches of %d x %d", f.Positions, f.Dim, pos, dim)
		}
		seen += f.N
		return fn(f)
	})
	if err == nil && seen != src.Images {
		err = fmt.Errorf("detector: the stream gave %d of %d training images", seen, src.Images)
	}
	return err
}
