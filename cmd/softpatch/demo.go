package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/datasets/synth"
	"github.com/softpatch/softpatch/engine/compute"
	"github.com/softpatch/softpatch/internal/npy"
)

// demoClass is the generated class the demo runs on, and its size.
var demoClass = synth.Config{Classes: []string{"wood"}, Train: 10, TestGood: 4, TestDefect: 8}

// runDemo is the main job on the embedded default until the experiments
// runner lands: it writes a small class of the generated dataset (or
// reuses it: generation is deterministic), embeds its training and test
// images, and scores every test image by its patches' exact nearest
// neighbours among the training patches (PatchCore without a coreset).
func runDemo(args []string) error {
	fs := newFlags("demo", "demo [--out DIR] [flags]", "softpatch demo --out demo-out")
	var ff featureFlags
	ff.register(fs)
	batch := fs.Int("batch", 8, "images per forward pass")
	out := fs.String("out", "demo-out", "folder for the generated class and the embeddings")
	if err := fs.Parse(args); err != nil {
		return err
	}
	root := filepath.Join(*out, "data")
	class := demoClass.Classes[0]
	if _, err := os.Stat(filepath.Join(root, class)); err != nil {
		if err := synth.Generate(root, demoClass, nil); err != nil {
			return err
		}
	}
	c, err := datasets.Load(root, class, datasets.Layout{}, datasets.LoadOptions{})
	if err != nil {
		return err
	}
	fmt.Printf("generated class %q in %s: %d training images, %d test images\n", class, root, len(c.Train), len(c.Test))
	p, err := ff.open()
	if err != nil {
		return err
	}
	ctx := context.Background()
	paths := func(items []datasets.Item) []string {
		var ps []string
		for _, it := range items {
			ps = append(ps, it.Path)
		}
		return ps
	}
	embedded := map[string][]float32{}
	var dim, positions int
	for _, split := range []struct {
		name  string
		items []datasets.Item
	}{{"train", c.Train}, {"test", c.Test}} {
		file := filepath.Join(*out, split.name+".npy")
		info, err := p.embedFiles(ctx, file, paths(split.items), max(1, *batch))
		if err != nil {
			return err
		}
		arr, err := npy.ReadFile(file)
		if err != nil {
			return err
		}
		embedded[split.name], positions, dim = arr.F32, info.Shape[1], info.Shape[2]
		fmt.Printf("embedded %d %s images with %s in %.1f s: %s %v\n", len(split.items), split.name, p.id, info.Seconds, file, info.Shape)
	}
	var good, bad []float64
	per := positions * dim
	for i, it := range c.Test {
		score := maxNearest(embedded["test"][i*per:(i+1)*per], embedded["train"], dim)
		label := "good"
		if it.Anomalous {
			label = it.Type
			bad = append(bad, score)
		} else {
			good = append(good, score)
		}
		fmt.Printf("  %-28s %-8s image score %.3f\n", datasets.RelPath(root, it), label, score)
	}
	if len(good) == 0 || len(bad) == 0 {
		return fmt.Errorf("%s: the demo needs good and defective test images; remove the folder to regenerate it", filepath.Join(root, class, "test"))
	}
	above, worstGood := 0, slices.Max(good)
	for _, b := range bad {
		if b > worstGood {
			above++
		}
	}
	fmt.Printf("%d of %d defective images score above every good one\n", above, len(bad))
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
