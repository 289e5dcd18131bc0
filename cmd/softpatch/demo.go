package main

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/softpatch/softpatch/engine/compute"
	"github.com/softpatch/softpatch/internal/npy"
)

// runDemo is the main job on the embedded default until the experiments
// runner lands: it draws a few woven-texture images (some with a
// scratch), embeds them, and scores every image's patches against the
// clean training images' patches by exact nearest neighbour.
func runDemo(args []string) error {
	fs := newFlags("demo", "demo [--out DIR] [flags]", "softpatch demo --out demo-out")
	var ff featureFlags
	ff.register(fs)
	batch := fs.Int("batch", 8, "images per forward pass")
	out := fs.String("out", "demo-out", "folder for the generated images and the embeddings")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	const train = 4
	names := []string{"train_0.png", "train_1.png", "train_2.png", "train_3.png", "test_good.png", "test_scratch.png"}
	paths := make([]string, len(names))
	for i, n := range names {
		paths[i] = filepath.Join(*out, n)
		if err := writePNG(paths[i], demoImage(uint64(i), n == "test_scratch.png")); err != nil {
			return err
		}
	}
	fmt.Printf("generated %d images (%d clean training images, one clean and one scratched test image) in %s\n", len(paths), train, *out)
	p, err := ff.open()
	if err != nil {
		return err
	}
	npyPath := filepath.Join(*out, "embeddings.npy")
	info, err := p.embedFiles(context.Background(), npyPath, paths, max(1, *batch))
	if err != nil {
		return err
	}
	shape := info.Shape
	fmt.Printf("embedded them with %s in %.1f s: %s %v (provenance in %s)\n", p.id, info.Seconds, npyPath, shape, sidecar(npyPath))
	arr, err := npy.ReadFile(npyPath)
	if err != nil {
		return err
	}
	feats, positions, dim := arr.F32, shape[1], shape[2]
	bank := feats[:train*positions*dim]
	for i := train; i < len(paths); i++ {
		q := feats[i*positions*dim : (i+1)*positions*dim]
		fmt.Printf("  %-18s image score (max patch distance to the training patches): %.3f\n", names[i], maxNearest(q, bank, dim))
	}
	if p.id.RandomInit {
		fmt.Println("note: " + randomInitMark + "; scores are not comparable with the paper")
	}
	return nil
}

// maxNearest returns the largest, over the query rows, squared L2 distance
// to the nearest bank row (rows of length dim).
func maxNearest(q, bank []float32, dim int) float64 {
	nq, nb := len(q)/dim, len(bank)/dim
	dots := make([]float32, nq*nb)
	compute.Sgemm(false, true, nq, nb, dim, 1, q, dim, bank, dim, 0, dots, nb)
	sq := func(v []float32) float64 {
		s := 0.0
		for _, x := range v {
			s += float64(x) * float64(x)
		}
		return s
	}
	bankSq := make([]float64, nb)
	for j := range bankSq {
		bankSq[j] = sq(bank[j*dim : (j+1)*dim])
	}
	worst := 0.0
	for i := 0; i < nq; i++ {
		qs, best := sq(q[i*dim:(i+1)*dim]), math.Inf(1)
		for j := 0; j < nb; j++ {
			best = min(best, qs+bankSq[j]-2*float64(dots[i*nb+j]))
		}
		worst = max(worst, best)
	}
	return worst
}

// demoImage draws a 288x256 woven texture with lighting and sensor noise,
// optionally with a thin dark scratch.
func demoImage(seed uint64, scratch bool) image.Image {
	r := rand.New(rand.NewPCG(seed, 7))
	const w, h = 288, 256
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	phase := r.Float64() * 6
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			weave := math.Sin(float64(x)/3+phase) * math.Sin(float64(y)/3)
			light := 0.85 + 0.15*float64(x+y)/float64(w+h)
			v := (140 + 40*weave) * light
			if scratch && math.Abs(float64(y)-0.6*float64(x)-40) < 1.5 && x > 90 && x < 200 {
				v *= 0.45
			}
			v += r.NormFloat64() * 4
			c := uint8(max(0, min(255, v)))
			img.Set(x, y, color.RGBA{c, uint8(float64(c) * 0.9), uint8(float64(c) * 0.7), 255})
		}
	}
	return img
}

func writePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}
