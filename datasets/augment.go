package datasets

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Affine is one draw of the published code's optional noise augmentation:
// transforms.RandomAffine(10, (0.1, 0.1), (0.9, 1.1), 10), which its
// NoiseDataset applies to every injected anomalous image after the usual
// resize, crop and normalisation (docs/method.md#25-noise-augmentation). The
// draw comes from our seeded generator, not torch's, so a cell can be rerun
// exactly; the transform itself is torchvision 0.14's functional.affine on a
// tensor with nearest interpolation and fill 0. The ranges below are
// DrawAffine's; a resampled noise copy's smaller affine (DrawResampleAffine)
// is the same type and transform.
type Affine struct {
	Angle  float64 `json:"angle"` // degrees, U(-10, 10)
	TX     float64 `json:"tx"`    // horizontal shift as a fraction of the width, U(-0.1, 0.1)
	TY     float64 `json:"ty"`    // vertical shift as a fraction of the height, U(-0.1, 0.1)
	Scale  float64 `json:"scale"` // U(0.9, 1.1)
	ShearX float64 `json:"shear"` // degrees along x, U(-10, 10); no shear along y
	pixels bool    `json:"-"`     // TX and TY are whole pixels (tests, goldens)
}

// DrawAffine draws the parameters as RandomAffine.get_params does, from r.
func DrawAffine(r *rand.Rand) Affine {
	u := func(lo, hi float64) float64 { return lo + (hi-lo)*r.Float64() }
	return Affine{Angle: u(-10, 10), TX: u(-0.1, 0.1), TY: u(-0.1, 0.1), Scale: u(0.9, 1.1), ShearX: u(-10, 10)}
}

// The small affine of a resampled noise copy (Class.Inject): when noise
// with overlap asks for more anomalous images than a class has, each image
// injected again gets its own rotation in +-ResampleMaxAngle degrees and
// shift in +-ResampleMaxShift of the width and height, scale 1 and no
// shear: the published maintainer's recipe for 15-20% noise.
const (
	ResampleMaxAngle = 3.0  // degrees
	ResampleMaxShift = 0.03 // fraction of the width (tx) or height (ty)
)

// DrawResampleAffine draws a resampled copy's affine from r: the angle,
// then tx, then ty, each uniform in its range; Scale 1, ShearX 0. Apply
// transforms the image as it does DrawAffine's.
func DrawResampleAffine(r *rand.Rand) Affine {
	u := func(lo, hi float64) float64 { return lo + (hi-lo)*r.Float64() }
	return Affine{Angle: u(-ResampleMaxAngle, ResampleMaxAngle), TX: u(-ResampleMaxShift, ResampleMaxShift),
		TY: u(-ResampleMaxShift, ResampleMaxShift), Scale: 1}
}

// translation returns the whole-pixel shift for an h x w image:
// int(round(U(-0.1 w, 0.1 w))) in torchvision, round half to even.
func (a Affine) translation(h, w int) (tx, ty float64) {
	if a.pixels {
		return a.TX, a.TY
	}
	return math.RoundToEven(a.TX * float64(w)), math.RoundToEven(a.TY * float64(h))
}

// Apply writes the transformed src to dst; both are [channels][h][w]
// (a normalised image). Output pixels whose source falls outside the image
// are 0, torchvision's default fill.
func (a Affine) Apply(dst, src []float32, channels, h, w int) {
	if len(src) != channels*h*w || len(dst) != len(src) {
		panic(fmt.Sprintf("datasets: Affine.Apply: len(src)=%d len(dst)=%d, want %d", len(src), len(dst), channels*h*w))
	}
	tx, ty := a.translation(h, w)
	m := inverseAffine(a.Angle, tx, ty, a.Scale, a.ShearX)
	// torch (_gen_affine_grid, grid_sample) in float32: theta is rescaled by
	// (w/2, h/2), applied to the pixel-centre grid, and grid_sample(nearest,
	// align_corners=False) reads index nearbyint(((g + 1) * size - 1) / 2).
	hw, hh := float32(0.5*float64(w)), float32(0.5*float64(h))
	var r [6]float32
	for i, v := range m {
		if i < 3 {
			r[i] = float32(v) / hw
		} else {
			r[i] = float32(v) / hh
		}
	}
	plane := h * w
	for y := 0; y < h; y++ {
		gy := float32(-float64(h)*0.5+0.5) + float32(y)
		for x := 0; x < w; x++ {
			gx := float32(-float64(w)*0.5+0.5) + float32(x)
			sx := gx*r[0] + gy*r[1] + r[2]
			sy := gx*r[3] + gy*r[4] + r[5]
			ix := int(math.RoundToEven(float64(((sx+1)*float32(w) - 1) / 2)))
			iy := int(math.RoundToEven(float64(((sy+1)*float32(h) - 1) / 2)))
			inside := ix >= 0 && ix < w && iy >= 0 && iy < h
			for c := 0; c < channels; c++ {
				v := float32(0)
				if inside {
					v = src[c*plane+iy*w+ix]
				}
				dst[c*plane+y*w+x] = v
			}
		}
	}
}

// inverseAffine is torchvision's _get_inverse_affine_matrix with the
// centre at the origin (as functional.affine uses for tensors).
func inverseAffine(angle, tx, ty, scale, shearX float64) [6]float64 {
	rot := angle * math.Pi / 180
	sx := shearX * math.Pi / 180
	a := math.Cos(rot)
	b := -math.Cos(rot)*math.Tan(sx) - math.Sin(rot)
	c := math.Sin(rot)
	d := -math.Sin(rot)*math.Tan(sx) + math.Cos(rot)
	m := [6]float64{d / scale, -b / scale, 0, -c / scale, a / scale, 0}
	m[2] = m[0]*(-tx) + m[1]*(-ty)
	m[5] = m[3]*(-tx) + m[4]*(-ty)
	return m
}

// LoadItem is LoadImage for a dataset item: the injected noise images of
// an augmented noisy training set, and resampled noise copies
// (Item.Augment), are transformed after normalisation, as the published
// NoiseDataset does.
func (p Preprocess) LoadItem(it Item) ([]float32, error) {
	x, err := p.LoadImage(it.Path)
	if err != nil || it.Augment == nil {
		return x, err
	}
	out := make([]float32, len(x))
	it.Augment.Apply(out, x, 3, p.ImageSize, p.ImageSize)
	return out, nil
}
