package embed

import (
	"slices"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/engine/backbone"
)

// TestPaDiMChannels checks the channel draw: keep distinct channels in
// increasing order, the same for the same seed, another for another seed,
// every channel reachable, and clear errors for impossible sizes.
func TestPaDiMChannels(t *testing.T) {
	a, err := PaDiMChannels(1792, 550, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 550 || !slices.IsSorted(a) || slices.Compact(slices.Clone(a))[549] != a[549] || a[0] < 0 || a[549] >= 1792 {
		t.Fatalf("channels %v", a)
	}
	b, _ := PaDiMChannels(1792, 550, 1024)
	c, _ := PaDiMChannels(1792, 550, 1025)
	if !slices.Equal(a, b) || slices.Equal(a, c) {
		t.Error("the draw is not a function of the seed")
	}
	seen := make([]bool, 10)
	for s := range uint64(200) {
		ch, _ := PaDiMChannels(10, 3, s)
		for _, k := range ch {
			seen[k] = true
		}
	}
	if slices.Contains(seen, false) {
		t.Errorf("some channels never drawn: %v", seen)
	}
	if all, _ := PaDiMChannels(5, 5, 0); !slices.Equal(all, []int{0, 1, 2, 3, 4}) {
		t.Errorf("keep all: %v", all)
	}
	for _, k := range []int{0, 6} {
		if _, err := PaDiMChannels(5, k, 0); err == nil || !strings.Contains(err.Error(), "of 5 channels") {
			t.Errorf("keep %d: %v", k, err)
		}
	}
}

// TestPaDiMSelectErrors checks shape and channel errors.
func TestPaDiMSelectErrors(t *testing.T) {
	l1 := backbone.Feature{Layer: "layer1", N: 1, C: 2, H: 4, W: 4, Data: make([]float32, 32)}
	l2 := backbone.Feature{Layer: "layer2", N: 1, C: 3, H: 2, W: 2, Data: make([]float32, 12)}
	if _, _, err := PaDiMSelect([]backbone.Feature{l1, l2}, []int{0, 5}); err == nil || !strings.Contains(err.Error(), "channel 5 of 5") {
		t.Errorf("channel out of range: %v", err)
	}
	big := backbone.Feature{Layer: "layer2", N: 1, C: 1, H: 8, W: 8, Data: make([]float32, 64)}
	if _, _, err := PaDiMSelect([]backbone.Feature{l1, big}, []int{0}); err == nil || !strings.Contains(err.Error(), "layer2") {
		t.Errorf("deeper layer larger than the grid: %v", err)
	}
	if _, _, err := PaDiMSelect(nil, []int{0}); err == nil {
		t.Error("no layers accepted")
	}
	d, pos, err := PaDiMSelect([]backbone.Feature{l1, l2}, []int{4, 0})
	if err != nil || pos != 16 || len(d) != 32 {
		t.Errorf("%d positions, %d values, %v", pos, len(d), err)
	}
}
