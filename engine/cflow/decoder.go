package cflow

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/softpatch/softpatch/engine/compute"
)

// Clamp is the published soft clamp of the coupling's log-scales
// (clamp_alpha): s = Clamp * tanh(0.1 * subnet output).
const Clamp = 1.9

// Block is one coupling block's parameters (FrEIA's AllInOneBlock with a
// condition, a soft-clamped affine coupling, a learned global affine and a
// fixed rotation), in torch's layouts. With C channels, C1 = C - C/2 passive
// and C2 = C/2 transformed ones, P condition dims, in = C1+P and hid = 2 in:
type Block struct {
	// W1 [hid][in] and B1 [hid]: the subnet's first Linear.
	W1, B1 []float32
	// W2 [2 C2][hid] and B2 [2 C2]: its second Linear; the first C2 outputs
	// are log-scales, the last C2 shifts.
	W2, B2 []float32
	// Scale [C] is the global affine's parameter before the softplus
	// (global_scale); the scale is 0.1 * 2 log(1 + exp(Scale/2)).
	Scale []float32
	// Offset [C] is the global affine's shift (global_offset).
	Offset []float32
	// Rot [C][C] is the fixed rotation (w_perm), applied as y = x Rot^T;
	// it is not trained.
	Rot []float32
}

// Decoder is one backbone layer's flow: Blocks applied in order to fibers
// of C channels with conditions of P dims.
type Decoder struct {
	C, P   int
	Blocks []Block
}

// Split returns the passive (C1) and transformed (C2) channel counts.
func (d *Decoder) Split() (c1, c2 int) { return d.C - d.C/2, d.C / 2 }

// Hidden is the subnets' hidden width, 2 (C1 + P).
func (d *Decoder) Hidden() int {
	c1, _ := d.Split()
	return 2 * (c1 + d.P)
}

// Check reports parameters whose sizes do not fit C and P.
func (d *Decoder) Check() error {
	if d.C < 2 || d.P < 1 || len(d.Blocks) == 0 {
		return fmt.Errorf("cflow: decoder of %d channels, %d condition dims and %d blocks", d.C, d.P, len(d.Blocks))
	}
	c1, c2 := d.Split()
	in, hid := c1+d.P, d.Hidden()
	for k, b := range d.Blocks {
		for _, p := range []struct {
			name string
			v    []float32
			n    int
		}{{"W1", b.W1, hid * in}, {"B1", b.B1, hid}, {"W2", b.W2, 2 * c2 * hid}, {"B2", b.B2, 2 * c2},
			{"Scale", b.Scale, d.C}, {"Offset", b.Offset, d.C}, {"Rot", b.Rot, d.C * d.C}} {
			if len(p.v) != p.n {
				return fmt.Errorf("cflow: block %d: %s has %d values, want %d for %d channels and %d condition dims", k, p.name, len(p.v), p.n, d.C, d.P)
			}
		}
	}
	return nil
}

// initialScale is the global affine's initial parameter, 2 log(e^5 - 1):
// the scale starts at exactly 1.
var initialScale = float32(2 * math.Log(math.Exp(5)-1))

// NewDecoder returns a decoder with blocks coupling blocks initialised as
// the published code initialises them, from a generator seeded with seed:
// Linear weights and biases uniform in +-1/sqrt(fan in) (torch's default),
// global scales at 1, offsets 0, and each rotation a uniformly random
// rotation (Haar measure on SO(C), scipy's special_ortho_group). The draws
// are ours, not torch's or numpy's.
func NewDecoder(c, p, blocks int, seed uint64) (*Decoder, error) {
	if c < 2 || p < 1 || blocks < 1 {
		return nil, fmt.Errorf("cflow: decoder of %d channels, %d condition dims and %d blocks", c, p, blocks)
	}
	d := &Decoder{C: c, P: p, Blocks: make([]Block, blocks)}
	c1, c2 := d.Split()
	in, hid := c1+p, d.Hidden()
	r := rand.New(rand.NewPCG(seed, 16))
	uniform := func(n, fanIn int) []float32 {
		b := 1 / math.Sqrt(float64(fanIn))
		v := make([]float32, n)
		for i := range v {
			v[i] = float32((2*r.Float64() - 1) * b)
		}
		return v
	}
	for k := range d.Blocks {
		b := &d.Blocks[k]
		b.Rot = rotation(c, r)
		b.W1, b.B1 = uniform(hid*in, in), uniform(hid, in)
		b.W2, b.B2 = uniform(2*c2*hid, hid), uniform(2*c2, hid)
		b.Scale, b.Offset = make([]float32, c), make([]float32, c)
		for i := range b.Scale {
			b.Scale[i] = initialScale
		}
	}
	return d, nil
}

// rotation draws a c x c rotation from the Haar measure on SO(c) as scipy's
// special_ortho_group does: H = P_0 P_1 ... P_{c-2}, P_n the Householder
// reflection of a normal vector of c-n values (drawn in that order), then
// the rows' signs fixed so that the determinant is +1. The product is
// accumulated from its right end, where P_n changes only the trailing
// (c-n) x (c-n) block, rotationBlock reflections at a time in the compact
// WY form (I - V T V^T, two float64 GEMMs per block: about 4c^3/3 flops
// in all: 0.9 s at c = 2048 on two cores, 6.2 s one reflection at a time). Computed in float64, rounded
// once.
func rotation(c int, r *rand.Rand) []float32 {
	signs := make([]float64, c)
	vs := make([][]float64, c-1)
	for n := range vs {
		v := make([]float64, c-n)
		norm2 := 0.0
		for i := range v {
			v[i] = r.NormFloat64()
			norm2 += v[i] * v[i]
		}
		x0 := v[0]
		signs[n] = 1
		if x0 < 0 {
			signs[n] = -1
		}
		v[0] += signs[n] * math.Sqrt(norm2)
		scale := math.Sqrt((norm2 - x0*x0 + v[0]*v[0]) / 2) // |v| / sqrt(2): P = I - v v^T
		for i := range v {
			v[i] /= scale
		}
		vs[n] = v
	}
	q := make([]float64, c*c) // row-major, starts as the identity
	for i := 0; i < c; i++ {
		q[i*c+i] = 1
	}
	for n1 := c - 2; n1 >= 0; n1 -= rotationBlock {
		n0 := max(0, n1-rotationBlock+1)
		applyReflections(q, c, vs[n0:n1+1], n0)
	}
	last := 1.0
	if (c-1)%2 == 1 {
		last = -1
	}
	for _, s := range signs[:c-1] {
		last *= s
	}
	signs[c-1] = last
	out := make([]float32, c*c)
	for i := 0; i < c; i++ {
		for j := 0; j < c; j++ {
			out[i*c+j] = float32(signs[i] * q[i*c+j])
		}
	}
	return out
}

// Learnable returns the number of trained parameters (the rotations are
// fixed).
func (d *Decoder) Learnable() int {
	n := 0
	for _, b := range d.Blocks {
		n += len(b.W1) + len(b.B1) + len(b.W2) + len(b.B2) + len(b.Scale) + len(b.Offset)
	}
	return n
}

// rotationBlock is the number of reflections rotation applies at a time.
const rotationBlock = 64

// applyReflections sets the trailing block Q[n0:, n0:] of the c x c
// row-major q to P_n0 P_n0+1 ... P_n0+k-1 Q[n0:, n0:], P_n = I - v_n v_n^T
// with v_n = vs[n-n0] (c-n values, |v_n|^2 = 2) starting at row n: as
// I - V T V^T, V's column i being v_n0+i below i zeros, T upper triangular
// (LAPACK's dlarft, forward and columnwise, all tau 1).
func applyReflections(q []float64, c int, vs [][]float64, n0 int) {
	k, m := len(vs), c-n0
	v := make([]float64, m*k) // [m][k]
	for i, vi := range vs {
		for r, x := range vi {
			v[(i+r)*k+i] = x
		}
	}
	t := make([]float64, k*k)
	for i := range k {
		t[i*k+i] = 1
		// z = V[:, :i]^T v_i; T[:i, i] = -T[:i, :i] z
		z := make([]float64, i)
		for r := i; r < m; r++ {
			x := v[r*k+i]
			for j := range i {
				z[j] += v[r*k+j] * x
			}
		}
		for a := range i {
			s := 0.0
			for b := a; b < i; b++ {
				s += t[a*k+b] * z[b]
			}
			t[a*k+i] = -s
		}
	}
	qb := q[n0*c+n0:]
	w := make([]float64, k*m)
	compute.Dgemm(true, false, k, m, m, 1, v, k, qb, c, 0, w, m) // W = V^T Q
	tw := make([]float64, k*m)
	compute.Dgemm(false, false, k, m, k, 1, t, k, w, m, 0, tw, m)   // T W
	compute.Dgemm(false, false, m, m, k, -1, v, k, tw, m, 1, qb, c) // Q -= V T W
}
