package cflow

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkTrainerStep times one training step (forward, gradients, Adam)
// of a published-size decoder (8 blocks, 128 condition dims) on a batch of
// 256 fibers, for layer2's 512 channels of wide_resnet50_2.
func BenchmarkTrainerStep(b *testing.B) {
	for _, c := range []int{512} {
		b.Run(fmt.Sprintf("C=%d", c), func(b *testing.B) {
			const n, p = 256, 128
			d, err := NewDecoder(c, p, 8, 1)
			if err != nil {
				b.Fatal(err)
			}
			tr, err := NewTrainer(d, n, 2e-4)
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Close()
			r := rand.New(rand.NewPCG(1, 2))
			x, cond := make([]float32, n*c), make([]float32, n*p)
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			for i := range cond {
				cond[i] = float32(r.Float64())
			}
			c1, c2 := d.Split()
			in, hid := c1+p, d.Hidden()
			flops := 3 * 2 * float64(n) * float64(len(d.Blocks)) * float64(in*hid+hid*2*c2+c*c) // forward + twice that backward
			b.ResetTimer()
			for range b.N {
				if _, err := tr.Step(x, cond); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "fibers/s")
		})
	}
}
