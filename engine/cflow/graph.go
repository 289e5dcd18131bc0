package cflow

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// halfLog2Pi is log(2 pi)/2, the published _GCONST_ with its sign flipped.
const halfLog2Pi = 0.9189385332046727

// graph is a decoder's expression graph for batches of n fibers: inputs x
// [n][C] and c [n][P], outputs z [n][C], the log-determinant [n], log p / C
// [n] and the loss, the mean of -log sigmoid(log p / C). The learnable
// nodes' values alias the decoder's parameter slices.
type graph struct {
	d    *Decoder
	n    int
	g    *G.ExprGraph
	x, c *G.Node
	xBuf []float32
	cBuf []float32

	learn  []*G.Node   // per block: W1, B1, W2, B2, Scale, Offset
	grads  G.Nodes     // the loss's gradients with respect to learn
	ar     *arena      // the fused ops' outputs
	values [][]float32 // their backing slices (the decoder's)

	z, logdet, logprob, loss *G.Node
}

// newGraph builds the graph of d for batches of n fibers; with grads, it
// also holds the loss's gradients with respect to every learnable node.
func newGraph(d *Decoder, n int, grads bool) (*graph, error) {
	if err := d.Check(); err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, fmt.Errorf("cflow: a batch of %d fibers", n)
	}
	useComputeBLAS()
	gr := &graph{d: d, n: n, g: G.NewGraph(), ar: &arena{}, xBuf: make([]float32, n*d.C), cBuf: make([]float32, n*d.P)}
	g := gr.g
	matrix := func(name string, rows, cols int, v []float32) *G.Node {
		return G.NewMatrix(g, tensor.Float32, G.WithShape(rows, cols), G.WithName(name),
			G.WithValue(tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(v))))
	}
	vector := func(name string, v []float32) *G.Node {
		return G.NewVector(g, tensor.Float32, G.WithShape(len(v)), G.WithName(name),
			G.WithValue(tensor.New(tensor.WithShape(len(v)), tensor.WithBacking(v))))
	}
	scalar := func(v float64) *G.Node { return G.NewConstant(float32(v)) }
	gr.x = matrix("x", n, d.C, gr.xBuf)
	gr.c = matrix("c", n, d.P, gr.cBuf)

	var err error
	must := func(n *G.Node, e error) *G.Node {
		if err == nil && e != nil {
			err = e
		}
		return n
	}
	c1, c2 := d.Split()
	in, hid := c1+d.P, d.Hidden()
	h := gr.x
	var logdet *G.Node
	for k := range d.Blocks {
		b := &d.Blocks[k]
		name := func(s string) string { return fmt.Sprintf("b%d_%s", k, s) }
		w1, b1 := matrix(name("W1"), hid, in, b.W1), vector(name("B1"), b.B1)
		w2, b2 := matrix(name("W2"), 2*c2, hid, b.W2), vector(name("B2"), b.B2)
		scale, offset := vector(name("Scale"), b.Scale), vector(name("Offset"), b.Offset)
		rot := matrix(name("Rot"), d.C, d.C, b.Rot)
		gr.learn = append(gr.learn, w1, b1, w2, b2, scale, offset)
		gr.values = append(gr.values, b.W1, b.B1, b.W2, b.B2, b.Scale, b.Offset)

		// The subnet on [x1, c], x W^T + b without transposing W, its
		// output a before the 0.1 (ops.go).
		linear := func(x, w, b *G.Node) *G.Node {
			return must(G.ApplyOp(newAddRows(gr.ar), must(G.ApplyOp(newMM(gr.ar, false, true), x, w)), b))
		}
		a := must(G.Rectify(linear(must(G.ApplyOp(newSubnetIn(gr.ar, c1), h, gr.c)), w1, b1)))
		a = linear(a, w2, b2)
		// sigma = 0.1 softplus_{beta=1/2}(Scale) = 0.2 softplus(Scale/2)
		sigma := must(G.Mul(must(G.Softplus(must(G.Mul(scale, scalar(0.5))))), scalar(0.2)))
		// [x1, x2 exp(s) + t] sigma + offset, then the rotation.
		u := must(G.ApplyOp(newCoupling(gr.ar), h, a, sigma, offset))
		h = must(G.ApplyOp(newRotate(gr.ar), u, rot))
		ld := must(G.Add(must(G.ApplyOp(newLogScale(gr.ar), a)), must(G.Sum(must(G.Log(sigma))))))
		if logdet == nil {
			logdet = ld
		} else {
			logdet = must(G.Add(logdet, ld))
		}
		if err != nil {
			return nil, fmt.Errorf("cflow: building block %d: %w", k, err)
		}
	}
	gr.z, gr.logdet = h, logdet
	// log p = -C log(2 pi)/2 - |z|^2/2 + log det; the loss uses log p / C.
	sq := must(G.Sum(must(G.Square(h)), 1))
	logp := must(G.Add(must(G.Sub(must(G.Mul(sq, scalar(-0.5))), scalar(float64(d.C)*halfLog2Pi))), logdet))
	gr.logprob = must(G.Mul(logp, scalar(1/float64(d.C))))
	gr.loss = must(G.Mean(must(G.Softplus(must(G.Neg(gr.logprob))))))
	if err == nil && grads {
		gr.grads, err = G.Grad(gr.loss, gr.learn...)
	}
	if err != nil {
		return nil, fmt.Errorf("cflow: building the graph: %w", err)
	}
	return gr, nil
}

// load copies a batch of fibers and conditions into the graph's inputs.
func (gr *graph) load(x, c []float32) error {
	if len(x) != len(gr.xBuf) || len(c) != len(gr.cBuf) {
		return fmt.Errorf("cflow: a batch of %d feature and %d condition values, want %d x %d and %d x %d",
			len(x), len(c), gr.n, gr.d.C, gr.n, gr.d.P)
	}
	copy(gr.xBuf, x)
	copy(gr.cBuf, c)
	gr.ar.reset()
	return nil
}

// values32 returns a node's value as float32s.
func values32(n *G.Node) []float32 {
	return n.Value().Data().([]float32)
}

// scalarOf returns a scalar node's value.
func scalarOf(n *G.Node) float32 {
	switch v := n.Value().Data().(type) {
	case float32:
		return v
	case []float32:
		return v[0]
	}
	return float32(math.NaN())
}
