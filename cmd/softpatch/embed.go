package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

	"github.com/softpatch/softpatch/experiments/runner"
)

// embedMethod is the method whose patch embedding "embed" writes: the
// memory banks' (PatchCore's embedding of --layers).
const embedMethod = "patchcore"

func runEmbed(args []string) error {
	fs := newFlags("embed", "embed [flags] --out OUT.npy IMAGE...",
		"softpatch embed --weights wide_resnet50_2-95faca4d.pth --out feats.npy train/good/*.png")
	var ff featureFlags
	ff.register(fs, false)
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
	if err := runner.CheckImages(images); err != nil {
		return err
	}
	b, p, err := ff.openPatch()
	if err != nil {
		return err
	}
	defer b.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	info, err := p.EmbedFiles(ctx, *out, images, *batch)
	if err != nil {
		return err
	}
	slog.Info("wrote embeddings", "file", *out, "shape", info.Shape, "backbone", b.Identity().String(),
		"seconds", fmt.Sprintf("%.2f", info.Seconds))
	return nil
}
