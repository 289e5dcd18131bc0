package datasets

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/softpatch/softpatch/internal/npy"
)

// Fixtures made by testdata/gen_preprocess.py (PIL 9.4, torchvision 0.14).

type goldenCase struct {
	File   string `json:"file"`
	Kind   string `json:"kind"` // "rgb" or "mask"
	Resize int    `json:"resize"`
	Size   int    `json:"size"`
	Mode   string `json:"mode"`
	Key    string `json:"key"`
}

type goldenManifest struct {
	PIL         string            `json:"pil"`
	Torchvision string            `json:"torchvision"`
	Modes       map[string]string `json:"modes"`
	Norm        []string          `json:"norm"`
	Cases       []goldenCase      `json:"cases"`
}

var (
	goldenOnce sync.Once
	goldenMan  goldenManifest
	goldenArr  map[string]*npy.Array
	goldenErr  error
)

// golden loads testdata/cases.json and testdata/golden.npz once.
func golden(t testing.TB) (goldenManifest, map[string]*npy.Array) {
	t.Helper()
	goldenOnce.Do(func() {
		b, err := os.ReadFile(filepath.Join("testdata", "cases.json"))
		if err != nil {
			goldenErr = err
			return
		}
		if err := json.Unmarshal(b, &goldenMan); err != nil {
			goldenErr = err
			return
		}
		goldenArr, goldenErr = readNPZ(filepath.Join("testdata", "golden.npz"))
	})
	if goldenErr != nil {
		t.Fatalf("loading golden fixtures: %v", goldenErr)
	}
	return goldenMan, goldenArr
}

// readNPZ reads every .npy member of an npz archive. Keys ending in "~pred"
// hold gradient-predictor residuals and are decoded (suffix dropped).
func readNPZ(path string) (map[string]*npy.Array, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	out := map[string]*npy.Array{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		a, err := npy.Read(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %v", f.Name, err)
		}
		key := strings.TrimSuffix(f.Name, ".npy")
		if strings.HasSuffix(key, "~pred") {
			key = strings.TrimSuffix(key, "~pred")
			unpredict(a)
		}
		out[key] = a
	}
	return out, nil
}

// unpredict inverts the generator's left+up-upleft (mod 256) predictor over
// the first two axes.
func unpredict(a *npy.Array) {
	h, w := a.Shape[0], a.Shape[1]
	c := len(a.U8) / (h * w)
	p := a.U8
	at := func(y, x, k int) int { return int(p[(y*w+x)*c+k]) }
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			for k := 0; k < c; k++ {
				pred := 0
				if x > 0 {
					pred += at(y, x-1, k)
				}
				if y > 0 {
					pred += at(y-1, x, k)
				}
				if x > 0 && y > 0 {
					pred -= at(y-1, x-1, k)
				}
				p[(y*w+x)*c+k] = uint8(int(p[(y*w+x)*c+k]) + pred)
			}
		}
	}
}

// pilRGB returns PIL's decoded RGB array for an input file. The big PNG is
// stored as a digest only: it is decoded with DecodeRGBFile and checked.
func pilRGB(t *testing.T, arr map[string]*npy.Array, file string) *RGB8 {
	t.Helper()
	if a, ok := arr["dec/"+file]; ok {
		return &RGB8{W: a.Shape[1], H: a.Shape[0], Pix: a.U8}
	}
	sum, ok := arr["sha256/dec/"+file]
	if !ok {
		t.Fatalf("no decoded array for %s", file)
	}
	img, err := DecodeRGBFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	if got := sha256.Sum256(img.Pix); string(got[:]) != string(sum.U8) {
		t.Fatalf("%s: decoded pixels differ from PIL's (sha256 mismatch)", file)
	}
	return img
}

func isJPEG(file string) bool { return strings.HasSuffix(file, ".jpg") }

// jpegMaxDiff is the largest |Go - PIL| sample difference allowed for JPEG
// decoding (Go's IDCT is not libjpeg-turbo's jidctint); measured on the
// fixtures, see TestDecodeMatchesPIL's log.
const jpegMaxDiff = 3

// diffStats compares two byte slices.
func diffStats(a, b []uint8) (n, maxd int) {
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		if d > 0 {
			n++
		}
		maxd = max(maxd, d)
	}
	return n, maxd
}

func TestDecodeMatchesPIL(t *testing.T) {
	man, arr := golden(t)
	for _, file := range slices.Sorted(maps.Keys(man.Modes)) {
		t.Run(file, func(t *testing.T) {
			want := pilRGB(t, arr, file)
			got, err := DecodeRGBFile(filepath.Join("testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			if got.W != want.W || got.H != want.H {
				t.Fatalf("size %dx%d, PIL %dx%d", got.W, got.H, want.W, want.H)
			}
			n, maxd := diffStats(got.Pix, want.Pix)
			if isJPEG(file) {
				t.Logf("PIL mode %s: %d of %d samples differ from PIL, max |diff| %d", man.Modes[file], n, len(got.Pix), maxd)
				if maxd > jpegMaxDiff {
					t.Errorf("max |diff| %d > %d", maxd, jpegMaxDiff)
				}
				return
			}
			if n != 0 {
				t.Errorf("PIL mode %s: %d of %d samples differ from PIL, max |diff| %d", man.Modes[file], n, len(got.Pix), maxd)
			}
		})
	}
}

func caseParams(t *testing.T, c goldenCase) Preprocess {
	t.Helper()
	m, err := ParseResizeMode(c.Mode)
	if err != nil {
		t.Fatal(err)
	}
	return Preprocess{Resize: c.Resize, ImageSize: c.Size, Mode: m}
}

// TestImageGolden feeds PIL's decoded pixels to Image and requires exact
// equality with torchvision's Resize + CenterCrop for every case; for
// lossless formats it also runs the whole Go path (decode + Image).
func TestImageGolden(t *testing.T) {
	man, arr := golden(t)
	count := 0
	for _, c := range man.Cases {
		if c.Kind != "rgb" {
			continue
		}
		count++
		t.Run(c.Key, func(t *testing.T) {
			p := caseParams(t, c)
			want := arr["out/"+c.Key]
			if want == nil {
				t.Fatal("missing golden output")
			}
			in := pilRGB(t, arr, c.File)
			got := p.Image(in)
			if got.W != want.Shape[1] || got.H != want.Shape[0] {
				t.Fatalf("size %dx%d, want %dx%d", got.W, got.H, want.Shape[1], want.Shape[0])
			}
			if n, maxd := diffStats(got.Pix, want.U8); n != 0 {
				t.Fatalf("%d of %d samples differ from torchvision, max |diff| %d", n, len(got.Pix), maxd)
			}
			if isJPEG(c.File) {
				return
			}
			dec, err := DecodeRGBFile(filepath.Join("testdata", c.File))
			if err != nil {
				t.Fatal(err)
			}
			if n, maxd := diffStats(p.Image(dec).Pix, want.U8); n != 0 {
				t.Fatalf("decode+Image: %d samples differ, max |diff| %d", n, maxd)
			}
		})
	}
	t.Logf("%d resize+crop cases compared", count)
}

// TestImageJPEGEndToEnd bounds the end-to-end difference for JPEG inputs
// (Go decode, then Image) against torchvision on PIL's decode.
func TestImageJPEGEndToEnd(t *testing.T) {
	man, arr := golden(t)
	for _, c := range man.Cases {
		if c.Kind != "rgb" || !isJPEG(c.File) {
			continue
		}
		dec, err := DecodeRGBFile(filepath.Join("testdata", c.File))
		if err != nil {
			t.Fatal(err)
		}
		got := caseParams(t, c).Image(dec)
		n, maxd := diffStats(got.Pix, arr["out/"+c.Key].U8)
		t.Logf("%s: %d of %d samples differ, max |diff| %d", c.Key, n, len(got.Pix), maxd)
		if maxd > jpegMaxDiff {
			t.Errorf("%s: max |diff| %d > %d", c.Key, maxd, jpegMaxDiff)
		}
	}
}

func TestMaskGolden(t *testing.T) {
	man, arr := golden(t)
	for _, c := range man.Cases {
		if c.Kind != "mask" {
			continue
		}
		t.Run(c.Key, func(t *testing.T) {
			g, err := DecodeGrayFile(filepath.Join("testdata", c.File))
			if err != nil {
				t.Fatal(err)
			}
			wantG := arr["gray/"+c.File]
			if g.W != wantG.Shape[1] || g.H != wantG.Shape[0] {
				t.Fatalf("gray size %dx%d", g.W, g.H)
			}
			if n, _ := diffStats(g.Pix, wantG.U8); n != 0 {
				t.Fatalf("convert(L): %d pixels differ from PIL", n)
			}
			got := caseParams(t, c).Mask(g)
			want := arr["mask/"+c.Key]
			if len(got) != len(want.U8) {
				t.Fatalf("len %d, want %d", len(got), len(want.U8))
			}
			ones := 0
			for i := range got {
				if got[i] != want.U8[i] {
					t.Fatalf("pixel %d: %d, want %d", i, got[i], want.U8[i])
				}
				ones += int(got[i])
			}
			if ones == 0 {
				t.Fatal("degenerate fixture: no anomalous pixel")
			}
		})
	}
}

func TestNormalizeGolden(t *testing.T) {
	man, arr := golden(t)
	for _, key := range man.Norm {
		want := arr["norm/"+key]
		out := arr["out/"+key]
		img := &RGB8{W: out.Shape[1], H: out.Shape[0], Pix: out.U8}
		got := make([]float32, 3*img.W*img.H)
		Normalize(got, img)
		maxd, exact := 0.0, 0
		for i := range got {
			d := math.Abs(float64(got[i]) - float64(want.F32[i]))
			maxd = math.Max(maxd, d)
			if got[i] == want.F32[i] {
				exact++
			}
		}
		t.Logf("%s: max |diff| %g, %d of %d values bit-identical to torchvision", key, maxd, exact, len(got))
		if maxd > 1e-6 {
			t.Errorf("%s: max |diff| %g > 1e-6", key, maxd)
		}
	}
}

func TestLoadImage(t *testing.T) {
	_, arr := golden(t)
	p := Preprocess{Resize: 36, ImageSize: 32}
	key := "gray_37x29.png/36_32_shorter"
	got, err := p.LoadImage(filepath.Join("testdata", "gray_37x29.png"))
	if err != nil {
		t.Fatal(err)
	}
	want := arr["norm/"+key].F32
	if len(got) != len(want) {
		t.Fatalf("len %d, want %d", len(got), len(want))
	}
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > 1e-6 {
			t.Fatalf("value %d: %g, want %g", i, got[i], want[i])
		}
	}
	if _, err := (Preprocess{Resize: 0, ImageSize: 32}).LoadImage("x.png"); err == nil {
		t.Error("invalid preprocess accepted")
	}
}
