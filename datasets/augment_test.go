package datasets

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestAffineMatchesTorchvision compares Apply with torchvision 0.14's
// functional.affine (nearest, fill 0) on normalised tensors, from
// testdata/gen_affine.py. Nearest sampling is compared exactly.
func TestAffineMatchesTorchvision(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "affine.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []struct {
			Shape                       []int
			Angle, TX, TY, Scale, Shear float64
			Input, Output               []float32
		}
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	for i, c := range g.Cases {
		a := Affine{Angle: c.Angle, TX: c.TX, TY: c.TY, Scale: c.Scale, ShearX: c.Shear, pixels: true}
		got := make([]float32, len(c.Input))
		a.Apply(got, c.Input, c.Shape[0], c.Shape[1], c.Shape[2])
		bad := 0
		for j := range got {
			if got[j] != c.Output[j] {
				bad++
			}
		}
		if bad > 0 {
			t.Errorf("case %d %+v: %d of %d values differ from torchvision", i, a, bad, len(got))
		}
	}
}

func TestDrawAffineRanges(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		a := DrawAffine(r)
		if a.Angle < -10 || a.Angle > 10 || a.TX < -0.1 || a.TX > 0.1 || a.TY < -0.1 || a.TY > 0.1 ||
			a.Scale < 0.9 || a.Scale > 1.1 || a.ShearX < -10 || a.ShearX > 10 {
			t.Fatalf("draw out of range: %+v", a)
		}
	}
}

// With Noise.Augment every drawn image, and only those, gets its own
// affine, the same for the same draw; LoadItem applies it.
func TestInjectAugment(t *testing.T) {
	c := noiseClass(t)
	n := Noise{Ratio: 0.5, Augment: true} // k = 10 < A = 12: neither capped nor resampled
	in, err := c.Inject("mvtec", n)
	if err != nil {
		t.Fatal(err)
	}
	train, drawn := in.Train, in.Drawn
	if len(drawn) < 2 {
		t.Fatalf("%d drawn", len(drawn))
	}
	for i, it := range train {
		if (it.Augment != nil) != (i >= len(c.Train)) {
			t.Errorf("train item %d (%s): augment %v", i, it.Path, it.Augment)
		}
	}
	if *drawn[0].Augment == *drawn[1].Augment {
		t.Error("two drawn images share one transform")
	}
	again, _ := c.Inject("mvtec", n)
	for i := range drawn {
		if *again.Drawn[i].Augment != *drawn[i].Augment {
			t.Errorf("drawn %d: transform differs between identical draws", i)
		}
	}
	p := Preprocess{Resize: 12, ImageSize: 10}
	plain, err := p.LoadImage(drawn[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.LoadItem(drawn[0])
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, len(plain))
	drawn[0].Augment.Apply(want, plain, 3, 10, 10)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("LoadItem differs from LoadImage + Apply at %d", i)
		}
	}
}
