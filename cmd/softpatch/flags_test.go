package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerbFlags reads each verb's -h output: a verb lists the flags that
// apply to it and no others (PaDiM's channel draw only where PaDiM can be
// fitted), and the removed demo verb is unknown.
func TestVerbFlags(t *testing.T) {
	bin := filepath.Join(softpatchDir(t, t.TempDir()), "softpatch")
	help := func(args ...string) string {
		out, _ := exec.Command(bin, args...).CombinedOutput()
		return string(out)
	}
	for _, c := range []struct {
		args  []string
		padim bool
	}{
		{[]string{"eval", "-h"}, true},
		{[]string{"fit", "-h"}, true},
		{[]string{"embed", "-h"}, false},
		{[]string{"bench", "features", "-h"}, false},
	} {
		out := help(c.args...)
		if !strings.Contains(out, "-imagesize") {
			t.Errorf("softpatch %s: no flag list in\n%s", strings.Join(c.args, " "), out)
		}
		for _, f := range []string{"-padim-channels", "-padim-seed"} {
			if strings.Contains(out, f) != c.padim {
				t.Errorf("softpatch %s: lists %s: %v, want %v", strings.Join(c.args, " "), f, !c.padim, c.padim)
			}
		}
	}
	if out := help("demo", "-h"); !strings.Contains(out, `unknown verb "demo"`) {
		t.Errorf("softpatch demo -h: %s", out)
	}
}
