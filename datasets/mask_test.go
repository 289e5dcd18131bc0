package datasets

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLoadMaskNearestMatchesPIL compares LoadMask on masks PIL opens in
// modes "1" and "P" with testdata/gen_masks.py's torchvision outputs.
func TestLoadMaskNearestMatchesPIL(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "masks_nearest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		File, Mode string
		PILMode    string `json:"pil_mode"`
		Resize     int
		Size       int
		Rows       []string
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		mode, err := ParseResizeMode(c.Mode)
		if err != nil {
			t.Fatal(err)
		}
		p := Preprocess{Resize: c.Resize, ImageSize: c.Size, Mode: mode}
		got, err := p.LoadMask(filepath.Join("testdata", c.File))
		if err != nil {
			t.Fatalf("%s: %v", c.File, err)
		}
		want := strings.Join(c.Rows, "")
		if len(got) != len(want) {
			t.Fatalf("%s %+v: %d values, want %d", c.File, p, len(got), len(want))
		}
		diff := 0
		for i := range got {
			if got[i] != want[i]-'0' {
				diff++
			}
		}
		if diff != 0 {
			t.Errorf("%s (PIL mode %s) %+v: %d of %d pixels differ", c.File, c.PILMode, p, diff, len(got))
		}
	}
}

// TestLoadMaskGrayIsBilinear checks that an 8-bit gray mask goes through
// the bilinear Mask path.
func TestLoadMaskGrayIsBilinear(t *testing.T) {
	path := filepath.Join("testdata", "mask_L_61x61.png")
	p := Preprocess{Resize: 40, ImageSize: 32}
	got, err := p.LoadMask(path)
	if err != nil {
		t.Fatal(err)
	}
	g, err := DecodeGrayFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := p.Mask(g)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("pixel %d: %d, want %d", i, got[i], want[i])
		}
	}
}

func TestNearestIndexMatchesPIL(t *testing.T) {
	// Image.new("P", (n, 1)) with pixel i = i, resized to (m, 1) by PIL 9.4.
	cases := []struct {
		in, out int
		want    string
	}{
		{37, 24, "0 2 3 5 6 8 10 11 13 14 16 17 19 20 22 23 25 26 28 30 31 33 34 36"},
		{10, 7, "0 2 3 5 6 7 9"},
		{7, 10, "0 1 1 2 3 3 4 5 5 6"},
		{100, 33, "1 4 7 10 13 16 19 22 25 28 31 34 37 40 43 46 50 53 56 59 62 65 68 71 74 77 80 83 86 89 92 95 98"},
		{13, 40, "0 0 0 1 1 1 2 2 2 3 3 3 4 4 4 5 5 5 6 6 6 6 7 7 7 8 8 8 9 9 9 10 10 10 11 11 11 12 12 12"},
	}
	for _, c := range cases {
		var s []string
		for _, v := range nearestIndex(c.in, c.out) {
			s = append(s, strconv.Itoa(v))
		}
		if got := strings.Join(s, " "); got != c.want {
			t.Errorf("%d -> %d: %s, want %s", c.in, c.out, got, c.want)
		}
	}
}

func TestLoadMaskErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "m.png")
	os.WriteFile(bad, []byte("\x89PNG\r\n\x1a\nxx"), 0o644)
	txt := filepath.Join(dir, "m.txt")
	os.WriteFile(txt, []byte("hello"), 0o644)
	for _, path := range []string{bad, txt, filepath.Join(dir, "missing.png")} {
		_, err := DefaultPreprocess().LoadMask(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.HasPrefix(err.Error(), "datasets: ") {
			t.Errorf("%s: error %v", path, err)
		}
	}
}
