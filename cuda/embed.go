package cuda

import (
	"fmt"

	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/compute"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/engine/embed"
)

// Embedder computes engine/embed's patch features on the GPU from layer
// outputs that stay on the device (Backbone.Run): the result is what
// embed.Config.Embed returns for the downloaded layers, bit for bit.
//
// An Embedder holds no device memory: each Embed call allocates its
// intermediates and frees them before it returns (for batch 32 at 224 px
// with the default config, about 330 MB: the concatenated layers, 205 MB,
// the output, 103 MB, and the pooled deeper layer, 26 MB).
type Embedder struct {
	d   *Device
	c   embed.Config
	fns map[string]Function
}

// embedKernels are the kernels an Embedder launches.
var embedKernels = []string{"unfold_pool", "resize_vectors", "pool_rows"}

// NewEmbedder prepares the embedding c on d.
func (d *Device) NewEmbedder(c embed.Config) (*Embedder, error) {
	if err := checkEmbedConfig(c); err != nil {
		return nil, err
	}
	e := &Embedder{d: d, c: c, fns: map[string]Function{}}
	for _, k := range embedKernels {
		f, err := d.kernel(k)
		if err != nil {
			return nil, err
		}
		e.fns[k] = f
	}
	return e, nil
}

// Close releases the Embedder (which holds no device memory).
func (e *Embedder) Close() error { return nil }

// Embed computes the patch features of the batch a, exactly as
// embed.Config.Embed computes them from a.Download():
// [N][positions][TargetDim], row-major, positions in row-major order of
// the first layer's patch grid. a stays open.
func (e *Embedder) Embed(a *Activations) (data []float32, positions int, err error) {
	if !a.live() {
		return nil, 0, fmt.Errorf("cuda: embed: closed or nil activations")
	}
	if a.d != e.d {
		return nil, 0, fmt.Errorf("cuda: embed: activations of another device")
	}
	p, err := newEmbedPlan(e.c, a.Layers)
	if err != nil {
		return nil, 0, err
	}
	for l, f := range a.Layers {
		if l >= len(a.bufs) || a.bufs[l].Bytes < int64(f.N)*int64(f.C*f.H*f.W)*4 {
			return nil, 0, fmt.Errorf("cuda: embed: layer %s has no device buffer of its shape", f.Layer)
		}
	}
	bs := &buffers{d: e.d}
	defer func() {
		if ferr := bs.free(); err == nil && ferr != nil {
			data, positions, err = nil, 0, ferr
		}
	}()
	b := p.alloc(bs.alloc, a.bufs)
	if bs.err != nil {
		return nil, 0, bs.err
	}
	for l, t := range p.taps {
		if t.idx == nil {
			continue
		}
		if err := Upload(e.d, b.idx[l], 0, t.idx); err != nil {
			return nil, 0, err
		}
		if err := Upload(e.d, b.wt[l], 0, t.wt); err != nil {
			return nil, 0, err
		}
	}
	if err := e.d.launchAll(e.fns, p.calls(b)); err != nil {
		return nil, 0, err
	}
	data = make([]float32, p.outLen())
	if err := Download(e.d, data, b.out, 0); err != nil {
		return nil, 0, err
	}
	return data, p.positions(), nil
}

// checkEmbedConfig is embed.Config's own check.
func checkEmbedConfig(c embed.Config) error {
	if c.PatchSize < 1 || c.Stride < 1 || c.PretrainDim < 1 || c.TargetDim < 1 {
		return fmt.Errorf("cuda: embed: invalid config %+v: every field must be positive", c)
	}
	return nil
}

// kernelCall is one kernel launch: the kernel, the number of items its
// grid-stride loop covers and its arguments (as Launch takes them).
type kernelCall struct {
	kernel string
	total  int64
	args   []any
}

// launchAll queues calls, in order, with the kernels fns.
func (d *Device) launchAll(fns map[string]Function, calls []kernelCall) error {
	for _, k := range calls {
		fn, ok := fns[k.kernel]
		if !ok {
			return fmt.Errorf("cuda: kernel %s not loaded", k.kernel)
		}
		if err := d.Launch(fn, grid(k.total), [3]uint32{256, 1, 1}, 0, k.args...); err != nil {
			return err
		}
	}
	return nil
}

// bufferAt is b from byte off on.
func bufferAt(b Buffer, off int64) Buffer {
	return Buffer{Ptr: b.Ptr + uint64(off), Bytes: b.Bytes - off}
}

// embedPlan is the device work of one Embed call, worked out on the host
// from the layers' shapes: each layer is unfolded and pooled to
// PretrainDim by unfold_pool, straight into its slot of the concatenated
// vectors cat [N][positions][layers*PretrainDim] when its patch grid is
// the first layer's, otherwise into pooled [N][gh*gw][PretrainDim] and
// from there resized into its slot by resize_vectors (embed pools before
// it resizes); pool_rows pools cat's rows to TargetDim.
type embedPlan struct {
	c      embed.Config
	layers []backbone.Feature
	n      int
	gh, gw int          // the reference patch grid
	grids  [][2]int     // each layer's patch grid
	taps   []resizeTaps // each layer's resize to the reference grid; zero on it
}

// newEmbedPlan validates c and the layers' shapes (Data is not used) and
// plans the embedding.
func newEmbedPlan(c embed.Config, layers []backbone.Feature) (*embedPlan, error) {
	if err := checkEmbedConfig(c); err != nil {
		return nil, err
	}
	if len(layers) == 0 {
		return nil, fmt.Errorf("cuda: embed: no layers")
	}
	p := &embedPlan{c: c, layers: layers, n: layers[0].N}
	for _, f := range layers {
		if f.N != p.n || f.N < 1 || f.C < 1 || f.H < 1 || f.W < 1 {
			return nil, fmt.Errorf("cuda: embed: layer %s has shape %dx%dx%dx%d, batch %d", f.Layer, f.N, f.C, f.H, f.W, p.n)
		}
		if int64(f.C)*int64(c.PatchSize)*int64(c.PatchSize) >= 1<<31 {
			return nil, fmt.Errorf("cuda: embed: layer %s: %d channels of %dx%d neighbourhoods are more than 2^31-1 values",
				f.Layer, f.C, c.PatchSize, c.PatchSize)
		}
		gh, gw := c.Grid(f.H, f.W)
		if gh < 1 || gw < 1 {
			return nil, fmt.Errorf("cuda: embed: layer %s (%dx%d) has an empty %dx%d patch grid", f.Layer, f.H, f.W, gh, gw)
		}
		p.grids = append(p.grids, [2]int{gh, gw})
	}
	p.gh, p.gw = p.grids[0][0], p.grids[0][1]
	if int64(len(layers))*int64(c.PretrainDim) >= 1<<31 {
		return nil, fmt.Errorf("cuda: embed: %d layers of %d values are more than 2^31-1", len(layers), c.PretrainDim)
	}
	p.taps = make([]resizeTaps, len(layers))
	for l, g := range p.grids {
		if !p.onGrid(l) {
			p.taps[l] = newResizeTaps(g[0], g[1], p.gh, p.gw)
		}
	}
	return p, nil
}

// positions is the number of patches per image.
func (p *embedPlan) positions() int { return p.gh * p.gw }

// onGrid reports whether layer l's patch grid is the reference grid.
func (p *embedPlan) onGrid(l int) bool { return p.grids[l] == [2]int{p.gh, p.gw} }

// catLen is the length of the concatenated vectors.
func (p *embedPlan) catLen() int64 {
	return int64(p.n) * int64(p.positions()) * int64(len(p.layers)*p.c.PretrainDim)
}

// outLen is the length of the result.
func (p *embedPlan) outLen() int64 { return int64(p.n) * int64(p.positions()) * int64(p.c.TargetDim) }

// embedBuffers is the device memory of one Embed call.
type embedBuffers struct {
	in      []Buffer // the layers, [N][C][H][W]
	pooled  []Buffer // per layer off the reference grid: [N][gh*gw][PretrainDim]
	idx, wt []Buffer // per layer off the reference grid: its resize taps
	cat     Buffer   // [N][positions][layers*PretrainDim]
	out     Buffer   // [N][positions][TargetDim]
}

// alloc allocates the plan's buffers with alloc (buffers.alloc, which
// records an error); in are the layers.
func (p *embedPlan) alloc(alloc func(int64) Buffer, in []Buffer) embedBuffers {
	L := len(p.layers)
	b := embedBuffers{in: in, pooled: make([]Buffer, L), idx: make([]Buffer, L), wt: make([]Buffer, L)}
	for l, g := range p.grids {
		if t := p.taps[l]; t.idx != nil {
			b.pooled[l] = alloc(int64(p.n) * int64(g[0]*g[1]) * int64(p.c.PretrainDim) * 4)
			b.idx[l] = alloc(int64(len(t.idx)) * 4)
			b.wt[l] = alloc(int64(len(t.wt)) * 4)
		}
	}
	b.cat = alloc(p.catLen() * 4)
	b.out = alloc(p.outLen() * 4)
	return b
}

// calls returns the plan's launches on the buffers b.
func (p *embedPlan) calls(b embedBuffers) []kernelCall {
	c := p.c
	d := c.PretrainDim
	ld := len(p.layers) * d
	pad := (c.PatchSize - 1) / 2
	var ks []kernelCall
	for l, f := range p.layers {
		gh, gw := p.grids[l][0], p.grids[l][1]
		slot := bufferAt(b.cat, int64(l*d)*4) // layer l's vector of position 0
		dst, ldst := slot, ld
		if !p.onGrid(l) {
			dst, ldst = b.pooled[l], d
		}
		ks = append(ks, kernelCall{"unfold_pool", int64(f.N) * int64(d) * int64(gh*gw),
			[]any{b.in[l], f.N, f.C, f.H, f.W, c.PatchSize, c.Stride, pad, gh, gw, d, dst, ldst}})
		if !p.onGrid(l) {
			ks = append(ks, kernelCall{"resize_vectors", int64(f.N) * int64(p.positions()) * int64(d),
				[]any{b.pooled[l], f.N, gh, gw, d, p.gh, p.gw, b.idx[l], b.wt[l], slot, ld}})
		}
	}
	rows := int64(p.n) * int64(p.positions())
	ks = append(ks, kernelCall{"pool_rows", rows * int64(c.TargetDim), []any{b.cat, rows, ld, c.TargetDim, b.out}})
	return ks
}

// resizeTaps are an h x w -> oh x ow bilinear resize's taps as the resize
// kernels read them: for each output row, then each output column, the
// two source indices (idx) and their weights (wt).
type resizeTaps struct {
	idx []int32
	wt  []float32
}

// newResizeTaps returns the taps of an h x w -> oh x ow resize.
func newResizeTaps(h, w, oh, ow int) resizeTaps {
	var t resizeTaps
	for _, tp := range append(compute.LinearTaps(h, oh), compute.LinearTaps(w, ow)...) {
		t.idx = append(t.idx, int32(tp.I0), int32(tp.I1))
		t.wt = append(t.wt, tp.L0, tp.L1)
	}
	return t
}

// Maps computes the anomaly maps of n images from their patch scores
// [n][gh][gw]: [n][size][size], each map the scores resized bilinearly to
// size x size and smoothed by a Gaussian of standard deviation sigma, bit
// for bit what detector.Map computes when sigma is detector.Smoothing
// (compute.ResizeBilinear, then detector.GaussianFilter).
//
// Each call allocates its device memory and frees it before it returns:
// the scores, two [n][size][size] float32 buffers (n*size*size*8 bytes in
// all; 3 images at 224 px: 1.2 MB), the taps and the weights.
func (d *Device) Maps(scores []float32, n, gh, gw, size int, sigma float64) (maps []float32, err error) {
	p, err := newMapsPlan(len(scores), n, gh, gw, size, sigma)
	if err != nil {
		return nil, err
	}
	fns := map[string]Function{}
	for _, k := range mapsKernels {
		if fns[k], err = d.kernel(k); err != nil {
			return nil, err
		}
	}
	bs := &buffers{d: d}
	defer func() {
		if ferr := bs.free(); err == nil && ferr != nil {
			maps, err = nil, ferr
		}
	}()
	b := p.alloc(bs.alloc)
	if bs.err != nil {
		return nil, bs.err
	}
	for _, up := range []error{
		Upload(d, b.scores, 0, scores),
		Upload(d, b.idx, 0, p.taps.idx),
		Upload(d, b.tw, 0, p.taps.wt),
		Upload(d, b.wt, 0, p.wt),
	} {
		if up != nil {
			return nil, up
		}
	}
	if err := d.launchAll(fns, p.calls(b)); err != nil {
		return nil, err
	}
	maps = make([]float32, int64(n)*int64(size)*int64(size))
	if err := Download(d, maps, b.a, 0); err != nil {
		return nil, err
	}
	return maps, nil
}

// mapsKernels are the kernels Maps launches.
var mapsKernels = []string{"resize_planes", "gauss_cols", "gauss_rows"}

// maxSigma bounds Maps' sigma (a kernel radius of 4*sigma).
const maxSigma = 1 << 16

// mapsPlan is the device work of one Maps call: resize_planes resizes the
// scores into a, gauss_cols smooths a's columns into b, gauss_rows b's rows
// into a.
type mapsPlan struct {
	n, gh, gw, size int
	taps            resizeTaps // gh x gw -> size x size
	wt              []float64  // the Gaussian's half kernel
}

// newMapsPlan validates Maps' arguments (scores has nScores values) and
// plans the maps.
func newMapsPlan(nScores, n, gh, gw, size int, sigma float64) (*mapsPlan, error) {
	if n < 1 || gh < 1 || gw < 1 || size < 1 {
		return nil, fmt.Errorf("cuda: maps: %d images of %dx%d scores to %dx%d: every size must be positive", n, gh, gw, size, size)
	}
	if int64(nScores) != int64(n)*int64(gh)*int64(gw) {
		return nil, fmt.Errorf("cuda: maps: %d scores for %d images of %dx%d", nScores, n, gh, gw)
	}
	if !(sigma > 0 && sigma <= maxSigma) {
		return nil, fmt.Errorf("cuda: maps: sigma %v outside (0, %d]", sigma, maxSigma)
	}
	if int64(size)*int64(size) >= 1<<31 {
		return nil, fmt.Errorf("cuda: maps: size %d: a map of more than 2^31-1 values", size)
	}
	return &mapsPlan{n: n, gh: gh, gw: gw, size: size, taps: newResizeTaps(gh, gw, size, size), wt: detector.GaussKernel(sigma)}, nil
}

// mapsBuffers is the device memory of one Maps call.
type mapsBuffers struct {
	scores  Buffer // [n][gh][gw]
	a, b    Buffer // [n][size][size] each
	idx, tw Buffer // the resize taps
	wt      Buffer // the Gaussian's half kernel, float64
}

// alloc allocates the plan's buffers with alloc (buffers.alloc, which
// records an error).
func (p *mapsPlan) alloc(alloc func(int64) Buffer) mapsBuffers {
	m := int64(p.n) * int64(p.size) * int64(p.size) * 4
	return mapsBuffers{
		scores: alloc(int64(p.n) * int64(p.gh) * int64(p.gw) * 4),
		a:      alloc(m),
		b:      alloc(m),
		idx:    alloc(int64(len(p.taps.idx)) * 4),
		tw:     alloc(int64(len(p.taps.wt)) * 4),
		wt:     alloc(int64(len(p.wt)) * 8),
	}
}

// calls returns the plan's launches on the buffers b; the maps end in b.a.
func (p *mapsPlan) calls(b mapsBuffers) []kernelCall {
	n, s, r := int64(p.n), p.size, len(p.wt)-1
	total := n * int64(s) * int64(s)
	return []kernelCall{
		{"resize_planes", total, []any{b.scores, n, p.gh, p.gw, s, s, b.idx, b.tw, b.a}},
		{"gauss_cols", total, []any{b.a, n, s, s, b.wt, r, b.b}},
		{"gauss_rows", total, []any{b.b, n, s, s, b.wt, r, b.a}},
	}
}
