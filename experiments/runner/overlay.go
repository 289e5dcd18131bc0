package runner

import (
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/experiments"
	"github.com/softpatch/softpatch/internal/atomicfile"
)

// writeExtremes writes overlays of the highest- and lowest-scored test
// images' anomaly maps (normalised over all the cell's maps) as
// highest.png and lowest.png into the cell's folder of the results folder
// (experiments.OverlayDir); File is relative to the results folder.
func writeExtremes(b *Backbone, root string, test []datasets.Item, scores []float32, maps [][]float32, resultsDir, cellDir string) ([]experiments.Overlay, error) {
	if len(test) == 0 {
		return nil, nil
	}
	dir := experiments.OverlayDir(resultsDir, cellDir)
	lo, hi := mapRange(maps)
	top, bottom := 0, 0
	for i, s := range scores {
		if s > scores[top] {
			top = i
		}
		if s < scores[bottom] {
			bottom = i
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []experiments.Overlay
	for _, e := range []struct {
		which string
		i     int
	}{{"highest", top}, {"lowest", bottom}} {
		it := test[e.i]
		img, err := datasets.DecodeRGBFile(it.Path)
		if err != nil {
			return nil, err
		}
		ov := overlay(b.pre.Image(img), maps[e.i], lo, hi)
		path := filepath.Join(dir, e.which+".png")
		if err := atomicfile.WriteFile(path, func(w io.Writer) error { return png.Encode(w, ov) }); err != nil {
			return nil, err
		}
		rel, err := filepath.Rel(resultsDir, path)
		if err != nil {
			return nil, err
		}
		out = append(out, experiments.Overlay{Which: e.which, File: rel, Image: datasets.RelPath(root, it), Score: scores[e.i]})
	}
	return out, nil
}

// overlay blends the preprocessed image img half and half with a jet
// colour map of the anomaly map mp, normalised to [lo, hi].
func overlay(img *datasets.RGB8, mp []float32, lo, hi float32) *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, img.W, img.H))
	scale := float32(0)
	if hi > lo {
		scale = 1 / (hi - lo)
	}
	jet := func(v, c float32) float32 { return min(max(1.5-float32(math.Abs(float64(4*v-c))), 0), 1) }
	for i := 0; i < img.W*img.H; i++ {
		v := min(max((mp[i]-lo)*scale, 0), 1)
		heat := [3]float32{jet(v, 3), jet(v, 2), jet(v, 1)}
		var c [3]uint8
		for ch := range 3 {
			c[ch] = uint8(0.5*float32(img.Pix[3*i+ch]) + 0.5*255*heat[ch] + 0.5)
		}
		out.SetRGBA(i%img.W, i/img.W, color.RGBA{c[0], c[1], c[2], 255})
	}
	return out
}

// mapRange returns the smallest and the largest value of the maps, the
// range overlays normalise to.
func mapRange(maps [][]float32) (lo, hi float32) {
	lo, hi = float32(math.Inf(1)), float32(math.Inf(-1))
	for _, mp := range maps {
		for _, v := range mp {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	return lo, hi
}
