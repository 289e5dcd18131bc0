package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSynthCommand(t *testing.T) {
	out := t.TempDir()
	args := []string{"--out", out, "--classes", "wood,nut", "--size", "48", "--train", "2", "--test-good", "1", "--test-defect", "3", "--seed", "5"}
	if err := runSynth(args); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"wood/train/good/001.png", "wood/test/good/000.png", "wood/test/color/000.png",
		"wood/ground_truth/color/000_mask.png", "nut/test/scratch/000.png", "nut/ground_truth/chip/000_mask.png"} {
		if _, err := os.Stat(filepath.Join(out, p)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "fabric")); !os.IsNotExist(err) {
		t.Error("wrote a class that was not asked for")
	}
	// A second run into the same folder is refused, naming the folder...
	err := runSynth(args)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(out, "wood")) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second run: %v, want a refusal naming %s", err, filepath.Join(out, "wood"))
	}
	// ... unless --force, which replaces it.
	stray := filepath.Join(out, "wood", "stray.txt")
	if err := os.WriteFile(stray, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runSynth(append(args, "--force")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Error("--force kept an old file")
	}
	for _, bad := range [][]string{
		{"--classes", "wood"},
		{"--out", out, "--classes", "bottle"},
		{"--out", out, "--train", "0"},
	} {
		if err := runSynth(bad); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}
