package synth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"image"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

var tiny = Config{Size: 64, Train: 3, TestGood: 2, TestDefect: 4}

func readTree(t *testing.T, root string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		files[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestDeterministic(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		if err := Generate(d, tiny, nil); err != nil {
			t.Fatal(err)
		}
	}
	fa, fb := readTree(t, a), readTree(t, b)
	if len(fa) != len(fb) || len(fa) == 0 {
		t.Fatalf("%d files vs %d", len(fa), len(fb))
	}
	for name, x := range fa {
		if !bytes.Equal(x, fb[name]) {
			t.Errorf("%s differs between two runs", name)
		}
	}
	// Another seed gives other images.
	c := t.TempDir()
	other := tiny
	other.Seed = 1
	other.Classes = []string{"pill"}
	if err := Generate(c, other, nil); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(readTree(t, c)["pill/train/good/000.png"], fa["pill/train/good/000.png"]) {
		t.Error("seed 1 gives the same image as seed 0")
	}
}

func decode(t *testing.T, p string) image.Image {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return img
}

func TestLayout(t *testing.T) {
	root := t.TempDir()
	var calls int
	if err := Generate(root, tiny, func(class string, done, total int) {
		calls++
		if done < 1 || done > total || total != 9 {
			t.Errorf("progress %s %d/%d", class, done, total)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if calls != 9*len(Classes()) {
		t.Errorf("%d progress calls", calls)
	}
	files := readTree(t, root)
	var want []string
	for _, class := range Classes() {
		types := DefectTypes(class)
		if len(types) < 2 || len(types) > 4 || !slices.IsSorted(types) {
			t.Errorf("%s: defect types %v", class, types)
		}
		for _, it := range Items(class, tiny) {
			want = append(want, filepath.Join(class, it.Path()))
			img := decode(t, filepath.Join(root, class, it.Path()))
			if _, ok := img.(*image.RGBA); !ok || img.Bounds().Dx() != 64 || img.Bounds().Dy() != 64 {
				t.Errorf("%s/%s: %T %v, want RGB 64x64", class, it.Path(), img, img.Bounds())
			}
			if it.Defect == "" {
				continue
			}
			want = append(want, filepath.Join(class, it.MaskPath()))
			m, ok := decode(t, filepath.Join(root, class, it.MaskPath())).(*image.Gray)
			if !ok || m.Bounds() != img.Bounds() {
				t.Fatalf("%s/%s: mask is not gray or not the image's size", class, it.MaskPath())
			}
			checkMask(t, class+"/"+it.MaskPath(), m.Pix, 0)
		}
	}
	got := make([]string, 0, len(files))
	for f := range files {
		got = append(got, f)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("files:\n%v\nwant:\n%v", got, want)
	}
	for _, p := range []string{"fabric/train/good/000.png", "fabric/train/good/002.png", "fabric/test/good/001.png", "nut/ground_truth/scratch/000_mask.png"} {
		if _, ok := files[p]; !ok {
			t.Errorf("%s missing", p)
		}
	}
	if _, ok := files["fabric/ground_truth/good"]; ok {
		t.Error("masks for good images")
	}
	// No temporary folders left behind.
	ents, _ := os.ReadDir(root)
	if len(ents) != len(Classes()) {
		t.Errorf("root holds %d entries, want the %d classes", len(ents), len(Classes()))
	}
	// A non-empty class folder is refused, naming it.
	err := Generate(root, Config{Classes: []string{"wood"}, Size: 64, Train: 1, TestGood: 1, TestDefect: 1}, nil)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(root, "wood")) {
		t.Errorf("regenerating into a full folder: %v", err)
	}
}

// checkMask checks a mask is 0/255 and (when minFrac > 0) covers between
// minFrac and MaxDefectArea of the image.
func checkMask(t *testing.T, name string, pix []uint8, minFrac float64) {
	t.Helper()
	on := 0
	for _, v := range pix {
		switch v {
		case 255:
			on++
		case 0:
		default:
			t.Fatalf("%s: mask value %d", name, v)
		}
	}
	frac := float64(on) / float64(len(pix))
	if on == 0 || frac > MaxDefectArea || frac < minFrac {
		t.Errorf("%s: mask covers %.4f of the image", name, frac)
	}
}

// The defect changes exactly the masked pixels of the same image rendered
// without it, and masks cover 0.1% to 10% at the default size.
func TestDefectMatchesMask(t *testing.T) {
	n := DefaultSize
	for _, class := range Classes() {
		for k, d := range DefectTypes(class) {
			split := "test/" + d
			with, mask, err := render(class, n, 7, split, k, d, true)
			if err != nil {
				t.Fatal(err)
			}
			without, _, err := render(class, n, 7, split, k, d, false)
			if err != nil {
				t.Fatal(err)
			}
			checkMask(t, class+"/"+d, mask.Pix, MinDefectArea)
			inside := 0
			for p := 0; p < n*n; p++ {
				a, b := with.Pix[4*p:4*p+4], without.Pix[4*p:4*p+4]
				same := bytes.Equal(a, b)
				if mask.Pix[p] == 0 && !same {
					t.Fatalf("%s/%s: pixel %d changed outside the mask", class, d, p)
				}
				if mask.Pix[p] == 255 && !same {
					inside++
				}
			}
			if inside == 0 {
				t.Errorf("%s/%s: nothing changed inside the mask", class, d)
			}
			// The normal image of the same index is the defect-free one.
			good, m, err := render(class, n, 7, split, k, "", true)
			if err != nil || m != nil || !bytes.Equal(good.Pix, without.Pix) {
				t.Errorf("%s/%s: rendering without a defect: err %v, mask %v, same %v", class, d, err, m != nil, bytes.Equal(good.Pix, without.Pix))
			}
		}
	}
}

func TestBadConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Classes: []string{"bottle"}}, `unknown class "bottle"`},
		{Config{Size: 8}, "outside [32, 4096]"},
		{Config{Size: 5000000000}, "outside [32, 4096]"},
		{Config{Train: -1}, "negative"},
		{Config{TestDefect: 1000}, "at most 999"},
	} {
		if err := Generate(t.TempDir(), c.cfg, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.cfg, err, c.want)
		}
	}
}

// BenchmarkClass measures seconds per class at the default size
// (200 + 80 images of 256 px): go test -run ^$ -bench Class -cpu 1.
func BenchmarkClass(b *testing.B) {
	for _, class := range Classes() {
		b.Run(class, func(b *testing.B) {
			for b.Loop() {
				if err := Generate(b.TempDir(), Config{Classes: []string{class}}, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The generated set is a fixture other results are computed on: its pixels
// must not change when the code changes. The hashes pin, for seed 0 at 64
// px, one texture and one object image with their defects (SHA-256 of the
// decoded RGBA or gray pixels, so that a different PNG encoder does not
// matter). They were computed by this implementation on amd64; Go may
// fuse multiply-adds on other architectures, so they are checked there only.
func TestPixelsAreStable(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("pinned on amd64; other architectures may round differently")
	}
	root := t.TempDir()
	cfg := Config{Classes: []string{"wood", "nut"}, Size: 64, Train: 1, TestGood: 1, TestDefect: 3}
	if err := Generate(root, cfg, nil); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ file, sum string }{
		{"wood/train/good/000.png", "5ca8d13920ae979b"},
		{"wood/test/crack/000.png", "78efb27524131115"},
		{"nut/test/chip/000.png", "00e76f1e59b7e056"},
		{"nut/ground_truth/chip/000_mask.png", "ebbc3e370fc749d8"},
	} {
		b, err := os.ReadFile(filepath.Join(root, f.file))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		var pix []byte
		switch m := img.(type) {
		case *image.RGBA:
			pix = m.Pix
		case *image.NRGBA:
			pix = m.Pix
		case *image.Gray:
			pix = m.Pix
		default:
			t.Fatalf("%s: unexpected image type %T", f.file, img)
		}
		sum := sha256.Sum256(pix)
		if got := hex.EncodeToString(sum[:8]); got != f.sum {
			t.Errorf("%s: pixels hash %s, pinned %s", f.file, got, f.sum)
		}
	}
}
