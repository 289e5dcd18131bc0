package runner_test

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/datasets/synth"
	"github.com/softpatch/softpatch/engine/cflow"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/experiments/runner"
)

// TestCFLOWCellAndPredict runs a short CFLOW cell at 64 px, fits the same
// cell into a model file and predicts its test images with it: CFLOW's
// maps are normalised over the images scored together, so predicting the
// cell's test set in the cell's batches gives the cell's image scores
// exactly (other batches round the backbone's and the flow's products
// differently: 3e-6 relative with batches of 2).
func TestCFLOWCellAndPredict(t *testing.T) {
	class := generatedClass(t, "nut", synth.Config{Size: 64, Train: 6, TestGood: 2, TestDefect: 3})
	root := class.Root
	o := &cflow.Options{MetaEpochs: 1, SubEpochs: 2, LR: 2e-4, CouplingBlocks: 2, ConditionDim: 8, FiberBatch: 32, ImageBatch: 4,
		Layers: []string{"layer2", "layer3"}}
	params := detector.Params{Seed: 1, Options: map[string]any{cflow.Name: o}}
	cell, err := runner.NewCell(class, datasets.Noise{}, cflow.Name, params, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := openCPU(t, 72, 64, cell.Methods(), func(o *runner.Options) { o.MethodOptions = params.Options })
	co := runner.CellOptions{Batch: 4, FeatureMemoryMiB: 256}
	res, err := cell.Run(b, co)
	if err != nil {
		t.Fatal(err)
	}
	if res.Train != 6 || res.Test != 5 || math.IsNaN(res.ImageAUROC) || math.IsNaN(res.PixelAUROC) {
		t.Fatalf("result %+v", res)
	}
	if got := res.Settings.Detector.Options[cflow.Name].(*cflow.Options); got.SubEpochs != 2 || len(got.Layers) != 2 {
		t.Errorf("the cell records options %+v", got)
	}
	// One epoch: the published protocol's best is the last epoch.
	if be := res.BestEpoch; be == nil || be.Epochs != 1 || be.ImageEpoch != 1 || be.ImageAUROC != res.ImageAUROC || be.PixelAUROC != res.PixelAUROC {
		t.Errorf("best epoch %+v of a one-epoch cell with image AUROC %v, pixel %v", be, res.ImageAUROC, res.PixelAUROC)
	}

	d, meta, err := cell.Fit(b, co)
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(t.TempDir(), "nut.model")
	err = detector.SaveFile(model, d, meta)
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	var images []string
	for _, s := range res.PerImage {
		images = append(images, filepath.Join(root, s.File))
	}
	pred, err := runner.Predict(images, runner.PredictOptions{Model: model, Out: t.TempDir(), Batch: 4, Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range pred.Scores {
		if want := res.PerImage[i].Score; s.Score != want {
			t.Errorf("%s: predicted %v, the cell scored %v", s.File, s.Score, want)
		}
	}
}
