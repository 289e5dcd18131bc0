package cflow

import (
	"fmt"
	"slices"

	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/compute"
)

// Layer is one decoder's share of an image: an H x W grid of fibers of C
// channels from backbone layer Name.
type Layer struct {
	Name    string `json:"name"`
	C, H, W int
}

// Fibers is CFLOW's embedding: every layer's feature map as its fibers,
// [H*W][C] in row-major position order, the layers one after another.
// Layers of different grids and widths do not make one [positions][dim]
// array, so an image's values are stored as rows of Width values (the
// channel counts' greatest common divisor): the features of n images are
// [n][Rows][Width] like any other embedding's, and streams, caches and
// model files handle them unchanged. Only the detector reads the rows as
// fibers (Layout).
type Fibers struct {
	Layers   []string
	Channels []int
	// Stages are the layers' backbone stages (backbone.LayerIndex).
	Stages []int
	Width  int
}

// NewFibers returns the embedding of layers (shallow to deep) of arch.
func NewFibers(arch backbone.Arch, layers []string) (Fibers, error) {
	f := Fibers{Layers: slices.Clone(layers)}
	for _, l := range layers {
		s, err := backbone.LayerIndex(l)
		if err != nil {
			return Fibers{}, err
		}
		c := arch.OutChannels(s)
		f.Stages, f.Channels = append(f.Stages, s), append(f.Channels, c)
		f.Width = gcd(f.Width, c)
	}
	if len(layers) == 0 || f.Width < 1 {
		return Fibers{}, fmt.Errorf("cflow: no layers to embed")
	}
	return f, nil
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Layout returns the layers' grids when the first layer's is h x w: each
// later stage halves it, rounding up (ResNet's stride-2 convolutions).
func (f Fibers) Layout(h, w int) []Layer {
	out := make([]Layer, len(f.Layers))
	for i, name := range f.Layers {
		k := f.Stages[i] - f.Stages[0]
		out[i] = Layer{Name: name, C: f.Channels[i], H: (h + 1<<k - 1) >> k, W: (w + 1<<k - 1) >> k}
	}
	return out
}

// values is the number of values of one image with layers ls.
func values(ls []Layer) int {
	n := 0
	for _, l := range ls {
		n += l.C * l.H * l.W
	}
	return n
}

// Grid is the storage grid of an image whose first layer is h x w: Rows
// x 1.
func (f Fibers) Grid(h, w int) (rows, one int) { return values(f.Layout(h, w)) / f.Width, 1 }

// Embed returns the fibers of a batch of layer outputs (feats in f.Layers'
// order) as [N][rows][Width].
func (f Fibers) Embed(feats []backbone.Feature) ([]float32, int, error) {
	if len(feats) != len(f.Layers) {
		return nil, 0, fmt.Errorf("cflow: %d layer outputs for layers %v", len(feats), f.Layers)
	}
	ls := f.Layout(feats[0].H, feats[0].W)
	n := feats[0].N
	for i, x := range feats {
		l := ls[i]
		if x.Layer != l.Name || x.N != n || x.C != l.C || x.H != l.H || x.W != l.W || len(x.Data) != n*l.C*l.H*l.W {
			return nil, 0, fmt.Errorf("cflow: layer %s output %dx%dx%dx%d, want %s at %dx%dx%dx%d", x.Layer, x.N, x.C, x.H, x.W, l.Name, n, l.C, l.H, l.W)
		}
	}
	per := values(ls)
	out := make([]float32, n*per)
	compute.ParallelFor(n, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			embedImage(out[i*per:(i+1)*per], feats, ls, i)
		}
	})
	return out, per / f.Width, nil
}

// embedImage writes image i's fibers of every layer to dst, layer after
// layer.
func embedImage(dst []float32, feats []backbone.Feature, ls []Layer, i int) {
	at := 0
	for j, x := range feats {
		l := ls[j]
		hw := l.H * l.W
		src := x.Data[i*l.C*hw : (i+1)*l.C*hw]
		out := dst[at : at+hw*l.C]
		for c := 0; c < l.C; c++ {
			for p, v := range src[c*hw : (c+1)*hw] {
				out[p*l.C+c] = v
			}
		}
		at += hw * l.C
	}
}
