package runner

import (
	"encoding/json"
	"fmt"
	"github.com/softpatch/softpatch/engine/knn"
	"image/png"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/internal/atomicfile"
	"github.com/softpatch/softpatch/internal/npy"
	"github.com/softpatch/softpatch/internal/progress"
)

// PredictedImage is one image's entry in scores.json.
type PredictedImage struct {
	File  string  `json:"file"`
	Score float32 `json:"score"`
	// Anomalous is the model's decision (Predictions.Decision), absent
	// when the model has no threshold.
	Anomalous *bool  `json:"anomalous,omitempty"`
	Map       string `json:"map"`
	Overlay   string `json:"overlay"`
}

// Predictions is scores.json: what Predict scored, with what.
type Predictions struct {
	Model    string            `json:"model"`
	Method   string            `json:"method,omitempty"`
	Backbone backbone.Identity `json:"backbone"`
	Mark     string            `json:"mark,omitempty"`
	// Device is where the scores were computed (Backbone.Device).
	Device string `json:"device"`
	// MapMin and MapMax are the range the overlays' colour map spans.
	MapMin float32 `json:"map_min"`
	MapMax float32 `json:"map_max"`
	// Decision is the model's decision threshold (detector.Decision):
	// images scoring above it are anomalous.
	Decision *detector.Decision `json:"decision,omitempty"`
	Scores   []PredictedImage   `json:"scores"`
}

// PredictOptions say which model scores the images and how.
type PredictOptions struct {
	// Model is the model file (fit's output); Out the output folder.
	Model, Out string
	// Weights is the checkpoint of the model's backbone ("": the path the
	// model records if it exists, then the usual search).
	Weights string
	// Threads, Device and Batch are as in Options and CellOptions.
	Threads int
	Device  string
	Batch   int
	// Threshold, when set, replaces the model's decision threshold
	// (Source "given").
	Threshold *float64
	// Search, when set, replaces a memory bank's nearest-neighbour search
	// mode (knn.Mode; the model records fit's); every mode gives the same
	// scores.
	Search *knn.Mode
}

// Predict scores images with a saved model and writes into o.Out the
// scores (scores.json), each image's anomaly map (<stem>_map.npy) and its
// overlay (<stem>_overlay.png).
func Predict(images []string, o PredictOptions) (*Predictions, error) {
	if o.Batch < 1 {
		return nil, fmt.Errorf("predict: --batch must be at least 1, got %d", o.Batch)
	}
	if err := CheckImages(images); err != nil {
		return nil, err
	}
	d, meta, method, err := detector.LoadFile(o.Model)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	if len(meta.Layers) == 0 || meta.GridH <= 0 || meta.GridW <= 0 {
		return nil, fmt.Errorf("predict: %s: the model records no feature layers or patch grid", o.Model)
	}
	if bk, ok := d.(detector.Banked); ok && o.Search != nil {
		bk.Bank().Config.Search = *o.Search // read when the first Score builds the search index
	}
	w := o.Weights
	if w == "" && !meta.Backbone.RandomInit && meta.Backbone.Weights != "" {
		if _, err := os.Stat(meta.Backbone.Weights); err == nil {
			w = meta.Backbone.Weights
		}
	}
	opts := Options{Weights: w, Arch: meta.Backbone.Arch, ResizeMode: meta.ResizeMode, Layers: meta.Layers, Resize: meta.Resize,
		ImageSize: meta.ImageSize, CheckpointBN: meta.Backbone.BNPass == backbone.BNCheckpoint, Threads: o.Threads, Device: o.Device}
	if c, ok := d.(detector.Configured); ok {
		opts.MethodOptions = map[string]any{method: c.Options()}
	}
	b, err := Open(opts, []string{method}, meta.Channels)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	defer d.Close() // before the device it may hold memory on
	p, err := b.Pipeline(method)
	if err != nil {
		return nil, fmt.Errorf("predict: %s: %w", o.Model, err)
	}
	if a, ok := d.(detector.Accelerable); ok && b.gpu.Device() != nil {
		if err := a.Accelerate(b.gpu.Accelerator()); err != nil {
			return nil, err
		}
	}
	if err := sameBackbone(meta.Backbone, b.id); err != nil {
		return nil, fmt.Errorf("predict: %s: %w", o.Model, err)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("predict: %w", err)
	}

	size := b.pre.ImageSize
	positions := meta.GridH * meta.GridW
	per := 3 * size * size
	x := make([]float32, o.Batch*per)
	if o.Threshold != nil {
		meta.Decision = &detector.Decision{Threshold: *o.Threshold, Source: "given"}
	}
	res := Predictions{Model: o.Model, Method: meta.Method, Backbone: b.id, Mark: b.Mark(), Device: b.Device(), Decision: meta.Decision}
	stems := uniqueStems(images)
	maps := make([][]float32, len(images))
	bar := progress.New("predict", len(images), "images")
	defer bar.Finish()
	// Images are scored a group at a time: a batch, or as many as the
	// detector prefers to score at once (PaDiM); the backbone runs Batch
	// images at a time.
	group := max(o.Batch, d.Info().ScoreBatch)
	dim := d.Info().Dim
	// predicted makes the maps and scores of images[lo:lo+nb] from their
	// patch scores. A detector that makes its maps itself
	// (detector.Mapper) gets all images at once.
	_, setMaps := d.(detector.Mapper)
	var all []float32
	predicted := func(patch []float32, lo, nb int) error {
		bmaps, err := mapsOf(d, p, patch, nb, positions)
		if err != nil {
			return err
		}
		scores, err := d.ImageScores(patch, nb, positions, bmaps)
		if err != nil {
			return err
		}
		for i := range nb {
			k := lo + i
			maps[k] = bmaps[i]
			pi := PredictedImage{File: images[k], Score: scores[i], Map: stems[k] + "_map.npy", Overlay: stems[k] + "_overlay.png"}
			if meta.Decision != nil {
				yes := meta.Decision.Anomalous(scores[i])
				pi.Anomalous = &yes
			}
			res.Scores = append(res.Scores, pi)
		}
		return nil
	}
	var gfeats []float32
	for lo := 0; lo < len(images); lo += group {
		hi := min(lo+group, len(images))
		nb := hi - lo
		gfeats = gfeats[:0]
		for b0 := lo; b0 < hi; b0 += o.Batch {
			b1 := min(b0+o.Batch, hi)
			if err := b.loadBatch(x[:(b1-b0)*per], images[b0:b1]); err != nil {
				return nil, err
			}
			f, err := p.features(x[:(b1-b0)*per], b1-b0)
			if err != nil {
				return nil, err
			}
			if f.Positions != positions || f.Dim != dim {
				return nil, fmt.Errorf("predict: features of %d positions x %d dims, the model has a %dx%d grid of %d dims",
					f.Positions, f.Dim, meta.GridH, meta.GridW, dim)
			}
			gfeats = append(gfeats, f.Data...)
		}
		patch := make([]float32, nb*positions)
		if err := d.Score(patch, detector.Features{Data: gfeats, N: nb, Positions: positions, Dim: dim}); err != nil {
			return nil, err
		}
		if setMaps {
			// Its maps depend on all images: made after the last group.
			all = append(all, patch...)
			bar.Add(nb)
			continue
		}
		if err := predicted(patch, lo, nb); err != nil {
			return nil, err
		}
		bar.Add(nb)
	}
	bar.Finish()
	if setMaps {
		if err := predicted(all, 0, len(images)); err != nil {
			return nil, err
		}
	}

	res.MapMin, res.MapMax = mapRange(maps)
	for k, path := range images {
		mp := maps[k]
		if err := atomicfile.WriteFile(filepath.Join(o.Out, res.Scores[k].Map), func(w io.Writer) error {
			return npy.WriteFloat32(w, []int{size, size}, mp)
		}); err != nil {
			return nil, err
		}
		img, err := datasets.DecodeRGBFile(path)
		if err != nil {
			return nil, err
		}
		ov := overlay(b.pre.Image(img), mp, res.MapMin, res.MapMax)
		if err := atomicfile.WriteFile(filepath.Join(o.Out, res.Scores[k].Overlay), func(w io.Writer) error {
			return png.Encode(w, ov)
		}); err != nil {
			return nil, err
		}
	}
	scoresPath := filepath.Join(o.Out, "scores.json")
	if err := atomicfile.WriteFile(scoresPath, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", " ")
		return enc.Encode(res)
	}); err != nil {
		return nil, err
	}
	slog.Info("predicted", "images", len(images), "backbone", b.id.String(), "out", scoresPath)
	return &res, nil
}

// sameBackbone checks that got (the backbone opened now) is the network
// the model was fitted with (want): same architecture, same weights (the
// checkpoint's sha256, or the random-init seed) and the same BatchNorm
// statistics. The checkpoint's path may differ.
func sameBackbone(want, got backbone.Identity) error {
	if want.Arch == got.Arch && want.RandomInit == got.RandomInit && want.BNPass == got.BNPass &&
		(want.RandomInit && want.Seed == got.Seed || !want.RandomInit && want.SHA256 == got.SHA256) {
		return nil
	}
	return fmt.Errorf("backbone mismatch: the model was fitted with %s, BN %s, but this run opened %s, BN %s; pass the model's checkpoint with --weights",
		want, want.BNPass, got, got.BNPass)
}

// uniqueStems names each image's outputs: its base name without the
// extension, with as many parent folders as needed (joined by "_") to make
// the names distinct, else prefixed by its position.
func uniqueStems(paths []string) []string {
	stems := make([]string, len(paths))
	for depth := 1; depth <= 8; depth++ {
		seen := map[string]bool{}
		dup := false
		for i, p := range paths {
			parts := strings.Split(filepath.ToSlash(filepath.Clean(p)), "/")
			parts[len(parts)-1] = strings.TrimSuffix(parts[len(parts)-1], filepath.Ext(p))
			var keep []string
			for _, s := range parts[max(0, len(parts)-depth):] {
				if s != "" && s != "." && s != ".." {
					keep = append(keep, s)
				}
			}
			stems[i] = strings.Join(keep, "_")
			dup = dup || seen[stems[i]]
			seen[stems[i]] = true
		}
		if !dup {
			return stems
		}
	}
	for i, p := range paths {
		stems[i] = fmt.Sprintf("%04d_%s", i, strings.TrimSuffix(filepath.Base(p), filepath.Ext(p)))
	}
	return stems
}
