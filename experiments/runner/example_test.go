package runner_test

import (
	"fmt"
	"log"
	"os"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/datasets/synth"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/experiments/runner"
)

// Example runs one cell from Go: SoftPatch with the LOF discriminator on
// a small generated class with a third of its training set replaced by
// noise that stays in the test set, at 64 px. The metrics depend on the backbone's weights (a
// random-init backbone where the machine has no checkpoint), the sizes do
// not.
func Example() {
	root, err := os.MkdirTemp("", "runner-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	if err := synth.Generate(root, synth.Config{Classes: []string{"nut"}, Size: 64, Train: 6, TestGood: 2, TestDefect: 3}, nil); err != nil {
		log.Fatal(err)
	}
	class, err := datasets.Load(root, "nut", datasets.Layout{}, datasets.LoadOptions{})
	if err != nil {
		log.Fatal(err)
	}
	cell, err := runner.NewCell(class, datasets.Noise{Ratio: 0.34, Overlap: true}, "softpatch-lof",
		detector.Params{Coreset: 0.25, Threshold: 0.15}, nil)
	if err != nil {
		log.Fatal(err)
	}
	o := runner.DefaultOptions()
	o.Resize, o.ImageSize, o.Device = 72, 64, "cpu"
	b, err := runner.Open(o, cell.Methods(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	res, err := cell.Run(b, runner.CellOptions{Batch: 4, FeatureMemoryMiB: 256})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d training images (%d injected), %d test images, a bank of %d patches\n",
		res.Method, res.Train, len(res.NoiseDrawn), res.Test, res.BankSize)
	fmt.Println("image AUROC in [0, 1]:", res.ImageAUROC >= 0 && res.ImageAUROC <= 1)
	// Output:
	// softpatch-lof: 8 training images (2 injected), 5 test images, a bank of 128 patches
	// image AUROC in [0, 1]: true
}
