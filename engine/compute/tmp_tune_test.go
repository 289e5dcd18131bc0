package compute

import (
	"fmt"
	"math/rand"
	"os"
	"testing"
	"time"
)

func bestOf(k int, f func()) time.Duration {
	f()
	best := time.Hour
	for i := 0; i < k; i++ {
		s := time.Now()
		f()
		best = min(best, time.Since(s))
	}
	return best
}

func TestTmpTune(t *testing.T) {
	if os.Getenv("TUNE") == "" {
		t.Skip()
	}
	defer func(p convPath, pg bool, gb int) { forcePath, parallelGEMM, winoGroupBytes = p, pg, gb }(forcePath, parallelGEMM, winoGroupBytes)
	for _, sh := range [][3]int{{128, 56, 1}, {128, 56, 8}, {256, 28, 1}, {256, 28, 8}, {512, 14, 1}, {512, 14, 8}} {
		ch, hw, n := sh[0], sh[1], sh[2]
		rng := rand.New(rand.NewSource(1))
		c := &Conv{In: ch, Out: ch, Kernel: 3, Stride: 1, Pad: 1, ReLU: true, Weight: randSlice(rng, ch*ch*9), Bias: randSlice(rng, ch)}
		x := randSlice(rng, n*ch*hw*hw)
		dst := make([]float32, len(x))
		var ws Workspace
		flop := 2 * float64(n*ch*ch*9*hw*hw)
		line := fmt.Sprintf("ch=%d hw=%d n=%d:", ch, hw, n)
		forcePath = pathIm2col
		d := bestOf(3, func() { c.Forward(dst, x, x, n, hw, hw, &ws) })
		line += fmt.Sprintf(" im2col %.0f", flop/d.Seconds()/1e9)
		forcePath = pathWinograd
		for _, pg := range []bool{false, true} {
			for _, gb := range []int{2 << 20, 8 << 20, 32 << 20, 1 << 40} {
				parallelGEMM, winoGroupBytes = pg, gb
				d := bestOf(3, func() { c.Forward(dst, x, x, n, hw, hw, &ws) })
				line += fmt.Sprintf(" | pg=%v gb=%dM %.0f", pg, gb>>20, flop/d.Seconds()/1e9)
			}
		}
		t.Log(line)
	}
}
