package backbone

import (
	"errors"
	"slices"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
)

var narrow = Arch{Name: "narrow", Blocks: [4]int{3, 4, 6, 3}, StemWidth: 2, BaseWidth: 128, NumClasses: 10}

func TestForwardShapesAndDepthLimit(t *testing.T) {
	net, err := New(narrow, RandomInit(narrow, 3), 1)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 2*3*64*72)
	for i := range x {
		x[i] = float32(i%13) / 13
	}
	feats, err := net.Forward(x, 2, 64, 72, []string{"layer2", "layer1"})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range [][4]int{{2, 16, 8, 9}, {2, 8, 16, 18}} {
		f := feats[i]
		if got := [4]int{f.N, f.C, f.H, f.W}; got != want || len(f.Data) != f.N*f.C*f.H*f.W {
			t.Errorf("%s: shape %v (%d values), want %v", f.Layer, got, len(f.Data), want)
		}
	}
	if _, err := net.Forward(x, 2, 64, 72, []string{"layer3"}); err == nil || !strings.Contains(err.Error(), "deeper") {
		t.Errorf("layer3 from a backbone built to layer2: error %v", err)
	}
	if _, err := net.Forward(x[:10], 2, 64, 72, []string{"layer1"}); err == nil {
		t.Error("short input accepted")
	}
}

// A second call with the same shape reuses the graph and returns fresh slices.
func TestForwardOutputsAreOwnedByCaller(t *testing.T) {
	net, err := New(narrow, RandomInit(narrow, 3), 0)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 3*32*32)
	for i := range x {
		x[i] = float32(i%7) / 7
	}
	a, _ := net.Forward(x, 1, 32, 32, []string{"layer1"})
	keep := append([]float32(nil), a[0].Data...)
	for i := range x {
		x[i] = -x[i]
	}
	if _, err := net.Forward(x, 1, 32, 32, []string{"layer1"}); err != nil {
		t.Fatal(err)
	}
	for i := range keep {
		if a[0].Data[i] != keep[i] {
			t.Fatal("a later Forward overwrote an earlier result")
		}
	}
	if len(net.graphs) != 1 {
		t.Errorf("%d graphs built for one shape", len(net.graphs))
	}
}

// The graph's ops share output buffers whose lifetimes do not overlap, and
// the layers a caller asked for are not overwritten later in the run.
func TestGraphSharesBuffers(t *testing.T) {
	net, err := New(narrow, RandomInit(narrow, 3), 2)
	if err != nil {
		t.Fatal(err)
	}
	gr, err := net.build(graphKey{n: 2, h: 64, w: 64, deepest: 2})
	if err != nil {
		t.Fatal(err)
	}
	ops, buffers := 0, map[*float32]bool{}
	for _, n := range gr.g.AllNodes() {
		if op, ok := n.Op().(bufferedOp); ok {
			ops++
			buffers[&op.buffer()[:1][0]] = true
		}
	}
	if len(buffers) >= ops/2 {
		t.Errorf("%d ops use %d distinct buffers", ops, len(buffers))
	}
	// No op that runs after a kept layer output may write into its buffer.
	order, err := G.Sort(gr.g)
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(order)
	for s := 0; s < 3; s++ {
		kept := gr.outputs[s]
		p := &kept.Op().(bufferedOp).buffer()[:1][0]
		after := false
		for _, n := range order {
			if n == kept {
				after = true
				continue
			}
			if op, ok := n.Op().(bufferedOp); ok && after && &op.buffer()[:1][0] == p {
				t.Errorf("%s runs after %s and overwrites it", n.Name(), Layers[s])
			}
		}
	}
	t.Logf("%d ops, %d buffers", ops, len(buffers))
}

// torch refuses a train-mode BatchNorm over one value per channel; so does
// the published pass, instead of writing NaN statistics.
func TestPublishedBNPassRejectsOneValuePerChannel(t *testing.T) {
	_, err := PublishedBNPass(narrow, RandomInit(narrow, 1), 32, 3)
	if err == nil || !strings.Contains(err.Error(), "one value per channel") {
		t.Fatalf("32 px through layer4 (1x1 maps): error %v", err)
	}
}

func TestFindWeightsExplicitFolderWithoutCheckpointIsAnError(t *testing.T) {
	dir := t.TempDir()
	home := t.TempDir() // a checkpoint elsewhere must not be picked instead
	t.Setenv("TORCH_HOME", home)
	for _, explicit := range []string{dir, ""} {
		if explicit == "" {
			t.Setenv("SOFTPATCH_WEIGHTS", dir)
		}
		_, err := FindWeights(explicit, WideResNet50_2)
		if err == nil || errors.Is(err, ErrNoWeights) || !strings.Contains(err.Error(), dir) {
			t.Errorf("explicit %q: error %v, want one naming %s", explicit, err, dir)
		}
	}
}
