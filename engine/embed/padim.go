package embed

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/compute"
)

// PaDiM is PaDiM's feature selection (docs/method.md#61-features): the layer
// outputs are brought to the first layer's grid by nearest-neighbour
// upsampling (the published embedding_concat, which for an integer ratio s
// copies each deeper cell to an s x s block), concatenated along the
// channels in layer order, and Channels of them are kept (PaDiMSelect).
type PaDiM struct {
	// Channels are the kept channels, indices into the concatenation (see
	// PaDiMChannels).
	Channels []int
}

// The published setting: 550 channels of wide_resnet50_2's 1792. The seed
// is ours (the published code draws with Python's random.seed(1024)); the
// draw is recorded in every PaDiM model.
const (
	DefaultPaDiMKeep        = 550
	DefaultPaDiMSeed uint64 = 1024
)

// PaDiMLayers are the backbone layers PaDiM concatenates.
var PaDiMLayers = []string{"layer1", "layer2", "layer3"}

// PaDiMChannels returns keep distinct channel indices drawn uniformly from
// [0, total) without replacement (a partial Fisher-Yates shuffle with a PCG
// generator seeded with (seed, 5)), in increasing order. The Mahalanobis
// distance does not depend on the channels' order.
func PaDiMChannels(total, keep int, seed uint64) ([]int, error) {
	if keep < 1 || keep > total {
		return nil, fmt.Errorf("embed: cannot keep %d of %d channels", keep, total)
	}
	r := rand.New(rand.NewPCG(seed, 5))
	perm := make([]int, total)
	for i := range perm {
		perm[i] = i
	}
	for i := 0; i < keep; i++ {
		j := i + r.IntN(total-i)
		perm[i], perm[j] = perm[j], perm[i]
	}
	out := perm[:keep:keep]
	slices.Sort(out)
	return out, nil
}

// Grid returns the position grid of a first-layer map of size h x w:
// the map itself.
func (c PaDiM) Grid(h, w int) (gh, gw int) { return h, w }

// Embed returns the kept channels of a batch's layer outputs (from one
// Backbone.Forward call, the first layer setting the grid) as
// [N][positions][len(Channels)]; see PaDiMSelect.
func (c PaDiM) Embed(feats []backbone.Feature) (data []float32, positions int, err error) {
	return PaDiMSelect(feats, c.Channels)
}

// PaDiMSelect returns the given channels of the layers' concatenation
// (channel k of the concatenation is channel k - C0 - ... of the layer it
// falls in), each deeper layer upsampled to the first layer's grid by
// nearest neighbour, as [N][positions][len(channels)], positions in
// row-major order of the first layer's grid. A deeper layer's cell for
// grid position (y, x) is (y*h/H, x*w/W) (integer division: torch's
// nearest-neighbour index for these sizes).
func PaDiMSelect(feats []backbone.Feature, channels []int) (data []float32, positions int, err error) {
	if len(feats) == 0 {
		return nil, 0, fmt.Errorf("embed: no layers")
	}
	n, gh, gw := feats[0].N, feats[0].H, feats[0].W
	total := 0
	for _, f := range feats {
		if f.N != n || len(f.Data) != f.N*f.C*f.H*f.W || f.H <= 0 || f.W <= 0 || f.H > gh || f.W > gw {
			return nil, 0, fmt.Errorf("embed: layer %s has shape %dx%dx%dx%d with %d values, batch %d on a %dx%d grid",
				f.Layer, f.N, f.C, f.H, f.W, len(f.Data), n, gh, gw)
		}
		total += f.C
	}
	// Where each kept channel comes from: layer and channel within it.
	type source struct{ layer, ch int }
	src := make([]source, len(channels))
	for k, ch := range channels {
		if ch < 0 || ch >= total {
			return nil, 0, fmt.Errorf("embed: channel %d of %d", ch, total)
		}
		l := 0
		for ch >= feats[l].C {
			ch -= feats[l].C
			l++
		}
		src[k] = source{l, ch}
	}
	positions = gh * gw
	d := len(channels)
	data = make([]float32, n*positions*d)
	compute.ParallelFor(n*gh, 1, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			img, y := r/gh, r%gh
			out := data[(img*positions+y*gw)*d : (img*positions+(y+1)*gw)*d]
			for k, s := range src {
				f := feats[s.layer]
				row := f.Data[((img*f.C+s.ch)*f.H+y*f.H/gh)*f.W:][:f.W]
				for x := 0; x < gw; x++ {
					out[x*d+k] = row[x*f.W/gw]
				}
			}
		}
	})
	return data, positions, nil
}
