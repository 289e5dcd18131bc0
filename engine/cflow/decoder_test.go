package cflow

import (
	"math"
	"math/rand/v2"
	"testing"
)

// det returns the determinant of a c x c matrix (Gaussian elimination with
// partial pivoting, float64).
func det(a []float32, c int) float64 {
	m := make([]float64, len(a))
	for i, v := range a {
		m[i] = float64(v)
	}
	d := 1.0
	for col := 0; col < c; col++ {
		p := col
		for r := col + 1; r < c; r++ {
			if math.Abs(m[r*c+col]) > math.Abs(m[p*c+col]) {
				p = r
			}
		}
		if p != col {
			for j := 0; j < c; j++ {
				m[p*c+j], m[col*c+j] = m[col*c+j], m[p*c+j]
			}
			d = -d
		}
		d *= m[col*c+col]
		for r := col + 1; r < c; r++ {
			f := m[r*c+col] / m[col*c+col]
			for j := col; j < c; j++ {
				m[r*c+j] -= f * m[col*c+j]
			}
		}
	}
	return d
}

func TestNewDecoder(t *testing.T) {
	for _, c := range []int{2, 3, 16, 33} {
		d, err := NewDecoder(c, 8, 3, 7)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Check(); err != nil {
			t.Fatal(err)
		}
		c1, c2 := d.Split()
		if c1+c2 != c || c1 < c2 || d.Hidden() != 2*(c1+8) {
			t.Errorf("C=%d: split %d+%d, hidden %d", c, c1, c2, d.Hidden())
		}
		for k, b := range d.Blocks {
			// a rotation: R R^T = I and det R = +1
			worst := 0.0
			for i := 0; i < c; i++ {
				for j := 0; j < c; j++ {
					s := 0.0
					for l := 0; l < c; l++ {
						s += float64(b.Rot[i*c+l]) * float64(b.Rot[j*c+l])
					}
					if i == j {
						s--
					}
					worst = math.Max(worst, math.Abs(s))
				}
			}
			if worst > 1e-6 {
				t.Errorf("C=%d block %d: |R R^T - I| = %.3g", c, k, worst)
			}
			if dt := det(b.Rot, c); math.Abs(dt-1) > 1e-5 {
				t.Errorf("C=%d block %d: det R = %.6f, want +1", c, k, dt)
			}
			bound := float32(1 / math.Sqrt(float64(c1+8)))
			for _, w := range b.W1 {
				if w < -bound || w > bound {
					t.Fatalf("C=%d block %d: W1 value %v outside +-%v", c, k, w, bound)
				}
			}
			if s := 0.2 * math.Log1p(math.Exp(float64(b.Scale[0])/2)); math.Abs(s-1) > 1e-6 {
				t.Errorf("C=%d: initial global scale %.8f, want 1", c, s)
			}
		}
	}
	a, _ := NewDecoder(16, 8, 2, 1)
	b, _ := NewDecoder(16, 8, 2, 1)
	o, _ := NewDecoder(16, 8, 2, 2)
	if a.Blocks[1].W2[5] != b.Blocks[1].W2[5] || a.Blocks[0].Rot[3] != b.Blocks[0].Rot[3] {
		t.Error("the same seed gives different decoders")
	}
	if a.Blocks[1].W2[5] == o.Blocks[1].W2[5] {
		t.Error("another seed gives the same decoder")
	}
}

func TestDecoderErrors(t *testing.T) {
	if _, err := NewDecoder(1, 8, 2, 0); err == nil {
		t.Error("1 channel: no error")
	}
	d, _ := NewDecoder(8, 4, 2, 0)
	d.Blocks[1].W2 = d.Blocks[1].W2[1:]
	if err := d.Check(); err == nil {
		t.Error("short W2: no error")
	}
	if _, err := NewFlow(d, 4); err == nil {
		t.Error("NewFlow of a bad decoder: no error")
	}
	d, _ = NewDecoder(8, 4, 2, 0)
	f, err := NewFlow(d, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Forward(make([]float32, 8*3), make([]float32, 4*4)); err == nil {
		t.Error("a batch of 3 fibers for a flow of 4: no error")
	}
}

func TestAdamErrors(t *testing.T) {
	a := NewAdam(1e-3, []int{3})
	if err := a.Step([][]float32{make([]float32, 2)}, [][]float32{make([]float32, 2)}); err == nil {
		t.Error("wrong size: no error")
	}
	if a.Steps() != 0 {
		t.Error("a refused step counted")
	}
}

// TestAdamDrift checks that Drift equals Steps with zero gradients, bit
// for bit, after a step with gradients.
func TestAdamDrift(t *testing.T) {
	sizes := []int{5, 40000}
	mk := func() ([][]float32, *Adam) {
		p := [][]float32{make([]float32, sizes[0]), make([]float32, sizes[1])}
		for i := range p {
			for j := range p[i] {
				p[i][j] = float32(j%7) * 0.1
			}
		}
		return p, NewAdam(1e-3, sizes)
	}
	g := [][]float32{make([]float32, sizes[0]), make([]float32, sizes[1])}
	zero := [][]float32{make([]float32, sizes[0]), make([]float32, sizes[1])}
	for i := range g {
		for j := range g[i] {
			g[i][j] = float32(j%5) - 2
		}
	}
	lrs := []float64{1e-3, 5e-4, 5e-4, 2e-4}
	p1, a1 := mk()
	p2, a2 := mk()
	for _, a := range []struct {
		p [][]float32
		a *Adam
	}{{p1, a1}, {p2, a2}} {
		if err := a.a.Step(a.p, g); err != nil {
			t.Fatal(err)
		}
	}
	for _, lr := range lrs {
		a1.LR = lr
		if err := a1.Step(p1, zero); err != nil {
			t.Fatal(err)
		}
	}
	if err := a2.Drift(p2, lrs); err != nil {
		t.Fatal(err)
	}
	if a1.Steps() != a2.Steps() || a2.Steps() != 5 {
		t.Errorf("steps %d and %d, want 5", a1.Steps(), a2.Steps())
	}
	for i := range p1 {
		for j := range p1[i] {
			if p1[i][j] != p2[i][j] || a1.m[i][j] != a2.m[i][j] || a1.v[i][j] != a2.v[i][j] {
				t.Fatalf("parameter %d value %d: stepped %v, drifted %v", i, j, p1[i][j], p2[i][j])
			}
		}
	}
	if p1[1][3] == 0.3 {
		t.Error("the parameters did not move")
	}
}

// TestApplyReflections checks the compact WY form against applying the
// reflections one by one, from the right end, on a 150 x 150 matrix in
// three blocks.
func TestApplyReflections(t *testing.T) {
	const c = 150
	r := rand.New(rand.NewPCG(5, 6))
	vs := make([][]float64, c-1)
	for n := range vs {
		v := make([]float64, c-n)
		s := 0.0
		for i := range v {
			v[i] = r.NormFloat64()
			s += v[i] * v[i]
		}
		for i := range v {
			v[i] *= math.Sqrt(2 / s)
		}
		vs[n] = v
	}
	want := make([]float64, c*c)
	for i := range c {
		want[i*c+i] = 1
	}
	got := append([]float64(nil), want...)
	for n := c - 2; n >= 0; n-- {
		w := make([]float64, c-n)
		for i, vi := range vs[n] {
			for j := range w {
				w[j] += vi * want[(n+i)*c+n+j]
			}
		}
		for i, vi := range vs[n] {
			for j := range w {
				want[(n+i)*c+n+j] -= vi * w[j]
			}
		}
	}
	for n1 := c - 2; n1 >= 0; n1 -= rotationBlock {
		n0 := max(0, n1-rotationBlock+1)
		applyReflections(got, c, vs[n0:n1+1], n0)
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Fatalf("value %d: %v, want %v", i, got[i], want[i])
		}
	}
}
