package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/internal/atomicfile"
	"github.com/softpatch/softpatch/internal/buildinfo"
	"github.com/softpatch/softpatch/internal/npy"
	"github.com/softpatch/softpatch/internal/progress"
)

// EmbedInfo is the JSON written beside an embeddings file: what produced
// it.
type EmbedInfo struct {
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

// sidecar is the provenance file of an embeddings file.
func sidecar(out string) string { return strings.TrimSuffix(out, ".npy") + ".json" }

// EmbedFiles embeds image files with the pipeline batch by batch, streaming the array to out
// and writing its provenance (sidecar) before the array is renamed into
// place, so that an array never exists without its provenance. Both are
// written atomically; an error or a cancelled ctx leaves neither.
func (p *Pipeline) EmbedFiles(ctx context.Context, out string, images []string, batch int) (EmbedInfo, error) {
	start := time.Now()
	b := p.b
	info := EmbedInfo{
		Version: buildinfo.Version, Commit: buildinfo.Commit(), Backbone: b.id, Mark: b.Mark(), Layers: p.spec.Layers, ImageSize: b.pre.ImageSize,
		ResizeMode: b.pre.Mode.String(), Images: images,
	}
	if b.pre.Mode == datasets.ResizeShorter {
		info.Resize = b.pre.Resize
	}
	s := b.pre.ImageSize
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
			if err := b.loadBatch(x[:(hi-lo)*per], images[lo:hi]); err != nil {
				return err
			}
			f, err := p.features(x[:(hi-lo)*per], hi-lo)
			if err != nil {
				return err
			}
			feats := f.Data
			if fw == nil {
				info.Shape = []int{len(images), f.Positions, f.Dim}
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
