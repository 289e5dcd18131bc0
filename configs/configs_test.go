// Package configs holds the sweep configs; its test checks that each one
// decodes.
package configs

import (
	"path/filepath"
	"testing"

	_ "github.com/softpatch/softpatch/engine/cflow" // the configs name cflow
	"github.com/softpatch/softpatch/experiments"
)

func TestConfigsDecode(t *testing.T) {
	files, _ := filepath.Glob("*.yaml")
	more, _ := filepath.Glob("paper/*.yaml")
	files = append(files, more...)
	if len(files) < 4 {
		t.Fatalf("found %d configs", len(files))
	}
	for _, f := range files {
		c, err := experiments.LoadConfig(f, nil)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if c.Name == "" || len(experiments.Plan(c, []string{"x"})) == 0 {
			t.Errorf("%s: no name or no cells", f)
		}
	}
}
