package backbone

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/softpatch/softpatch/engine/compute"
)

// The graph's nodes are these fused ops. Each writes into an output tensor
// that build assigns once the graph's execution order is known (ops whose
// outputs are never alive at the same time share memory), and Do returns
// it: with ReturnsPtr and CallsExtern both false the tape machine keeps
// that value instead of allocating a fresh one per run, so a forward pass
// allocates almost nothing. A node's value is overwritten by the next run.

// output is an op's output shape and the buffer build assigned to it.
type output struct {
	shape tensor.Shape
	out   *tensor.Dense
}

func (o *output) outputShape() tensor.Shape { return o.shape }

func (o *output) buffer() []float32 { return o.out.Data().([]float32) }

func (o *output) setOutput(buf []float32) {
	o.out = tensor.New(tensor.WithShape(o.shape...), tensor.WithBacking(buf))
}

func (o *output) InferShape(...G.DimSizer) (tensor.Shape, error) { return o.shape.Clone(), nil }

// bufferedOp is an op whose output buffer build assigns.
type bufferedOp interface {
	G.Op
	outputShape() tensor.Shape
	setOutput(buf []float32)
	buffer() []float32
}

// nchw is the gorgonia type of a 4-D float tensor.
var nchw = &G.TensorType{Dims: 4, Of: hm.TypeVariable('a')}

// convOp is a convolution with folded BatchNorm, optional residual input
// (its second operand) and optional ReLU.
type convOp struct {
	name     string
	conv     *compute.Conv
	n, h, w  int
	residual bool
	ws       *compute.Workspace
	output
}

func newConvOp(name string, c *compute.Conv, n, h, w int, residual bool, ws *compute.Workspace) *convOp {
	oh, ow := c.OutputSize(h, w)
	return &convOp{
		name: name, conv: c, n: n, h: h, w: w, residual: residual, ws: ws,
		output: output{shape: tensor.Shape{n, c.Out, oh, ow}},
	}
}

func (op *convOp) Arity() int {
	if op.residual {
		return 2
	}
	return 1
}

func (op *convOp) Type() hm.Type {
	if op.residual {
		return hm.NewFnType(nchw, nchw, nchw)
	}
	return hm.NewFnType(nchw, nchw)
}

func (op *convOp) Do(in ...G.Value) (G.Value, error) {
	x, err := float32s(op.name, in[0], op.n*op.conv.In*op.h*op.w)
	if err != nil {
		return nil, err
	}
	var res []float32
	dst := op.out.Data().([]float32)
	if op.residual {
		if res, err = float32s(op.name, in[1], len(dst)); err != nil {
			return nil, err
		}
	}
	op.conv.Forward(dst, x, res, op.n, op.h, op.w, op.ws)
	return op.out, nil
}

func (op *convOp) ReturnsPtr() bool      { return false }
func (op *convOp) CallsExtern() bool     { return false }
func (op *convOp) OverwritesInput() int  { return -1 }
func (op *convOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op *convOp) Hashcode() uint32      { return hashString(op.String()) }
func (op *convOp) String() string {
	return fmt.Sprintf("Conv[%s %dx%d/%d %d->%d relu=%t res=%t]", op.name, op.conv.Kernel, op.conv.Kernel,
		op.conv.Stride, op.conv.In, op.conv.Out, op.conv.ReLU, op.residual)
}

// maxPoolOp is torch's max_pool2d(kernel, stride, pad).
type maxPoolOp struct {
	kernel, stride, pad int
	n, c, h, w          int
	output
}

func newMaxPoolOp(kernel, stride, pad, n, c, h, w int) *maxPoolOp {
	oh, ow := compute.MaxPoolOutputSize(h, w, kernel, stride, pad)
	return &maxPoolOp{kernel: kernel, stride: stride, pad: pad, n: n, c: c, h: h, w: w,
		output: output{shape: tensor.Shape{n, c, oh, ow}}}
}

func (op *maxPoolOp) Arity() int    { return 1 }
func (op *maxPoolOp) Type() hm.Type { return hm.NewFnType(nchw, nchw) }
func (op *maxPoolOp) Do(in ...G.Value) (G.Value, error) {
	x, err := float32s("maxpool", in[0], op.n*op.c*op.h*op.w)
	if err != nil {
		return nil, err
	}
	compute.MaxPool2D(op.out.Data().([]float32), x, op.n*op.c, op.h, op.w, op.kernel, op.stride, op.pad)
	return op.out, nil
}
func (op *maxPoolOp) ReturnsPtr() bool      { return false }
func (op *maxPoolOp) CallsExtern() bool     { return false }
func (op *maxPoolOp) OverwritesInput() int  { return -1 }
func (op *maxPoolOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op *maxPoolOp) Hashcode() uint32      { return hashString(op.String()) }
func (op *maxPoolOp) String() string {
	return fmt.Sprintf("MaxPool[%d/%d pad %d]", op.kernel, op.stride, op.pad)
}

// float32s returns a node value's backing slice, checking its length.
func float32s(op string, v G.Value, want int) ([]float32, error) {
	t, ok := v.(tensor.Tensor)
	if !ok {
		return nil, fmt.Errorf("backbone: %s: input is %T, not a tensor", op, v)
	}
	d, ok := t.Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("backbone: %s: input is %v, not float32", op, t.Dtype())
	}
	if len(d) != want {
		return nil, fmt.Errorf("backbone: %s: input has %d values, want %d", op, len(d), want)
	}
	return d, nil
}

// hashString is FNV-1a, for gorgonia's op hash codes.
func hashString(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}
