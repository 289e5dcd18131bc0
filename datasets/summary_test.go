package datasets

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"
)

// TestSummarize summarises a small MVTec class, one with a skipped file,
// and checks the JSON names of the summary.
func TestSummarize(t *testing.T) {
	root := mvtecTree(t)
	writeImage(t, root, "bottle/test/good/002.png", 12, 10)
	c, err := Load(root, "bottle", Layout{}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := Summary{Class: "bottle", Format: FormatMVTec, Normal: "good", TrainNormals: 2, TestNormals: 3,
		TestAnomalies: map[string]int{"crack": 2, "broken": 1}, Masks: 3,
		Sizes: map[string]int{"8x8": 7, "12x10": 1}, Problems: []Problem{}}
	if got := Summarize(c); !reflect.DeepEqual(got, want) {
		t.Errorf("summary\n%+v\nwant\n%+v", got, want)
	}

	root = tree(t, "a/train/good/0.png", "a/test/good/0.png", "a/test/cut/1.png")
	c, err = Load(root, "a", Layout{}, LoadOptions{SkipBad: true})
	if err != nil {
		t.Fatal(err)
	}
	s := Summarize(c)
	if len(s.Problems) != 1 || s.Problems[0].Path != filepath.Join(root, "a", "test", "cut", "1.png") || len(s.TestAnomalies) != 0 || s.TestNormals != 1 {
		t.Errorf("summary with a skipped file %+v", s)
	}

	b, err := json.Marshal(Summary{Format: FormatBTAD})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != `{"class":"","format":"btad","normal":"","train_normals":0,"test_normals":0,"test_anomalies":null,"masks":0,"sizes":null,"problems":null}` {
		t.Errorf("json %s", got)
	}
}
