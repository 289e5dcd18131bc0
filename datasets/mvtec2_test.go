package datasets

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// mvtec2Tree writes a small MVTec AD 2 class "can" and returns the root.
func mvtec2Tree(t *testing.T) string {
	return tree(t,
		"can/train/good/001_regular.png", "can/train/good/000_regular.png",
		"can/validation/good/100_regular.png",
		"can/test_public/good/200_regular.png",
		"can/test_public/bad/300_regular.png", "can/test_public/bad/301_overexposed.png",
		"can/test_public/ground_truth/bad/300_regular_mask.png", "can/test_public/ground_truth/bad/301_overexposed_mask.png",
		"can/test_private/400_regular.png",
		"can/test_private_mixed/501_shift_1.png", "can/test_private_mixed/500_regular.png",
	)
}

func TestLoadMVTec2(t *testing.T) {
	root := mvtec2Tree(t)
	c, err := Load(root, "can", Layout{}, LoadOptions{Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.Format != FormatMVTec2 || c.Normal != "good" {
		t.Errorf("format %q normal %q", c.Format, c.Normal)
	}
	check := func(name string, items []Item, split string, want ...string) {
		t.Helper()
		if got := rels(root, items); !reflect.DeepEqual(got, want) {
			t.Errorf("%s %v, want %v", name, got, want)
		}
		for _, it := range items {
			if split != "" && it.Split != split {
				t.Errorf("%s: split %q", it.Path, it.Split)
			}
		}
	}
	check("train", c.Train, "train", "can/train/good/000_regular.png", "can/train/good/001_regular.png")
	check("validation", c.Validation, "validation", "can/validation/good/100_regular.png")
	check("test", c.Test, "test", "can/test_public/bad/300_regular.png", "can/test_public/bad/301_overexposed.png", "can/test_public/good/200_regular.png")
	check("unlabeled", c.Unlabeled, "", "can/test_private/400_regular.png", "can/test_private_mixed/500_regular.png", "can/test_private_mixed/501_shift_1.png")
	if it := c.Test[0]; !it.Anomalous || it.Type != "bad" || it.MaskPath != filepath.Join(root, "can", "test_public", "ground_truth", "bad", "300_regular_mask.png") || it.MaskNonZero {
		t.Errorf("anomalous test item %+v", it)
	}
	if it := c.Unlabeled[2]; it.Split != "test_private_mixed" || it.Type != MVTec2Unlabeled || it.Anomalous || it.MaskPath != "" {
		t.Errorf("unlabeled item %+v", it)
	}
	// The gray test masks of tree have no 255: a warning under Verify.
	if len(c.Warnings) != 2 || !strings.Contains(c.Warnings[0].Reason, "no pixel is 255 (largest value 246), and only 255 marks a defect in a mvtec2 mask") {
		t.Errorf("warnings %+v", c.Warnings)
	}
	s := Summarize(c)
	if s.TrainNormals != 2 || s.ValidationNormals != 1 || s.TestNormals != 1 || s.TestAnomalies["bad"] != 2 ||
		!reflect.DeepEqual(s.Unlabeled, map[string]int{"test_private": 1, "test_private_mixed": 2}) || s.Sizes["8x8"] != 9 || len(s.Warnings) != 2 {
		t.Errorf("summary %+v", s)
	}
	// Noise draws from test_public only; validation and the private sets
	// stay out of the split.
	// k = floor(0.5 * 2) = 1 < A = 2: neither capped nor resampled.
	in, err := c.Inject("mvtec2", Noise{Ratio: 0.5})
	if err != nil || len(in.Drawn) != 1 || len(in.Train) != 3 || len(in.Test) != 2 || in.Noise.Requested != 0 {
		t.Errorf("Inject: %v %+v", err, in)
	}

	// Optional folders may be absent.
	for _, d := range []string{"validation", "test_private", "test_private_mixed"} {
		os.RemoveAll(filepath.Join(root, "can", d))
	}
	if c, err := Load(root, "can", Layout{Format: FormatMVTec2}, LoadOptions{}); err != nil || c.Validation != nil || c.Unlabeled != nil || len(c.Test) != 3 {
		t.Errorf("without the optional folders: %v %+v", err, c)
	}
}

func TestLoadMVTec2Errors(t *testing.T) {
	cases := []struct {
		name, remove, path, msg string
		skip                    bool
	}{
		{"no mask", "can/test_public/ground_truth/bad/301_overexposed_mask.png", "can/test_public/bad/301_overexposed.png",
			"anomalous image without mask (looked for 301_overexposed_mask.png in " + filepath.Join("can", "test_public", "ground_truth", "bad"), true},
		{"no test_public", "can/test_public", "can/test_public", "empty split: no test folder", false},
		{"no train", "can/train/good", "can/train/good", "empty split: folder not found", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := mvtec2Tree(t)
			os.RemoveAll(filepath.Join(root, filepath.FromSlash(c.remove)))
			_, err := Load(root, "can", Layout{Format: FormatMVTec2}, LoadOptions{})
			want := "datasets: " + filepath.Join(root, filepath.FromSlash(c.path)) + ": "
			msg := strings.ReplaceAll(c.msg, filepath.Join("can", "test_public"), filepath.Join(root, "can", "test_public"))
			if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), msg) {
				t.Fatalf("error %v, want %q ... %q", err, want, msg)
			}
			if c.skip {
				cl, err := Load(root, "can", Layout{Format: FormatMVTec2}, LoadOptions{SkipBad: true})
				if err != nil || len(cl.Problems) != 1 || len(cl.Test) != 2 {
					t.Fatalf("SkipBad: %v %+v", err, cl)
				}
			}
		})
	}
	root := mvtec2Tree(t)
	writeImage(t, root, "can/test_public/ground_truth/bad/300_regular_mask.png", 8, 9)
	if _, err := Load(root, "can", Layout{}, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "300_regular_mask.png: mask is 8x9") {
		t.Errorf("mask size: %v", err)
	}
}

// TestDetectFormats checks DetectFormat on every layout and Classes'
// choice of class folders per format.
func TestDetectFormats(t *testing.T) {
	root := tree(t,
		"mv/train/good/0.png", "bt/train/ok/0.png", "m2/train/good/0.png", "m2/validation/good/0.png",
		"m2b/train/good/0.png", "m2b/test_public/good/0.png", "vi/Data/Images/Normal/0.JPG", "ri/OK/S0001/0.jpg",
		"rn/NG/BX/S0001/0.jpg", "none/images/0.png", "split_csv/x.png")
	want := map[string]Format{"mv": FormatMVTec, "bt": FormatBTAD, "m2": FormatMVTec2, "m2b": FormatMVTec2, "vi": FormatVisA, "ri": FormatRealIAD, "rn": FormatRealIAD}
	for dir, f := range want {
		if got, err := DetectFormat(filepath.Join(root, dir)); err != nil || got != f {
			t.Errorf("DetectFormat(%s) = %q, %v; want %q", dir, got, err, f)
		}
	}
	if _, err := DetectFormat(filepath.Join(root, "none")); err == nil || !strings.Contains(err.Error(), "none of train/good, train/ok, Data/Images, OK or NG") {
		t.Errorf("undetectable: %v", err)
	}
	for f, want := range map[Format][]string{
		FormatAuto:    {"bt", "m2", "m2b", "mv", "ri", "rn", "vi"},
		FormatMVTec:   {"bt", "m2", "m2b", "mv"},
		FormatMVTec2:  {"bt", "m2", "m2b", "mv"},
		FormatVisA:    {"vi"},
		FormatRealIAD: {"ri", "rn"},
	} {
		if got, err := Classes(root, Layout{Format: f}); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Classes(%q) = %v, %v; want %v", f, got, err, want)
		}
	}
	if _, err := Classes(filepath.Join(root, "none"), Layout{Format: FormatVisA}); err == nil || !strings.Contains(err.Error(), "no sub-folder has a "+filepath.Join("Data", "Images")+" folder") {
		t.Errorf("no VisA classes: %v", err)
	}
	// A split file is only for the formats that read one.
	if _, err := Load(root, "mv", Layout{SplitFile: "x.csv"}, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "x.csv: a split file is read by the visa and realiad formats only, not by mvtec") {
		t.Errorf("split file with mvtec: %v", err)
	}
	for _, n := range []string{"visa", "MVTec2", " realiad "} {
		if _, err := ParseFormat(n); err != nil {
			t.Errorf("ParseFormat(%q): %v", n, err)
		}
	}
	if _, err := ParseFormat("mpdd"); err == nil || !strings.Contains(err.Error(), "visa, mvtec2, realiad, or auto") {
		t.Errorf("ParseFormat(mpdd): %v", err)
	}
}
