package cflow

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/softpatch/softpatch/engine/compute"
)

// BenchmarkTrainerStep times one training step (forward, gradients, Adam)
// of a published-size decoder (8 blocks, 128 condition dims) on a batch of
// 256 fibers, at each wide_resnet50_2 layer's channel count: 512 (layer2),
// 1024 (layer3) and 2048 (layer4). The kernels run on GOMAXPROCS threads
// (set it with -cpu; scripts/cflow_step_speed.sh runs -cpu 2 against the
// published code at 2 torch threads). Each size's decoder (NewDecoder draws
// 8 rotations: seconds at C=2048) and trainer are built once, outside the
// timed region, and reused by the probe run and the timed run; use a fixed
// -benchtime such as 5x so that C=2048 does not run for minutes.
func BenchmarkTrainerStep(b *testing.B) {
	defer compute.SetThreads(compute.Threads())
	const n, p = 256, 128
	for _, c := range []int{512, 1024, 2048} {
		var (
			d       *Decoder
			tr      *Trainer
			x, cond []float32
		)
		b.Run(fmt.Sprintf("C=%d", c), func(b *testing.B) {
			b.StopTimer()
			compute.SetThreads(runtime.GOMAXPROCS(0))
			if tr == nil {
				var err error
				if d, err = NewDecoder(c, p, 8, 1); err != nil {
					b.Fatal(err)
				}
				if tr, err = NewTrainer(d, n, 2e-4); err != nil {
					b.Fatal(err)
				}
				r := rand.New(rand.NewPCG(1, 2))
				x, cond = make([]float32, n*c), make([]float32, n*p)
				for i := range x {
					x[i] = float32(r.NormFloat64())
				}
				for i := range cond {
					cond[i] = float32(r.Float64())
				}
			}
			c1, c2 := d.Split()
			in, hid := c1+p, d.Hidden()
			flops := 3 * 2 * float64(n) * float64(len(d.Blocks)) * float64(in*hid+hid*2*c2+c*c) // forward + twice that backward
			b.ResetTimer()
			b.StartTimer()
			for range b.N {
				if _, err := tr.Step(x, cond); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "fibers/s")
		})
		if tr != nil {
			if err := tr.Close(); err != nil {
				b.Error(err)
			}
		}
	}
}
