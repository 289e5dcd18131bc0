package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/engine/embed"
	"github.com/softpatch/softpatch/internal/atomicfile"
	"github.com/softpatch/softpatch/internal/npy"
	"github.com/softpatch/softpatch/internal/progress"
)

// predictImage is one image's entry in scores.json.
type predictImage struct {
	File    string  `json:"file"`
	Score   float32 `json:"score"`
	Map     string  `json:"map"`
	Overlay string  `json:"overlay"`
}

// predictResult is scores.json.
type predictResult struct {
	Model    string            `json:"model"`
	Method   string            `json:"method,omitempty"`
	Backbone backbone.Identity `json:"backbone"`
	Mark     string            `json:"mark,omitempty"`
	// Device is where the scores were computed (pipeline.deviceName).
	Device string `json:"device"`
	// MapMin and MapMax are the range the overlays' colour map spans.
	MapMin float32        `json:"map_min"`
	MapMax float32        `json:"map_max"`
	Scores []predictImage `json:"scores"`
}

func runPredict(args []string) error {
	fs := newFlags("predict", "predict --model MODEL --out DIR [--weights FILE] IMAGE...",
		"softpatch predict --model wood.model --out pred data/synth/wood/test/*/*.png")
	model := fs.String("model", "", "model file written by fit (required)")
	out := fs.String("out", "", "output folder (required): scores.json, <stem>_map.npy, <stem>_overlay.png")
	weights := fs.String("weights", "", "checkpoint of the model's backbone; default: the path the model records if it exists, then the usual search (see fit -h)")
	threads := fs.Int("threads", 0, "compute threads (0: GOMAXPROCS, normally all cores)")
	device := fs.String("device", "auto", "auto, cpu or gpu (see eval -h)")
	batch := fs.Int("batch", 8, "images per forward pass")
	if err := fs.Parse(args); err != nil {
		return err
	}
	images := fs.Args()
	if *model == "" || *out == "" || len(images) == 0 {
		return fmt.Errorf("predict: --model, --out and at least one image are required")
	}
	if *batch < 1 {
		return fmt.Errorf("predict: --batch must be at least 1, got %d", *batch)
	}
	if err := checkImages(images); err != nil {
		return err
	}
	t, meta, err := loadTrained(*model)
	if err != nil {
		return err
	}
	if len(meta.Layers) == 0 || meta.GridH <= 0 || meta.GridW <= 0 {
		return fmt.Errorf("predict: %s: the model records no feature layers or patch grid", *model)
	}
	w := *weights
	if w == "" && !meta.Backbone.RandomInit && meta.Backbone.Weights != "" {
		if _, err := os.Stat(meta.Backbone.Weights); err == nil {
			w = meta.Backbone.Weights
		}
	}
	ff := featureFlags{
		weights: w, arch: meta.Backbone.Arch, mode: meta.ResizeMode, layers: strings.Join(meta.Layers, ","),
		resize: meta.Resize, imagesize: meta.ImageSize, threads: *threads, checkpointBN: meta.Backbone.BNPass == "checkpoint",
		device: *device,
	}
	p, err := ff.open()
	if err != nil {
		return err
	}
	if t.padim != nil {
		if err := p.withPaDiM(0, 0, meta.Channels); err != nil {
			return fmt.Errorf("predict: %s: %w", *model, err)
		}
		p = p.padim
	}
	t.p = p
	if err := t.useGPU(); err != nil {
		return err
	}
	defer t.close()
	if err := sameBackbone(meta.Backbone, p.id); err != nil {
		return fmt.Errorf("predict: %s: %w", *model, err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("predict: %w", err)
	}

	size := p.pre.ImageSize
	positions := meta.GridH * meta.GridW
	per := 3 * size * size
	x := make([]float32, *batch*per)
	res := predictResult{Model: *model, Method: meta.Method, Backbone: p.id, Device: p.deviceName()}
	if p.id.RandomInit {
		res.Mark = randomInitMark
	}
	stems := uniqueStems(images)
	maps := make([][]float32, len(images))
	bar := progress.New("predict", len(images), "images")
	// Images are scored a group at a time: a batch for memory banks,
	// padimGroup images for PaDiM (its scoring expands every position's
	// triangle once per call); the backbone runs --batch images at a time.
	group := *batch
	if t.padim != nil {
		group = max(group, padimGroup)
	}
	var gfeats []float32
	for lo := 0; lo < len(images); lo += group {
		hi := min(lo+group, len(images))
		nb := hi - lo
		gfeats = gfeats[:0]
		for b0 := lo; b0 < hi; b0 += *batch {
			b1 := min(b0+*batch, hi)
			if err := p.loadBatch(x[:(b1-b0)*per], images[b0:b1]); err != nil {
				bar.Finish()
				return err
			}
			feats, pos, err := p.features(x[:(b1-b0)*per], b1-b0)
			if err != nil {
				bar.Finish()
				return err
			}
			if pos != positions || len(feats) != (b1-b0)*pos*t.dim() {
				bar.Finish()
				return fmt.Errorf("predict: features of %d positions x %d dims, the model has a %dx%d grid of %d dims",
					pos, len(feats)/((b1-b0)*pos), meta.GridH, meta.GridW, t.dim())
			}
			gfeats = append(gfeats, feats...)
		}
		patch := make([]float32, nb*positions)
		if err := t.scoreBatch(patch, gfeats, nb); err != nil {
			bar.Finish()
			return err
		}
		bmaps, err := t.maps(patch, nb)
		if err != nil {
			bar.Finish()
			return err
		}
		scores := t.imageScores(patch, nb, bmaps)
		for i := range nb {
			k := lo + i
			maps[k] = bmaps[i]
			res.Scores = append(res.Scores, predictImage{File: images[k], Score: scores[i],
				Map: stems[k] + "_map.npy", Overlay: stems[k] + "_overlay.png"})
		}
		bar.Add(nb)
	}
	bar.Finish()

	res.MapMin, res.MapMax = mapRange(maps)
	for k, path := range images {
		mp := maps[k]
		if err := atomicfile.WriteFile(filepath.Join(*out, res.Scores[k].Map), func(w io.Writer) error {
			return npy.WriteFloat32(w, []int{size, size}, mp)
		}); err != nil {
			return err
		}
		img, err := datasets.DecodeRGBFile(path)
		if err != nil {
			return err
		}
		ov := overlay(p.pre.Image(img), mp, res.MapMin, res.MapMax)
		if err := atomicfile.WriteFile(filepath.Join(*out, res.Scores[k].Overlay), func(w io.Writer) error {
			return png.Encode(w, ov)
		}); err != nil {
			return err
		}
	}
	scoresPath := filepath.Join(*out, "scores.json")
	if err := atomicfile.WriteFile(scoresPath, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", " ")
		return enc.Encode(res)
	}); err != nil {
		return err
	}
	slog.Info("predicted", "images", len(images), "backbone", p.id.String(), "out", scoresPath)
	return nil
}

// loadTrained reads a model file of either kind (memory bank or PaDiM).
func loadTrained(path string) (*trained, detector.Meta, error) {
	isPaDiM, err := detector.IsPaDiMFile(path)
	if err != nil {
		return nil, detector.Meta{}, err
	}
	if isPaDiM {
		m, meta, err := detector.LoadPaDiMFile(path)
		if err != nil {
			return nil, meta, err
		}
		switch {
		case meta.Embedding != detector.MethodPaDiM || !slices.Equal(meta.Layers, embed.PaDiMLayers):
			return nil, meta, fmt.Errorf("%s: a PaDiM model must record the padim embedding of %v, not %q of %v", path, embed.PaDiMLayers, meta.Embedding, meta.Layers)
		case len(meta.Channels) != m.Dim:
			return nil, meta, fmt.Errorf("%s: the PaDiM model has %d dims but records %d channels", path, m.Dim, len(meta.Channels))
		case meta.GridH*meta.GridW != m.Positions:
			return nil, meta, fmt.Errorf("%s: the PaDiM model has %d positions but records a %dx%d grid", path, m.Positions, meta.GridH, meta.GridW)
		}
		return &trained{padim: m, positions: m.Positions}, meta, nil
	}
	m, meta, err := detector.LoadFile(path)
	if err != nil {
		return nil, meta, err
	}
	return &trained{bank: m, positions: meta.GridH * meta.GridW}, meta, nil
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
