package runner

import (
	"slices"
	"testing"
)

// TestDropped checks which images a filter drops: the floor(drop*n)
// highest (ties by index), or those above a threshold.
func TestDropped(t *testing.T) {
	s := []float32{3, 9, 1, 9, 5, 2, 7}
	th := 4.0
	for _, c := range []struct {
		drop      float64
		threshold *float64
		want      []int
	}{
		{0.1, nil, []int{}},
		{0.3, nil, []int{1, 3}},
		{0.5, nil, []int{1, 3, 6}},
		{3.0 / 7, nil, []int{1, 3, 6}},
		{0, &th, []int{1, 3, 6, 4}},
	} {
		if got := dropped(s, c.drop, c.threshold); !slices.Equal(got, c.want) {
			t.Errorf("drop %v threshold %v: %v, want %v", c.drop, c.threshold, got, c.want)
		}
	}
}
