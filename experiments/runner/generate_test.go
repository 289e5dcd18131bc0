package runner

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/datasets/synth"
)

// TestGenerateConcurrent starts three sweeps' dataset generation at once,
// as the tasks of a Slurm array do: each sees either nothing or the whole
// dataset, and no temporary copy is left beside it.
func TestGenerateConcurrent(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "synth")
	sc := synth.Config{Classes: []string{"nut"}, Size: 32, Train: 2, TestGood: 1, TestDefect: 1}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = generate(root, sc)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("shard %d: %v", i, err)
		}
	}
	c, err := datasets.Load(root, "nut", datasets.Layout{}, datasets.LoadOptions{})
	if err != nil || len(c.Train) != 2 || len(c.Test) != 2 {
		t.Fatalf("the dataset: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Errorf("beside the dataset: %v (%v)", entries, err)
	}
	if err := generate(root, sc); err != nil {
		t.Errorf("an existing dataset: %v", err)
	}
}
