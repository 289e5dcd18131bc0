package runner

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/datasets/synth"
	"github.com/softpatch/softpatch/engine/detector"
)

// TestOpenChecks checks the errors of setting up a run: a cell without a
// registered method, a filter naming none, and a method asked of a
// backbone not opened deep enough for it.
func TestOpenChecks(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SOFTPATCH_WEIGHTS", "")
	t.Setenv("TORCH_HOME", dir)
	t.Setenv("XDG_CACHE_HOME", dir)
	t.Setenv("HOME", dir)
	root := filepath.Join(dir, "data")
	if err := synth.Generate(root, synth.Config{Classes: []string{"nut"}, Size: 64, Train: 2, TestGood: 1, TestDefect: 1}, nil); err != nil {
		t.Fatal(err)
	}
	class, err := datasets.Load(root, "nut", datasets.Layout{}, datasets.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method string
		filter *Filter
	}{{"", nil}, {"knn", nil}, {"patchcore", &Filter{Method: ""}}, {"patchcore", &Filter{Method: "knn"}}} {
		if _, err := NewCell(class, datasets.Noise{}, c.method, detector.Params{}, c.filter); err == nil || !strings.Contains(err.Error(), "unknown method") {
			t.Errorf("method %q filter %+v: %v", c.method, c.filter, err)
		}
	}
	// A noise list's cell records the ratio it injected, not 0.
	var list []string
	for _, it := range class.Test {
		if it.Anomalous {
			list = append(list, datasets.RelPath(root, it))
		}
	}
	c, err := NewCell(class, datasets.Noise{Files: list}, "patchcore", detector.Params{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Drawn) != 1 || c.Noise.Ratio != 0.5 {
		t.Errorf("noise list: ratio %v, %d drawn", c.Noise.Ratio, len(c.Drawn))
	}
	o := DefaultOptions()
	o.Resize, o.ImageSize, o.Device, o.Layers = 72, 64, "cpu", []string{"layer2"}
	b, err := Open(o, []string{"patchcore"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Pipeline("patchcore"); err != nil {
		t.Error(err)
	}
	if _, err := b.Pipeline("padim"); err == nil || !strings.Contains(err.Error(), "deeper") {
		t.Errorf("padim on a backbone opened to layer2: %v", err)
	}
	if _, err := Open(o, []string{"knn"}, nil); err == nil || !strings.Contains(err.Error(), "unknown method") {
		t.Errorf("Open with an unknown method: %v", err)
	}
}
