package backbone

import (
	"fmt"
	"runtime"
	"slices"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/softpatch/softpatch/engine/compute"
)

// Backbone is a bottleneck ResNet with BatchNorm folded into its
// convolutions. It builds a gorgonia expression graph for an input shape
// and deepest layer and keeps the latest one for later calls (a run whose
// last batch is smaller builds one more). A Backbone is not safe for
// concurrent use.
type Backbone struct {
	Arch    Arch
	Deepest int // deepest stage built (0 for layer1)
	stem    *compute.Conv
	stages  [4][]bottleneck
	graphs  map[graphKey]*graph
	ws      *compute.Workspace
}

// bottleneck is torchvision's Bottleneck block: 1x1, 3x3 (with the
// stride), 1x1 with the residual added before the last ReLU.
type bottleneck struct {
	name                string
	conv1, conv2, conv3 *compute.Conv
	downsample          *compute.Conv // nil when the identity is added
}

type graphKey struct{ n, h, w, deepest int }

// graph is one compiled forward pass.
type graph struct {
	g       *G.ExprGraph
	input   *G.Node
	outputs [4]*G.Node // layer1..layer4; nil past the deepest layer
	vm      G.VM
	x       *tensor.Dense
}

// New builds a Backbone from a state_dict that matches arch (see
// LoadCheckpoint and RandomInit), with the stages up to deepest (0 for
// layer1, 3 for layer4): deeper layers are never computed, so their
// weights are not kept. The parameters are not retained: the folded
// weights are fresh slices.
func New(arch Arch, params map[string]Tensor, deepest int) (*Backbone, error) {
	if deepest < 0 || deepest > 3 {
		return nil, fmt.Errorf("backbone: deepest stage %d is not in 0..3", deepest)
	}
	for _, p := range arch.Params() {
		t, ok := params[p.Name]
		if !ok {
			if p.Optional {
				continue
			}
			return nil, fmt.Errorf("backbone: %s: missing parameter %s", arch.Name, p.Name)
		}
		if !slices.Equal(t.Shape, p.Shape) {
			return nil, fmt.Errorf("backbone: %s: parameter %s has shape %v, want %v", arch.Name, p.Name, t.Shape, p.Shape)
		}
	}
	fold := func(conv, bn string, stride, pad int, relu bool) *compute.Conv {
		w := params[conv+".weight"]
		out, in, k := w.Shape[0], w.Shape[1], w.Shape[2]
		fw, fb := compute.FoldBatchNorm(w.Data, out, params[bn+".weight"].Data, params[bn+".bias"].Data,
			params[bn+".running_mean"].Data, params[bn+".running_var"].Data, BatchNormEps)
		return &compute.Conv{In: in, Out: out, Kernel: k, Stride: stride, Pad: pad, Weight: fw, Bias: fb, ReLU: relu}
	}
	b := &Backbone{Arch: arch, Deepest: deepest, graphs: map[graphKey]*graph{}, ws: &compute.Workspace{}}
	b.stem = fold("conv1", "bn1", 2, 3, true)
	for s := 0; s <= deepest; s++ {
		for i := 0; i < arch.Blocks[s]; i++ {
			p := fmt.Sprintf("layer%d.%d.", s+1, i)
			stride := 1
			if s > 0 && i == 0 {
				stride = 2
			}
			blk := bottleneck{
				name:  p[:len(p)-1],
				conv1: fold(p+"conv1", p+"bn1", 1, 0, true),
				conv2: fold(p+"conv2", p+"bn2", stride, 1, true),
				conv3: fold(p+"conv3", p+"bn3", 1, 0, true),
			}
			if i == 0 {
				blk.downsample = fold(p+"downsample.0", p+"downsample.1", stride, 0, false)
			}
			b.stages[s] = append(b.stages[s], blk)
		}
	}
	return b, nil
}

// Feature is one layer's output for a batch: Data is [N][C][H][W],
// row-major, owned by the caller.
type Feature struct {
	Layer      string
	N, C, H, W int
	Data       []float32
}

// Forward runs the batch x ([n][3][h][w], normalised) through the network
// up to the deepest of the requested layers and returns the requested
// layers' outputs in the order asked. Nothing past the deepest layer is
// computed.
func (b *Backbone) Forward(x []float32, n, h, w int, layers []string) ([]Feature, error) {
	if len(layers) == 0 {
		return nil, fmt.Errorf("backbone: no layers requested")
	}
	if n <= 0 || h <= 0 || w <= 0 || len(x) != n*3*h*w {
		return nil, fmt.Errorf("backbone: input has %d values, want %dx3x%dx%d", len(x), n, h, w)
	}
	idx := make([]int, len(layers))
	deepest := 0
	for i, l := range layers {
		s, err := LayerIndex(l)
		if err != nil {
			return nil, err
		}
		if s > b.Deepest {
			return nil, fmt.Errorf("backbone: layer %s is deeper than the %s this backbone was built to", l, Layers[b.Deepest])
		}
		idx[i] = s
		deepest = max(deepest, s)
	}
	key := graphKey{n, h, w, deepest}
	gr, ok := b.graphs[key]
	if !ok {
		var err error
		if len(b.graphs) > 0 {
			// Keep one graph's activations in memory, not one per batch
			// size: drop the old graph and collect it before the new one
			// allocates, so that the heap does not grow to hold both.
			clear(b.graphs)
			runtime.GC()
		}
		if gr, err = b.build(key); err != nil {
			return nil, err
		}
		b.graphs[key] = gr
	}
	copy(gr.x.Data().([]float32), x)
	if err := G.Let(gr.input, gr.x); err != nil {
		return nil, fmt.Errorf("backbone: binding input: %w", err)
	}
	if err := gr.vm.RunAll(); err != nil {
		return nil, fmt.Errorf("backbone: forward pass: %w", err)
	}
	gr.vm.Reset()
	out := make([]Feature, len(layers))
	for i, s := range idx {
		v := gr.outputs[s].Value().(tensor.Tensor)
		shp := v.Shape()
		out[i] = Feature{Layer: layers[i], N: shp[0], C: shp[1], H: shp[2], W: shp[3],
			Data: append([]float32(nil), v.Data().([]float32)...)}
	}
	return out, nil
}

// build assembles the expression graph for one input shape.
func (b *Backbone) build(k graphKey) (*graph, error) {
	g := G.NewGraph()
	gr := &graph{g: g, x: tensor.New(tensor.WithShape(k.n, 3, k.h, k.w), tensor.Of(tensor.Float32))}
	gr.input = G.NewTensor(g, tensor.Float32, 4, G.WithShape(k.n, 3, k.h, k.w), G.WithName("input"))
	inputs := map[*G.Node][]*G.Node{}
	apply := func(op G.Op, name string, in ...*G.Node) (*G.Node, error) {
		node, err := G.ApplyOpWithName(op, name, in...)
		if err != nil {
			return nil, fmt.Errorf("backbone: building %s: %w", name, err)
		}
		inputs[node] = in
		return node, nil
	}
	h, w := k.h, k.w
	x, err := apply(newConvOp("conv1", b.stem, k.n, h, w, false, b.ws), "conv1", gr.input)
	if err != nil {
		return nil, err
	}
	h, w = b.stem.OutputSize(h, w)
	pool := newMaxPoolOp(3, 2, 1, k.n, b.stem.Out, h, w)
	if x, err = apply(pool, "maxpool", x); err != nil {
		return nil, err
	}
	h, w = compute.MaxPoolOutputSize(h, w, 3, 2, 1)
	for s := 0; s <= k.deepest; s++ {
		for _, blk := range b.stages[s] {
			if x, h, w, err = b.block(apply, blk, x, k.n, h, w); err != nil {
				return nil, err
			}
		}
		gr.outputs[s] = x
	}
	if err := assignBuffers(g, inputs, gr.outputs[:k.deepest+1]); err != nil {
		return nil, err
	}
	gr.vm = G.NewTapeMachine(g)
	return gr, nil
}

// assignBuffers gives every op of g its output buffer. It follows the
// order in which gorgonia's tape machine runs the graph (the reverse of
// G.Sort, a stabilised topological sort, as G.Compile uses) and hands an
// op a buffer released by an op whose output no later op reads; kept
// outputs stay untouched until the end of the run. An op's output never
// shares memory with its own inputs. inputs lists each op node's operands.
func assignBuffers(g *G.ExprGraph, inputs map[*G.Node][]*G.Node, kept []*G.Node) error {
	order, err := G.Sort(g)
	if err != nil {
		return fmt.Errorf("backbone: ordering the graph: %w", err)
	}
	slices.Reverse(order)
	lastUse := map[*G.Node]int{}
	for i, n := range order {
		for _, c := range inputs[n] {
			lastUse[c] = i
		}
	}
	for _, n := range kept {
		lastUse[n] = len(order)
	}
	var free [][]float32
	for i, n := range order {
		op, ok := n.Op().(bufferedOp)
		if !ok {
			continue // the input
		}
		size := op.outputShape().TotalSize()
		best := -1
		for j, b := range free {
			if cap(b) >= size && (best < 0 || cap(b) < cap(free[best])) {
				best = j
			}
		}
		if best >= 0 {
			op.setOutput(free[best][:size])
			free = slices.Delete(free, best, best+1)
		} else {
			op.setOutput(make([]float32, size))
		}
		for j, c := range inputs[n] {
			if _, isOp := c.Op().(bufferedOp); isOp && lastUse[c] == i && !slices.Contains(inputs[n][:j], c) {
				free = append(free, c.Op().(bufferedOp).buffer())
			}
		}
	}
	return nil
}

type applyFunc func(op G.Op, name string, in ...*G.Node) (*G.Node, error)

// block adds one bottleneck to the graph and returns its output node and
// spatial size.
func (b *Backbone) block(apply applyFunc, blk bottleneck, x *G.Node, n, h, w int) (*G.Node, int, int, error) {
	y1, err := apply(newConvOp(blk.name+".conv1", blk.conv1, n, h, w, false, b.ws), blk.name+".conv1", x)
	if err != nil {
		return nil, 0, 0, err
	}
	y2, err := apply(newConvOp(blk.name+".conv2", blk.conv2, n, h, w, false, b.ws), blk.name+".conv2", y1)
	if err != nil {
		return nil, 0, 0, err
	}
	oh, ow := blk.conv2.OutputSize(h, w)
	identity := x
	if blk.downsample != nil {
		name := blk.name + ".downsample"
		if identity, err = apply(newConvOp(name, blk.downsample, n, h, w, false, b.ws), name, x); err != nil {
			return nil, 0, 0, err
		}
	}
	y3, err := apply(newConvOp(blk.name+".conv3", blk.conv3, n, oh, ow, true, b.ws), blk.name+".conv3", y2, identity)
	if err != nil {
		return nil, 0, 0, err
	}
	return y3, oh, ow, nil
}

// Block is one bottleneck block's convolutions with BatchNorm folded in:
// conv1 (1x1) and conv2 (3x3, the block's stride) with ReLU, conv3 (1x1)
// whose output gets the identity (Downsample's output when it is not nil)
// added before its ReLU.
type Block struct {
	Conv1, Conv2, Conv3, Downsample *compute.Conv
}

// Blocks returns the stem convolution (7x7, stride 2, ReLU; a 3x3 stride-2
// max-pool follows it) and the blocks of each built stage (layer1.. up to
// Deepest), for another backend to run the same network (package cuda).
// The Convs are the Backbone's own: they must not be modified.
func (b *Backbone) Blocks() (stem *compute.Conv, stages [4][]Block) {
	for s, blks := range b.stages {
		for _, blk := range blks {
			stages[s] = append(stages[s], Block{Conv1: blk.conv1, Conv2: blk.conv2, Conv3: blk.conv3, Downsample: blk.downsample})
		}
	}
	return b.stem, stages
}
