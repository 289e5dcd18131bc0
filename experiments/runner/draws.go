package runner

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/experiments"
)

// LoadDraws reads a draws file (experiments.ReadDraws) for a cell to
// replay. It puts the file's noise draw into noise
// (experiments.Draws.ReplayNoise: its files, which may repeat an image as
// resampled copies, its augmentation's affines, which turn the
// augmentation on, and its copies' affines) and returns the draws, for
// Cell.Replay and for Open's channels, with the record of the file for
// Cell.ReplayInfo. A noise draw in both the file and noise.Files is an
// error.
func LoadDraws(path string, noise *datasets.Noise) (*experiments.Draws, *experiments.DrawsInfo, error) {
	d, sum, err := experiments.ReadDraws(path)
	if err != nil {
		return nil, nil, err
	}
	if err := d.ReplayNoise(noise); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	info := &experiments.DrawsInfo{File: path, SHA256: sum, Replayed: d.Keys()}
	slog.Info("replaying draws", "file", path, "draws", info.Replayed)
	return d, info, nil
}

// DrawsPath is where eval and fit write a cell's draws: beside out, its
// ".json" replaced by ".draws.npz" (any other name gets ".draws.npz"
// appended).
func DrawsPath(out string) string {
	if stem, ok := strings.CutSuffix(out, ".json"); ok && stem != "" {
		return stem + ".draws.npz"
	}
	return out + ".draws.npz"
}
