package runner

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/detector"
)

// TestDefectEntries checks which bank entries count as coming from a
// defect: a patch of an injected image whose cell centre lies in its mask
// does, one outside the mask does not, nor does any patch of a clean
// image or of an augmented injected one.
func TestDefectEntries(t *testing.T) {
	dir := t.TempDir()
	mask := image.NewGray(image.Rect(0, 0, 64, 64))
	for y := 0; y < 16; y++ {
		for x := 0; x < 16; x++ {
			mask.SetGray(x, y, color.Gray{Y: 255}) // the top-left quarter of a quarter
		}
	}
	maskPath := filepath.Join(dir, "000_mask.png")
	f, err := os.Create(maskPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, mask); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p := testPipeline(datasets.Preprocess{Resize: 64, ImageSize: 64, Mode: datasets.ResizeShorter}, nil)
	const positions = 64 // layer2 at 64 px: an 8x8 grid of 8 px cells
	clean := datasets.Item{Path: "clean.png"}
	noisy := datasets.Item{Path: "noisy.png", Anomalous: true, MaskPath: maskPath}
	augmented := datasets.Item{Path: "aug.png", Anomalous: true, MaskPath: maskPath, Augment: &datasets.Affine{Scale: 1}}
	train := []datasets.Item{clean, noisy, augmented}
	m := &detector.Model{Indices: []int{
		0,                 // clean image, top-left
		positions + 0,     // injected, cell (0,0): centre (4,4) in the mask
		positions + 8 + 1, // injected, cell (1,1): centre (12,12) in the mask
		positions + 8*2,   // injected, cell (2,0): centre (4,20) outside
		positions + 63,    // injected, bottom-right
		2*positions + 0,   // augmented: not marked
	}}
	got, n, err := defectEntries(p, m, positions, train, []datasets.Item{noisy, augmented})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{false, true, true, false, false, false}; !slices.Equal(got, want) || n != 2 {
		t.Errorf("defects %v (%d), want %v", got, n, want)
	}
}
