package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"image"
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
