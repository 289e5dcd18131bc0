package datasets

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResizeMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ResizeMode
	}{{"shorter", ResizeShorter}, {"square", ResizeSquare}, {" Square ", ResizeSquare}, {"", ResizeShorter}} {
		got, err := ParseResizeMode(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseResizeMode(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if _, err := ParseResizeMode("crop"); err == nil || !strings.HasPrefix(err.Error(), "datasets: ") {
		t.Errorf("ParseResizeMode(crop) error = %v", err)
	}
	if ResizeShorter.String() != "shorter" || ResizeSquare.String() != "square" || ResizeMode(7).String() != "ResizeMode(7)" {
		t.Error("String")
	}
	for _, n := range ResizeModeNames() {
		if m, err := ParseResizeMode(n); err != nil || m.String() != n {
			t.Errorf("ResizeModeNames: %q parses as %v, %v", n, m, err)
		}
	}
	var cfg struct{ Mode ResizeMode }
	if err := json.Unmarshal([]byte(`{"Mode":"square"}`), &cfg); err != nil || cfg.Mode != ResizeSquare {
		t.Errorf("UnmarshalText: %v %v", cfg.Mode, err)
	}
	if b, err := json.Marshal(cfg); err != nil || string(b) != `{"Mode":"square"}` {
		t.Errorf("MarshalText: %s %v", b, err)
	}
}

func TestValidate(t *testing.T) {
	if err := DefaultPreprocess().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []Preprocess{
		{Resize: 256, ImageSize: 0},
		{Resize: 0, ImageSize: 224},
		{Resize: 256, ImageSize: 224, Mode: 9},
		{Resize: 1 << 20, ImageSize: 224},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	if err := (Preprocess{ImageSize: 224, Mode: ResizeSquare}).Validate(); err != nil {
		t.Errorf("square mode ignores Resize: %v", err)
	}
}

func TestResizedSize(t *testing.T) {
	// int(256 * long / short), from torchvision 0.14.
	for _, tc := range []struct{ w, h, s, ww, wh int }{
		{300, 257, 256, 298, 256}, // 256*300/257 = 298.8
		{257, 300, 256, 256, 298},
		{1024, 1024, 256, 256, 256},
		{37, 29, 36, 45, 36},       // 45.93
		{23, 41, 36, 36, 64},       // 64.17
		{3, 1000, 2, 2, 666},       // 666.67
		{700, 1400, 256, 256, 512}, // exact
	} {
		if w, h := resizedSize(tc.w, tc.h, tc.s); w != tc.ww || h != tc.wh {
			t.Errorf("resizedSize(%d,%d,%d) = %d,%d; want %d,%d", tc.w, tc.h, tc.s, w, h, tc.ww, tc.wh)
		}
	}
}

func TestCropOffset(t *testing.T) {
	// Python: int(round((n - c) / 2.0)), banker's rounding.
	for _, tc := range []struct{ n, c, want int }{
		{256, 224, 16}, {225, 224, 0}, {227, 224, 2}, {229, 224, 2}, {231, 224, 4},
		{298, 224, 37}, {224, 224, 0},
		{20, 32, -6}, {21, 32, -5}, // zero padding before: (32-20)//2, (32-21)//2
	} {
		if got := cropOffset(tc.n, tc.c); got != tc.want {
			t.Errorf("cropOffset(%d,%d) = %d; want %d", tc.n, tc.c, got, tc.want)
		}
	}
}

func TestCenterCropPads(t *testing.T) {
	// 3x2 single-channel image into 4x4: pad left (4-3)//2=0, top (4-2)//2=1.
	src := []uint8{1, 2, 3, 4, 5, 6}
	got := centerCrop(src, 3, 2, 1, 4)
	want := []uint8{
		0, 0, 0, 0,
		1, 2, 3, 0,
		4, 5, 6, 0,
		0, 0, 0, 0,
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %v", got)
	}
}

// TestResizeProperties checks invariants that hold for Pillow's resampler
// on random inputs: constant images stay constant, identity size is a copy,
// and outputs stay within the input's range.
func TestResizeProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 40; iter++ {
		w, h := 1+rng.IntN(70), 1+rng.IntN(70)
		ow, oh := 1+rng.IntN(70), 1+rng.IntN(70)
		c := uint8(rng.IntN(256))
		src := bytes.Repeat([]uint8{c}, w*h*3)
		for i, v := range resize8(src, w, h, 3, ow, oh) {
			if v != c {
				t.Fatalf("%dx%d->%dx%d constant %d: sample %d = %d", w, h, ow, oh, c, i, v)
			}
		}
		for i := range src {
			src[i] = uint8(rng.IntN(256))
		}
		lo, hi := uint8(255), uint8(0)
		for _, v := range src {
			lo, hi = min(lo, v), max(hi, v)
		}
		for _, v := range resize8(src, w, h, 3, ow, oh) {
			if v < lo || v > hi {
				t.Fatalf("%dx%d->%dx%d: %d outside [%d,%d]", w, h, ow, oh, v, lo, hi)
			}
		}
	}
	img := &RGB8{W: 224, H: 224, Pix: make([]uint8, 3*224*224)}
	out := DefaultPreprocess().Image(&RGB8{W: 256, H: 256, Pix: make([]uint8, 3*256*256)})
	if out.W != 224 || out.H != 224 || len(out.Pix) != len(img.Pix) {
		t.Fatalf("size %dx%d", out.W, out.H)
	}
	same := Preprocess{ImageSize: 224, Mode: ResizeSquare}.Image(img)
	if &same.Pix[0] == &img.Pix[0] {
		t.Fatal("Image aliases its input")
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(filepath.Join("testdata", "gray_37x29.png"))
	if err != nil {
		t.Fatal(err)
	}
	jpg, err := os.ReadFile(filepath.Join("testdata", "rgb420_61x61.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"truncated.png":   good[:len(good)/2],
		"header_only.png": good[:40],
		"truncated.jpg":   jpg[:len(jpg)/3],
		"text.png":        []byte("this is not an image at all"),
		"empty.png":       nil,
		"anim.gif":        []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"),
		"bad.bmp":         []byte("BM\x00\x00\x00\x00garbage"),
		"bad.tiff":        []byte("II*\x00\xff\xff\xff\xff"),
		"zero.png": func() []byte { // IHDR with width 0
			b := append([]byte(nil), good...)
			copy(b[16:20], []byte{0, 0, 0, 0})
			return b
		}(),
	}
	for name, data := range cases {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, decode := range []func(string) error{
			func(p string) error { _, err := DecodeRGBFile(p); return err },
			func(p string) error { _, err := DecodeGrayFile(p); return err },
			func(p string) error { _, err := DefaultPreprocess().LoadImage(p); return err },
		} {
			err := decode(path)
			if err == nil {
				t.Errorf("%s: no error", name)
				continue
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "datasets: ") || !strings.Contains(msg, path) {
				t.Errorf("%s: error %q lacks prefix or file name", name, msg)
			}
		}
	}
	_, err = DecodeRGBFile(filepath.Join(dir, "missing.png"))
	if err == nil || !strings.Contains(err.Error(), "missing.png") || !strings.HasPrefix(err.Error(), "datasets: ") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := DecodeRGB(bytes.NewReader([]byte("nope")), "stream-name"); err == nil || !strings.Contains(err.Error(), "stream-name") {
		t.Errorf("reader: %v", err)
	}
}

// FuzzDecodeRGB checks that no input makes the decoders panic; the seeds
// are the fixtures and mutilated copies of them.
func FuzzDecodeRGB(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.*"))
	for _, p := range files {
		if strings.HasSuffix(p, ".npz") || strings.HasSuffix(p, ".json") || strings.HasSuffix(p, ".py") {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil || len(b) > 20000 {
			continue
		}
		f.Add(b)
		f.Add(b[:len(b)*2/3])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := DecodeRGB(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		if img.W <= 0 || img.H <= 0 || len(img.Pix) != 3*img.W*img.H {
			t.Fatalf("bad image %dx%d len %d", img.W, img.H, len(img.Pix))
		}
		if img.W*img.H <= 1<<16 {
			Preprocess{Resize: 20, ImageSize: 16}.Image(img)
		}
	})
}

// BenchmarkPreprocess: 1024x1024 RGB to 256 (shorter side) + 224 crop.
func BenchmarkPreprocess(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	img := &RGB8{W: 1024, H: 1024, Pix: make([]uint8, 3*1024*1024)}
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
	}
	p := DefaultPreprocess()
	dst := make([]float32, 3*224*224)
	b.ResetTimer()
	for b.Loop() {
		Normalize(dst, p.Image(img))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e6/float64(b.N), "ms/op")
}

func TestImageSizeReadsHeadersAndRejectsNonImages(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "a.png")
	img := image.NewGray(image.Rect(0, 0, 7, 5))
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(good, buf.Bytes(), 0o644)
	if w, h, err := ImageSize(good); err != nil || w != 7 || h != 5 {
		t.Errorf("ImageSize = %d, %d, %v; want 7, 5", w, h, err)
	}
	bad := filepath.Join(dir, "b.png")
	os.WriteFile(bad, []byte("not an image at all"), 0o644)
	for _, p := range []string{bad, filepath.Join(dir, "missing.png")} {
		if _, _, err := ImageSize(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v, want one naming the file", p, err)
		}
	}
}
