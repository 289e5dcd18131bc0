// Package embed is PatchCore's local patch embedding
// (docs/method.md#33-patch-aggregation-resizing-and-pooling): every layer's
// feature map is unfolded into patch neighbourhoods, each neighbourhood is
// pooled to PretrainDim values, deeper layers are brought to the first
// layer's grid by bilinear resizing, and the layers' vectors are
// concatenated and pooled again to TargetDim.
package embed

import (
	"fmt"
	"sync"

	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/compute"
)

// Embedder turns the layer outputs of one backbone forward pass into patch
// features: Config (PatchCore's embedding) and PaDiM (its channel
// selection) are the two there are.
type Embedder interface {
	// Embed returns the features [N][positions][dim] of the layer outputs
	// feats (same N, the first layer setting the grid).
	Embed(feats []backbone.Feature) (data []float32, positions int, err error)
	// Grid is the patch grid for a first layer of h x w.
	Grid(h, w int) (gh, gw int)
}

// Config holds the embedding parameters. The zero value is not valid; see
// Default.
type Config struct {
	PatchSize   int // neighbourhood side; PatchCore: 3
	Stride      int // neighbourhood stride; PatchCore: 1
	PretrainDim int // per-layer pooled dimension; PatchCore: 1024
	TargetDim   int // final dimension; PatchCore: 1024
}

// Default is the published PatchCore/SoftPatch setting.
func Default() Config { return Config{PatchSize: 3, Stride: 1, PretrainDim: 1024, TargetDim: 1024} }

// Grid returns the patch grid of a feature map of size h x w: torch's
// Unfold with padding (PatchSize-1)/2.
func (c Config) Grid(h, w int) (gh, gw int) {
	pad := (c.PatchSize - 1) / 2
	return (h+2*pad-c.PatchSize)/c.Stride + 1, (w+2*pad-c.PatchSize)/c.Stride + 1
}

func (c Config) check() error {
	if c.PatchSize < 1 || c.Stride < 1 || c.PretrainDim < 1 || c.TargetDim < 1 {
		return fmt.Errorf("embed: invalid config %+v: every field must be positive", c)
	}
	return nil
}

// Embed computes the patch features of a batch. feats are the layer
// outputs of one Backbone.Forward call (same N), the first one setting
// the reference grid. It returns [N][positions][TargetDim], row-major,
// positions in row-major order of the reference grid.
func (c Config) Embed(feats []backbone.Feature) (data []float32, positions int, err error) {
	if err := c.check(); err != nil {
		return nil, 0, err
	}
	if len(feats) == 0 {
		return nil, 0, fmt.Errorf("embed: no layers")
	}
	n := feats[0].N
	gh, gw := c.Grid(feats[0].H, feats[0].W)
	for _, f := range feats {
		if f.N != n || len(f.Data) != f.N*f.C*f.H*f.W {
			return nil, 0, fmt.Errorf("embed: layer %s has shape %dx%dx%dx%d with %d values, batch %d",
				f.Layer, f.N, f.C, f.H, f.W, len(f.Data), n)
		}
	}
	positions = gh * gw
	data = make([]float32, n*positions*c.TargetDim)
	workers := min(compute.Threads(), n)
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	for range workers {
		wg.Go(func() {
			s := newScratch(c, feats, positions)
			for i := range next {
				c.embedImage(data[i*positions*c.TargetDim:(i+1)*positions*c.TargetDim], feats, i, gh, gw, s)
			}
		})
	}
	wg.Wait()
	return data, positions, nil
}

// scratch holds one worker's buffers.
type scratch struct {
	hwc    []float32                 // one layer's map of one image, transposed to [h*w][C]
	patch  []float32                 // one unfolded neighbourhood, C*PatchSize^2
	pooled []float32                 // a deeper layer's pooled vectors on its own grid, [gh*gw][PretrainDim]
	planes []float32                 // the same as planes, [PretrainDim][gh*gw]
	resize []float32                 // resized planes, [PretrainDim][positions]
	onRef  [][]float32               // each layer's pooled vectors on the reference grid, [positions][PretrainDim]
	concat []float32                 // one position's concatenated layer vectors
	pools  []*compute.AdaptivePool1D // each layer's C*PatchSize^2 -> PretrainDim
	final  *compute.AdaptivePool1D   // layers*PretrainDim -> TargetDim
}

func newScratch(c Config, feats []backbone.Feature, positions int) *scratch {
	s := &scratch{
		concat: make([]float32, len(feats)*c.PretrainDim),
		resize: make([]float32, c.PretrainDim*positions),
		final:  compute.NewAdaptivePool1D(len(feats)*c.PretrainDim, c.TargetDim),
	}
	maxMap, maxPatch, maxGrid := 0, 0, 0
	for _, f := range feats {
		maxMap = max(maxMap, f.C*f.H*f.W)
		maxPatch = max(maxPatch, f.C*c.PatchSize*c.PatchSize)
		gh, gw := c.Grid(f.H, f.W)
		maxGrid = max(maxGrid, gh*gw)
		s.onRef = append(s.onRef, make([]float32, c.PretrainDim*positions))
		s.pools = append(s.pools, compute.NewAdaptivePool1D(f.C*c.PatchSize*c.PatchSize, c.PretrainDim))
	}
	s.hwc = make([]float32, maxMap)
	s.patch = make([]float32, maxPatch)
	s.pooled = make([]float32, c.PretrainDim*maxGrid)
	s.planes = make([]float32, c.PretrainDim*maxGrid)
	return s
}

// embedImage writes image i's [positions][TargetDim] features to dst.
//
// The reference resizes each of a deeper layer's C*PatchSize^2 unfolded
// components and pools afterwards; pooling (across components) and
// resizing (across positions) are linear maps on different axes, so
// pooling first and resizing the PretrainDim pooled planes gives the same
// result with fewer planes to resize. Vectors are kept position-major
// (contiguous per position); only the resize works on planes.
func (c Config) embedImage(dst []float32, feats []backbone.Feature, i, refH, refW int, s *scratch) {
	p := c.PatchSize
	pad := (p - 1) / 2
	positions := refH * refW
	d := c.PretrainDim
	for l, f := range feats {
		gh, gw := c.Grid(f.H, f.W)
		hwc := s.hwc[:f.C*f.H*f.W]
		transpose(hwc, f.Data[i*f.C*f.H*f.W:(i+1)*f.C*f.H*f.W], f.C, f.H*f.W)
		patch := s.patch[:f.C*p*p]
		onGrid := gh == refH && gw == refW
		pooled := s.onRef[l]
		if !onGrid {
			pooled = s.pooled[:d*gh*gw]
		}
		for gy := 0; gy < gh; gy++ {
			for gx := 0; gx < gw; gx++ {
				unfold(patch, hwc, f.C, f.H, f.W, gy*c.Stride-pad, gx*c.Stride-pad, p)
				pos := gy*gw + gx
				s.pools[l].Pool(pooled[pos*d:(pos+1)*d], patch)
			}
		}
		if !onGrid {
			planes := s.planes[:d*gh*gw]
			transpose(planes, pooled, gh*gw, d)
			compute.ResizeBilinear(s.resize, planes, d, gh, gw, refH, refW)
			transpose(s.onRef[l], s.resize, d, positions)
		}
	}
	for pos := 0; pos < positions; pos++ {
		for l := range feats {
			copy(s.concat[l*d:(l+1)*d], s.onRef[l][pos*d:(pos+1)*d])
		}
		s.final.Pool(dst[pos*c.TargetDim:(pos+1)*c.TargetDim], s.concat)
	}
}

// transpose writes src ([rows][cols]) to dst as [cols][rows], in tiles
// that stay in cache.
func transpose(dst, src []float32, rows, cols int) {
	const tile = 16
	for r0 := 0; r0 < rows; r0 += tile {
		r1 := min(r0+tile, rows)
		for c0 := 0; c0 < cols; c0 += tile {
			c1 := min(c0+tile, cols)
			for r := r0; r < r1; r++ {
				row := src[r*cols+c0 : r*cols+c1]
				for k, v := range row {
					dst[(c0+k)*rows+r] = v
				}
			}
		}
	}
}

// unfold writes the p x p neighbourhood whose top-left corner is (y0, x0)
// of a map stored as hwc ([h*w][channels]) to dst in torch Unfold order
// (channel, then row, then column), zero outside the map.
func unfold(dst, hwc []float32, channels, h, w, y0, x0, p int) {
	pp := p * p
	for ky := 0; ky < p; ky++ {
		y := y0 + ky
		for kx := 0; kx < p; kx++ {
			x := x0 + kx
			k := ky*p + kx
			if y < 0 || y >= h || x < 0 || x >= w {
				for ch := 0; ch < channels; ch++ {
					dst[ch*pp+k] = 0
				}
				continue
			}
			src := hwc[(y*w+x)*channels : (y*w+x+1)*channels]
			for ch, v := range src {
				dst[ch*pp+k] = v
			}
		}
	}
}
