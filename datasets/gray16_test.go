package datasets

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"log/slog"
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
