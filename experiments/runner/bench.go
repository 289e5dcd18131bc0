package runner

import (
	"fmt"
	"time"

	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/compute"
	"github.com/softpatch/softpatch/internal/buildinfo"
)

// FeatureBench is one measured batch size of the feature extractor.
type FeatureBench struct {
	Commit        string  `json:"commit"`
	Arch          string  `json:"arch"`
	Backbone      string  `json:"backbone"` // identity, with the random-init mark when no checkpoint was found
	RandomInit    bool    `json:"random_init"`
	Mark          string  `json:"mark,omitempty"`
	OpenSeconds   float64 `json:"open_seconds"` // checkpoint load, published BatchNorm pass, folding
	Layer         string  `json:"deepest_layer"`
	ImageSize     int     `json:"imagesize"`
	Batch         int     `json:"batch"`
	Threads       int     `json:"threads"`
	BLAS          string  `json:"blas"`
	SecondsPerImg float64 `json:"seconds_per_image"`
	ImagesPerSec  float64 `json:"images_per_second"`
	GFLOPs        float64 `json:"gflop_per_second"`
	EmbedSeconds  float64 `json:"embed_seconds_per_image"`
	// FeaturesPerSec is images/s of backbone + embedding as eval runs them
	// (on Device).
	FeaturesPerSec float64 `json:"features_per_sec"`
	Device         string  `json:"device"`
	PeakRSSMB      float64 `json:"peak_rss_mb"`
}

// BenchFeatures measures the backbone (forward passes to the pipeline's
// layers) and the pipeline's embedding, then the features as a cell
// computes them (on a GPU: PatchCore's embedding on the device too), at
// each batch size, over about images images after one warm-up batch.
// openSeconds is the time Open took, reported with each result.
func BenchFeatures(p *Pipeline, batches []int, images int, openSeconds float64) ([]FeatureBench, error) {
	b := p.b
	s := b.pre.ImageSize
	flops := b.net.Arch.FLOPs(s, s, b.deepest)
	var out []FeatureBench
	for _, n := range batches {
		if n < 1 {
			return nil, fmt.Errorf("bench: bad batch size %d", n)
		}
		x := make([]float32, n*3*s*s)
		for i := range x {
			x[i] = float32((i*7919)%2001)/1000 - 1
		}
		if _, err := b.forward(x, n, p.spec.Layers); err != nil { // warm-up: builds the graph
			return nil, err
		}
		rounds := max(1, images/n)
		var fwd, emb time.Duration
		for r := 0; r < rounds; r++ {
			t0 := time.Now()
			feats, err := b.forward(x, n, p.spec.Layers)
			if err != nil {
				return nil, err
			}
			t1 := time.Now()
			if _, _, err := p.spec.Embed.Embed(feats); err != nil {
				return nil, err
			}
			fwd += t1.Sub(t0)
			emb += time.Since(t1)
		}
		t2 := time.Now()
		for r := 0; r < rounds; r++ {
			if _, err := p.features(x, n); err != nil {
				return nil, err
			}
		}
		feat := time.Since(t2)
		imgs := float64(rounds * n)
		out = append(out, FeatureBench{
			Commit: buildinfo.Commit(), Arch: b.net.Arch.Name, Backbone: b.id.String(), RandomInit: b.id.RandomInit, Mark: b.Mark(),
			OpenSeconds: openSeconds, Layer: backbone.Layers[b.deepest], ImageSize: s, Batch: n, Threads: compute.Threads(),
			BLAS: compute.BLASInfo(), SecondsPerImg: fwd.Seconds() / imgs, ImagesPerSec: imgs / fwd.Seconds(),
			GFLOPs: flops * imgs / fwd.Seconds() / 1e9, EmbedSeconds: emb.Seconds() / imgs, FeaturesPerSec: imgs / feat.Seconds(),
			Device: b.Device(), PeakRSSMB: buildinfo.PeakRSSMB(),
		})
	}
	return out, nil
}
