package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/softpatch/softpatch/engine/cflow"
	"github.com/softpatch/softpatch/engine/compute"
)

// cloneDecoder returns a deep copy of d.
func cloneDecoder(d *cflow.Decoder) *cflow.Decoder {
	c := &cflow.Decoder{C: d.C, P: d.P, Blocks: make([]cflow.Block, len(d.Blocks))}
	for k, b := range d.Blocks {
		c.Blocks[k] = cflow.Block{W1: slices.Clone(b.W1), B1: slices.Clone(b.B1), W2: slices.Clone(b.W2), B2: slices.Clone(b.B2),
			Scale: slices.Clone(b.Scale), Offset: slices.Clone(b.Offset), Rot: slices.Clone(b.Rot)}
	}
	return c
}

// params returns a decoder's learnable values, block after block.
func params(d *cflow.Decoder) []float32 {
	var out []float32
	for _, b := range d.Blocks {
		for _, p := range [][]float32{b.W1, b.B1, b.W2, b.B2, b.Scale, b.Offset} {
			out = append(out, p...)
		}
	}
	return out
}

// flowCase is a decoder and a batch of fibers for the parity tests: an odd
// C (C1 != C2) and trained-looking weights (the initial global scale
// exactly 1 would hide sigma's errors).
type flowCase struct {
	C, P, blocks, n int
}

func (fc flowCase) make(t *testing.T, seed uint64) (*cflow.Decoder, []float32, []float32) {
	t.Helper()
	dec, err := cflow.NewDecoder(fc.C, fc.P, fc.blocks, seed)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 1))
	for k := range dec.Blocks {
		b := &dec.Blocks[k]
		for i := range b.Scale {
			b.Scale[i] += float32(r.NormFloat64())
			b.Offset[i] = float32(0.1 * r.NormFloat64())
		}
	}
	return dec, randn(r, fc.n*fc.C), randn(r, fc.n*fc.P)
}

// TestFlowForwardParity compares the GPU flow's log p / C with the CPU
// graph's (engine/cflow), as the experiment runner's scoring uses it.
func TestFlowForwardParity(t *testing.T) {
	d := blasOrSkip(t)
	for _, fc := range []flowCase{{C: 13, P: 4, blocks: 3, n: 24}, {C: 64, P: 16, blocks: 8, n: 40}} {
		dec, x, c := fc.make(t, 7)
		cpu, err := cflow.NewFlow(dec, fc.n)
		if err != nil {
			t.Fatal(err)
		}
		want, err := cpu.Forward(x, c)
		cpu.Close()
		if err != nil {
			t.Fatal(err)
		}
		f, err := d.NewFlow(dec, fc.n)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]float32, fc.n)
		if err := f.LogProbs(got, x, c); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		e := relErr(got, want.LogProb)
		t.Logf("C=%d P=%d blocks=%d n=%d: log p / C relative error %.2g", fc.C, fc.P, fc.blocks, fc.n, e)
		if e > 1e-5 {
			t.Errorf("C=%d: log p / C %v, CPU %v (relative error %.2g)", fc.C, got[:4], want.LogProb[:4], e)
		}
	}
}

// TestFlowGradientParity compares one training step's gradients on the
// GPU with gorgonia's on the CPU, parameter by parameter.
func TestFlowGradientParity(t *testing.T) {
	d := blasOrSkip(t)
	cases := []flowCase{{C: 13, P: 4, blocks: 3, n: 24}}
	if !emulated(d) {
		cases = append(cases, flowCase{C: 512, P: 128, blocks: 8, n: 256}, flowCase{C: 2048, P: 128, blocks: 8, n: 256})
	}
	for _, fc := range cases {
		dec, x, c := fc.make(t, 5)
		tr, err := cflow.NewTrainer(cloneDecoder(dec), fc.n, 2e-4)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Step(x, c); err != nil {
			t.Fatal(err)
		}
		want := tr.Gradients()
		f, err := d.NewFlow(cloneDecoder(dec), fc.n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Step(x, c, 2e-4); err != nil {
			t.Fatal(err)
		}
		all := make([]float32, f.blocks*f.per)
		if err := Download(d, all, f.grads, 0); err != nil {
			t.Fatal(err)
		}
		kinks := f.kinks(t, dec)
		worst, at, skipped := 0.0, "", 0
		for k := range f.blocks {
			off := int64(k * f.per)
			for i, p := range []struct {
				name string
				off  int64
			}{{"W1", f.offW1()}, {"B1", f.offB1()}, {"W2", f.offW2()}, {"B2", f.offB2()}, {"Scale", f.offScale()}, {"Offset", f.offOffset()}} {
				w := want[6*k+i]
				got := all[off+p.off : off+p.off+int64(len(w))]
				// The L2 norm of the difference relative to the gradient's,
				// without the rows of W1 and B1 of hidden units at a kink.
				var diff, norm float64
				for j := range w {
					if (p.name == "W1" && kinks[k][j/f.in]) || (p.name == "B1" && kinks[k][j]) {
						continue
					}
					e := float64(got[j]) - float64(w[j])
					diff += e * e
					norm += float64(w[j]) * float64(w[j])
				}
				if e := math.Sqrt(diff / norm); e > worst || norm == 0 {
					worst, at = e, fmt.Sprintf("block %d %s", k, p.name)
				}
			}
			for _, kink := range kinks[k] {
				if kink {
					skipped++
				}
			}
		}
		t.Logf("C=%d P=%d blocks=%d n=%d: gradients' largest relative L2 difference %.2g (%s), %d of %d hidden units at a kink left out",
			fc.C, fc.P, fc.blocks, fc.n, worst, at, skipped, f.blocks*f.hid)
		if worst > 1e-3 {
			t.Errorf("C=%d: gradients differ by %.3g (relative L2, %s)", fc.C, worst, at)
		}
		tr.Close()
		f.Close()
	}
}

// kinks marks, per block, the hidden units whose ReLU input is within
// 1e-4 of its RMS of 0 for some fiber of the last step's batch (recomputed
// on the host from the GPU's subnet inputs and dec's weights, those of
// the step): rounding may put such an input on either side of the kink,
// and a switch changes that unit's row of W1's gradient by the fiber's
// whole term (and B1's entry), a difference that is not an error.
func (f *Flow) kinks(t *testing.T, dec *cflow.Decoder) [][]bool {
	t.Helper()
	sin := make([]float32, f.n*f.in)
	z := make([]float32, f.n*f.hid)
	out := make([][]bool, f.blocks)
	for k, b := range dec.Blocks {
		if err := Download(f.d, sin, f.sin, int64(k*f.n*f.in)*4); err != nil {
			t.Fatal(err)
		}
		compute.Sgemm(false, true, f.n, f.hid, f.in, 1, sin, f.in, b.W1, f.in, 0, z, f.hid)
		ms := 0.0
		for i := range z {
			z[i] += b.B1[i%f.hid]
			ms += float64(z[i]) * float64(z[i])
		}
		tol := 1e-4 * math.Sqrt(ms/float64(len(z)))
		out[k] = make([]bool, f.hid)
		for i, v := range z {
			if math.Abs(float64(v)) < tol {
				out[k][i%f.hid] = true
			}
		}
	}
	return out
}

// TestFlowTrainParity trains the same decoder on the CPU (gorgonia's
// gradients, cflow.Adam) and on the GPU for several steps, with zero-
// gradient Adam steps between them as the joint optimiser takes them, and
// compares the losses and the parameters' movements. Adam divides each
// gradient by its own running magnitude, so a gradient that is rounding
// noise moves its parameter by the learning rate either way: the
// movements are compared in the L2 norm, not value by value.
func TestFlowTrainParity(t *testing.T) {
	d := blasOrSkip(t)
	fc := flowCase{C: 13, P: 4, blocks: 3, n: 24}
	if !emulated(d) {
		fc = flowCase{C: 512, P: 128, blocks: 8, n: 256}
	}
	dec, x, c := fc.make(t, 11)
	start := params(dec)
	cpuDec, gpuDec := cloneDecoder(dec), cloneDecoder(dec)
	tr, err := cflow.NewTrainer(cpuDec, fc.n, 2e-4)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	f, err := d.NewFlow(gpuDec, fc.n)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := rand.New(rand.NewPCG(3, 3))
	lrs := []float64{2e-4, 1.9e-4, 1.5e-4, 1e-4, 5e-5}
	worst := 0.0
	for s, lr := range lrs {
		if s == 2 { // two zero-gradient steps between steps 2 and 3
			if err := tr.Drift([]float64{lr, lr}); err != nil {
				t.Fatal(err)
			}
			if err := f.Drift([]float64{lr, lr}); err != nil {
				t.Fatal(err)
			}
		}
		xs := randn(r, fc.n*fc.C)
		for i := range xs {
			xs[i] += x[i]
		}
		tr.Adam().LR = lr
		want, err := tr.Step(xs, c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.Step(xs, c, lr)
		if err != nil {
			t.Fatal(err)
		}
		e := math.Abs(float64(got-want)) / math.Abs(float64(want))
		worst = max(worst, e)
		if e > 1e-5 {
			t.Errorf("step %d: loss %v, CPU %v", s, got, want)
		}
	}
	if err := f.Download(); err != nil {
		t.Fatal(err)
	}
	got, want := params(gpuDec), params(cpuDec)
	var diff, moved float64
	for i := range got {
		e := float64(got[i]) - float64(want[i])
		m := float64(want[i]) - float64(start[i])
		diff += e * e
		moved += m * m
	}
	rel := math.Sqrt(diff / moved)
	t.Logf("C=%d P=%d blocks=%d n=%d, %d steps and 2 zero-gradient ones: loss relative error %.2g; parameters' movement relative L2 difference %.2g",
		fc.C, fc.P, fc.blocks, fc.n, len(lrs), worst, rel)
	if moved == 0 || rel > 1e-2 {
		t.Errorf("the parameters' movements differ by %.3g (relative L2)", rel)
	}
}

// BenchmarkFlowStep times training steps of the published layer4 decoder
// (C 2048, 8 blocks, 256 fibers) on the GPU: fibers/s.
func BenchmarkFlowStep(b *testing.B) {
	d := openBench(b, true)
	for _, C := range []int{512, 1024, 2048} {
		b.Run(map[int]string{512: "C512", 1024: "C1024", 2048: "C2048"}[C], func(b *testing.B) {
			dec, err := cflow.NewDecoder(C, 128, 8, 1)
			if err != nil {
				b.Fatal(err)
			}
			n := 256
			r := rand.New(rand.NewPCG(1, 2))
			x, c := randn(r, n*C), randn(r, n*128)
			f, err := d.NewFlow(dec, n)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Step(x, c, 2e-4); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			t0 := time.Now()
			for i := 0; i < b.N; i++ {
				if _, err := f.Step(x, c, 2e-4); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/time.Since(t0).Seconds(), "fibers/s")
		})
	}
}
