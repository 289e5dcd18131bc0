package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/internal/atomicfile"
	"github.com/softpatch/softpatch/internal/npy"
	"github.com/softpatch/softpatch/internal/progress"
)

// embedInfo is the JSON written beside an embeddings file: what produced it.
type embedInfo struct {
	Version    string            `json:"softpatch_version"`
	Backbone   backbone.Identity `json:"backbone"`
	Mark       string            `json:"mark,omitempty"`
	Layers     []string          `json:"layers"`
	Resize     int               `json:"resize"`
	ImageSize  int               `json:"imagesize"`
	ResizeMode string            `json:"resize_mode"`
	Shape      []int             `json:"shape"`
	Images     []string          `json:"images"`
	Seconds    float64           `json:"seconds"`
}

// randomInitMark labels every output of a random-init backbone.
const randomInitMark = "random-init backbone"

func runEmbed(args []string) error {
	fs := newFlags("embed", "embed [flags] --out OUT.npy IMAGE...",
		"softpatch embed --weights wide_resnet50_2-95faca4d.pth --out feats.npy train/good/*.png")
	var ff featureFlags
	ff.register(fs)
	out := fs.String("out", "", "output .npy file: float32 [images, positions, dim]; OUT.json beside it records provenance")
	if err := fs.Parse(args); err != nil {
		return err
	}
	images := fs.Args()
	if *out == "" || len(images) == 0 {
		fs.Usage()
		return fmt.Errorf("need --out and at least one image")
	}
	if err := checkFiles(images); err != nil {
		return err
	}
	p, err := ff.open()
	if err != nil {
		return err
	}
	start := time.Now()
	shape, err := p.embedFiles(*out, images, ff.batch)
	if err != nil {
		return err
	}
	info := embedInfo{
		Version: version, Backbone: p.id, Layers: p.layers, Resize: p.pre.Resize, ImageSize: p.pre.ImageSize,
		ResizeMode: p.pre.Mode.String(), Shape: shape, Images: images, Seconds: time.Since(start).Seconds(),
	}
	if p.id.RandomInit {
		info.Mark = randomInitMark
	}
	side := strings.TrimSuffix(*out, ".npy") + ".json"
	if err := atomicfile.WriteFile(side, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", " ")
		return enc.Encode(info)
	}); err != nil {
		return err
	}
	slog.Info("wrote embeddings", "file", *out, "shape", shape, "provenance", side, "backbone", p.id.String(),
		"seconds", fmt.Sprintf("%.2f", info.Seconds))
	return nil
}

// embedFiles embeds the images batch by batch, streaming the result to
// out (written atomically), and returns the array's shape.
func (p *pipeline) embedFiles(out string, images []string, batch int) ([]int, error) {
	s := p.pre.ImageSize
	per := 3 * s * s
	x := make([]float32, batch*per)
	var shape []int
	bar := progress.New("embed", len(images), "images")
	defer bar.Finish()
	err := atomicfile.WriteFile(out, func(w io.Writer) error {
		var fw *npy.Float32Writer
		for lo := 0; lo < len(images); lo += batch {
			hi := min(lo+batch, len(images))
			if err := p.loadBatch(x[:(hi-lo)*per], images[lo:hi]); err != nil {
				return err
			}
			feats, positions, err := p.features(x[:(hi-lo)*per], hi-lo)
			if err != nil {
				return err
			}
			if fw == nil {
				shape = []int{len(images), positions, len(feats) / ((hi - lo) * positions)}
				if fw, err = npy.NewFloat32Writer(w, shape); err != nil {
					return err
				}
			}
			if err := fw.Write(feats); err != nil {
				return err
			}
			bar.Add(hi - lo)
		}
		return fw.Close()
	})
	return shape, err
}

// loadBatch decodes and preprocesses images into x ([len(images)][3][S][S]).
func (p *pipeline) loadBatch(x []float32, images []string) error {
	per := len(x) / len(images)
	for i, path := range images {
		img, err := p.pre.LoadImage(path)
		if err != nil {
			return err
		}
		copy(x[i*per:(i+1)*per], img)
	}
	return nil
}

// checkFiles fails fast, before the backbone loads, on a missing input.
func checkFiles(paths []string) error {
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return err
		}
	}
	return nil
}
