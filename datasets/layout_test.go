package datasets

import (
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/image/bmp"
)

// writeImage writes a w x h gray image at root/rel (png, bmp or jpeg by
// extension), creating folders.
func writeImage(t *testing.T, root, rel string, w, h int) string {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 37)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	switch strings.ToLower(filepath.Ext(p)) {
	case ".bmp":
		err = bmp.Encode(f, img)
	case ".jpg", ".jpeg":
		err = jpeg.Encode(f, img, nil)
	default:
		err = png.Encode(f, img)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tree writes each file, an 8x8 image, under a new root.
func tree(t *testing.T, files ...string) string {
	root := t.TempDir()
	for _, f := range files {
		writeImage(t, root, f, 8, 8)
	}
	return root
}

func mvtecTree(t *testing.T) string {
	return tree(t,
		"bottle/train/good/001.png", "bottle/train/good/000.png",
		"bottle/test/good/000.png", "bottle/test/good/001.png",
		"bottle/test/crack/000.png", "bottle/test/crack/001.png",
		"bottle/test/broken/000.png",
		"bottle/ground_truth/crack/000_mask.png", "bottle/ground_truth/crack/001_mask.png",
		"bottle/ground_truth/broken/000_mask.png",
		"zipper/train/good/000.png", "zipper/test/good/000.png",
	)
}

func rels(root string, items []Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, RelPath(root, it))
	}
	return out
}

func TestLoadMVTecOrderAndMasks(t *testing.T) {
	root := mvtecTree(t)
	os.WriteFile(filepath.Join(root, "bottle", "test", "good", ".DS_Store"), []byte("x"), 0o644)
	classes, err := Classes(root, Layout{})
	if err != nil || !reflect.DeepEqual(classes, []string{"bottle", "zipper"}) {
		t.Fatalf("Classes = %v, %v", classes, err)
	}
	c, err := Load(root, "bottle", Layout{}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Format != FormatMVTec {
		t.Errorf("format %q", c.Format)
	}
	if got, want := rels(root, c.Train), []string{"bottle/train/good/000.png", "bottle/train/good/001.png"}; !reflect.DeepEqual(got, want) {
		t.Errorf("train %v, want %v", got, want)
	}
	want := []string{"bottle/test/broken/000.png", "bottle/test/crack/000.png", "bottle/test/crack/001.png",
		"bottle/test/good/000.png", "bottle/test/good/001.png"}
	if got := rels(root, c.Test); !reflect.DeepEqual(got, want) {
		t.Errorf("test %v, want %v", got, want)
	}
	for _, it := range c.Test {
		if it.Anomalous != (it.Type != "good") {
			t.Errorf("%s: anomalous %v", it.Path, it.Anomalous)
		}
		wantMask := ""
		if it.Anomalous {
			wantMask = filepath.Join(root, "bottle", "ground_truth", it.Type, strings.TrimSuffix(filepath.Base(it.Path), ".png")+"_mask.png")
		}
		if it.MaskPath != wantMask || it.Width != 8 || it.Height != 8 {
			t.Errorf("%s: mask %q size %dx%d", it.Path, it.MaskPath, it.Width, it.Height)
		}
	}
}

func TestLoadBTADPngAndBmp(t *testing.T) {
	for _, ext := range []string{"png", "bmp"} {
		root := tree(t, "01/train/ok/0000."+ext, "01/test/ok/0000."+ext, "01/test/ko/0001."+ext, "01/test/ko/0000."+ext,
			"01/ground_truth/ko/0000."+ext, "01/ground_truth/ko/0001."+ext)
		c, err := Load(root, "01", Layout{}, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if c.Format != FormatBTAD || c.Normal != "ok" {
			t.Errorf("%s: format %q normal %q", ext, c.Format, c.Normal)
		}
		want := []string{"01/test/ko/0000." + ext, "01/test/ko/0001." + ext, "01/test/ok/0000." + ext}
		if got := rels(root, c.Test); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: test %v", ext, got)
		}
		if m := c.Test[1].MaskPath; m != filepath.Join(root, "01", "ground_truth", "ko", "0001."+ext) || !c.Test[1].Anomalous || c.Test[2].Anomalous {
			t.Errorf("%s: %+v", ext, c.Test)
		}
	}
	// A bmp image with a png mask pairs too.
	root := tree(t, "03/train/ok/a.bmp", "03/test/ko/a.bmp", "03/ground_truth/ko/a.png")
	if c, err := Load(root, "03", Layout{Format: FormatBTAD}, LoadOptions{}); err != nil || !strings.HasSuffix(c.Test[0].MaskPath, "a.png") {
		t.Errorf("bmp/png pairing: %v", err)
	}
}

func TestLoadFolderCustomNames(t *testing.T) {
	root := tree(t, "part/train/normal/b.png", "part/train/normal/a.png", "part/test/normal/x.png",
		"part/test/dent/y.png", "part/ground_truth/dent/y-gt.png")
	l := Layout{Format: FormatFolder, Normal: "normal", MaskSuffix: "-gt"}
	c, err := Load(root, "part", l, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := rels(root, c.Train); !reflect.DeepEqual(got, []string{"part/train/normal/a.png", "part/train/normal/b.png"}) {
		t.Errorf("train %v", got)
	}
	if len(c.Test) != 2 || c.Test[0].Type != "dent" || !c.Test[0].Anomalous || c.Test[1].Anomalous || !strings.HasSuffix(c.Test[0].MaskPath, "y-gt.png") {
		t.Errorf("test %+v", c.Test)
	}
	// Masks named exactly as their images (BTAD-style) in a folder layout.
	root2 := tree(t, "part/train/normal/a.png", "part/test/dent/y.png", "part/ground_truth/dent/y.bmp")
	c2, err := Load(root2, "part", Layout{Format: FormatFolder, Normal: "normal", MaskSuffix: NoMaskSuffix}, LoadOptions{})
	if err != nil || !strings.HasSuffix(c2.Test[0].MaskPath, filepath.Join("dent", "y.bmp")) {
		t.Errorf("suffix none: %v, %+v", err, c2)
	}
	// Detection fails on a custom normal name: the error says to give the format.
	if _, err := Load(root, "part", Layout{}, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "detect") {
		t.Errorf("detect on custom tree: %v", err)
	}
}

func TestLoadGrayJPEGNonSquare(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"c/train/good/0.jpg", "c/train/good/1.jpg", "c/test/good/0.jpg", "c/test/hole/0.jpg"} {
		writeImage(t, root, f, 40, 24)
	}
	writeImage(t, root, "c/ground_truth/hole/0_mask.png", 40, 24)
	c, err := Load(root, "c", Layout{Format: FormatFolder}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Train) != 2 || len(c.Test) != 2 || c.Test[0].Width != 40 || c.Test[0].Height != 24 {
		t.Fatalf("%+v", c)
	}
	p := Preprocess{Resize: 16, ImageSize: 12}
	x, err := p.LoadImage(c.Train[0].Path)
	if err != nil || len(x) != 3*12*12 {
		t.Fatalf("LoadImage: %d values, %v", len(x), err)
	}
	m, err := p.LoadMask(c.Test[1].MaskPath)
	if err != nil || len(m) != 12*12 {
		t.Fatalf("LoadMask: %d values, %v", len(m), err)
	}
}

func TestLoadErrors(t *testing.T) {
	type tc struct {
		name    string
		files   []string
		setup   func(root string)
		class   string
		path    string // relative path the error must name
		message string
		skip    bool // SkipBad turns it into a Problem
	}
	base := []string{"a/train/good/0.png", "a/test/good/0.png"}
	cases := []tc{
		{name: "class missing", files: base, class: "nope", path: "nope", message: "classes: a"},
		{name: "empty train", files: []string{"a/test/good/0.png", "a/train/good/x.png"}, class: "a",
			setup: func(r string) { os.Remove(filepath.Join(r, "a/train/good/x.png")) }, path: "a/train/good", message: "empty split"},
		{name: "empty test", files: []string{"a/train/good/0.png"}, class: "a",
			setup: func(r string) { os.MkdirAll(filepath.Join(r, "a/test/good"), 0o755) }, path: "a/test", message: "empty split"},
		{name: "no mask", files: append(base, "a/test/cut/1.png"), class: "a", path: "a/test/cut/1.png", message: "without mask", skip: true},
		{name: "mask size", files: append(base, "a/test/cut/1.png"), class: "a",
			setup: func(r string) { writeImage(t, r, "a/ground_truth/cut/1_mask.png", 9, 8) }, path: "a/ground_truth/cut/1_mask.png", message: "mask is 9x8", skip: true},
		{name: "truncated", files: append(base, "a/test/good/1.png"), class: "a",
			setup: func(r string) {
				os.WriteFile(filepath.Join(r, "a/test/good/1.png"), []byte("\x89PNG\r\n\x1a\n\x00\x00"), 0o644)
			}, path: "a/test/good/1.png", message: "bad png header", skip: true},
		{name: "unknown content", files: base, class: "a",
			setup: func(r string) { os.WriteFile(filepath.Join(r, "a/train/good/1.png"), []byte("GIF89a......"), 0o644) }, path: "a/train/good/1.png", message: "unsupported image format", skip: true},
		{name: "unknown extension", files: base, class: "a",
			setup: func(r string) { os.WriteFile(filepath.Join(r, "a/train/good/notes.txt"), []byte("hi"), 0o644) }, path: "a/train/good/notes.txt", message: "unknown image format", skip: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := tree(t, c.files...)
			if c.setup != nil {
				c.setup(root)
			}
			_, err := Load(root, c.class, Layout{}, LoadOptions{})
			want := "datasets: " + filepath.Join(root, filepath.FromSlash(c.path)) + ": "
			if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), c.message) {
				t.Fatalf("error %v, want %q ... %q", err, want, c.message)
			}
			if !c.skip {
				return
			}
			cl, err := Load(root, c.class, Layout{}, LoadOptions{SkipBad: true})
			if err != nil {
				t.Fatalf("SkipBad: %v", err)
			}
			if len(cl.Problems) != 1 || cl.Problems[0].Path != filepath.Join(root, filepath.FromSlash(c.path)) || !strings.Contains(cl.Problems[0].Reason, c.message) {
				t.Fatalf("problems %+v", cl.Problems)
			}
			for _, it := range append(cl.Train, cl.Test...) {
				if it.Path == cl.Problems[0].Path || it.MaskPath == cl.Problems[0].Path {
					t.Errorf("bad item kept: %+v", it)
				}
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none"), "a", Layout{}, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "none: dataset root not found") {
		t.Errorf("missing root: %v", err)
	}
	if _, err := ParseFormat("coco"); err == nil {
		t.Error("ParseFormat accepted coco")
	}
	for _, n := range FormatNames() {
		if _, err := ParseFormat(n); err != nil {
			t.Errorf("FormatNames: %v", err)
		}
	}
}

// Verify decodes every file: a truncated image or mask whose header is
// intact is found (and skipped with SkipBad); a header check alone passes.
func TestLoadVerifyFindsTruncatedFiles(t *testing.T) {
	root := mvtecTree(t)
	img := filepath.Join(root, "bottle", "train", "good", "001.png")
	mask := filepath.Join(root, "bottle", "ground_truth", "crack", "001_mask.png")
	for _, p := range []string{img, mask} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b[:len(b)/2+20], 0o644); err != nil { // IHDR intact, IDAT cut
			t.Fatal(err)
		}
	}
	if _, err := Load(root, "bottle", Layout{}, LoadOptions{}); err != nil {
		t.Fatalf("header-only load: %v", err)
	}
	if _, err := Load(root, "bottle", Layout{}, LoadOptions{Verify: true}); err == nil || !strings.Contains(err.Error(), img) {
		t.Errorf("verified load: error %v, want one naming %s", err, img)
	}
	c, err := Load(root, "bottle", Layout{}, LoadOptions{Verify: true, SkipBad: true})
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	for _, p := range c.Problems {
		bad = append(bad, p.Path)
	}
	if len(bad) != 2 || !slices.Contains(bad, img) || !slices.Contains(bad, mask) {
		t.Errorf("problems %v, want %s and %s", bad, img, mask)
	}
}
