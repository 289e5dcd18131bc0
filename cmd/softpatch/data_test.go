package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/datasets"
)

// dataTree writes a tiny MVTec-style dataset: class "nut" with 10 train
// images, 2 good and 4 anomalous test images, and a class "bad" whose
// anomalous image lacks its mask.
func dataTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	write := func(rel string, w, h int) {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"00", "01", "02", "03", "04", "05", "06", "07", "08", "09"} {
		write("nut/train/good/"+f+".png", 12, 10)
	}
	write("nut/test/good/00.png", 12, 10)
	write("nut/test/good/01.png", 16, 10)
	for _, f := range []string{"scratch/00", "scratch/01", "bent/00", "bent/01"} {
		write("nut/test/"+f+".png", 12, 10)
		write("nut/ground_truth/"+f+"_mask.png", 12, 10)
	}
	write("bad/train/good/00.png", 8, 8)
	write("bad/test/good/00.png", 8, 8)
	write("bad/test/hole/00.png", 8, 8)
	return root
}

func TestDataInspect(t *testing.T) {
	root := dataTree(t)
	var out bytes.Buffer
	// The class "bad" has a problem: listed, and the exit status says so.
	if err := runDataTo(&out, []string{"inspect", "--data", root}); err == nil || !strings.Contains(err.Error(), "problems found: 1") {
		t.Fatalf("inspect with a problem: %v", err)
	}
	s := strings.Join(strings.Fields(out.String()), " ") // layout-independent
	for _, want := range []string{"class bad (mvtec", "problem: " + filepath.Join(root, "bad/test/hole/00.png") + ": anomalous image without mask",
		"class nut (mvtec", "train normals 10", "test anomalies 4", "bent 2", "masks found 4", "image sizes: 12x10 (15), 16x10 (1)"} {
		if !strings.Contains(s, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, s)
		}
	}
	out.Reset()
	if err := runDataTo(&out, []string{"inspect", "--data", root, "--class", "nut", "--json"}); err != nil {
		t.Fatal(err)
	}
	var sum []datasets.Summary
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil || len(sum) != 1 {
		t.Fatalf("json: %v\n%s", err, out.String())
	}
	if c := sum[0]; c.TrainNormals != 10 || c.TestNormals != 2 || c.TestAnomalies["scratch"] != 2 || c.Masks != 4 || c.Sizes["16x10"] != 1 {
		t.Errorf("summary %+v", c)
	}
	if err := runDataTo(&out, []string{"inspect", "--data", root, "--class", "bolt"}); err == nil || !strings.Contains(err.Error(), "classes: bad, nut") {
		t.Errorf("missing class: %v", err)
	}
}

func TestDataSplit(t *testing.T) {
	root := dataTree(t)
	list := filepath.Join(t.TempDir(), "noise.json")
	var out bytes.Buffer
	args := []string{"split", "--data", root, "--class", "nut", "--noise", "0.2", "--fold", "1", "--json", "--write-noise-list", list}
	if err := runDataTo(&out, args); err != nil {
		t.Fatal(err)
	}
	var res splitResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Drawn) != 2 || len(res.Train) != 12 || len(res.Test) != 4 || res.Train[10] != res.Drawn[0] {
		t.Fatalf("split %+v", res)
	}
	for _, d := range res.Drawn {
		for _, x := range res.Test {
			if x == d {
				t.Errorf("drawn %s still in test without --overlap", d)
			}
		}
	}
	// The written list reproduces the draw, with overlap keeping test whole.
	out.Reset()
	if err := runDataTo(&out, []string{"split", "--data", root, "--class", "nut", "--noise-list", list, "--overlap", "--json"}); err != nil {
		t.Fatal(err)
	}
	var res2 splitResult
	json.Unmarshal(out.Bytes(), &res2)
	if strings.Join(res2.Drawn, ",") != strings.Join(res.Drawn, ",") || len(res2.Test) != 6 {
		t.Errorf("from list: %+v", res2)
	}
	// Human output.
	out.Reset()
	if err := runDataTo(&out, []string{"split", "--data", root, "--class", "nut", "--noise", "0.2", "--fold", "1"}); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "train: 12 (10 clean + 2 drawn)") || !strings.Contains(s, res.Drawn[0]+"  [noise]") || !strings.Contains(s, "test: 4") {
		t.Errorf("human output:\n%s", s)
	}
	if err := runDataTo(&out, []string{"split", "--data", root, "--class", "bad"}); err == nil || !strings.Contains(err.Error(), "without mask") {
		t.Errorf("bad class: %v", err)
	}
	if err := runDataTo(&out, []string{"split", "--data", root, "--class", "bad", "--skip-bad"}); err != nil {
		t.Errorf("--skip-bad: %v", err)
	}
	if err := runDataTo(&out, []string{"frobnicate"}); err == nil || errors.Is(err, flag.ErrHelp) {
		t.Errorf("unknown sub-verb: %v", err)
	}
}

// Where the ratio asks for as many anomalous images as the class has or
// more, data split says what the draw did: capped without --overlap,
// resampled with it, and the JSON records it.
func TestDataSplitCappedResampled(t *testing.T) {
	root := dataTree(t) // nut: 10 training images, A = 4 anomalous test images
	split := func(args ...string) (splitResult, string) {
		t.Helper()
		var out bytes.Buffer
		if err := runDataTo(&out, append([]string{"split", "--data", root, "--class", "nut", "--json"}, args...)); err != nil {
			t.Fatal(err)
		}
		var res splitResult
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		out.Reset()
		if err := runDataTo(&out, append([]string{"split", "--data", root, "--class", "nut"}, args...)); err != nil {
			t.Fatal(err)
		}
		return res, out.String()
	}
	// --noise 0.5: k = floor(0.5 * 10) = 5 >= A = 4, so without overlap
	// the draw is capped at A - NoiseReserve(4) = 4 - max(1, ceil(0.4)) = 3
	// images, keeping 1 anomalous (and the 2 good) in the test set; the
	// JSON records the 5 asked for.
	res, text := split("--noise", "0.5")
	if len(res.Drawn) != 3 || len(res.Train) != 13 || len(res.Test) != 3 || res.Noise.Requested != 5 || res.Noise.Resampled != 0 {
		t.Errorf("capped: drawn %d train %d test %d noise %+v", len(res.Drawn), len(res.Train), len(res.Test), res.Noise)
	}
	for _, want := range []string{"asked for 5 anomalous images, the class has 4: injected 3, kept 1 in the test set", "train: 13 (10 clean + 3 drawn)"} {
		if !strings.Contains(text, want) {
			t.Errorf("capped: output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "resampled") {
		t.Errorf("capped: output speaks of resampling:\n%s", text)
	}
	// --noise 0.75 --overlap: k = floor(7.5) = 7 > A = 4, so every
	// anomalous image is injected once and 7 - 4 = 3 resampled copies,
	// each with its small affine, follow; the test set stays whole (6).
	res, text = split("--noise", "0.75", "--overlap")
	if len(res.Drawn) != 7 || len(res.Train) != 17 || len(res.Test) != 6 || res.Noise.Resampled != 3 || res.Noise.Requested != 0 {
		t.Errorf("resampled: drawn %d train %d test %d noise %+v", len(res.Drawn), len(res.Train), len(res.Test), res.Noise)
	}
	for _, want := range []string{"asked for 7 anomalous images, the class has 4: injected each once and 3 resampled copies with a small affine",
		"train: 17 (10 clean + 7 drawn)"} {
		if !strings.Contains(text, want) {
			t.Errorf("resampled: output lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "[noise, affine: "); n != 3 || strings.Contains(text, "kept") {
		t.Errorf("resampled: %d copies marked with an affine, want 3:\n%s", n, text)
	}
	// Below A neither is said, and the JSON carries no record.
	res, text = split("--noise", "0.3")
	if len(res.Drawn) != 3 || res.Noise.Requested != 0 || res.Noise.Resampled != 0 || strings.Contains(text, "asked for") {
		t.Errorf("below A: %+v\n%s", res.Noise, text)
	}
}

// writeGray writes a w x h gray PNG (or JPEG, by extension) at root/rel
// whose every pixel is v, creating folders.
func writeGray(t *testing.T, root, rel string, w, h int, v uint8) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = v
	}
	var buf bytes.Buffer
	var err error
	if strings.HasSuffix(strings.ToLower(p), ".jpg") {
		err = jpeg.Encode(&buf, img, nil)
	} else {
		err = png.Encode(&buf, img)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, root, rel, text string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// inspect runs data inspect and returns its output with the spacing
// collapsed.
func inspect(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := runDataTo(&out, append([]string{"inspect"}, args...))
	return strings.Join(strings.Fields(out.String()), " "), err
}

func TestDataInspectVisA(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"Normal/0", "Normal/1", "Normal/2", "Anomaly/0"} {
		writeGray(t, root, "candle/Data/Images/"+f+".JPG", 15, 10, 128)
	}
	writeGray(t, root, "candle/Data/Masks/Anomaly/0.png", 15, 10, 1) // VisA's small values
	writeFile(t, root, "split_csv/1cls.csv", "object,split,label,image,mask\n"+
		"candle,train,normal,candle/Data/Images/Normal/1.JPG,\n"+
		"candle,train,normal,candle/Data/Images/Normal/0.JPG,\n"+
		"candle,test,normal,candle/Data/Images/Normal/2.JPG,\n"+
		"candle,test,anomaly,candle/Data/Images/Anomaly/0.JPG,candle/Data/Masks/Anomaly/0.png\n")
	s, err := inspect(t, "--data", root)
	if err != nil {
		t.Fatalf("%v\n%s", err, s)
	}
	for _, want := range []string{`class candle (visa, normal "normal")`, "train normals 2", "test normals 1", "test anomalies 1 anomaly 1",
		"masks found 1", "problems 0", "image sizes: 15x10 (4)"} {
		if !strings.Contains(s, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "warning") {
		t.Errorf("a VisA mask of 1s warned about:\n%s", s)
	}
	// The same mask read with MVTec AD's rule marks nothing: a warning.
	writeGray(t, root, "mv/a/train/good/0.png", 15, 10, 9)
	writeGray(t, root, "mv/a/test/cut/0.png", 15, 10, 9)
	writeGray(t, root, "mv/a/ground_truth/cut/0_mask.png", 15, 10, 1)
	if s, err = inspect(t, "--data", filepath.Join(root, "mv")); err != nil || !strings.Contains(s, "warnings 1") ||
		!strings.Contains(s, "0_mask.png: mask marks no defect: no pixel is 255 (largest value 1)") {
		t.Errorf("mvtec mask of 1s: %v\n%s", err, s)
	}
	// Bad input names the file and line.
	writeFile(t, root, "split_csv/1cls.csv", "object,split,image,mask\n")
	if _, err := inspect(t, "--data", root, "--class", "candle"); err == nil || !strings.Contains(err.Error(), filepath.Join(root, "split_csv", "1cls.csv")+":1: missing column label") {
		t.Errorf("bad CSV: %v", err)
	}
	if _, err := inspect(t, "--data", root, "--format", "mvtec", "--split-file", "x.csv"); err == nil || !strings.Contains(err.Error(), "a split file needs the visa or realiad format") {
		t.Errorf("--split-file with mvtec: %v", err)
	}
}

func TestDataInspectMVTec2(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"train/good/000", "train/good/001", "validation/good/100", "test_public/good/200", "test_public/bad/300",
		"test_private/400", "test_private_mixed/500", "test_private_mixed/501"} {
		writeGray(t, root, "can/"+f+".png", 12, 10, 100)
	}
	writeGray(t, root, "can/test_public/ground_truth/bad/300_mask.png", 12, 10, 255)
	s, err := inspect(t, "--data", root)
	if err != nil {
		t.Fatalf("%v\n%s", err, s)
	}
	for _, want := range []string{`class can (mvtec2, normal "good")`, "train normals 2", "validation normals 1", "test normals 1",
		"test anomalies 1 bad 1", "unlabeled (scored, not evaluated) 3 test_private 1 test_private_mixed 2", "masks found 1", "image sizes: 12x10 (8)"} {
		if !strings.Contains(s, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, s)
		}
	}
	var out bytes.Buffer
	if err := runDataTo(&out, []string{"inspect", "--data", root, "--json"}); err != nil {
		t.Fatal(err)
	}
	var sum []datasets.Summary
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil || len(sum) != 1 || sum[0].ValidationNormals != 1 || sum[0].Unlabeled["test_private_mixed"] != 2 {
		t.Errorf("json: %v %+v", err, sum)
	}
}

func TestDataInspectRealIAD(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "realiad_256")
	for _, f := range []string{"OK/S1/a_C1", "OK/S1/a_C2", "OK/S2/b_C1", "NG/BX/S3/c_C1", "NG/BX/S3/c_C2"} {
		writeGray(t, root, "usb/"+f+".jpg", 16, 16, 90)
	}
	writeGray(t, root, "usb/NG/BX/S3/c_C1.png", 16, 16, 255)
	writeGray(t, root, "usb/NG/BX/S3/c_C2.png", 16, 16, 255)
	sample := func(class, img, mask string) string {
		m := "null"
		if mask != "" {
			m = `"` + mask + `"`
		}
		return `{"category": "usb", "anomaly_class": "` + class + `", "image_path": "` + img + `", "mask_path": ` + m + `}`
	}
	writeFile(t, base, "realiad_jsons_fuiad_0.1/usb.json", `{"meta": {"prefix": "usb", "normal_class": "OK"},
 "train": [`+sample("OK", "OK/S1/a_C1.jpg", "")+`, `+sample("OK", "OK/S1/a_C2.jpg", "")+`, `+sample("BX", "NG/BX/S3/c_C1.jpg", "NG/BX/S3/c_C1.png")+`],
 "test": [`+sample("OK", "OK/S2/b_C1.jpg", "")+`, `+sample("BX", "NG/BX/S3/c_C2.jpg", "NG/BX/S3/c_C2.png")+`]}`)
	split := filepath.Join(base, "realiad_jsons_fuiad_0.1")
	if _, err := inspect(t, "--data", root); err == nil || !strings.Contains(err.Error(), "1 of 1 classes") {
		t.Errorf("without a split file: %v", err)
	}
	s, err := inspect(t, "--data", root, "--format", "realiad", "--split-file", split)
	if err != nil {
		t.Fatalf("%v\n%s", err, s)
	}
	for _, want := range []string{`class usb (realiad, normal "OK")`, "train normals 2", "train anomalies (from the split file) 1 BX 1",
		"test normals 1", "test anomalies 1 BX 1", "masks found 2"} {
		if !strings.Contains(s, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, s)
		}
	}
	var out bytes.Buffer
	if err := runDataTo(&out, []string{"split", "--data", root, "--class", "usb", "--split-file", split}); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "usb/NG/BX/S3/c_C1.jpg  [anomalous, from the split file]") || !strings.Contains(s, "train: 3 (2 clean + 1 anomalous from the split file + 0 drawn)") {
		t.Errorf("split output:\n%s", s)
	}
}
