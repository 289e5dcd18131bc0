package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestWeightsInspectErrors(t *testing.T) {
	for _, c := range []struct {
		file, want string
	}{
		{filepath.Join(golden, "narrow_wrn50_2_zip.pth"), "matches no known architecture"},
		{filepath.Join(golden, "manifest.json"), "not a torch checkpoint"},
		{filepath.Join(golden, "missing.pth"), "not found"},
	} {
		err := runWeights([]string{"inspect", c.file})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), filepath.Base(c.file)) {
			t.Errorf("%s: error %v, want one naming the file and saying %q", c.file, err, c.want)
		}
	}
}
