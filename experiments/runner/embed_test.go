package runner

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/engine/embed"
	"github.com/softpatch/softpatch/internal/npy"
	"github.com/softpatch/softpatch/internal/numtest"
)

var golden = filepath.Join("..", "..", "testdata", "golden")

// testPipeline is the memory banks' pipeline (layer2 and layer3, PatchCore's
// embedding) on net with preprocessing pre, on the CPU.
func testPipeline(pre datasets.Preprocess, net *backbone.Backbone) *Pipeline {
	b := &Backbone{pre: pre, net: net, opts: Options{Layers: []string{"layer2", "layer3"}}, pipes: map[string]*Pipeline{}}
	p, err := b.pipeline(detector.FeatureSpec{Layers: b.opts.Layers, Embed: embed.Default()})
	if err != nil {
		panic(err)
	}
	return p
}

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
	p := testPipeline(datasets.Preprocess{Resize: 72, ImageSize: 64, Mode: datasets.ResizeShorter}, net)
	var images []string
	for _, n := range []string{"img0_gray_80x80.png", "img1_rgb_96x96.png", "img2_rgb_90x71.png"} {
		images = append(images, filepath.Join(golden, n))
	}
	out := filepath.Join(t.TempDir(), "feats.npy")
	// Batch 2 over 3 images: a full batch, then a remainder batch.
	info, err := p.EmbedFiles(context.Background(), out, images, 2)
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

// A cancelled run (Ctrl-C) leaves neither the array nor its provenance.
func TestEmbedFilesCancelledWritesNothing(t *testing.T) {
	arch := backbone.Arch{Name: "narrow_wide_resnet50_2", Blocks: [4]int{3, 4, 6, 3}, StemWidth: 2, BaseWidth: 128, NumClasses: 10}
	net, err := backbone.New(arch, backbone.RandomInit(arch, 1), 2)
	if err != nil {
		t.Fatal(err)
	}
	p := testPipeline(datasets.Preprocess{Resize: 72, ImageSize: 64}, net)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	_, err = p.EmbedFiles(ctx, filepath.Join(dir, "f.npy"), []string{filepath.Join(golden, "img0_gray_80x80.png")}, 1)
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("error %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left %v behind", entries)
	}
}
