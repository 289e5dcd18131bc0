package datasets

import (
	"fmt"
	"strings"
)

// ResizeMode says how an image is brought to the model's input size.
type ResizeMode int

const (
	// ResizeShorter (the default) resizes the shorter side to
	// Preprocess.Resize, keeping the aspect ratio, then centre-crops
	// ImageSize x ImageSize: torchvision Resize(Resize) + CenterCrop(ImageSize).
	ResizeShorter ResizeMode = iota
	// ResizeSquare resizes straight to ImageSize x ImageSize with the same
	// filter and no crop: torchvision Resize((ImageSize, ImageSize)).
	// Preprocess.Resize is ignored.
	ResizeSquare
)

// String returns "shorter" or "square" (or "ResizeMode(n)" for other values).
func (m ResizeMode) String() string {
	switch m {
	case ResizeShorter:
		return "shorter"
	case ResizeSquare:
		return "square"
	}
	return fmt.Sprintf("ResizeMode(%d)", int(m))
}

// ParseResizeMode parses "shorter" or "square" (case-insensitive, surrounding
// space ignored); the empty string means the default, ResizeShorter.
func ParseResizeMode(s string) (ResizeMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "shorter", "":
		return ResizeShorter, nil
	case "square":
		return ResizeSquare, nil
	}
	return 0, fmt.Errorf("datasets: unknown resize mode %q (want \"shorter\" or \"square\")", s)
}

// ResizeModeNames returns the names of the resize modes, the default
// first.
func ResizeModeNames() []string {
	return []string{ResizeShorter.String(), ResizeSquare.String()}
}

// MarshalText implements encoding.TextMarshaler ("shorter" or "square").
func (m ResizeMode) MarshalText() ([]byte, error) {
	if m != ResizeShorter && m != ResizeSquare {
		return nil, fmt.Errorf("datasets: invalid resize mode %d", int(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler via ParseResizeMode.
func (m *ResizeMode) UnmarshalText(b []byte) error {
	v, err := ParseResizeMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Preprocess holds torchvision's transform parameters: Resize (the target
// of the shorter side, 256 by default), ImageSize (the square crop fed to
// the model, 224 by default) and Mode.
type Preprocess struct {
	Resize, ImageSize int
	Mode              ResizeMode
}

// DefaultPreprocess returns Resize 256, ImageSize 224, ResizeShorter: the
// PatchCore/SoftPatch MVTec setting.
func DefaultPreprocess() Preprocess {
	return Preprocess{Resize: 256, ImageSize: 224, Mode: ResizeShorter}
}

// maxSide bounds Resize and ImageSize, keeping every size product far from
// integer overflow.
const maxSide = 1 << 15

// Validate reports whether p describes a usable transform: ImageSize in
// [1, 32768], a known Mode, and for ResizeShorter Resize in [1, 32768].
func (p Preprocess) Validate() error {
	if p.ImageSize < 1 || p.ImageSize > maxSide {
		return fmt.Errorf("datasets: preprocess image size %d out of range [1, %d]", p.ImageSize, maxSide)
	}
	switch p.Mode {
	case ResizeShorter:
		if p.Resize < 1 || p.Resize > maxSide {
			return fmt.Errorf("datasets: preprocess resize %d out of range [1, %d]", p.Resize, maxSide)
		}
	case ResizeSquare:
	default:
		return fmt.Errorf("datasets: invalid resize mode %d", int(p.Mode))
	}
	return nil
}

// resizedSize is torchvision 0.14's _compute_resized_output_size for an int
// size on a w x h image: the shorter side becomes size and the longer one
// int(size * long / short), truncated (Python true division of ints is
// correctly rounded, as is the float64 division here for sizes < 2^53).
func resizedSize(w, h, size int) (int, int) {
	short, long := w, h
	if w > h {
		short, long = h, w
	}
	newLong := int(float64(size*long) / float64(short))
	if w <= h {
		return size, newLong
	}
	return newLong, size
}

// roundHalfEven is Python 3's round(n / 2) for n >= 0.
func roundHalfEven(n int) int {
	q := n / 2
	if n%2 != 0 && q%2 != 0 {
		q++
	}
	return q
}

// cropOffset returns the source index of the first output sample of
// torchvision 0.14's center_crop along one axis of length n cropped to c:
// negative when the axis is zero-padded first (padding (c-n)//2 before).
func cropOffset(n, c int) int {
	if c > n {
		return -((c - n) / 2) // after padding the axis has length c: crop at 0
	}
	return roundHalfEven(n - c)
}

// centerCrop crops (zero-padding where needed) an interleaved image with ch
// channels from w x h to c x c.
func centerCrop(src []uint8, w, h, ch, c int) []uint8 {
	x0, y0 := cropOffset(w, c), cropOffset(h, c)
	if x0 == 0 && y0 == 0 && w == c && h == c {
		return src
	}
	out := make([]uint8, c*c*ch)
	for y := 0; y < c; y++ {
		sy := y + y0
		if sy < 0 || sy >= h {
			continue
		}
		// columns [xa, xb) of the output come from the source
		xa, xb := max(0, -x0), min(c, w-x0)
		if xa >= xb {
			continue
		}
		copy(out[(y*c+xa)*ch:(y*c+xb)*ch], src[(sy*w+xa+x0)*ch:(sy*w+xb+x0)*ch])
	}
	return out
}

// geometry applies the resize (and crop) of p to an interleaved 8-bit image.
func (p Preprocess) geometry(src []uint8, w, h, ch int) []uint8 {
	if err := p.Validate(); err != nil {
		panic(err)
	}
	if w <= 0 || h <= 0 || len(src) != w*h*ch {
		panic(fmt.Sprintf("datasets: invalid %dx%d image with %d bytes (want %d)", w, h, len(src), w*h*ch))
	}
	s := p.ImageSize
	if p.Mode == ResizeSquare {
		return resize8(src, w, h, ch, s, s)
	}
	rw, rh := resizedSize(w, h, p.Resize)
	return centerCrop(resize8(src, w, h, ch, rw, rh), rw, rh, ch, s)
}

// Image returns the model-input image, ImageSize x ImageSize, exactly as
// torchvision 0.14 Resize(Resize) + CenterCrop(ImageSize) (ResizeShorter) or
// Resize((ImageSize, ImageSize)) (ResizeSquare) produce it from a PIL RGB
// image: Pillow's antialiased BILINEAR resampler in 8-bit fixed point, a
// centre crop at round-half-even offsets, zero padding when the resized
// image is smaller than the crop. The result never aliases img.
//
// It panics if p is invalid (see Validate) or img is empty or inconsistent
// (len(Pix) != 3*W*H); images from the decoders are always consistent.
func (p Preprocess) Image(img *RGB8) *RGB8 {
	out := p.geometry(img.Pix, img.W, img.H, 3)
	if len(img.Pix) > 0 && len(out) > 0 && &out[0] == &img.Pix[0] {
		out = append([]uint8(nil), out...)
	}
	return &RGB8{W: p.ImageSize, H: p.ImageSize, Pix: out}
}

// Mask applies the geometry of Image to an 8-bit mask (bilinear resampling
// of the gray values, like the reference's transform on a mode "L" mask),
// then marks a pixel anomalous only if its resized value is exactly 255
// (ToTensor gives value/255 and only 255 truncates to 1). It returns
// ImageSize*ImageSize values, 0 or 1, row-major.
//
// It panics under the same conditions as Image.
func (p Preprocess) Mask(m *Gray8) []uint8 {
	g := p.geometry(m.Pix, m.W, m.H, 1)
	out := make([]uint8, len(g))
	for i, v := range g {
		if v == 255 {
			out[i] = 1
		}
	}
	return out
}

// ImageNet normalisation constants used by Normalize (float32, as
// torchvision's Normalize converts them).
var (
	imagenetMean = [3]float32{0.485, 0.456, 0.406}
	imagenetStd  = [3]float32{0.229, 0.224, 0.225}
)

// Normalize writes img as a CHW float32 tensor into dst (len 3*W*H):
// ((v / 255) - mean[c]) / std[c] with the ImageNet mean and std, each step
// rounded to float32 as torchvision's ToTensor and Normalize compute it. It
// panics if len(dst) != 3*W*H.
func Normalize(dst []float32, img *RGB8) {
	n := img.W * img.H
	if len(dst) != 3*n || len(img.Pix) != 3*n {
		panic(fmt.Sprintf("datasets: Normalize: dst has %d values and image %d bytes, want %d", len(dst), len(img.Pix), 3*n))
	}
	var lut [3][256]float32
	for c := 0; c < 3; c++ {
		for v := 0; v < 256; v++ {
			x := float32(v) / 255
			lut[c][v] = (x - imagenetMean[c]) / imagenetStd[c]
		}
	}
	r, g, b := dst[:n], dst[n:2*n], dst[2*n:]
	for i := 0; i < n; i++ {
		p := img.Pix[3*i : 3*i+3]
		r[i] = lut[0][p[0]]
		g[i] = lut[1][p[1]]
		b[i] = lut[2][p[2]]
	}
}

// LoadImage decodes the image file at path (DecodeRGBFile), applies Image
// and Normalize, and returns the CHW float32 tensor (3*ImageSize*ImageSize).
func (p Preprocess) LoadImage(path string) ([]float32, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	img, err := DecodeRGBFile(path)
	if err != nil {
		return nil, err
	}
	if p.Mode == ResizeShorter {
		// The whole resized image is made before the crop: bound it.
		if rw, rh := resizedSize(img.W, img.H, p.Resize); rw*rh > MaxPixels {
			return nil, fmt.Errorf("datasets: %s: a %dx%d image resized to shorter side %d is %dx%d, over %d pixels", path, img.W, img.H, p.Resize, rw, rh, MaxPixels)
		}
	}
	out := p.Image(img)
	dst := make([]float32, 3*out.W*out.H)
	Normalize(dst, out)
	return dst, nil
}
