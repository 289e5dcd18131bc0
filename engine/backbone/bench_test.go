package backbone

import (
	"fmt"
	"testing"

	"github.com/softpatch/softpatch/engine/compute"
)

// BenchmarkForwardWideResNet50Layer3 is the feature extractor's hot path:
// wide_resnet50_2 to layer3 at 224x224 (18.4 GFLOP per image), batch 1 and
// 8, through the gorgonia graph.
func BenchmarkForwardWideResNet50Layer3(b *testing.B) {
	benchWideResNet50(b, func(net *Backbone, n int) func(x []float32) {
		return func(x []float32) {
			if _, err := net.Forward(x, n, 224, 224, []string{"layer2", "layer3"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkForwardPlainWideResNet50Layer3 runs the same kernels as the
// graph, called one after another from plain Go with buffers allocated
// once: the baseline the gorgonia graph's overhead is measured against.
func BenchmarkForwardPlainWideResNet50Layer3(b *testing.B) {
	benchWideResNet50(b, func(net *Backbone, n int) func(x []float32) { return plainForward(net, n, 224, 224) })
}

// benchWideResNet50 times the forward pass that prepare returns for a
// random-init wide_resnet50_2 built to layer3, at batch 1 and 8.
func benchWideResNet50(b *testing.B, prepare func(net *Backbone, n int) func(x []float32)) {
	net, err := New(WideResNet50_2, RandomInit(WideResNet50_2, 1), 2)
	if err != nil {
		b.Fatal(err)
	}
	flops := WideResNet50_2.FLOPs(224, 224, 2)
	for _, n := range []int{1, 8} {
		b.Run(fmt.Sprintf("batch%d", n), func(b *testing.B) {
			x := make([]float32, n*3*224*224)
			for i := range x {
				x[i] = float32(i%255)/128 - 1
			}
			run := prepare(net, n)
			run(x) // warm-up: builds the graph or the buffers
			b.ResetTimer()
			for b.Loop() {
				run(x)
			}
			sec := b.Elapsed().Seconds() / float64(b.N*n)
			b.ReportMetric(1/sec, "img/s")
			b.ReportMetric(flops/sec/1e9, "GFLOP/s")
		})
	}
}

// plainForward returns a function that runs net's convolutions and pool
// directly on preallocated buffers, up to net.Deepest.
func plainForward(net *Backbone, n, h, w int) func(x []float32) {
	var steps []func(x []float32) []float32
	ws := &compute.Workspace{}
	conv := func(c *compute.Conv, h, w int, res func() []float32) (func(x []float32) []float32, int, int) {
		oh, ow := c.OutputSize(h, w)
		out := make([]float32, n*c.Out*oh*ow)
		return func(x []float32) []float32 {
			var r []float32
			if res != nil {
				r = res()
			}
			c.Forward(out, x, r, n, h, w, ws)
			return out
		}, oh, ow
	}
	f, h, w := conv(net.stem, h, w, nil)
	steps = append(steps, f)
	ph, pw := compute.MaxPoolOutputSize(h, w, 3, 2, 1)
	pooled := make([]float32, n*net.stem.Out*ph*pw)
	c, hh, ww := net.stem.Out, h, w
	steps = append(steps, func(x []float32) []float32 {
		compute.MaxPool2D(pooled, x, n*c, hh, ww, 3, 2, 1)
		return pooled
	})
	h, w = ph, pw
	for s := 0; s <= net.Deepest; s++ {
		for _, blk := range net.stages[s] {
			var in []float32
			grab := func(x []float32) []float32 { in = x; return x }
			c1, _, _ := conv(blk.conv1, h, w, nil)
			c2, oh, ow := conv(blk.conv2, h, w, nil)
			identity := func() []float32 { return in }
			if blk.downsample != nil {
				d, _, _ := conv(blk.downsample, h, w, nil)
				identity = func() []float32 { return d(in) }
			}
			c3, _, _ := conv(blk.conv3, oh, ow, identity)
			steps = append(steps, grab, c1, c2, c3)
			h, w = oh, ow
		}
	}
	return func(x []float32) {
		for _, st := range steps {
			x = st(x)
		}
	}
}
