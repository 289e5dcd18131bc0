package experiments

import (
	"strings"
	"testing"

	"github.com/softpatch/softpatch/engine/detector"
)

// stepsOptions are the settings of the test-only method "steps-test".
type stepsOptions struct {
	Steps int     `yaml:"steps" json:"steps"`
	Rate  float64 `yaml:"rate" json:"rate"`
}

func init() {
	detector.Register(detector.Method{Name: "steps-test", Order: 1000,
		Features: func(detector.FeatureSettings) (detector.FeatureSpec, error) { return detector.FeatureSpec{}, nil },
		New:      func(detector.Params) (detector.Detector, error) { return nil, nil },
		Options:  func() any { return &stepsOptions{Steps: 3, Rate: 0.5} }})
}

// TestMethodOptions checks that a method's own settings come from a
// top-level key named after it, over its defaults, with --set too, and
// that unknown keys in them are errors naming the line.
func TestMethodOptions(t *testing.T) {
	c, err := ParseConfig("q.yaml", []byte(quick+"steps-test:\n  steps: 7\n"), []string{"steps-test.rate=0.25"})
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := c.MethodOptions["steps-test"].(*stepsOptions); !ok || o.Steps != 7 || o.Rate != 0.25 {
		t.Errorf("options %#v", c.MethodOptions["steps-test"])
	}
	c, err = ParseConfig("q.yaml", []byte(quick), nil)
	if err != nil {
		t.Fatal(err)
	}
	if o := c.MethodOptions["steps-test"].(*stepsOptions); o.Steps != 3 || o.Rate != 0.5 {
		t.Errorf("defaults %#v", o)
	}
	_, err = ParseConfig("q.yaml", []byte(quick+"steps-test:\n  stpes: 7\n"), nil)
	if err == nil || !strings.Contains(err.Error(), `unknown key "stpes"`) || !strings.Contains(err.Error(), "q.yaml:") {
		t.Errorf("misspelt option: %v", err)
	}
	_, err = ParseConfig("q.yaml", []byte(quick+"cflwo: {}\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "steps-test") {
		t.Errorf("unknown top-level key: %v", err)
	}
}
