package embed

import (
	"path/filepath"
	"testing"

	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/internal/npy"
	"github.com/softpatch/softpatch/internal/numtest"
)

// golden is testdata/golden: fixtures written by testdata/golden/gen_model.py
// with PyTorch 1.13 / torchvision 0.14.
var golden = filepath.Join("..", "..", "testdata", "golden")

// narrowArch is the fixture network: wide_resnet50_2's topology and key
// names with 1/32 of its channels.
var narrowArch = backbone.Arch{Name: "narrow_wide_resnet50_2", Blocks: [4]int{3, 4, 6, 3}, StemWidth: 2, BaseWidth: 128, NumClasses: 10}

// tolerance is the bound: max abs error over max abs value.
const tolerance = 1e-4

func readNpy(t *testing.T, name string) *npy.Array {
	t.Helper()
	a, err := npy.ReadFile(filepath.Join(golden, name))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestGoldenLayersAndEmbeddings runs the fixture checkpoint (both torch
// serialisations) on the fixture's normalised inputs and compares every
// layer output and the patch embeddings with PyTorch's.
func TestGoldenLayersAndEmbeddings(t *testing.T) {
	in := readNpy(t, "input.npy")
	n, h, w := in.Shape[0], in.Shape[2], in.Shape[3]
	for _, file := range []string{"narrow_wrn50_2_zip.pth", "narrow_wrn50_2_legacy.pth"} {
		t.Run(file, func(t *testing.T) {
			params, err := backbone.LoadCheckpoint(filepath.Join(golden, file), narrowArch)
			if err != nil {
				t.Fatal(err)
			}
			net, err := backbone.New(narrowArch, params, 2)
			if err != nil {
				t.Fatal(err)
			}
			layers := []string{"layer1", "layer2", "layer3"}
			feats, err := net.Forward(in.F32, n, h, w, layers)
			if err != nil {
				t.Fatal(err)
			}
			byName := map[string]backbone.Feature{}
			for i, l := range layers {
				want := readNpy(t, l+".npy")
				f := feats[i]
				if f.N != want.Shape[0] || f.C != want.Shape[1] || f.H != want.Shape[2] || f.W != want.Shape[3] {
					t.Fatalf("%s: shape %dx%dx%dx%d, torch %v", l, f.N, f.C, f.H, f.W, want.Shape)
				}
				if e := numtest.RelErr(f.Data, want.F32); !(e <= tolerance) {
					t.Errorf("%s: relative error %.3g > %g", l, e, tolerance)
				} else {
					t.Logf("%s: relative error %.3g", l, e)
				}
				byName[l] = f
			}
			for _, c := range []struct {
				file   string
				layers []string
				cfg    Config
			}{
				{"embed_l23_1024_1024.npy", []string{"layer2", "layer3"}, Default()},
				{"embed_l23_40_24.npy", []string{"layer2", "layer3"}, Config{PatchSize: 3, Stride: 1, PretrainDim: 40, TargetDim: 24}},
				{"embed_l123_64_48.npy", []string{"layer1", "layer2", "layer3"}, Config{PatchSize: 3, Stride: 1, PretrainDim: 64, TargetDim: 48}},
			} {
				var fs []backbone.Feature
				for _, l := range c.layers {
					fs = append(fs, byName[l])
				}
				got, positions, err := c.cfg.Embed(fs)
				if err != nil {
					t.Fatal(err)
				}
				want := readNpy(t, c.file)
				if want.Shape[0] != n || want.Shape[1] != positions || want.Shape[2] != c.cfg.TargetDim {
					t.Fatalf("%s: got [%d %d %d], torch %v", c.file, n, positions, c.cfg.TargetDim, want.Shape)
				}
				if e := numtest.RelErr(got, want.F32); !(e <= tolerance) {
					t.Errorf("%s: relative error %.3g > %g", c.file, e, tolerance)
				} else {
					t.Logf("%s: relative error %.3g", c.file, e)
				}
			}
		})
	}
}

// TestGoldenPublishedBNPass checks backbone.PublishedBNPass against the
// fixture generator's transcription of the published code's train-mode
// pass of a ones image, stopping after layer3 and after layer2.
func TestGoldenPublishedBNPass(t *testing.T) {
	in := readNpy(t, "input.npy")
	n, h, w := in.Shape[0], in.Shape[2], in.Shape[3]
	params, err := backbone.LoadCheckpoint(filepath.Join(golden, "narrow_wrn50_2_zip.pth"), narrowArch)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		deepest int
		prefix  string
		layers  []string
	}{
		{2, "published_l3_", []string{"layer1", "layer2", "layer3"}},
		// Stopping after layer2 leaves layer3's statistics as stored.
		{1, "published_l2_", []string{"layer1", "layer2", "layer3"}},
	} {
		updated, err := backbone.PublishedBNPass(narrowArch, params, w, c.deepest)
		if err != nil {
			t.Fatal(err)
		}
		net, err := backbone.New(narrowArch, updated, 2)
		if err != nil {
			t.Fatal(err)
		}
		feats, err := net.Forward(in.F32, n, h, w, c.layers)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range c.layers {
			want := readNpy(t, c.prefix+l+".npy")
			if e := numtest.RelErr(feats[i].Data, want.F32); !(e <= tolerance) {
				t.Errorf("%s%s: relative error %.3g > %g", c.prefix, l, e, tolerance)
			} else {
				t.Logf("%s%s: relative error %.3g", c.prefix, l, e)
			}
		}
		if c.deepest == 2 {
			got, _, err := Default().Embed(feats[1:])
			if err != nil {
				t.Fatal(err)
			}
			want := readNpy(t, "published_l3_embed_l23_1024_1024.npy")
			if e := numtest.RelErr(got, want.F32); !(e <= tolerance) {
				t.Errorf("published embedding: relative error %.3g > %g", e, tolerance)
			}
		}
	}
	// The input map is not modified.
	plain, _ := backbone.LoadCheckpoint(filepath.Join(golden, "narrow_wrn50_2_zip.pth"), narrowArch)
	if a, b := params["layer1.0.bn1.running_var"].Data, plain["layer1.0.bn1.running_var"].Data; a[0] != b[0] {
		t.Error("PublishedBNPass modified its input")
	}
}
