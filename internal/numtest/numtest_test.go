package numtest

import (
	"math"
	"testing"
)

func TestRelErr(t *testing.T) {
	nan := float32(math.NaN())
	for _, c := range []struct {
		got, want []float32
		rel       float64
	}{
		{[]float32{1, 2}, []float32{1, 2}, 0},
		{[]float32{1, 2.5}, []float32{1, 2}, 0.25},
		{[]float32{nan, 2}, []float32{1, 2}, math.Inf(1)},
		{[]float32{1}, []float32{0}, math.Inf(1)},
		{[]float32{0}, []float32{0}, 0},
		{[]float32{1}, []float32{1, 2}, math.Inf(1)},
	} {
		if got := RelErr(c.got, c.want); got != c.rel {
			t.Errorf("RelErr(%v, %v) = %v, want %v", c.got, c.want, got, c.rel)
		}
	}
}
