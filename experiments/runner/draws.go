package runner

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/experiments"
)

// LoadDraws reads a draws file (experiments.ReadDraws) for a cell to
// replay. It puts the file's noise draw into noise (its files, and its
// affine draws, which turn the augmentation on) and returns the draws,
// for Cell.Replay and for Open's channels, with the record of the file for
// Cell.ReplayInfo. A noise draw in both the file and noise.Files is an
// error.
func LoadDraws(path string, noise *datasets.Noise) (*experiments.Draws, *experiments.DrawsInfo, error) {
	d, sum, err := experiments.ReadDraws(path)
	if err != nil {
		return nil, nil, err
	}
	if d.NoiseFiles != nil {
		if len(noise.Files) > 0 {
			return nil, nil, fmt.Errorf("%s: holds noise_files, and a noise list is given too: give one of them", path)
		}
		noise.Files = d.NoiseFiles
	}
	if d.Augment != nil {
		noise.Augment, noise.Affines = true, d.Augment
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
