package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/internal/atomicfile"
	"github.com/softpatch/softpatch/internal/npy"
	"github.com/softpatch/softpatch/internal/progress"
)

// embedInfo is the JSON written beside an embeddings file: what produced it.
type embedInfo struct {
	Version    string            `json:"softpatch_version"`
	Commit     string            `json:"commit"`
	Backbone   backbone.Identity `json:"backbone"`
	Mark       string            `json:"mark,omitempty"`
	Layers     []string          `json:"layers"`
	Resize     int               `json:"resize,omitempty"`
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
	batch := fs.Int("batch", 8, "images per forward pass")
	out := fs.String("out", "", "output .npy file: float32 [images, positions, dim]; OUT.json beside it records provenance")
	if err := fs.Parse(args); err != nil {
		return err
	}
	images := fs.Args()
	if *out == "" || len(images) == 0 {
		fs.Usage()
		return fmt.Errorf("need --out and at least one image")
	}
	if *batch < 1 {
		return fmt.Errorf("--batch must be at least 1, got %d", *batch)
	}
	if err := checkImages(images); err != nil {
		return err
	}
	p, err := ff.open()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	info, err := p.embedFiles(ctx, *out, images, *batch)
	if err != nil {
		return err
	}
	slog.Info("wrote embeddings", "file", *out, "shape", info.Shape, "backbone", p.id.String(),
		"seconds", fmt.Sprintf("%.2f", info.Seconds))
	return nil
}

// sidecar is the provenance file of an embeddings file.
func sidecar(out string) string { return strings.TrimSuffix(out, ".npy") + ".json" }

// embedFiles embeds the images batch by batch, streaming the array to out
// and writing its provenance (sidecar) before the array is renamed into
// place, so that an array never exists without its provenance. Both are
// written atomically; an error or a cancelled ctx leaves neither.
func (p *pipeline) embedFiles(ctx context.Context, out string, images []string, batch int) (embedInfo, error) {
	start := time.Now()
	info := embedInfo{
		Version: version, Commit: commit(), Backbone: p.id, Layers: p.layers, ImageSize: p.pre.ImageSize,
		ResizeMode: p.pre.Mode.String(), Images: images,
	}
	if p.pre.Mode == datasets.ResizeShorter {
		info.Resize = p.pre.Resize
	}
	if p.id.RandomInit {
		info.Mark = randomInitMark
	}
	s := p.pre.ImageSize
	per := 3 * s * s
	x := make([]float32, batch*per)
	bar := progress.New("embed", len(images), "images")
	defer bar.Finish()
	err := atomicfile.WriteFile(out, func(w io.Writer) error {
		var fw *npy.Float32Writer
		for lo := 0; lo < len(images); lo += batch {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("embedding interrupted after %d of %d images; %s not written", lo, len(images), out)
			}
			hi := min(lo+batch, len(images))
			if err := p.loadBatch(x[:(hi-lo)*per], images[lo:hi]); err != nil {
				return err
			}
			feats, positions, err := p.features(x[:(hi-lo)*per], hi-lo)
			if err != nil {
				return err
			}
			if fw == nil {
				info.Shape = []int{len(images), positions, len(feats) / ((hi - lo) * positions)}
				if fw, err = npy.NewFloat32Writer(w, info.Shape); err != nil {
					return fmt.Errorf("writing %s: %w", out, err)
				}
			}
			if err := fw.Write(feats); err != nil {
				return fmt.Errorf("writing %s: %w", out, err)
			}
			bar.Add(hi - lo)
		}
		if err := fw.Close(); err != nil {
			return fmt.Errorf("writing %s: %w", out, err)
		}
		info.Seconds = time.Since(start).Seconds()
		return atomicfile.WriteFile(sidecar(out), func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", " ")
			return enc.Encode(info)
		})
	})
	return info, err
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

// checkImages fails fast, before the backbone loads, on a missing file or
// one whose header is not that of a supported image.
func checkImages(paths []string) error {
	for _, p := range paths {
		if _, _, err := datasets.ImageSize(p); err != nil {
			return err
		}
	}
	return nil
}
