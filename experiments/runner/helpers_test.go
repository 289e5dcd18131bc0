package runner_test

import (
	"testing"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/datasets/synth"
	"github.com/softpatch/softpatch/experiments/runner"
)

// generatedClass writes the generated class name with cfg (Classes set to
// it) into a temporary folder and loads it.
func generatedClass(t *testing.T, name string, cfg synth.Config) *datasets.Class {
	t.Helper()
	root := t.TempDir()
	cfg.Classes = []string{name}
	if err := synth.Generate(root, cfg, nil); err != nil {
		t.Fatal(err)
	}
	class, err := datasets.Load(root, name, datasets.Layout{}, datasets.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return class
}

// openCPU opens the backbone for methods on the CPU at resize/size
// pixels (Options changed by set, when given first), closed when the test
// ends.
func openCPU(t *testing.T, resize, size int, methods []string, set func(*runner.Options)) *runner.Backbone {
	t.Helper()
	opts := runner.DefaultOptions()
	opts.Resize, opts.ImageSize, opts.Device = resize, size, "cpu"
	if set != nil {
		set(&opts)
	}
	b, err := runner.Open(opts, methods, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
