package datasets

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// writeMask writes a w x h mask at root/rel: an 8-bit gray PNG, or with
// pal a palette PNG (index 0 black, the others red), whose value (gray
// level or palette index) is v inside the rectangle r and 0 elsewhere.
func writeMask(t *testing.T, root, rel string, w, h int, r image.Rectangle, v uint8, pal bool) string {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	var img image.Image
	if pal {
		palette := color.Palette{color.Black}
		for range 255 {
			palette = append(palette, color.RGBA{255, 0, 0, 255})
		}
		m := image.NewPaletted(image.Rect(0, 0, w, h), palette)
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				m.SetColorIndex(x, y, v)
			}
		}
		img = m
	} else {
		m := image.NewGray(image.Rect(0, 0, w, h))
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				m.SetGray(x, y, color.Gray{Y: v})
			}
		}
		img = m
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeText writes a text file at root/rel, creating folders.
func writeText(t *testing.T, root, rel, text string) string {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// visaCSV is the split of visaTree, rows in no particular order as in the
// release, with another object's rows.
const visaCSV = `object,split,label,image,mask
candle,train,normal,candle/Data/Images/Normal/0002.JPG,
pcb1,train,normal,pcb1/Data/Images/Normal/0000.JPG,
candle,test,anomaly,candle/Data/Images/Anomaly/001.JPG,candle/Data/Images/../Masks/Anomaly/001.png
candle,train,normal,candle/Data/Images/Normal/0000.JPG,
candle,test,normal,candle/Data/Images/Normal/0003.JPG,
candle,test,anomaly,candle/Data/Images/Anomaly/000.JPG,candle/Data/Masks/Anomaly/000.png
candle,train,normal,candle/Data/Images/Normal/0001.JPG,
pcb1,test,normal,pcb1/Data/Images/Normal/0001.JPG,
`

// visaTree writes a small VisA release: class candle (3 train, 1 normal
// and 2 anomalous test images, 12x8 JPEGs, masks marking defects with 1
// and 2) and pcb1, the split CSV and candle's image_anno.csv naming one
// defect.
func visaTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range []string{"Normal/0000", "Normal/0001", "Normal/0002", "Normal/0003", "Anomaly/000", "Anomaly/001"} {
		writeImage(t, root, "candle/Data/Images/"+f+".JPG", 12, 8)
	}
	writeMask(t, root, "candle/Data/Masks/Anomaly/000.png", 12, 8, image.Rect(2, 2, 6, 6), 1, false)
	writeMask(t, root, "candle/Data/Masks/Anomaly/001.png", 12, 8, image.Rect(4, 0, 12, 8), 2, true)
	writeImage(t, root, "pcb1/Data/Images/Normal/0000.JPG", 12, 8)
	writeImage(t, root, "pcb1/Data/Images/Normal/0001.JPG", 12, 8)
	writeText(t, root, "split_csv/1cls.csv", visaCSV)
	writeText(t, root, "candle/image_anno.csv", "image,label,mask\n"+
		"candle/Data/Images/Normal/0000.JPG,normal,\n"+
		"candle/Data/Images/Anomaly/000.JPG,\"chunk of wax missing, wax melded out\",candle/Data/Masks/Anomaly/000.png\n")
	return root
}

func TestLoadVisA(t *testing.T) {
	root := visaTree(t)
	if cl, err := Classes(root, Layout{}); err != nil || !reflect.DeepEqual(cl, []string{"candle", "pcb1"}) {
		t.Fatalf("Classes = %v, %v (split_csv must not be a class)", cl, err)
	}
	c, err := Load(root, "candle", Layout{}, LoadOptions{Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.Format != FormatVisA || c.Normal != "normal" || len(c.Warnings) != 0 {
		t.Errorf("format %q normal %q warnings %v", c.Format, c.Normal, c.Warnings)
	}
	if got, want := rels(root, c.Train), []string{"candle/Data/Images/Normal/0000.JPG", "candle/Data/Images/Normal/0001.JPG", "candle/Data/Images/Normal/0002.JPG"}; !reflect.DeepEqual(got, want) {
		t.Errorf("train %v, want %v", got, want)
	}
	want := []string{"candle/Data/Images/Anomaly/000.JPG", "candle/Data/Images/Anomaly/001.JPG", "candle/Data/Images/Normal/0003.JPG"}
	if got := rels(root, c.Test); !reflect.DeepEqual(got, want) {
		t.Errorf("test %v, want %v", got, want)
	}
	types := []string{"chunk of wax missing, wax melded out", VisAAnomaly, VisANormal}
	for i, it := range c.Test {
		if it.Type != types[i] || it.Anomalous != (i < 2) || !it.MaskNonZero || it.Split != "test" || it.Width != 12 || it.Height != 8 {
			t.Errorf("test[%d] = %+v", i, it)
		}
	}
	if m := c.Test[1].MaskPath; m != filepath.Join(root, "candle", "Data", "Masks", "Anomaly", "001.png") {
		t.Errorf("mask path %s", m)
	}

	// The masks' small values are defects by the item's rule, not by
	// MVTec AD's.
	p := Preprocess{Resize: 8, ImageSize: 8}
	for _, it := range c.Test[:2] {
		m, err := p.LoadItemMask(it)
		if err != nil {
			t.Fatal(err)
		}
		if n := count1(m); n == 0 {
			t.Errorf("%s: no defect pixel by the non-zero rule", it.MaskPath)
		}
		if m, _ := p.LoadMask(it.MaskPath); count1(m) != 0 {
			t.Errorf("%s: LoadMask changed: %d defect pixels", it.MaskPath, count1(m))
		}
	}
	if _, err := p.LoadItemMask(c.Test[2]); err == nil {
		t.Error("LoadItemMask of a normal image: no error")
	}

	// The summary names the defects; an all-zero mask is a warning under
	// Verify, not a problem.
	s := Summarize(c)
	if s.TrainNormals != 3 || s.TestNormals != 1 || s.TestAnomalies[VisAAnomaly] != 1 || s.Masks != 2 || s.Sizes["12x8"] != 6 {
		t.Errorf("summary %+v", s)
	}
	writeMask(t, root, "candle/Data/Masks/Anomaly/000.png", 12, 8, image.Rectangle{}, 0, false)
	c, err = Load(root, "candle", Layout{Format: FormatVisA}, LoadOptions{Verify: true})
	if err != nil || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0].Reason, "every pixel is 0") || len(c.Test) != 3 {
		t.Errorf("empty mask: %v, warnings %v", err, c.Warnings)
	}

	// Without image_anno.csv the anomalies are "anomaly"; a custom split
	// file is read instead of the release's.
	os.Remove(filepath.Join(root, "candle", "image_anno.csv"))
	custom := writeText(t, t.TempDir(), "mine.csv", "image,mask,object,label,split\n"+
		"candle/Data/Images/Normal/0000.JPG,,candle,normal,train\n"+
		"candle/Data/Images/Anomaly/000.JPG,,candle,anomaly,train\n"+
		"candle/Data/Images/Anomaly/001.JPG,candle/Data/Masks/Anomaly/001.png,candle,anomaly,test\n")
	c, err = Load(root, "candle", Layout{Format: FormatVisA, SplitFile: custom}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Train) != 2 || !c.Train[0].Anomalous || c.Train[0].Type != VisAAnomaly || c.Train[1].Anomalous || len(c.Test) != 1 {
		t.Errorf("custom split: train %+v test %+v", c.Train, c.Test)
	}
}

// count1 counts the ones of a mask.
func count1(m []uint8) int {
	n := 0
	for _, v := range m {
		n += int(v)
	}
	return n
}

// TestLoadMaskNonZeroMatchesBinarisedCopy checks that LoadMaskNonZero on
// a VisA-style mask (gray levels or palette indices 1, 2, ...) gives what
// LoadMask gives on its 0/255 copy, in both resize modes.
func TestLoadMaskNonZeroMatchesBinarisedCopy(t *testing.T) {
	dir := t.TempDir()
	r := image.Rect(3, 2, 11, 7)
	copy255 := writeMask(t, dir, "copy.png", 14, 9, r, 255, false)
	for _, pal := range []bool{false, true} {
		for _, v := range []uint8{1, 7, 255} {
			src := writeMask(t, dir, "src.png", 14, 9, r, v, pal)
			for _, p := range []Preprocess{{Resize: 10, ImageSize: 8}, {ImageSize: 6, Mode: ResizeSquare}, {Resize: 9, ImageSize: 9}} {
				got, err := p.LoadMaskNonZero(src)
				if err != nil {
					t.Fatal(err)
				}
				want, err := p.LoadMask(copy255)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) || count1(want) == 0 {
					t.Errorf("palette %v value %d %+v: got %v want %v", pal, v, p, got, want)
				}
			}
		}
	}
	if _, err := DefaultPreprocess().LoadMaskNonZero(filepath.Join(dir, "none.png")); err == nil || !strings.Contains(err.Error(), "none.png") {
		t.Errorf("missing mask: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "bad.png"), []byte("\x89PNG\r\n\x1a\nxx"), 0o644)
	if _, err := DefaultPreprocess().LoadMaskNonZero(filepath.Join(dir, "bad.png")); err == nil || !strings.Contains(err.Error(), "bad.png") {
		t.Errorf("bad mask: %v", err)
	}
}

func TestLoadVisAErrors(t *testing.T) {
	csvPath := func(root string) string { return filepath.Join(root, "split_csv", "1cls.csv") }
	replace := func(old, new string) func(root string) {
		return func(root string) {
			writeText(t, root, "split_csv/1cls.csv", strings.Replace(visaCSV, old, new, 1))
		}
	}
	cases := []struct {
		name  string
		setup func(root string)
		path  func(root string) string // the path the error starts with
		msg   string
		skip  bool // SkipBad turns it into a Problem
	}{
		{"no csv", func(r string) { os.Remove(csvPath(r)) }, csvPath, "VisA split CSV not found", false},
		{"missing column", replace("object,split,label,image,mask", "object,split,label,image"),
			func(r string) string { return csvPath(r) + ":1" }, "missing column mask", false},
		{"wrong field count", replace("candle,test,normal,candle/Data/Images/Normal/0003.JPG,", "candle,test,normal"),
			csvPath, "record on line 6: wrong number of fields", false},
		{"bad split", replace("candle,test,normal,", "candle,val,normal,"), func(r string) string { return csvPath(r) + ":6" }, `split "val"`, false},
		{"bad label", replace("candle,test,normal,", "candle,test,good,"), func(r string) string { return csvPath(r) + ":6" }, `label "good"`, false},
		{"escaping path", replace("candle/Data/Images/Normal/0003.JPG", "../0003.JPG"), func(r string) string { return csvPath(r) + ":6" }, "leaves the dataset root", false},
		{"listed twice", replace("Normal/0001.JPG,\npcb1", "Normal/0002.JPG,\npcb1"), func(r string) string { return csvPath(r) + ":8" }, "already listed on line 2", false},
		{"class not in csv", func(r string) { writeImage(t, r, "fryum/Data/Images/Normal/0.JPG", 12, 8) }, csvPath, `class "fryum" not in the split file (objects: candle, pcb1)`, false},
		{"missing image", func(r string) { os.Remove(filepath.Join(r, "candle/Data/Images/Normal/0003.JPG")) },
			func(r string) string { return filepath.Join(r, "candle/Data/Images/Normal/0003.JPG") }, "not found (listed on @ line 6)", true},
		{"anomaly without mask", replace(",candle/Data/Masks/Anomaly/000.png", ","),
			func(r string) string { return filepath.Join(r, "candle/Data/Images/Anomaly/000.JPG") }, "anomalous image without mask (@ line 7 names none)", true},
		{"missing mask", func(r string) { os.Remove(filepath.Join(r, "candle/Data/Masks/Anomaly/000.png")) },
			func(r string) string { return filepath.Join(r, "candle/Data/Masks/Anomaly/000.png") }, "mask not found (listed on @ line 7)", true},
		{"mask size", func(r string) {
			writeMask(t, r, "candle/Data/Masks/Anomaly/000.png", 10, 8, image.Rect(0, 0, 2, 2), 1, false)
		}, func(r string) string { return filepath.Join(r, "candle/Data/Masks/Anomaly/000.png") }, "mask is 10x8 but its image", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := visaTree(t)
			c.setup(root)
			class := "candle"
			if c.name == "class not in csv" {
				class = "fryum"
			}
			msg := strings.ReplaceAll(c.msg, "@", csvPath(root))
			_, err := Load(root, class, Layout{Format: FormatVisA}, LoadOptions{})
			if err == nil || !strings.HasPrefix(err.Error(), "datasets: "+c.path(root)) || !strings.Contains(err.Error(), msg) {
				t.Fatalf("error %v, want %s ... %q", err, c.path(root), msg)
			}
			if !c.skip {
				return
			}
			cl, err := Load(root, class, Layout{Format: FormatVisA}, LoadOptions{SkipBad: true})
			if err != nil || len(cl.Problems) != 1 || cl.Problems[0].Path != c.path(root) || len(cl.Train)+len(cl.Test) != 5 {
				t.Fatalf("SkipBad: %v, problems %+v", err, cl)
			}
		})
	}
	// A malformed image_anno.csv header is a warning; the class loads.
	root := visaTree(t)
	writeText(t, root, "candle/image_anno.csv", "file,defect\nx,y\n")
	c, err := Load(root, "candle", Layout{}, LoadOptions{})
	if err != nil || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0].Reason, "line 1: missing column image, label") {
		t.Errorf("bad image_anno.csv: %v %+v", err, c)
	}
}
