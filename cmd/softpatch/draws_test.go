package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/experiments"
	"github.com/softpatch/softpatch/internal/npy"
)

// TestEvalDraws writes each method's draws with seed 0 (and the padim
// seed 0), replays them in a cell with seed 5 and wants the seed-0 cell:
// the same bank, scores and metrics, and a result that records the file,
// its sha256 and the keys replayed. Seed 5 without the file differs, so
// the test can fail.
func TestEvalDraws(t *testing.T) {
	dir, data := nutClass(t, 6, 2, 3)
	common := []string{"--data", data, "--class", "nut", "--noise", "0.34", "--overlap", "--resize", "72", "--imagesize", "64", "--coreset", "0.25"}
	for _, c := range []struct {
		method string
		extra  []string
		keys   string
	}{
		{"softpatch-lof", []string{"--augment"}, "noise_files,augment,discriminator_projection,coreset_projection,coreset_start_points"},
		{"patchcore-random", nil, "noise_files,random_subset"},
		{"padim", nil, "noise_files,padim_channels"},
	} {
		run := func(name string, more ...string) experiments.Result {
			t.Helper()
			out := filepath.Join(dir, c.method+name+".json")
			args := slices.Concat(common, c.extra, []string{"--method", c.method, "--padim-channels", "20", "--json", out}, more)
			if err := runEval(args); err != nil {
				t.Fatal(err)
			}
			return readCell(t, out)
		}
		want := run("-seed0")
		drawsFile := filepath.Join(dir, c.method+"-seed0.draws.npz")
		arrays, err := npy.ReadNPZ(drawsFile)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, k := range experiments.DrawKeys {
			if arrays[k] != nil {
				keys = append(keys, k)
			}
		}
		if strings.Join(keys, ",") != c.keys {
			t.Errorf("%s: draws %v, want %s", c.method, keys, c.keys)
		}
		other := run("-seed5", "--seed", "5", "--padim-seed", "5")
		if slices.Equal(other.PerImage, want.PerImage) {
			t.Errorf("%s: seeds 0 and 5 score alike; the test cannot tell a replay", c.method)
		}
		got := run("-replay", "--seed", "5", "--padim-seed", "5", "--noise", "0", "--draws", drawsFile)
		if !slices.Equal(got.PerImage, want.PerImage) || got.PixelAUROC != want.PixelAUROC || got.BankSize != want.BankSize ||
			!slices.Equal(got.NoiseDrawn, want.NoiseDrawn) {
			t.Errorf("%s: the replay differs: pixel AUROC %v, want %v", c.method, got.PixelAUROC, want.PixelAUROC)
		}
		if d := got.Draws; d == nil || d.File != drawsFile || len(d.SHA256) != 64 || strings.Join(d.Replayed, ",") != strings.Join(keys, ",") {
			t.Errorf("%s: replay record %+v", c.method, got.Draws)
		}
	}

	// A start point past the patches and an image not in the class are
	// errors naming the draw.
	for name, e := range map[string]npy.Entry{
		"coreset_start_points":        {Name: "coreset_start_points", Array: &npy.Array{DType: "<i8", Shape: []int{1}, I64: []int64{1 << 20}}},
		"not an anomalous test image": {Name: "noise_files", Array: &npy.Array{DType: "<U", Shape: []int{1}, Str: []string{"nut/test/good/000.png"}}},
	} {
		bad := filepath.Join(dir, "bad.npz")
		if err := writeNPZ(t, bad, []npy.Entry{e}); err != nil {
			t.Fatal(err)
		}
		err := runEval(slices.Concat(common, []string{"--method", "softpatch-lof", "--draws", bad, "--json", filepath.Join(dir, "bad.json")}))
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.json")); err == nil {
		t.Error("a cell with bad draws wrote its JSON")
	}
}

// writeNPZ writes entries to a new file at path.
func writeNPZ(t *testing.T, path string, es []npy.Entry) error {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return npy.WriteNPZ(f, es)
}
