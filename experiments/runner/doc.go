// Package runner runs the harness's experiments as a library: it turns a
// backbone and a dataset into detectors' results, the job that the
// softpatch command's run, eval, fit, predict, embed and bench verbs are
// thin front ends to.
//
// The pieces, in the order data flows through them:
//
//   - Open opens a Backbone (preprocessing, network, device) for a set of
//     detector methods; each method's Pipeline (its layers and embedding,
//     from the detector registry) computes features from it, one forward
//     pass serving every pipeline (pipeline.go, on the GPU when there is
//     one: the subpackage device holds the device policy, a failure in
//     auto mode moving the rest of the run to the CPU).
//   - A Cell is one class's noisy split and a method, optionally behind
//     an image-level Filter; Cell.Run fits, scores, maps and evaluates it
//     into an experiments.Result (cell.go, fit.go, filter.go, overlay.go),
//     Cell.Fit returns the fitted detector for a model file.
//   - Sweep runs a config's cells into a results folder, resumable and
//     sharded, computing each class's features once (classcache.go, with
//     the disk cache of experiments.FeatureCache) and sharing filter runs
//     between cells (sweep.go).
//   - Predict scores images with a saved model (predict.go), EmbedFiles
//     writes features to .npy (embed.go), and BenchFeatures measures the
//     features' hot path (bench.go; the others are in experiments/bench).
//
// Every method name comes from the engine/detector registry: the cell,
// sweep and predict paths depend on no particular method. BenchFeatures
// measures the pipeline it is given.
package runner

// Methods in packages of their own register themselves when imported.
import _ "github.com/softpatch/softpatch/engine/cflow"
