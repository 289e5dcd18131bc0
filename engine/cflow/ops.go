package cflow

import (
	"fmt"
	"hash"
	"hash/fnv"
	"math"
	"slices"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/softpatch/softpatch/engine/compute"
)

// The flow's fused operations: gorgonia's Mul of a Transpose copies the
// transposed weight matrix element by element at every run (the decoder's
// weights and rotations, 12 M values a block at C = 2048), and its
// broadcasting add walks iterators. These ops compute the same values
// with compute.Sgemm on the untransposed operands and plain loops, and
// differentiate themselves through each other (gorgonia's Grad builds
// their backward graph from SymDiff), so gradients still come from
// gorgonia's symbolic differentiation.

var (
	matrixType = G.TensorType{Dims: 2, Of: hm.TypeVariable('a')}
	vectorType = G.TensorType{Dims: 1, Of: hm.TypeVariable('a')}
)

// floats returns a value's float32 data and its shape.
func floats(v G.Value) ([]float32, tensor.Shape, error) {
	t, ok := v.(tensor.Tensor)
	if !ok {
		return nil, nil, fmt.Errorf("cflow: a %T where a tensor was expected", v)
	}
	d, ok := t.Data().([]float32)
	if !ok {
		return nil, nil, fmt.Errorf("cflow: a tensor of %v, want float32", t.Dtype())
	}
	return d, t.Shape(), nil
}

// arena holds the outputs of a graph's fused ops between runs: gorgonia's
// tape machine forgets its values at every Reset, so each run would
// allocate them again (hundreds of MB a step at C = 2048, mostly the
// weights' gradients), and fresh pages cost more than the products.
// A run asks for the same sizes in the same order, so the i-th request of
// a run gets the i-th buffer. An output is valid until the next run.
type arena struct {
	bufs [][]float32
	next int
}

// get returns a buffer of n values (not cleared).
func (a *arena) get(n int) []float32 {
	if a.next < len(a.bufs) && len(a.bufs[a.next]) == n {
		a.next++
		return a.bufs[a.next-1]
	}
	b := make([]float32, n)
	if a.next < len(a.bufs) {
		a.bufs[a.next] = b
	} else {
		a.bufs = append(a.bufs, b)
	}
	a.next++
	return b
}

// reset starts a run.
func (a *arena) reset() { a.next = 0 }

// opBase holds what the ops share: a name, and the arena of the graph
// the op belongs to.
type opBase struct {
	name string
	ar   *arena
}

// output returns prealloc's data when it has the shape's size, else a
// buffer of the op's arena.
func (o opBase) output(prealloc G.Value, shape ...int) (G.Value, []float32) {
	n := 1
	for _, s := range shape {
		n *= s
	}
	if t, ok := prealloc.(tensor.Tensor); ok {
		if d, ok := t.Data().([]float32); ok && len(d) == n {
			return t, d
		}
	}
	b := o.ar.get(n)
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(b)), b
}

func (o opBase) ReturnsPtr() bool          { return false }
func (o opBase) CallsExtern() bool         { return false }
func (o opBase) OverwritesInput() int      { return -1 }
func (o opBase) WriteHash(h hash.Hash)     { fmt.Fprint(h, o.name) }
func (o opBase) String() string            { return o.name }
func (o opBase) Hashcode() uint32          { h := fnv.New32a(); o.WriteHash(h); return h.Sum32() }
func dim(d G.DimSizer, i int) (int, error) { return d.DimSize(i) }

// mmOp is C = op(A) op(B) of float32 matrices, op transposing when ta
// (tb) is set; with constB, B is a constant (the rotations) and gets no
// gradient.
type mmOp struct {
	opBase
	ta, tb, constB bool
}

func newMM(ar *arena, ta, tb bool) mmOp {
	return mmOp{opBase{fmt.Sprintf("cflow.mm(%v,%v)", ta, tb), ar}, ta, tb, false}
}

// newRotate is the product A B^T with a constant B.
func newRotate(ar *arena) mmOp { return mmOp{opBase{"cflow.rotate", ar}, false, true, true} }

func (o mmOp) Arity() int         { return 2 }
func (o mmOp) Type() hm.Type      { return hm.NewFnType(matrixType, matrixType, matrixType) }
func (o mmOp) DiffWRT(int) []bool { return []bool{true, !o.constB} }

// dims returns m, n, k of the product of stored shapes a and b.
func (o mmOp) dims(a, b G.DimSizer) (m, n, k int, err error) {
	var ar, ac, br, bc int
	for _, p := range []struct {
		d G.DimSizer
		i int
		v *int
	}{{a, 0, &ar}, {a, 1, &ac}, {b, 0, &br}, {b, 1, &bc}} {
		if *p.v, err = dim(p.d, p.i); err != nil {
			return
		}
	}
	m, k = ar, ac
	if o.ta {
		m, k = ac, ar
	}
	n, kb := bc, br
	if o.tb {
		n, kb = br, bc
	}
	if k != kb {
		err = fmt.Errorf("cflow: %s of %dx%d and %dx%d", o.name, ar, ac, br, bc)
	}
	return
}

func (o mmOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	m, n, _, err := o.dims(in[0], in[1])
	return tensor.Shape{m, n}, err
}

func (o mmOp) Do(in ...G.Value) (G.Value, error) { return o.UsePreallocDo(nil, in...) }

func (o mmOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	a, as, err := floats(in[0])
	if err != nil {
		return nil, err
	}
	b, bs, err := floats(in[1])
	if err != nil {
		return nil, err
	}
	m, n, k, err := o.dims(as, bs)
	if err != nil {
		return nil, err
	}
	out, c := o.output(prealloc, m, n)
	compute.Sgemm(o.ta, o.tb, m, n, k, 1, a, as[1], b, bs[1], 0, c, n)
	return out, nil
}

// SymDiff: with C = op(A) op(B) and G = dC, dA and dB are products of G
// with the other operand, transposed as the case needs (no copies).
func (o mmOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	a, b := in[0], in[1]
	var da, db *G.Node
	var err error
	apply := func(ta, tb bool, x, y *G.Node) *G.Node {
		if err != nil {
			return nil
		}
		var n *G.Node
		n, err = G.ApplyOp(newMM(o.ar, ta, tb), x, y)
		return n
	}
	if o.constB {
		return G.Nodes{apply(false, false, grad, b), nil}, err
	}
	switch {
	case !o.ta && !o.tb: // C = A B
		da, db = apply(false, true, grad, b), apply(true, false, a, grad)
	case !o.ta && o.tb: // C = A B^T
		da, db = apply(false, false, grad, b), apply(true, false, grad, a)
	case o.ta && !o.tb: // C = A^T B
		da, db = apply(false, true, b, grad), apply(false, false, a, grad)
	default: // C = A^T B^T
		da, db = apply(true, true, b, grad), apply(true, true, grad, a)
	}
	return G.Nodes{da, db}, err
}

// addRowsOp is X + b, b added to every row of the matrix X.
type addRowsOp struct{ opBase }

func newAddRows(ar *arena) addRowsOp { return addRowsOp{opBase{"cflow.addRows", ar}} }

func (o addRowsOp) Arity() int         { return 2 }
func (o addRowsOp) Type() hm.Type      { return hm.NewFnType(matrixType, vectorType, matrixType) }
func (o addRowsOp) DiffWRT(int) []bool { return []bool{true, true} }

func (o addRowsOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	r, err := dim(in[0], 0)
	if err != nil {
		return nil, err
	}
	c, err := dim(in[0], 1)
	return tensor.Shape{r, c}, err
}

func (o addRowsOp) Do(in ...G.Value) (G.Value, error) { return o.UsePreallocDo(nil, in...) }

func (o addRowsOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	x, xs, err := floats(in[0])
	if err != nil {
		return nil, err
	}
	b, _, err := floats(in[1])
	if err != nil {
		return nil, err
	}
	rows, cols := xs[0], xs[1]
	if len(b) != cols {
		return nil, fmt.Errorf("cflow: adding %d values to rows of %d", len(b), cols)
	}
	out, y := o.output(prealloc, rows, cols)
	for i := range rows {
		yr, xr := y[i*cols:(i+1)*cols], x[i*cols:(i+1)*cols]
		for j, v := range b {
			yr[j] = xr[j] + v
		}
	}
	return out, nil
}

// SymDiff: dX = G, db = the column sums of G.
func (o addRowsOp) SymDiff(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	db, err := G.ApplyOp(colSumOp{opBase{"cflow.colSum", o.ar}}, grad)
	return G.Nodes{grad, db}, err
}

// colSumOp sums a matrix's columns: [rows][cols] to [cols]. It appears
// only in backward graphs, so it is not differentiable itself.
type colSumOp struct{ opBase }

func (o colSumOp) Arity() int    { return 1 }
func (o colSumOp) Type() hm.Type { return hm.NewFnType(matrixType, vectorType) }

func (o colSumOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	c, err := dim(in[0], 1)
	return tensor.Shape{c}, err
}

func (o colSumOp) Do(in ...G.Value) (G.Value, error) { return o.UsePreallocDo(nil, in...) }

func (o colSumOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	x, xs, err := floats(in[0])
	if err != nil {
		return nil, err
	}
	rows, cols := xs[0], xs[1]
	out, y := o.output(prealloc, cols)
	clear(y)
	for i := range rows {
		for j, v := range x[i*cols : (i+1)*cols] {
			y[j] += v
		}
	}
	return out, nil
}

// subnetInOp is the subnet's input [x1, c]: the first c1 columns of the
// fibers h [n][C] beside their conditions c [n][P]. The conditions get no
// gradient.
type subnetInOp struct {
	opBase
	c1 int
}

func newSubnetIn(ar *arena, c1 int) subnetInOp {
	return subnetInOp{opBase{fmt.Sprintf("cflow.subnetIn(%d)", c1), ar}, c1}
}

func (o subnetInOp) Arity() int         { return 2 }
func (o subnetInOp) Type() hm.Type      { return hm.NewFnType(matrixType, matrixType, matrixType) }
func (o subnetInOp) DiffWRT(int) []bool { return []bool{true, false} }

func (o subnetInOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	n, err := dim(in[0], 0)
	if err != nil {
		return nil, err
	}
	p, err := dim(in[1], 1)
	return tensor.Shape{n, o.c1 + p}, err
}

func (o subnetInOp) Do(in ...G.Value) (G.Value, error) { return o.UsePreallocDo(nil, in...) }

func (o subnetInOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	h, hs, err := floats(in[0])
	if err != nil {
		return nil, err
	}
	c, cs, err := floats(in[1])
	if err != nil {
		return nil, err
	}
	n, C, P := hs[0], hs[1], cs[1]
	w := o.c1 + P
	out, y := o.output(prealloc, n, w)
	for i := range n {
		copy(y[i*w:i*w+o.c1], h[i*C:i*C+o.c1])
		copy(y[i*w+o.c1:(i+1)*w], c[i*P:(i+1)*P])
	}
	return out, nil
}

// SymDiff: dh is the gradient's first c1 columns, zeros after.
func (o subnetInOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	dh, err := G.ApplyOp(padGradOp{opBase{fmt.Sprintf("cflow.padGrad(%d)", o.c1), o.ar}, o.c1}, grad, in[0])
	return G.Nodes{dh, nil}, err
}

// padGradOp widens a gradient [n][c1+P] to the fibers' [n][C] (its second
// input gives C): the first c1 columns, zeros after.
type padGradOp struct {
	opBase
	c1 int
}

func (o padGradOp) Arity() int    { return 2 }
func (o padGradOp) Type() hm.Type { return hm.NewFnType(matrixType, matrixType, matrixType) }

func (o padGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	n, err := dim(in[1], 0)
	if err != nil {
		return nil, err
	}
	c, err := dim(in[1], 1)
	return tensor.Shape{n, c}, err
}

func (o padGradOp) Do(in ...G.Value) (G.Value, error) { return o.UsePreallocDo(nil, in...) }

func (o padGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	g, gs, err := floats(in[0])
	if err != nil {
		return nil, err
	}
	_, hs, err := floats(in[1])
	if err != nil {
		return nil, err
	}
	n, C, w := hs[0], hs[1], gs[1]
	out, y := o.output(prealloc, n, C)
	for i := range n {
		copy(y[i*C:i*C+o.c1], g[i*w:i*w+o.c1])
		clear(y[i*C+o.c1 : (i+1)*C])
	}
	return out, nil
}

// Coupling numerics, float32 as torch computes them: the subnet's output
// a is scaled by 0.1; its first C2 columns give the log-scales s = Clamp
// tanh(0.1 a), the last C2 the shifts t = 0.1 a.
const (
	tenth = float32(0.1)
	clamp = float32(Clamp)
)

func tanh32(x float32) float32 { return float32(math.Tanh(float64(x))) }
func exp32(x float32) float32  { return float32(math.Exp(float64(x))) }

// couplingOp is a block's affine coupling and global affine: for fibers h
// [n][C], the subnet's output a [n][2 C2], sigma and offset [C], the row
// [h1, h2 exp(s) + t] sigma + offset, h1 the first C1 = C - C2 columns.
type couplingOp struct{ opBase }

func newCoupling(ar *arena) couplingOp { return couplingOp{opBase{"cflow.coupling", ar}} }

func (o couplingOp) Arity() int { return 4 }
func (o couplingOp) Type() hm.Type {
	return hm.NewFnType(matrixType, matrixType, vectorType, vectorType, matrixType)
}
func (o couplingOp) DiffWRT(int) []bool { return []bool{true, true, true, true} }

func (o couplingOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	n, err := dim(in[0], 0)
	if err != nil {
		return nil, err
	}
	c, err := dim(in[0], 1)
	return tensor.Shape{n, c}, err
}

// couplingArgs are the coupling's inputs, checked.
type couplingArgs struct {
	h, a, sigma, offset []float32
	n, C, c1, c2        int
}

func couplingInputs(in []G.Value) (couplingArgs, error) {
	var x couplingArgs
	var hs, as tensor.Shape
	var err error
	if x.h, hs, err = floats(in[0]); err != nil {
		return x, err
	}
	if x.a, as, err = floats(in[1]); err != nil {
		return x, err
	}
	if x.sigma, _, err = floats(in[2]); err != nil {
		return x, err
	}
	if x.offset, _, err = floats(in[3]); err != nil {
		return x, err
	}
	x.n, x.C = hs[0], hs[1]
	x.c2 = x.C / 2
	x.c1 = x.C - x.c2
	if as[0] != x.n || as[1] != 2*x.c2 || len(x.sigma) != x.C || len(x.offset) != x.C {
		return x, fmt.Errorf("cflow: coupling of %v fibers with a subnet output of %v and %d, %d affine values", hs, as, len(x.sigma), len(x.offset))
	}
	return x, nil
}

// row computes row i's u = [h1, h2 exp(s) + t] into u and exp(s) into e
// (C2 values), in the order of operations of the graph it replaces.
func (x couplingArgs) row(i int, u, e []float32) {
	h, a := x.h[i*x.C:(i+1)*x.C], x.a[i*2*x.c2:(i+1)*2*x.c2]
	copy(u[:x.c1], h[:x.c1])
	for j := range x.c2 {
		s := tanh32(a[j]*tenth) * clamp
		e[j] = exp32(s)
		u[x.c1+j] = h[x.c1+j]*e[j] + a[x.c2+j]*tenth
	}
}

func (o couplingOp) Do(in ...G.Value) (G.Value, error) { return o.UsePreallocDo(nil, in...) }

func (o couplingOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	x, err := couplingInputs(in)
	if err != nil {
		return nil, err
	}
	out, v := o.output(prealloc, x.n, x.C)
	compute.ParallelFor(x.n, 16, func(lo, hi int) {
		e := make([]float32, x.c2)
		for i := lo; i < hi; i++ {
			u := v[i*x.C : (i+1)*x.C]
			x.row(i, u, e)
			for j := range u {
				u[j] = u[j]*x.sigma[j] + x.offset[j]
			}
		}
	})
	return out, nil
}

// SymDiff: one op per input but the offset, each recomputing what it
// needs; the offset's gradient is the column sums of grad.
func (o couplingOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	out := make(G.Nodes, 4)
	for k := range 3 {
		var err error
		args := append(slices.Clone(in), grad)
		if out[k], err = G.ApplyOp(couplingGradOp{opBase{fmt.Sprintf("cflow.couplingGrad(%d)", k), o.ar}, k}, args...); err != nil {
			return nil, err
		}
	}
	var err error
	out[3], err = G.ApplyOp(colSumOp{opBase{"cflow.colSum", o.ar}}, grad)
	return out, err
}

// couplingGradOp is the coupling's gradient with respect to its input
// wrt (0 h, 1 a, 2 sigma), from its inputs and the output's
// gradient g [n][C]. With G = g sigma (row-wise): dh = [G1, G2 exp(s)],
// da = [G2 h2 exp(s) Clamp (1 - tanh^2) 0.1, 0.1 G2], dsigma the column
// sums of g u.
type couplingGradOp struct {
	opBase
	wrt int
}

func (o couplingGradOp) Arity() int { return 5 }
func (o couplingGradOp) Type() hm.Type {
	out := hm.Type(matrixType)
	if o.wrt >= 2 {
		out = vectorType
	}
	return hm.NewFnType(matrixType, matrixType, vectorType, vectorType, matrixType, out)
}

func (o couplingGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	r, err := dim(in[o.wrt], 0)
	if err != nil || o.wrt >= 2 {
		return tensor.Shape{r}, err
	}
	c, err := dim(in[o.wrt], 1)
	return tensor.Shape{r, c}, err
}

func (o couplingGradOp) Do(in ...G.Value) (G.Value, error) { return o.UsePreallocDo(nil, in...) }

func (o couplingGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	x, err := couplingInputs(in[:4])
	if err != nil {
		return nil, err
	}
	g, _, err := floats(in[4])
	if err != nil {
		return nil, err
	}
	if len(g) != x.n*x.C {
		return nil, fmt.Errorf("cflow: a coupling gradient of %d values for %dx%d", len(g), x.n, x.C)
	}
	switch o.wrt {
	case 0: // dh
		out, dh := o.output(prealloc, x.n, x.C)
		compute.ParallelFor(x.n, 16, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				gi, di := g[i*x.C:(i+1)*x.C], dh[i*x.C:(i+1)*x.C]
				a := x.a[i*2*x.c2:]
				for j := range x.c1 {
					di[j] = gi[j] * x.sigma[j]
				}
				for j := range x.c2 {
					di[x.c1+j] = gi[x.c1+j] * x.sigma[x.c1+j] * exp32(tanh32(a[j]*tenth)*clamp)
				}
			}
		})
		return out, nil
	case 1: // da
		out, da := o.output(prealloc, x.n, 2*x.c2)
		compute.ParallelFor(x.n, 16, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				gi, h, a := g[i*x.C:(i+1)*x.C], x.h[i*x.C:(i+1)*x.C], x.a[i*2*x.c2:(i+1)*2*x.c2]
				di := da[i*2*x.c2 : (i+1)*2*x.c2]
				for j := range x.c2 {
					g2 := gi[x.c1+j] * x.sigma[x.c1+j]
					th := tanh32(a[j] * tenth)
					e := exp32(th * clamp)
					di[j] = g2 * h[x.c1+j] * e * clamp * (1 - th*th) * tenth
					di[x.c2+j] = g2 * tenth
				}
			}
		})
		return out, nil
	default: // dsigma
		out, ds := o.output(prealloc, x.C)
		clear(ds)
		u, e := make([]float32, x.C), make([]float32, x.c2)
		for i := range x.n {
			x.row(i, u, e)
			for j, gj := range g[i*x.C : (i+1)*x.C] {
				ds[j] += gj * u[j]
			}
		}
		return out, nil
	}
}

// logScaleOp sums each row's log-scales: a [n][2 C2] to [n], the sum of
// Clamp tanh(0.1 a) over the first C2 columns.
type logScaleOp struct{ opBase }

func newLogScale(ar *arena) logScaleOp { return logScaleOp{opBase{"cflow.logScale", ar}} }

func (o logScaleOp) Arity() int         { return 1 }
func (o logScaleOp) Type() hm.Type      { return hm.NewFnType(matrixType, vectorType) }
func (o logScaleOp) DiffWRT(int) []bool { return []bool{true} }

func (o logScaleOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	n, err := dim(in[0], 0)
	return tensor.Shape{n}, err
}

func (o logScaleOp) Do(in ...G.Value) (G.Value, error) { return o.UsePreallocDo(nil, in...) }

func (o logScaleOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	a, as, err := floats(in[0])
	if err != nil {
		return nil, err
	}
	n, w := as[0], as[1]
	out, r := o.output(prealloc, n)
	for i := range n {
		s := float32(0)
		for _, v := range a[i*w : i*w+w/2] {
			s += tanh32(v*tenth) * clamp
		}
		r[i] = s
	}
	return out, nil
}

// SymDiff: da = [g Clamp (1 - tanh^2) 0.1, 0], g broadcast along rows.
func (o logScaleOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	da, err := G.ApplyOp(logScaleGradOp{opBase{"cflow.logScaleGrad", o.ar}}, in[0], grad)
	return G.Nodes{da}, err
}

// logScaleGradOp is logScaleOp's gradient from a and the rows' gradients.
type logScaleGradOp struct{ opBase }

func (o logScaleGradOp) Arity() int    { return 2 }
func (o logScaleGradOp) Type() hm.Type { return hm.NewFnType(matrixType, vectorType, matrixType) }

func (o logScaleGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	n, err := dim(in[0], 0)
	if err != nil {
		return nil, err
	}
	w, err := dim(in[0], 1)
	return tensor.Shape{n, w}, err
}

func (o logScaleGradOp) Do(in ...G.Value) (G.Value, error) { return o.UsePreallocDo(nil, in...) }

func (o logScaleGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	a, as, err := floats(in[0])
	if err != nil {
		return nil, err
	}
	g, _, err := floats(in[1])
	if err != nil {
		return nil, err
	}
	n, w := as[0], as[1]
	out, da := o.output(prealloc, n, w)
	for i := range n {
		ai, di := a[i*w:(i+1)*w], da[i*w:(i+1)*w]
		for j := range w / 2 {
			th := tanh32(ai[j] * tenth)
			di[j] = g[i] * clamp * (1 - th*th) * tenth
		}
		clear(di[w/2:])
	}
	return out, nil
}
