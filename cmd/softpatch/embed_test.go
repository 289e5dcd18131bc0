package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/experiments/runner"
	"github.com/softpatch/softpatch/internal/npy"
)

var golden = filepath.Join("..", "..", "testdata", "golden")

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
	var info runner.EmbedInfo
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	if !info.Backbone.RandomInit || info.Mark != runner.RandomInitMark {
		t.Errorf("provenance %s lacks the random-init mark", b)
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
