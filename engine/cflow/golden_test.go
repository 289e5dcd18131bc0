package cflow

import (
	"fmt"
	"math"
	"testing"

	"github.com/softpatch/softpatch/internal/npy"
)

// golden reads testdata/golden.npz (testdata/gen_golden.py: the published
// decoder run by torch 1.13).
func golden(t *testing.T) map[string]*npy.Array {
	t.Helper()
	g, err := npy.ReadNPZ("testdata/golden.npz")
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// goldenDecoder builds the decoder of a golden case from its parameters.
func goldenDecoder(t *testing.T, g map[string]*npy.Array, name string, prefix string) *Decoder {
	t.Helper()
	x, c := g[name+"_x"], g[name+"_c"]
	d := &Decoder{C: x.Shape[1], P: c.Shape[1]}
	for k := 0; ; k++ {
		key := func(p, s string) []float32 {
			a := g[fmt.Sprintf("%s_%sb%d_%s", name, p, k, s)]
			if a == nil {
				return nil
			}
			return append([]float32(nil), a.F32...)
		}
		if key("", "W1") == nil {
			break
		}
		d.Blocks = append(d.Blocks, Block{W1: key(prefix, "W1"), B1: key(prefix, "b1"), W2: key(prefix, "W2"), B2: key(prefix, "b2"),
			Scale: key(prefix, "scale"), Offset: key(prefix, "offset"), Rot: key("", "rot")})
	}
	if err := d.Check(); err != nil {
		t.Fatal(err)
	}
	return d
}

// within fails unless got and want agree to tol relative to want's largest
// magnitude (at least 1).
func within(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	scale, worst := 1.0, 0.0
	for _, w := range want {
		scale = math.Max(scale, math.Abs(float64(w)))
	}
	for i := range got {
		worst = math.Max(worst, math.Abs(float64(got[i])-float64(want[i])))
	}
	if !(worst/scale <= tol) {
		t.Errorf("%s: max difference %.3g (relative to %.3g), tolerance %.1g", what, worst, scale, tol)
	}
	t.Logf("%s: max difference %.3g relative", what, worst/scale)
}

func TestGoldenPositionalEncoding(t *testing.T) {
	g := golden(t)
	for _, s := range [][3]int{{8, 3, 5}, {128, 4, 6}} {
		got, err := PositionalEncoding(s[0], s[1], s[2])
		if err != nil {
			t.Fatal(err)
		}
		within(t, fmt.Sprint("posenc ", s), got, g[fmt.Sprintf("posenc_%d_%d_%d", s[0], s[1], s[2])].F32, 1e-6)
	}
	if _, err := PositionalEncoding(6, 2, 2); err == nil {
		t.Error("6 dims: no error")
	}
}

// TestGoldenForward: z, log det, log p / C and the loss of the published
// decoder (FrEIA AllInOneBlock), even and odd channel counts.
func TestGoldenForward(t *testing.T) {
	g := golden(t)
	for _, name := range []string{"even", "odd"} {
		d := goldenDecoder(t, g, name, "")
		x, c := g[name+"_x"], g[name+"_c"]
		f, err := NewFlow(d, x.Shape[0])
		if err != nil {
			t.Fatal(err)
		}
		out, err := f.Forward(x.F32, c.F32)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		within(t, name+" z", out.Z, g[name+"_z"].F32, 2e-6)
		within(t, name+" logdet", out.LogDet, g[name+"_logdet"].F32, 2e-6)
		within(t, name+" logprob", out.LogProb, g[name+"_logprob"].F32, 2e-6)
		within(t, name+" loss", []float32{out.Loss}, g[name+"_loss"].F32, 1e-6)
	}
}

// TestGoldenTraining: gorgonia's gradients equal torch's autograd, and ten
// Adam steps (lr 1e-2) on the same fibers give torch's losses and
// parameters (within 1e-5: the bound is 1e-4).
func TestGoldenTraining(t *testing.T) {
	g := golden(t)
	for _, name := range []string{"even", "odd"} {
		d := goldenDecoder(t, g, name, "")
		x, c := g[name+"_x"], g[name+"_c"]
		tr, err := NewTrainer(d, x.Shape[0], 1e-2)
		if err != nil {
			t.Fatal(err)
		}
		keys := []string{"W1", "b1", "W2", "b2", "scale", "offset"}
		losses := g[name+"_steps_loss"].F32
		for step := range losses {
			loss, err := tr.Step(x.F32, c.F32)
			if err != nil {
				t.Fatal(err)
			}
			within(t, fmt.Sprintf("%s loss at step %d", name, step), []float32{loss}, []float32{losses[step]}, 2e-6)
			if step == 0 {
				// the gradients of the first step, taken before Adam changed anything
				for i, gv := range tr.grad {
					k := fmt.Sprintf("%s_g_b%d_%s", name, i/6, keys[i%6])
					within(t, k, gv, g[k].F32, 1e-6)
				}
			}
		}
		tr.Close()
		after := goldenDecoder(t, g, name, "after_")
		for k := range d.Blocks {
			a, b := d.Blocks[k], after.Blocks[k]
			for i, p := range [][2][]float32{{a.W1, b.W1}, {a.B1, b.B1}, {a.W2, b.W2}, {a.B2, b.B2}, {a.Scale, b.Scale}, {a.Offset, b.Offset}} {
				within(t, fmt.Sprintf("%s block %d %s after %d steps", name, k, keys[i], len(losses)), p[0], p[1], 1e-5)
			}
		}
	}
}

// TestGoldenSchedule: every learning rate of the published schedule (25
// meta-epochs of 8 sub-epochs of 6 image batches), warm-up included.
func TestGoldenSchedule(t *testing.T) {
	want := golden(t)["schedule_lr"]
	e, s, b := want.Shape[0], want.Shape[1], want.Shape[2]
	sch := PublishedSchedule
	if sch.MetaEpochs != e || sch.SubEpochs != s {
		t.Fatalf("fixture of %d x %d epochs, schedule %d x %d", e, s, sch.MetaEpochs, sch.SubEpochs)
	}
	worst := 0.0
	for ei := 0; ei < e; ei++ {
		for si := 0; si < s; si++ {
			for i := 0; i < b; i++ {
				w := want.F64[(ei*s+si)*b+i]
				worst = math.Max(worst, math.Abs(sch.At(ei, si, i, b)-w)/w)
			}
		}
	}
	if worst > 1e-12 {
		t.Errorf("learning rates differ by up to %.3g relative", worst)
	}
}

// ulps returns how many float32 steps lie between a and b.
func ulps(a, b float32) int64 {
	key := func(f float32) int64 {
		u := int64(math.Float32bits(f))
		if u&(1<<31) != 0 {
			return -(u &^ (1 << 31))
		}
		return u
	}
	d := key(a) - key(b)
	if d < 0 {
		d = -d
	}
	return d
}

// TestGoldenMaps: Model.Maps against the published test-time maps
// (train.py: exp of log p / C less its maximum, bilinear upsampling with
// corners aligned, summed over layers, subtracted from the maximum; torch in
// float64, testdata/golden_maps.npz) on non-square grids and a crop size that
// is no multiple of them. Maps works in float64 and rounds once to float32,
// so every value must be torch's float64 value rounded to float32, within 1
// ulp (float32) for the last bits of exp and the sums' rounding.
func TestGoldenMaps(t *testing.T) {
	g, err := npy.ReadNPZ("testdata/golden_maps.npz")
	if err != nil {
		t.Fatal(err)
	}
	super, score := g["maps_super"], g["maps_score"]
	n, size := super.Shape[0], super.Shape[1]
	m := &Model{Options: DefaultOptions(), Width: 1}
	var lps []*npy.Array
	total := 0
	for l := 0; g[fmt.Sprintf("maps_logp_%d", l)] != nil; l++ {
		a := g[fmt.Sprintf("maps_logp_%d", l)]
		m.Layout = append(m.Layout, Layer{Name: fmt.Sprint("layer", l), C: 1, H: a.Shape[1], W: a.Shape[2]})
		lps = append(lps, a)
		total += a.Shape[1] * a.Shape[2]
	}
	if len(lps) != 3 || score.Len() != n {
		t.Fatalf("fixture of %d layers and %d scores for %d maps", len(lps), score.Len(), n)
	}
	// three extra entries per image, to be ignored
	rows := total + 3
	patch := make([]float32, n*rows)
	for i := range patch {
		patch[i] = 1e30
	}
	_, posOff := offsets(m.Layout)
	for l, a := range lps {
		hw := a.Shape[1] * a.Shape[2]
		for i := range n {
			copy(patch[i*rows+posOff[l]:i*rows+posOff[l]+hw], a.F32[i*hw:(i+1)*hw])
		}
	}
	maps, err := m.Maps(patch, n, rows, size)
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != n {
		t.Fatalf("%d maps, want %d", len(maps), n)
	}
	const tol = 1 // ulps of float32
	var worstMap, worstScore int64
	for i, mp := range maps {
		if len(mp) != size*size {
			t.Fatalf("map %d: %d values, want %d", i, len(mp), size*size)
		}
		top := float32(math.Inf(-1))
		for j, v := range mp {
			d := ulps(v, float32(super.F64[i*size*size+j]))
			if d > tol {
				t.Errorf("map %d at (%d, %d): %v, torch %v (%d ulps)", i, j/size, j%size, v, super.F64[i*size*size+j], d)
			}
			worstMap = max(worstMap, d)
			top = max(top, v)
		}
		// the image score: the map's maximum
		d := ulps(top, float32(score.F64[i]))
		if d > tol {
			t.Errorf("image %d: score %v, torch %v (%d ulps)", i, top, score.F64[i], d)
		}
		worstScore = max(worstScore, d)
	}
	t.Logf("maps: worst %d ulps, scores: worst %d ulps (float32)", worstMap, worstScore)
}

// maxRelDiff returns the largest difference between got and want relative
// to want's largest magnitude (at least 1), as within measures it.
func maxRelDiff(got, want []float32) float64 {
	scale, worst := 1.0, 0.0
	for _, w := range want {
		scale = math.Max(scale, math.Abs(float64(w)))
	}
	for i := range got {
		worst = math.Max(worst, math.Abs(float64(got[i])-float64(want[i])))
	}
	return worst / scale
}

// jointRun trains decoders built from the initial parameters of
// testdata/golden_joint.npz through its steps (decoder, lr, fibers,
// conditions): with joint (one Adam over all decoders, as published) or
// without it (each trainer stepped alone). It returns the decoders, each
// step's loss and each trainer's Adam step count.
func jointRun(t *testing.T, g map[string]*npy.Array, useJoint bool) ([]*Decoder, []float32, []int) {
	t.Helper()
	which, lrs := g["joint_decoder"].I64, g["joint_lr"].F64
	if len(which) != len(lrs) {
		t.Fatalf("fixture of %d decoders for %d learning rates", len(which), len(lrs))
	}
	var decs []*Decoder
	var trs []*Trainer
	var per []int // steps per decoder
	for l := 0; g[fmt.Sprintf("joint%d_x", l)] != nil; l++ {
		decs = append(decs, goldenDecoder(t, g, fmt.Sprint("joint", l), ""))
		per = append(per, 0)
	}
	for _, l := range which {
		per[l]++
	}
	n := 0
	for l, d := range decs {
		rows := g[fmt.Sprintf("joint%d_x", l)].Shape[0]
		if per[l] == 0 || rows%per[l] != 0 || (n != 0 && rows/per[l] != n) {
			t.Fatalf("decoder %d: %d fibers for %d steps of %d", l, rows, per[l], n)
		}
		n = rows / per[l]
		tr, err := NewTrainer(d, n, lrs[0])
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		trs = append(trs, tr)
	}
	steppers := make([]stepper, len(trs))
	for l, tr := range trs {
		steppers[l] = cpuStepper{tr}
	}
	j := newJoint(steppers)
	taken := make([]int, len(decs))
	var losses []float32
	for s, l := range which {
		C, P := decs[l].C, decs[l].P
		k := taken[l]
		x := g[fmt.Sprintf("joint%d_x", l)].F32[k*n*C : (k+1)*n*C]
		c := g[fmt.Sprintf("joint%d_c", l)].F32[k*n*P : (k+1)*n*P]
		taken[l]++
		var v float32
		var err error
		if useJoint {
			v, err = j.step(int(l), x, c, lrs[s])
		} else {
			trs[l].Adam().LR = lrs[s]
			v, err = trs[l].Step(x, c)
		}
		if err != nil {
			t.Fatal(err)
		}
		losses = append(losses, v)
	}
	if useJoint {
		if err := j.flush(); err != nil {
			t.Fatal(err)
		}
	}
	steps := make([]int, len(trs))
	for l, tr := range trs {
		steps[l] = tr.Adam().Steps()
	}
	return decs, losses, steps
}

// TestGoldenJointAdam: the published training's one torch Adam over all
// decoders (torch 1.13, whose zero_grad leaves zero gradients: a step of
// one decoder also moves every decoder that has had a gradient before, with
// its own step count from its first gradient; a decoder without one yet is
// skipped), testdata/golden_joint.npz: two decoders (16 and 12 channels)
// stepped 3, 2, 1 and 3 times in turn at changing learning rates. joint
// must give torch's losses (2e-6 relative) and final parameters (1e-5
// relative to the largest magnitude, at least 1), and the trainers stepped
// alone (no drift) must not: their parameters must differ by more than 10
// times that tolerance, so the fixture tells the two apart.
func TestGoldenJointAdam(t *testing.T) {
	g, err := npy.ReadNPZ("testdata/golden_joint.npz")
	if err != nil {
		t.Fatal(err)
	}
	const lossTol, paramTol = 2e-6, 1e-5
	keys := []string{"W1", "b1", "W2", "b2", "scale", "offset"}
	// compare returns the largest relative difference of decoder l's
	// parameters from torch's final ones, failing beyond paramTol if check.
	compare := func(what string, l int, d *Decoder, check bool) float64 {
		after := goldenDecoder(t, g, fmt.Sprint("joint", l), "after_")
		worst := 0.0
		for k := range d.Blocks {
			a, b := d.Blocks[k], after.Blocks[k]
			for i, p := range [][2][]float32{{a.W1, b.W1}, {a.B1, b.B1}, {a.W2, b.W2}, {a.B2, b.B2}, {a.Scale, b.Scale}, {a.Offset, b.Offset}} {
				if len(p[0]) != len(p[1]) {
					t.Fatalf("decoder %d block %d %s: %d values, want %d", l, k, keys[i], len(p[0]), len(p[1]))
				}
				e := maxRelDiff(p[0], p[1])
				if check && !(e <= paramTol) {
					t.Errorf("%s: decoder %d block %d %s: max difference %.3g relative, tolerance %.1g", what, l, k, keys[i], e, paramTol)
				}
				worst = math.Max(worst, e)
			}
		}
		return worst
	}

	decs, losses, steps := jointRun(t, g, true)
	want := g["joint_loss"].F32
	worstLoss := 0.0
	for s, v := range losses {
		e := math.Abs(float64(v)-float64(want[s])) / math.Abs(float64(want[s]))
		if !(e <= lossTol) {
			t.Errorf("step %d (decoder %d): loss %v, torch %v (%.3g relative, tolerance %.1g)", s, g["joint_decoder"].I64[s], v, want[s], e, lossTol)
		}
		worstLoss = math.Max(worstLoss, e)
	}
	t.Logf("joint: losses within %.3g relative of torch's", worstLoss)
	for l, d := range decs {
		if w := int(g[fmt.Sprintf("joint%d_adam_steps", l)].F32[0]); steps[l] != w {
			t.Errorf("decoder %d: %d Adam steps, torch %d", l, steps[l], w)
		}
		t.Logf("joint: decoder %d (%d Adam steps): parameters within %.3g relative of torch's", l, steps[l], compare("joint", l, d, true))
	}

	alone, _, _ := jointRun(t, g, false)
	for l, d := range alone {
		e := compare("alone", l, d, false)
		if !(e > 10*paramTol) {
			t.Errorf("decoder %d stepped alone: parameters within %.3g relative of torch's joint Adam, want more than %.1g", l, e, 10*paramTol)
		}
		t.Logf("alone (no drift): decoder %d: parameters %.3g relative from torch's", l, e)
	}
}
