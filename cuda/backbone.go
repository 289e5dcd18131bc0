package cuda

import (
	"fmt"
	"slices"

	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/compute"
)

// conv is a convolution with its folded weights and bias on the device.
type conv struct {
	c            *compute.Conv
	weight, bias Buffer
}

// Backbone runs a backbone.Backbone's network (its folded convolutions) on
// the GPU: each convolution as im2col (none for 1x1 stride-1) plus a cuBLAS
// strided batched SGEMM over the batch's images, then bias, residual and ReLU in one kernel; the stem's
// max-pool in another. Run keeps the requested layers' outputs on the
// device (for Embedder); Forward copies them back.
type Backbone struct {
	d       *Device
	deepest int
	stem    conv
	stages  [4][][4]*conv // conv1, conv2, conv3, downsample (nil)
	weights buffers
	fns     map[string]Function
	// colBudget is im2colBudget (tests lower it to make groups).
	colBudget int64
	// scratch of Run, kept for the next call (the same batch shape
	// needs the same sizes): four activations of actFloats floats and the
	// im2col matrix of colFloats; empty until the first Run.
	scratch              buffers
	act                  [4]Buffer
	col                  Buffer
	actFloats, colFloats int64
}

// NewBackbone uploads the weights of b (every stage it was built to).
func (d *Device) NewBackbone(b *backbone.Backbone) (*Backbone, error) {
	if !d.HasBLAS() {
		return nil, fmt.Errorf("cuda: the backbone needs cuBLAS: %v", d.BLASError)
	}
	g := &Backbone{d: d, deepest: b.Deepest, weights: buffers{d: d}, scratch: buffers{d: d}, fns: map[string]Function{}, colBudget: im2colBudget}
	for _, k := range []string{"im2col", "bias_act", "max_pool", "copy_f32"} {
		f, err := d.kernel(k)
		if err != nil {
			return nil, err
		}
		g.fns[k] = f
	}
	up := func(c *compute.Conv) (*conv, error) {
		if c == nil {
			return nil, nil
		}
		w, bb := g.weights.alloc(int64(len(c.Weight))*4), g.weights.alloc(int64(len(c.Bias))*4)
		if g.weights.err != nil {
			return nil, g.weights.err
		}
		if err := Upload(d, w, 0, c.Weight); err != nil {
			return nil, err
		}
		if err := Upload(d, bb, 0, c.Bias); err != nil {
			return nil, err
		}
		return &conv{c: c, weight: w, bias: bb}, nil
	}
	stem, stages := b.Blocks()
	s, err := up(stem)
	if err != nil {
		g.Close()
		return nil, err
	}
	g.stem = *s
	for i, blks := range stages {
		for _, blk := range blks {
			var cs [4]*conv
			for j, c := range []*compute.Conv{blk.Conv1, blk.Conv2, blk.Conv3, blk.Downsample} {
				if cs[j], err = up(c); err != nil {
					g.Close()
					return nil, err
				}
			}
			g.stages[i] = append(g.stages[i], cs)
		}
	}
	return g, nil
}

// Close frees the weights and Run's scratch.
func (g *Backbone) Close() error {
	err := g.scratch.free()
	if e := g.weights.free(); err == nil {
		err = e
	}
	return err
}

// grid is the grid of a grid-stride launch of 256-thread blocks over total
// items (capped at 2^16 blocks).
func grid(total int64) [3]uint32 {
	return [3]uint32{uint32(min((total+255)/256, 1<<16)), 1, 1}
}

// im2colBudget bounds the im2col scratch of a forward pass, in bytes: a
// convolution's images go through im2col and the batched GEMM in groups
// whose column matrices fit (at least one image at a time).
const im2colBudget = 1 << 30

// forwardConv runs c on x [n][In][h][w] into y [n][Out][oh][ow] (plus
// residual before the activation, when it is not zero), using col
// (colFloats floats) as im2col scratch: groups of images as large as col
// holds go through im2col and one strided batched SGEMM (the weights
// shared, stride 0); a 1x1 stride-1 convolution needs no im2col, and all
// its images go through one GEMM.
func (g *Backbone) forwardConv(c *conv, x, y, residual, col Buffer, colFloats int64, n, h, w int) (int, int, error) {
	oh, ow := c.c.OutputSize(h, w)
	k, in, out := c.c.Kernel, c.c.In, c.c.Out
	kdim, p := in*k*k, oh*ow
	direct := k == 1 && c.c.Stride == 1 && c.c.Pad == 0
	group := n
	if !direct {
		group = int(min(int64(n), max(1, colFloats/int64(kdim*p))))
	}
	for i0 := 0; i0 < n; i0 += group {
		gn := min(group, n-i0)
		xi := Buffer{Ptr: x.Ptr + uint64(i0)*uint64(in*h*w)*4, Bytes: int64(gn) * int64(in*h*w) * 4}
		yi := Buffer{Ptr: y.Ptr + uint64(i0)*uint64(out*p)*4, Bytes: int64(gn) * int64(out*p) * 4}
		b, strideB := xi, int64(in*h*w)
		if !direct {
			if err := g.d.Launch(g.fns["im2col"], grid(int64(gn)*int64(kdim*p)), [3]uint32{256, 1, 1}, 0,
				xi, int64(gn), in, h, w, k, c.c.Stride, c.c.Pad, oh, ow, col); err != nil {
				return 0, 0, err
			}
			b, strideB = col, int64(kdim*p)
		}
		if err := g.d.SgemmStridedBatched(false, false, out, p, kdim, 1, c.weight, kdim, 0, b, p, strideB, 0, yi, p, int64(out*p), gn); err != nil {
			return 0, 0, err
		}
	}
	relu := 0
	if c.c.ReLU {
		relu = 1
	}
	err := g.d.Launch(g.fns["bias_act"], grid(int64(n*out*p)), [3]uint32{256, 1, 1}, 0, y, c.bias, residual, int64(n), out, p, relu)
	return oh, ow, err
}

// ensureScratch makes Run's scratch hold four activations of actFloats
// floats and an im2col matrix of colFloats floats: the kept buffers when
// they are as large, else new ones (the old freed first).
func (g *Backbone) ensureScratch(actFloats, colFloats int64) error {
	if g.scratch.list != nil && g.actFloats >= actFloats && g.colFloats >= colFloats {
		return nil
	}
	if err := g.scratch.free(); err != nil {
		return err
	}
	g.scratch.err = nil
	for i := range g.act {
		g.act[i] = g.scratch.alloc(actFloats * 4)
	}
	g.col = g.scratch.alloc(colFloats * 4)
	if err := g.scratch.err; err != nil {
		g.scratch.free()
		g.actFloats, g.colFloats = 0, 0
		return err
	}
	g.actFloats, g.colFloats = actFloats, colFloats
	return nil
}

// Activations are a batch's layer outputs kept in device memory, as
// Backbone.Run returns them. Layers describes them (name and shape; Data is
// nil), in the order they were requested.
type Activations struct {
	Layers []backbone.Feature
	d      *Device
	bufs   []Buffer     // bufs[i] holds Layers[i], [N][C][H][W]
	parent *Activations // Pick's view: the buffers belong to parent
}

// Download copies the layers to the host: what Backbone.Forward returns.
func (a *Activations) Download() ([]backbone.Feature, error) {
	if !a.live() {
		return nil, fmt.Errorf("cuda: download of closed activations")
	}
	out := make([]backbone.Feature, len(a.Layers))
	for i, f := range a.Layers {
		f.Data = make([]float32, f.N*f.C*f.H*f.W)
		if err := Download(a.d, f.Data, a.bufs[i], 0); err != nil {
			return nil, err
		}
		out[i] = f
	}
	return out, nil
}

// live reports whether a's device memory is still there: a is not closed,
// nor, for a view, its parent.
func (a *Activations) live() bool {
	return a != nil && a.bufs != nil && (a.parent == nil || a.parent.bufs != nil)
}

// Pick returns the named layers, in that order, as Activations that share
// a's device memory: usable until a is closed (they then fail as closed
// Activations do); closing them frees nothing.
func (a *Activations) Pick(layers []string) (*Activations, error) {
	if !a.live() {
		return nil, fmt.Errorf("cuda: pick from closed activations")
	}
	v := &Activations{d: a.d, parent: a}
	for _, l := range layers {
		i := slices.IndexFunc(a.Layers, func(f backbone.Feature) bool { return f.Layer == l })
		if i < 0 {
			return nil, fmt.Errorf("cuda: activations have no layer %s", l)
		}
		v.Layers = append(v.Layers, a.Layers[i])
		v.bufs = append(v.bufs, a.bufs[i])
	}
	return v, nil
}

// Close frees the device memory; closing again does nothing.
func (a *Activations) Close() error {
	if a.parent != nil {
		a.bufs = nil
		return nil
	}
	var first error
	for _, b := range a.bufs {
		if err := a.d.Free(b); first == nil {
			first = err
		}
	}
	a.bufs = nil
	return first
}

// Forward runs the batch x ([n][3][h][w], normalised) up to the deepest of
// layers and returns those layers' outputs, as backbone.Backbone.Forward
// does: Run, then Download.
func (g *Backbone) Forward(x []float32, n, h, w int, layers []string) (out []backbone.Feature, err error) {
	a, err := g.Run(x, n, h, w, layers)
	if err != nil {
		return nil, err
	}
	out, err = a.Download()
	if e := a.Close(); err == nil && e != nil {
		return nil, e
	}
	return out, err
}

// Run runs the batch x ([n][3][h][w], normalised) up to the deepest of
// layers and keeps those layers' outputs on the device, in the order
// asked. The caller closes the result.
func (g *Backbone) Run(x []float32, n, h, w int, layers []string) (act *Activations, err error) {
	if n <= 0 || h <= 0 || w <= 0 || len(x) != n*3*h*w {
		return nil, fmt.Errorf("cuda: backbone input has %d values, want %dx3x%dx%d", len(x), n, h, w)
	}
	if len(layers) == 0 {
		return nil, fmt.Errorf("cuda: backbone: no layers requested")
	}
	want := map[int]int{}
	deepest := 0
	for i, l := range layers {
		s, err := backbone.LayerIndex(l)
		if err != nil {
			return nil, err
		}
		if _, dup := want[s]; dup {
			return nil, fmt.Errorf("cuda: backbone: layer %s requested twice", l)
		}
		if s > g.deepest {
			return nil, fmt.Errorf("cuda: layer %s is deeper than the backbone was built to", l)
		}
		want[s] = i
		deepest = max(deepest, s)
	}
	res := &Activations{Layers: make([]backbone.Feature, len(layers)), d: g.d, bufs: make([]Buffer, len(layers))}
	defer func() {
		if err != nil {
			res.Close()
			act = nil
		}
	}()
	// Scratch sizes: every activation (the block input, conv1's and conv2's
	// outputs, the downsampled identity, conv3's output) and im2col matrix
	// of this input size.
	maxAct, maxCol := int64(n*3*h*w), int64(0)
	needCol := func(c *compute.Conv, oh, ow int) {
		if c.Kernel != 1 || c.Stride != 1 || c.Pad != 0 {
			maxCol = max(maxCol, int64(c.In*c.Kernel*c.Kernel*oh*ow))
		}
	}
	{
		ch, cw := g.stem.c.OutputSize(h, w)
		maxAct = max(maxAct, int64(n*g.stem.c.Out*ch*cw))
		needCol(g.stem.c, ch, cw)
		ch, cw = compute.MaxPoolOutputSize(ch, cw, 3, 2, 1)
		for s := 0; s <= deepest; s++ {
			for _, cs := range g.stages[s] {
				c1, c2, c3, ds := cs[0].c, cs[1].c, cs[2].c, cs[3]
				maxAct = max(maxAct, int64(n*c1.In*ch*cw), int64(n*c1.Out*ch*cw))
				oh, ow := c2.OutputSize(ch, cw)
				needCol(c2, oh, ow)
				maxAct = max(maxAct, int64(n*c2.Out*oh*ow), int64(n*c3.Out*oh*ow))
				if ds != nil {
					needCol(ds.c, oh, ow)
				}
				ch, cw = oh, ow
			}
		}
	}
	// The largest im2col matrix for all n images, or as many images' as
	// fit in im2colBudget (at least one).
	colFloats := max(min(int64(n)*maxCol, g.colBudget/4), maxCol, 1)
	if err := g.ensureScratch(maxAct, colFloats); err != nil {
		return nil, err
	}
	a, t1, t2, id, col := g.act[0], g.act[1], g.act[2], g.act[3], g.col
	if err := Upload(g.d, a, 0, x); err != nil {
		return nil, err
	}
	// stem -> t1, max-pool -> a
	ch, cw, err := g.forwardConv(&g.stem, a, t1, Buffer{}, col, colFloats, n, h, w)
	if err != nil {
		return nil, err
	}
	ph, pw := compute.MaxPoolOutputSize(ch, cw, 3, 2, 1)
	if err := g.d.Launch(g.fns["max_pool"], grid(int64(n*g.stem.c.Out*ph*pw)), [3]uint32{256, 1, 1}, 0,
		t1, int64(n*g.stem.c.Out), ch, cw, 3, 2, 1, ph, pw, a); err != nil {
		return nil, err
	}
	h, w, c := ph, pw, g.stem.c.Out
	for s := 0; s <= deepest; s++ {
		for _, cs := range g.stages[s] {
			if _, _, err := g.forwardConv(cs[0], a, t1, Buffer{}, col, colFloats, n, h, w); err != nil {
				return nil, err
			}
			oh, ow, err := g.forwardConv(cs[1], t1, t2, Buffer{}, col, colFloats, n, h, w)
			if err != nil {
				return nil, err
			}
			identity := a
			if cs[3] != nil {
				if _, _, err := g.forwardConv(cs[3], a, id, Buffer{}, col, colFloats, n, h, w); err != nil {
					return nil, err
				}
				identity = id
			}
			// conv3's output replaces the block input: into t1, then swap.
			if _, _, err := g.forwardConv(cs[2], t2, t1, identity, col, colFloats, n, oh, ow); err != nil {
				return nil, err
			}
			a, t1 = t1, a
			h, w, c = oh, ow, cs[2].c.Out
		}
		if i, ok := want[s]; ok {
			// The layer gets its own buffer, copied out of the rotating scratch.
			size := int64(n) * int64(c*h*w)
			b, err := g.d.Alloc(size * 4)
			if err != nil {
				return nil, err
			}
			res.bufs[i] = b
			res.Layers[i] = backbone.Feature{Layer: layers[i], N: n, C: c, H: h, W: w}
			if err := g.d.Launch(g.fns["copy_f32"], grid(size), [3]uint32{256, 1, 1}, 0, a, size, b); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}
