package backbone

import (
	"fmt"
	"testing"
)

// BenchmarkForwardWideResNet50Layer3 is the feature extractor's hot path:
// wide_resnet50_2 to layer3 at 224x224 (18.4 GFLOP per image), batch 1 and 8.
func BenchmarkForwardWideResNet50Layer3(b *testing.B) {
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
			if _, err := net.Forward(x, n, 224, 224, []string{"layer2", "layer3"}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := net.Forward(x, n, 224, 224, []string{"layer2", "layer3"}); err != nil {
					b.Fatal(err)
				}
			}
			sec := b.Elapsed().Seconds() / float64(b.N*n)
			b.ReportMetric(1/sec, "img/s")
			b.ReportMetric(flops/sec/1e9, "GFLOP/s")
		})
	}
}
