package embed

import (
	"testing"

	"github.com/softpatch/softpatch/engine/backbone"
)

// BenchmarkEmbedWideResNet50 embeds one batch of 8 images' layer2
// (512x28x28) and layer3 (1024x14x14) outputs to 784 x 1024 each.
func BenchmarkEmbedWideResNet50(b *testing.B) {
	const n = 8
	mk := func(name string, c, s int) backbone.Feature {
		f := backbone.Feature{Layer: name, N: n, C: c, H: s, W: s, Data: make([]float32, n*c*s*s)}
		for i := range f.Data {
			f.Data[i] = float32(i%97) / 97
		}
		return f
	}
	feats := []backbone.Feature{mk("layer2", 512, 28), mk("layer3", 1024, 14)}
	cfg := Default()
	for b.Loop() {
		if _, _, err := cfg.Embed(feats); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "img/s")
}
