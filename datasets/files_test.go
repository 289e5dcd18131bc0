package datasets

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGray16Warns checks that a 16-bit grayscale image decodes as Pillow
// does (clipped at 255) and is warned about once per file.
func TestGray16Warns(t *testing.T) {
	img := image.NewGray16(image.Rect(0, 0, 2, 1))
	img.SetGray16(0, 0, color.Gray16{Y: 100})
	img.SetGray16(1, 0, color.Gray16{Y: 40000})
	var enc bytes.Buffer
	if err := png.Encode(&enc, img); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(old)
	for range 2 {
		got, err := DecodeRGB(bytes.NewReader(enc.Bytes()), "deep.png")
		if err != nil {
			t.Fatal(err)
		}
		if got.Pix[0] != 100 || got.Pix[3] != 255 {
			t.Errorf("pixels %v, want 100 and 255 (clipped)", got.Pix)
		}
	}
	if n := strings.Count(logs.String(), "16-bit grayscale"); n != 1 || !strings.Contains(logs.String(), "deep.png") {
		t.Errorf("%d warnings:\n%s", n, logs.String())
	}
}

// TestFilesHash checks that a class's files hash changes when a file's
// size changes and stays when nothing does.
func TestFilesHash(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.png"), filepath.Join(dir, "b.png")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, []byte("12"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := &Class{Root: dir, Train: []Item{{Path: a}}, Test: []Item{{Path: b}}}
	h1, err := c.FilesHash()
	if err != nil {
		t.Fatal(err)
	}
	if h2, _ := c.FilesHash(); h2 != h1 {
		t.Error("the hash of unchanged files changed")
	}
	if err := os.WriteFile(b, []byte("123"), 0o644); err != nil {
		t.Fatal(err)
	}
	if h3, _ := c.FilesHash(); h3 == h1 {
		t.Error("a file's new size did not change the hash")
	}
	os.Remove(a)
	if _, err := c.FilesHash(); err == nil || !strings.Contains(err.Error(), "a.png") {
		t.Errorf("a missing file: %v", err)
	}
}
