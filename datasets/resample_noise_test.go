package datasets

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// smallAnomClass builds a class with nTrain training images, 2 normal test
// images and nAnom anomalous ones (one defect type, with masks), so that a
// ratio can ask for more anomalous images than there are.
func smallAnomClass(t *testing.T, nTrain, nAnom int) *Class {
	t.Helper()
	var files []string
	for i := 0; i < nTrain; i++ {
		files = append(files, fmt.Sprintf("s/train/good/%03d.png", i))
	}
	files = append(files, "s/test/good/000.png", "s/test/good/001.png")
	for i := 0; i < nAnom; i++ {
		files = append(files, fmt.Sprintf("s/test/cut/%03d.png", i), fmt.Sprintf("s/ground_truth/cut/%03d_mask.png", i))
	}
	if nAnom == 0 {
		files = append(files, "s/test/good/002.png")
	}
	c, err := Load(tree(t, files...), "s", Layout{}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func anomalousOf(c *Class) []Item {
	var out []Item
	for _, it := range c.Test {
		if it.Anomalous {
			out = append(out, it)
		}
	}
	return out
}

func TestNoiseReserve(t *testing.T) {
	for a, want := range map[int]int{0: 1, 1: 1, 9: 1, 10: 1, 11: 2, 12: 2, 60: 6, 61: 7, 100: 10} {
		if got := NoiseReserve(a); got != want {
			t.Errorf("NoiseReserve(%d) = %d, want %d", a, got, want)
		}
	}
}

// With overlap and k > A every anomalous image is injected once (the
// draw for k = A), then k - A resampled copies, pass by pass without
// replacement within a pass, each with its own small affine.
func TestInjectResampleOverlap(t *testing.T) {
	c := smallAnomClass(t, 20, 3)
	n := Noise{Ratio: 0.5, Overlap: true} // k = 10, A = 3: 7 copies
	in, err := c.Inject("mvtec", n)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Drawn) != 10 || len(in.Train) != 30 || in.Anomalous != 3 || in.Noise.Resampled != 7 || in.Noise.Requested != 0 {
		t.Fatalf("drawn %d train %d anomalous %d noise %+v", len(in.Drawn), len(in.Train), in.Anomalous, in.Noise)
	}
	if !reflect.DeepEqual(in.Train[:20], c.Train) || !reflect.DeepEqual(in.Train[20:], in.Drawn) || !reflect.DeepEqual(in.Test, c.Test) {
		t.Error("train is not the clean images and the draw, or the overlap test set is not whole")
	}
	// The first pass is every anomalous image once, in test order, as is.
	kA, err := c.Inject("mvtec", Noise{Ratio: 0.15, Overlap: true}) // k = 3 = A: no copies
	if err != nil || len(kA.Drawn) != 3 || kA.Noise.Resampled != 0 || kA.Noise.Requested != 0 {
		t.Fatalf("k = A: %d drawn, %v", len(kA.Drawn), err)
	}
	all := kA.Drawn
	if !reflect.DeepEqual(in.Drawn[:3], all) || !reflect.DeepEqual(in.Drawn[:3], anomalousOf(c)) {
		t.Error("the first pass is not every anomalous image once in test order")
	}
	// Then passes over a permutation: 3, 3 and 1 copies.
	for _, pass := range [][]Item{in.Drawn[3:6], in.Drawn[6:9], in.Drawn[9:]} {
		seen := map[string]bool{}
		for _, it := range pass {
			if seen[it.Path] || !it.Anomalous {
				t.Errorf("pass %v repeats %s", RelPaths(c.Root, pass), it.Path)
			}
			seen[it.Path] = true
		}
	}
	affines := map[Affine]bool{}
	for i, it := range in.Drawn[3:] {
		a := it.Augment
		if a == nil {
			t.Fatalf("copy %d has no affine", i)
		}
		if math.Abs(a.Angle) > ResampleMaxAngle || math.Abs(a.TX) > ResampleMaxShift || math.Abs(a.TY) > ResampleMaxShift ||
			a.Scale != 1 || a.ShearX != 0 || a.pixels {
			t.Errorf("copy %d: affine %+v out of the resample recipe", i, *a)
		}
		if affines[*a] {
			t.Errorf("copy %d shares its affine", i)
		}
		affines[*a] = true
	}
	// LoadItem transforms a copy by its affine, as an augmented image.
	p := Preprocess{Resize: 12, ImageSize: 10}
	cp := in.Drawn[3]
	plain, err := p.LoadImage(cp.Path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.LoadItem(cp)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, len(plain))
	cp.Augment.Apply(want, plain, 3, 10, 10)
	if !slices.Equal(got, want) {
		t.Error("LoadItem does not apply a copy's affine")
	}
	// Deterministic per (dataset, class, ratio, fold), and other folds and
	// datasets draw other copies.
	again, err := c.Inject("mvtec", n)
	if err != nil || !reflect.DeepEqual(again, in) {
		t.Errorf("same arguments, different draw: %v", err)
	}
	for _, m := range []struct {
		ds string
		n  Noise
	}{{"mvtec", Noise{Ratio: 0.5, Overlap: true, Fold: 1}}, {"mvtec", Noise{Ratio: 0.5, Overlap: true, Fold: 2}}, {"btad", n}} {
		o, err := c.Inject(m.ds, m.n)
		if err != nil || len(o.Drawn) != 10 || !reflect.DeepEqual(o.Drawn[:3], all) {
			t.Fatalf("%+v: %v", m, err)
		}
		for i := 3; i < 10; i++ {
			if *o.Drawn[i].Augment == *in.Drawn[i].Augment {
				t.Errorf("%s %+v: copy %d has fold 0's affine", m.ds, m.n, i)
			}
		}
	}
}

// The resampled draw is persisted in results and draws files: these copies
// (generator "\x00resample" after the dataset name) pin it.
func TestInjectResampleIsStable(t *testing.T) {
	c := smallAnomClass(t, 20, 3)
	in, err := c.Inject("mvtec", Noise{Ratio: 0.5, Overlap: true})
	if err != nil {
		t.Fatal(err)
	}
	got := RelPaths(c.Root, in.Drawn[3:])
	want := []string{"s/test/cut/002.png", "s/test/cut/000.png", "s/test/cut/001.png", "s/test/cut/001.png", "s/test/cut/000.png", "s/test/cut/002.png", "s/test/cut/000.png"}
	if !slices.Equal(got, want) {
		t.Errorf("copies %q, pinned %q", got, want)
	}
	first := Affine{Angle: 1.8408344232012848, TX: 0.021171448921009868, TY: 0.022512680807285225, Scale: 1}
	if *in.Drawn[3].Augment != first {
		t.Errorf("first copy's affine %#v, pinned %#v", *in.Drawn[3].Augment, first)
	}
}

// With the noise augmentation on, every injected image, copies included,
// takes the augmentation's draw; the copies' files are those drawn without
// it.
func TestInjectResampleAugment(t *testing.T) {
	c := smallAnomClass(t, 20, 3)
	plain, err := c.Inject("mvtec", Noise{Ratio: 0.5, Overlap: true})
	if err != nil {
		t.Fatal(err)
	}
	in, err := c.Inject("mvtec", Noise{Ratio: 0.5, Overlap: true, Augment: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(RelPaths(c.Root, in.Drawn), RelPaths(c.Root, plain.Drawn)) || in.Noise.Resampled != 7 {
		t.Errorf("augmented draw %v, plain %v", RelPaths(c.Root, in.Drawn), RelPaths(c.Root, plain.Drawn))
	}
	seen := map[Affine]bool{}
	big := false
	for i, it := range in.Drawn {
		if it.Augment == nil || seen[*it.Augment] {
			t.Fatalf("drawn %d: affine %v missing or shared", i, it.Augment)
		}
		seen[*it.Augment] = true
		big = big || it.Augment.Scale != 1
	}
	if !big {
		t.Error("the copies did not take the augmentation's draw")
	}
}

// Without overlap a draw that would take every anomalous image keeps
// NoiseReserve of them in the test set and records the count asked for.
func TestInjectCapNoOverlap(t *testing.T) {
	c := noiseClass(t) // 20 training images, 12 anomalous test images
	for _, ratio := range []float64{0.6, 0.9, 1} {
		n := Noise{Ratio: ratio, Fold: 2}
		in, err := c.Inject("mvtec", n)
		if err != nil {
			t.Fatal(err)
		}
		k := NoiseCount(ratio, 20)
		if len(in.Drawn) != 10 || in.Noise.Requested != k || in.Noise.Resampled != 0 || in.Anomalous != 12 {
			t.Errorf("ratio %v: %d drawn, noise %+v", ratio, len(in.Drawn), in.Noise)
		}
		drawn := map[string]bool{}
		for _, it := range in.Drawn {
			if drawn[it.Path] || !it.Anomalous || it.Augment != nil {
				t.Errorf("ratio %v: bad draw %+v", ratio, it)
			}
			drawn[it.Path] = true
		}
		var want []Item
		kept := 0
		for _, it := range c.Test {
			if !drawn[it.Path] {
				want = append(want, it)
				if it.Anomalous {
					kept++
				}
			}
		}
		if !reflect.DeepEqual(in.Test, want) || kept != NoiseReserve(12) || kept != 2 {
			t.Errorf("ratio %v: test set is not the class's minus the draw, or keeps %d anomalous", ratio, kept)
		}
		if !slices.IsSortedFunc(in.Drawn, func(a, b Item) int { return strings.Compare(a.Path, b.Path) }) {
			t.Errorf("ratio %v: draw not in test order", ratio)
		}
		again, _ := c.Inject("mvtec", n)
		if !reflect.DeepEqual(again, in) {
			t.Errorf("ratio %v: not deterministic", ratio)
		}
	}
	// One anomalous image: none is injected, it stays in the test set.
	one := smallAnomClass(t, 10, 1)
	in, err := one.Inject("mvtec", Noise{Ratio: 0.5})
	if err != nil || len(in.Drawn) != 0 || in.Noise.Requested != 5 || len(in.Test) != 3 || len(in.Train) != 10 {
		t.Errorf("A = 1: %+v, %v", in, err)
	}
	// No anomalous image at all: an error, with overlap or without.
	none := smallAnomClass(t, 10, 0)
	for _, ov := range []bool{false, true} {
		if _, err := none.Inject("mvtec", Noise{Ratio: 0.2, Overlap: ov}); err == nil {
			t.Errorf("overlap %t: a class without anomalous images injected noise", ov)
		}
		if in, err := none.Inject("mvtec", Noise{Overlap: ov}); err != nil || len(in.Drawn) != 0 {
			t.Errorf("overlap %t, ratio 0: %v", ov, err)
		}
	}
}

// strictDraw is the rule the strict Class.Noisy applied before Inject
// replaced it, kept here as the reference for the draws the two share
// (k <= A, and k < A without overlap): k anomalous test images by a
// partial Fisher-Yates shuffle from the PCG seeded by (dataset, class,
// ratio, fold), listed in test order, each with its DrawAffine from the
// "\x00augment" generator in that order when n.Augment is on.
func strictDraw(c *Class, dataset string, n Noise) (train, test, drawn []Item) {
	var anom []int
	for i, it := range c.Test {
		if it.Anomalous {
			anom = append(anom, i)
		}
	}
	r := rand.New(rand.NewPCG(noiseSeed(dataset, c.Name, n.Ratio, n.Fold)))
	picked := map[int]bool{}
	for j := 0; j < NoiseCount(n.Ratio, len(c.Train)); j++ {
		m := j + r.IntN(len(anom)-j)
		anom[j], anom[m] = anom[m], anom[j]
		picked[anom[j]] = true
	}
	var aug *rand.Rand
	if n.Augment {
		aug = rand.New(rand.NewPCG(noiseSeed(dataset+"\x00augment", c.Name, n.Ratio, n.Fold)))
	}
	for i, it := range c.Test {
		switch {
		case picked[i]:
			if aug != nil {
				a := DrawAffine(aug)
				it.Augment = &a
			}
			drawn = append(drawn, it)
			if n.Overlap {
				test = append(test, c.Test[i])
			}
		default:
			test = append(test, it)
		}
	}
	return append(append([]Item(nil), c.Train...), drawn...), test, drawn
}

// Where the anomalous images do not run out Inject draws what the strict
// rule drew, bit for bit, and the draw's record stays empty so results do
// not change.
func TestInjectUnchangedBelowA(t *testing.T) {
	c := noiseClass(t) // A = 12
	for _, ratio := range []float64{0, 0.1, 0.25, 0.5, 0.55, 0.6} {
		for _, ov := range []bool{false, true} {
			for _, aug := range []bool{false, true} {
				n := Noise{Ratio: ratio, Overlap: ov, Fold: 1, Augment: aug}
				if !ov && NoiseCount(ratio, 20) >= 12 {
					continue // capped (TestInjectCapNoOverlap)
				}
				train, test, drawn := strictDraw(c, "mvtec", n)
				in, err := c.Inject("mvtec", n)
				if err != nil || !reflect.DeepEqual(in.Train, train) || !reflect.DeepEqual(in.Test, test) || !reflect.DeepEqual(in.Drawn, drawn) ||
					!reflect.DeepEqual(in.Noise, n) {
					t.Errorf("%+v: Inject differs from the strict draw (%v)", n, err)
				}
			}
		}
	}
}

// A noise list may repeat an image only when the copy carries an affine,
// as a replayed draws file gives it; the replay is the draw.
func TestInjectReplayCopies(t *testing.T) {
	c := smallAnomClass(t, 20, 3)
	n := Noise{Ratio: 0.5, Overlap: true, Fold: 4}
	in, err := c.Inject("mvtec", n)
	if err != nil {
		t.Fatal(err)
	}
	files := RelPaths(c.Root, in.Drawn)
	var affines []*Affine
	for _, it := range in.Drawn {
		affines = append(affines, it.Augment)
	}
	rn := Noise{Overlap: true, Files: files, ResampleAffines: affines}
	re, err := c.Inject("other", rn)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(re.Drawn, in.Drawn) || !reflect.DeepEqual(re.Train, in.Train) || !reflect.DeepEqual(re.Test, in.Test) || re.Noise.Resampled != 7 {
		t.Error("the replayed copies differ from the draw")
	}
	// A copy without an affine is refused; with the augmentation every
	// image has one.
	if _, err := c.Inject("x", Noise{Overlap: true, Files: files}); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Errorf("copies without affines: %v", err)
	}
	if aug, err := c.Inject("x", Noise{Overlap: true, Files: files, Augment: true}); err != nil || len(aug.Drawn) != 10 || aug.Noise.Resampled != 7 {
		t.Errorf("copies with the augmentation: %v", err)
	}
	for _, bad := range []Noise{
		{Overlap: true, Files: files, ResampleAffines: affines[:9]},
		{Overlap: true, Files: files, ResampleAffines: affines, Augment: true},
	} {
		if _, err := c.Inject("x", bad); err == nil {
			t.Errorf("%d resample affines for %d files, augment %t: accepted", len(bad.ResampleAffines), len(files), bad.Augment)
		}
	}
}
