package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/embed"
	"github.com/softpatch/softpatch/internal/npy"
	"github.com/softpatch/softpatch/internal/numtest"
)

var golden = filepath.Join("..", "..", "testdata", "golden")

// TestEmbedFilesMatchesPyTorch runs the whole pipeline (PNG decoding,
// PIL-exact resize and crop, normalisation, backbone, embedding, .npy
// streaming) on the golden images and compares with the embeddings that
// testdata/golden/gen_model.py computed with PyTorch from the same files.
func TestEmbedFilesMatchesPyTorch(t *testing.T) {
	arch := backbone.Arch{Name: "narrow_wide_resnet50_2", Blocks: [4]int{3, 4, 6, 3}, StemWidth: 2, BaseWidth: 128, NumClasses: 10}
	params, err := backbone.LoadCheckpoint(filepath.Join(golden, "narrow_wrn50_2_zip.pth"), arch)
	if err != nil {
		t.Fatal(err)
	}
	net, err := backbone.New(arch, params, 2)
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeline{
		pre:    datasets.Preprocess{Resize: 72, ImageSize: 64, Mode: datasets.ResizeShorter},
		net:    net,
		layers: []string{"layer2", "layer3"},
		embed:  embed.Default(),
	}
	var images []string
	for _, n := range []string{"img0_gray_80x80.png", "img1_rgb_96x96.png", "img2_rgb_90x71.png"} {
		images = append(images, filepath.Join(golden, n))
	}
	out := filepath.Join(t.TempDir(), "feats.npy")
	// Batch 2 over 3 images: a full batch, then a remainder batch.
	info, err := p.embedFiles(context.Background(), out, images, 2)
	if err != nil {
		t.Fatal(err)
	}
	shape := info.Shape
	got, err := npy.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := npy.ReadFile(filepath.Join(golden, "embed_l23_1024_1024.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if len(shape) != 3 || shape[0] != 3 || shape[1] != 64 || shape[2] != 1024 || got.Len() != want.Len() {
		t.Fatalf("shape %v (file %v), torch %v", shape, got.Shape, want.Shape)
	}
	if e := numtest.RelErr(got.F32, want.F32); !(e <= 1e-4) {
		t.Errorf("relative error %.3g > 1e-4", e)
	}
}

// TestEmbedCommandRejectsMismatchedCheckpoint runs the verb with a checkpoint
// that does not fit the requested architecture: it must fail naming the
// file, and write nothing.
func TestEmbedCommandRejectsMismatchedCheckpoint(t *testing.T) {
	out := filepath.Join(t.TempDir(), "feats.npy")
	ckpt := filepath.Join(golden, "narrow_wrn50_2_zip.pth")
	err := runEmbed([]string{"--weights", ckpt, "--out", out, filepath.Join(golden, "img0_gray_80x80.png")})
	if err == nil || !strings.Contains(err.Error(), "narrow_wrn50_2_zip.pth") {
		t.Fatalf("error %v, want one naming the checkpoint", err)
	}
	if _, statErr := os.Stat(out); statErr == nil {
		t.Error("an output was written despite the error")
	}
}

// TestEmbedWithoutWeightsMarksRandomInit runs the verb where no checkpoint
// can be found: it must still work, and its provenance must say
// "random-init backbone".
func TestEmbedWithoutWeightsMarksRandomInit(t *testing.T) {
	dir := withoutWeights(t)
	out := filepath.Join(dir, "feats.npy")
	err := runEmbed([]string{"--resize", "72", "--imagesize", "64", "--out", out, filepath.Join(golden, "img2_rgb_90x71.png")})
	if err != nil {
		t.Fatal(err)
	}
	a, err := npy.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Shape) != 3 || a.Shape[0] != 1 || a.Shape[1] != 8*8 || a.Shape[2] != 1024 {
		t.Errorf("shape %v, want [1 64 1024]", a.Shape)
	}
	b, err := os.ReadFile(filepath.Join(dir, "feats.json"))
	if err != nil {
		t.Fatal(err)
	}
	var info embedInfo
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	if !info.Backbone.RandomInit || info.Mark != randomInitMark {
		t.Errorf("provenance %s lacks the random-init mark", b)
	}
}

// A cancelled run (Ctrl-C) leaves neither the array nor its provenance.
func TestEmbedFilesCancelledWritesNothing(t *testing.T) {
	arch := backbone.Arch{Name: "narrow_wide_resnet50_2", Blocks: [4]int{3, 4, 6, 3}, StemWidth: 2, BaseWidth: 128, NumClasses: 10}
	net, err := backbone.New(arch, backbone.RandomInit(arch, 1), 2)
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeline{pre: datasets.Preprocess{Resize: 72, ImageSize: 64}, net: net, layers: []string{"layer2", "layer3"}, embed: embed.Default()}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	_, err = p.embedFiles(ctx, filepath.Join(dir, "f.npy"), []string{filepath.Join(golden, "img0_gray_80x80.png")}, 1)
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("error %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left %v behind", entries)
	}
}

// withoutWeights points every place FindWeights searches at an empty
// temporary folder, so that the backbone is the random-init one, and
// returns that folder.
func withoutWeights(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("SOFTPATCH_WEIGHTS", "")
	t.Setenv("TORCH_HOME", dir)
	t.Setenv("XDG_CACHE_HOME", dir)
	t.Setenv("HOME", dir)
	return dir
}
