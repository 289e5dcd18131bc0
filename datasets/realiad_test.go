package datasets

import (
	"encoding/json"
	"image"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// riSample is one sample of a split file as the release writes it.
func riSample(anomaly, img string, mask any) map[string]any {
	return map[string]any{"category": "audiojack", "anomaly_class": anomaly, "image_path": img, "mask_path": mask}
}

// realIADTree writes a small Real-IAD release under a new folder BASE:
// BASE/realiad_256/audiojack with 3 normal and 3 anomalous images (the
// masks 0/255), the plain split BASE/realiad_jsons/audiojack.json (all
// normal training) and a FUIAD one, BASE/realiad_jsons_fuiad_0.1, that
// moves one anomaly into training. It returns the image root
// BASE/realiad_256 and BASE.
func realIADTree(t *testing.T) (root, base string) {
	t.Helper()
	base = t.TempDir()
	root = filepath.Join(base, "realiad_256")
	ok := []string{"OK/S0001/audiojack_0001_OK_C1_20231021.jpg", "OK/S0001/audiojack_0001_OK_C2_20231021.jpg", "OK/S0002/audiojack_0002_OK_C1_20231022.jpg"}
	ng := []string{"NG/BX/S0003/audiojack_0003_NG_BX_C1_20231023", "NG/BX/S0003/audiojack_0003_NG_BX_C2_20231023", "NG/QS/S0004/audiojack_0004_NG_QS_C1_20231024"}
	for _, f := range ok {
		writeImage(t, root, "audiojack/"+f, 16, 16)
	}
	for _, f := range ng {
		writeImage(t, root, "audiojack/"+f+".jpg", 16, 16)
		writeMask(t, root, "audiojack/"+f+".png", 16, 16, image.Rect(4, 4, 12, 12), 255, false)
	}
	meta := map[string]any{"prefix": "audiojack", "normal_class": "OK", "pixel_mean": []float64{0.5}, "pixel_std": []float64{0.2}}
	plain := map[string]any{"meta": meta,
		"train": []any{riSample("OK", ok[1], nil), riSample("OK", ok[0], nil)},
		"test": []any{riSample("OK", ok[2], nil), riSample("BX", ng[0]+".jpg", ng[0]+".png"),
			riSample("BX", ng[1]+".jpg", ng[1]+".png"), riSample("QS", ng[2]+".jpg", ng[2]+".png")}}
	writeJSON(t, base, "realiad_jsons/audiojack.json", plain)
	fuiad := map[string]any{"meta": meta,
		"train": []any{riSample("OK", ok[0], nil), riSample("OK", ok[1], nil), riSample("BX", ng[0]+".jpg", ng[0]+".png")},
		"test": []any{riSample("OK", ok[2], nil), riSample("BX", ng[1]+".jpg", ng[1]+".png"),
			riSample("QS", ng[2]+".jpg", ng[2]+".png")}}
	writeJSON(t, base, "realiad_jsons_fuiad_0.1/audiojack.json", fuiad)
	return root, base
}

func writeJSON(t *testing.T, base, rel string, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return writeText(t, base, rel, string(b))
}

func TestLoadRealIAD(t *testing.T) {
	root, base := realIADTree(t)
	// The plain split is found beside the image folder.
	c, err := Load(root, "audiojack", Layout{}, LoadOptions{Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.Format != FormatRealIAD || c.Normal != "OK" || len(c.Warnings) != 0 {
		t.Errorf("format %q normal %q warnings %v", c.Format, c.Normal, c.Warnings)
	}
	if got, want := rels(root, c.Train), []string{"audiojack/OK/S0001/audiojack_0001_OK_C1_20231021.jpg", "audiojack/OK/S0001/audiojack_0001_OK_C2_20231021.jpg"}; !reflect.DeepEqual(got, want) {
		t.Errorf("train %v, want %v", got, want)
	}
	if got := rels(root, c.Test); len(got) != 4 || got[0] != "audiojack/NG/BX/S0003/audiojack_0003_NG_BX_C1_20231023.jpg" || got[3] != "audiojack/OK/S0002/audiojack_0002_OK_C1_20231022.jpg" {
		t.Errorf("test %v", got)
	}
	if it := c.Test[2]; it.Type != "QS" || !it.Anomalous || !strings.HasSuffix(it.MaskPath, filepath.FromSlash("S0004/audiojack_0004_NG_QS_C1_20231024.png")) || it.MaskNonZero {
		t.Errorf("anomalous item %+v", it)
	}
	if it := c.Test[3]; it.Type != "OK" || it.Anomalous || it.MaskPath != "" {
		t.Errorf("normal item %+v", it)
	}
	m, err := (Preprocess{Resize: 8, ImageSize: 8}).LoadItemMask(c.Test[0])
	if err != nil || count1(m) == 0 {
		t.Errorf("mask: %v, %d defect pixels", err, count1(m))
	}

	// A FUIAD file (given as its folder) puts an anomaly into training:
	// a training item the harness knows to be anomalous.
	c, err = Load(root, "audiojack", Layout{Format: FormatRealIAD, SplitFile: filepath.Join(base, "realiad_jsons_fuiad_0.1")}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Train) != 3 || !c.Train[0].Anomalous || c.Train[0].Type != "BX" || c.Train[0].Split != "train" || c.Train[0].MaskPath == "" || len(c.Test) != 3 {
		t.Errorf("FUIAD: train %+v test %+v", c.Train, c.Test)
	}
	s := Summarize(c)
	if s.TrainNormals != 2 || !reflect.DeepEqual(s.TrainAnomalies, map[string]int{"BX": 1}) || s.TestNormals != 1 || s.TestAnomalies["QS"] != 1 {
		t.Errorf("summary %+v", s)
	}
	in, err := c.Inject("realiad", Noise{})
	if err != nil || len(in.Train) != 3 || len(in.Drawn) != 0 || !in.Train[0].Anomalous {
		t.Errorf("Inject at ratio 0 keeps the file's contamination: %v %+v", err, in)
	}
}

func TestLoadRealIADErrors(t *testing.T) {
	file := func(base string) string { return filepath.Join(base, "realiad_jsons", "audiojack.json") }
	edit := func(f func(m map[string]any)) func(root, base string) {
		return func(root, base string) {
			var m map[string]any
			b, _ := os.ReadFile(file(base))
			json.Unmarshal(b, &m)
			f(m)
			writeJSON(t, base, "realiad_jsons/audiojack.json", m)
		}
	}
	inFile := func(root, base string) string { return file(base) }
	sample := func(m map[string]any, split string, i int) map[string]any {
		return m[split].([]any)[i].(map[string]any)
	}
	cases := []struct {
		name  string
		setup func(root, base string)
		path  func(root, base string) string
		msg   string
		skip  bool
	}{
		{"no split file", func(r, b string) { os.RemoveAll(filepath.Join(b, "realiad_jsons")) },
			func(r, b string) string { return filepath.Join(r, "audiojack") }, "no Real-IAD split file for class audiojack (looked for", false},
		{"invalid json", func(r, b string) {
			writeText(t, b, "realiad_jsons/audiojack.json", "{\n \"meta\": {},\n \"train\": [,]\n}")
		},
			func(r, b string) string { return file(b) + ":3" }, "invalid split file: invalid character ','", false},
		{"wrong type", func(r, b string) {
			writeText(t, b, "realiad_jsons/audiojack.json", "{\n \"meta\": {},\n\n \"train\": {}}")
		},
			func(r, b string) string { return file(b) + ":4" }, "invalid split file", false},
		{"no test", edit(func(m map[string]any) { delete(m, "test") }), inFile, `not a Real-IAD split file: no "test"`, false},
		{"no image_path", edit(func(m map[string]any) { delete(sample(m, "test", 1), "image_path") }), inFile, "test[1]: no image_path", false},
		{"escaping path", edit(func(m map[string]any) { sample(m, "train", 0)["image_path"] = "../x.jpg" }), inFile, `train[0]: image_path "../x.jpg" leaves the class folder`, false},
		{"listed twice", edit(func(m map[string]any) { sample(m, "test", 0)["image_path"] = sample(m, "train", 1)["image_path"] }), inFile, "test[0]: image OK/S0001/audiojack_0001_OK_C1_20231021.jpg already listed as train[1]", false},
		{"other class", edit(func(m map[string]any) { m["meta"].(map[string]any)["prefix"] = "zipper/" }), inFile, `meta.prefix "zipper/" names another class than audiojack`, false},
		{"missing image", func(r, b string) { os.Remove(filepath.Join(r, "audiojack/OK/S0002/audiojack_0002_OK_C1_20231022.jpg")) },
			func(r, b string) string {
				return filepath.Join(r, "audiojack/OK/S0002/audiojack_0002_OK_C1_20231022.jpg")
			}, "image not found (listed in @ test[0])", true},
		{"anomaly without mask", edit(func(m map[string]any) { sample(m, "test", 3)["mask_path"] = nil }),
			func(r, b string) string {
				return filepath.Join(r, "audiojack/NG/QS/S0004/audiojack_0004_NG_QS_C1_20231024.jpg")
			}, "anomalous image without mask (@ test[3] has no mask_path)", true},
		{"mask size", func(r, b string) {
			writeMask(t, r, "audiojack/NG/BX/S0003/audiojack_0003_NG_BX_C1_20231023.png", 16, 15, image.Rect(0, 0, 1, 1), 255, false)
		}, func(r, b string) string {
			return filepath.Join(r, "audiojack/NG/BX/S0003/audiojack_0003_NG_BX_C1_20231023.png")
		}, "mask is 16x15 but its image", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root, base := realIADTree(t)
			c.setup(root, base)
			msg := strings.ReplaceAll(c.msg, "@", file(base))
			_, err := Load(root, "audiojack", Layout{Format: FormatRealIAD}, LoadOptions{})
			if err == nil || !strings.HasPrefix(err.Error(), "datasets: "+c.path(root, base)) || !strings.Contains(err.Error(), msg) {
				t.Fatalf("error %v, want %s ... %q", err, c.path(root, base), msg)
			}
			if c.skip {
				cl, err := Load(root, "audiojack", Layout{Format: FormatRealIAD}, LoadOptions{SkipBad: true})
				if err != nil || len(cl.Problems) != 1 || cl.Problems[0].Path != c.path(root, base) || len(cl.Train)+len(cl.Test) != 5 {
					t.Fatalf("SkipBad: %v %+v", err, cl)
				}
			}
		})
	}
	root, base := realIADTree(t)
	if _, err := Load(root, "audiojack", Layout{Format: FormatRealIAD, SplitFile: filepath.Join(base, "none.json")}, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "none.json: Real-IAD split file not found") {
		t.Errorf("missing split file: %v", err)
	}
}
