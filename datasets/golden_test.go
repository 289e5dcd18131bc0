package datasets

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
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

// npyArray is one array of golden.npz.
type npyArray struct {
	shape []int
	u8    []uint8   // dtype |u1
	f32   []float32 // dtype <f4
}

var (
	goldenOnce sync.Once
	goldenMan  goldenManifest
	goldenArr  map[string]*npyArray
	goldenErr  error
)

// golden loads testdata/cases.json and testdata/golden.npz once.
func golden(t testing.TB) (goldenManifest, map[string]*npyArray) {
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
func readNPZ(path string) (map[string]*npyArray, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	out := map[string]*npyArray{}
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
		a, err := parseNPY(data)
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

// parseNPY is a minimal .npy (v1/v2) reader for C-ordered |u1 and <f4.
func parseNPY(b []byte) (*npyArray, error) {
	if len(b) < 10 || string(b[:6]) != "\x93NUMPY" {
		return nil, fmt.Errorf("not an npy file")
	}
	var hlen, off int
	switch b[6] {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(b[8:10])), 10
	case 2, 3:
		hlen, off = int(binary.LittleEndian.Uint32(b[8:12])), 12
	default:
		return nil, fmt.Errorf("npy version %d", b[6])
	}
	if off+hlen > len(b) {
		return nil, fmt.Errorf("short header")
	}
	hdr := string(b[off : off+hlen])
	body := b[off+hlen:]
	field := func(name string) string {
		i := strings.Index(hdr, "'"+name+"':")
		if i < 0 {
			return ""
		}
		return strings.TrimSpace(hdr[i+len(name)+3:])
	}
	if strings.HasPrefix(field("fortran_order"), "True") {
		return nil, fmt.Errorf("fortran order unsupported")
	}
	sh := field("shape")
	sh = sh[strings.Index(sh, "(")+1 : strings.Index(sh, ")")]
	a := &npyArray{}
	n := 1
	for _, s := range strings.Split(sh, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		v, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("shape %q", sh)
		}
		a.shape = append(a.shape, v)
		n *= v
	}
	switch d := field("descr"); {
	case strings.HasPrefix(d, "'|u1'"):
		if len(body) != n {
			return nil, fmt.Errorf("u8 body %d, want %d", len(body), n)
		}
		a.u8 = body
	case strings.HasPrefix(d, "'<f4'"):
		if len(body) != 4*n {
			return nil, fmt.Errorf("f32 body %d, want %d", len(body), 4*n)
		}
		a.f32 = make([]float32, n)
		for i := range a.f32 {
			a.f32[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
		}
	default:
		return nil, fmt.Errorf("dtype %s unsupported", d)
	}
	return a, nil
}

// unpredict inverts the generator's left+up-upleft (mod 256) predictor over
// the first two axes.
func unpredict(a *npyArray) {
	h, w := a.shape[0], a.shape[1]
	c := len(a.u8) / (h * w)
	p := a.u8
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
func pilRGB(t *testing.T, arr map[string]*npyArray, file string) *RGB8 {
	t.Helper()
	if a, ok := arr["dec/"+file]; ok {
		return &RGB8{W: a.shape[1], H: a.shape[0], Pix: a.u8}
	}
	sum, ok := arr["sha256/dec/"+file]
	if !ok {
		t.Fatalf("no decoded array for %s", file)
	}
	img, err := DecodeRGBFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	if got := sha256.Sum256(img.Pix); string(got[:]) != string(sum.u8) {
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
			if got.W != want.shape[1] || got.H != want.shape[0] {
				t.Fatalf("size %dx%d, want %dx%d", got.W, got.H, want.shape[1], want.shape[0])
			}
			if n, maxd := diffStats(got.Pix, want.u8); n != 0 {
				t.Fatalf("%d of %d samples differ from torchvision, max |diff| %d", n, len(got.Pix), maxd)
			}
			if isJPEG(c.File) {
				return
			}
			dec, err := DecodeRGBFile(filepath.Join("testdata", c.File))
			if err != nil {
				t.Fatal(err)
			}
			if n, maxd := diffStats(p.Image(dec).Pix, want.u8); n != 0 {
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
		n, maxd := diffStats(got.Pix, arr["out/"+c.Key].u8)
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
			if g.W != wantG.shape[1] || g.H != wantG.shape[0] {
				t.Fatalf("gray size %dx%d", g.W, g.H)
			}
			if n, _ := diffStats(g.Pix, wantG.u8); n != 0 {
				t.Fatalf("convert(L): %d pixels differ from PIL", n)
			}
			got := caseParams(t, c).Mask(g)
			want := arr["mask/"+c.Key]
			if len(got) != len(want.u8) {
				t.Fatalf("len %d, want %d", len(got), len(want.u8))
			}
			ones := 0
			for i := range got {
				if got[i] != want.u8[i] {
					t.Fatalf("pixel %d: %d, want %d", i, got[i], want.u8[i])
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
		img := &RGB8{W: out.shape[1], H: out.shape[0], Pix: out.u8}
		got := make([]float32, 3*img.W*img.H)
		Normalize(got, img)
		maxd, exact := 0.0, 0
		for i := range got {
			d := math.Abs(float64(got[i]) - float64(want.f32[i]))
			maxd = math.Max(maxd, d)
			if got[i] == want.f32[i] {
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
	want := arr["norm/"+key].f32
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
