package detector

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/engine/knn"

	"github.com/softpatch/softpatch/engine/coreset"
	"github.com/softpatch/softpatch/engine/denoise"
)

// TestFitterStreams checks that a Fitter given the images a few at a time,
// with the full features spilled to a temporary file, builds exactly the
// model Fit builds from all the features at once, for every method and
// for features that are already 128-d.
func TestFitterStreams(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, d := range []int{24, 128} {
		const nImg, pos = 12, 9
		feats, _ := plantedFeats(r, nImg, pos, d)
		for _, cfg := range []Config{
			{Coreset: 0.2, Seed: 3},
			{Random: true, Coreset: 0.2, Seed: 3},
			{Coreset: 0.2, Threshold: 0.15, Discriminator: denoise.LOF, LOFK: 5, SoftWeight: true, Seed: 3},
			{Coreset: 0.2, Threshold: 0.1, Discriminator: denoise.Gaussian, Seed: 4},
		} {
			want, err := Fit(cfg, feats, nImg, pos, d)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			// Room for two images in memory: all spill.
			f, err := NewFitter(cfg, nImg, pos, d, FitterOptions{MaxMemory: int64(2 * pos * d * 4), TempDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			per := pos * d
			for lo := 0; lo < nImg; {
				k := min(1+lo%3, nImg-lo)
				if err := f.Add(feats[lo*per:(lo+k)*per], k); err != nil {
					t.Fatal(err)
				}
				if left, _ := os.ReadDir(dir); len(left) != 0 {
					t.Fatalf("spill file visible in the temporary directory (not unlinked)")
				}
				lo += k
			}
			if err := f.Discriminate(); err != nil {
				t.Fatal(err)
			}
			got, err := f.Fit()
			if err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("random=%t/%s", cfg.Random, cfg.Discriminator.Name())
			if !f.Spilled() {
				t.Errorf("%s d=%d: features not spilled", name, d)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("%s d=%d: %d files left in the temporary directory", name, d, len(left))
			}
			if !slices.Equal(got.Indices, want.Indices) || !slices.Equal(got.Bank, want.Bank) ||
				!slices.Equal(got.Weights, want.Weights) || got.ScoreThreshold != want.ScoreThreshold ||
				got.Excluded != want.Excluded || got.N != want.N {
				t.Errorf("%s d=%d: streamed model differs from Fit's (indices %v vs %v)", name, d, got.Indices, want.Indices)
			}
		}
	}
}

func TestFitterErrors(t *testing.T) {
	cfg := Config{Coreset: 0.5}
	if _, err := NewFitter(cfg, 0, 4, 8, FitterOptions{}); err == nil {
		t.Error("zero images accepted")
	}
	if _, err := NewFitter(Config{Random: true, Discriminator: denoise.Nearest, Coreset: 0.5}, 2, 4, 8, FitterOptions{}); err == nil || !strings.Contains(err.Error(), "random") {
		t.Errorf("random bank with a discriminator: %v", err)
	}
	if _, err := NewFitter(cfg, 2, 4, 8, FitterOptions{MaxMemory: 1, TempDir: "/nonexistent/dir"}); err != nil {
		t.Fatal(err)
	}
	f, _ := NewFitter(cfg, 2, 4, 8, FitterOptions{MaxMemory: 1, TempDir: "/nonexistent/dir"})
	if err := f.Add(make([]float32, 32), 1); err == nil || !strings.Contains(err.Error(), "spilling") {
		t.Errorf("unwritable spill directory: %v", err)
	}
	f.Close()

	f, _ = NewFitter(cfg, 2, 4, 8, FitterOptions{})
	if err := f.Add(make([]float32, 31), 1); err == nil {
		t.Error("short features accepted")
	}
	if err := f.Add(make([]float32, 32*3), 3); err == nil {
		t.Error("more images than declared accepted")
	}
	if err := f.Add(make([]float32, 32), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Fit(); err == nil || !strings.Contains(err.Error(), "1 of 2") {
		t.Errorf("fit with an image missing: %v", err)
	}
	if err := f.Add(make([]float32, 32), 1); err == nil {
		t.Error("Add after Fit accepted")
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	// SoftPatch needs two images; a failed discriminator stays failed.
	sp := Config{Coreset: 0.5, Threshold: 0.1, Discriminator: denoise.LOF, SoftWeight: true}
	if _, err := NewFitter(sp, 1, 4, 8, FitterOptions{}); err == nil || !strings.Contains(err.Error(), "at least 2") {
		t.Errorf("one image: %v", err)
	}
	f, _ = NewFitter(sp, 2, 4, 8, FitterOptions{})
	f.Add(make([]float32, 64), 2)
	f.failed = errors.New("injected")
	if _, err := f.Fit(); err == nil || err.Error() != "injected" {
		t.Errorf("Fit after a failure: %v", err)
	}
	if err := f.Discriminate(); err == nil {
		t.Error("Discriminate after a failure accepted")
	}

	// A coreset that selects nothing is an error, not an empty bank.
	if _, err := Fit(Config{Coreset: 0.01}, make([]float32, 2*4*8), 2, 4, 8); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty coreset: %v", err)
	}
}

// TestFitterStreamsLarge covers projections big enough for the SGEMM to
// split its work across threads (3,000 rows): streamed in batches of 7
// images, the selection is Fit's.
func TestFitterStreamsLarge(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	const nImg, pos, d = 30, 100, 24
	feats, _ := plantedFeats(r, nImg, pos, d)
	cfg := Config{Coreset: 0.05, Threshold: 0.15, Discriminator: denoise.Nearest, SoftWeight: true, Seed: 5}
	want, err := Fit(cfg, feats, nImg, pos, d)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFitter(cfg, nImg, pos, d, FitterOptions{MaxMemory: 1, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	per := pos * d
	for lo := 0; lo < nImg; lo += 7 {
		hi := min(lo+7, nImg)
		if err := f.Add(feats[lo*per:hi*per], hi-lo); err != nil {
			t.Fatal(err)
		}
	}
	got, err := f.Fit()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Indices, want.Indices) || !slices.Equal(got.Bank, want.Bank) || !slices.Equal(got.Weights, want.Weights) {
		t.Error("streamed model differs from Fit's")
	}
}

// cpuAccel is a detector Accelerator that runs the CPU's code and counts
// the calls; short returns one score too few.
type cpuAccel struct {
	steps, scores    int
	searches, closed int
	short            bool
}

// Searcher is a CPU index that counts its searches and closes.
func (a *cpuAccel) Searcher(bank []float32, n, dim int) (Searcher, error) {
	return &accelSearcher{a: a, ix: knn.NewIndex(bank, n, dim)}, nil
}

type accelSearcher struct {
	a  *cpuAccel
	ix *knn.Index
}

func (s *accelSearcher) Search1(dist []float32, idx []int32, queries []float32, nq int, budget int64) error {
	s.a.searches++
	return s.ix.Search(dist, idx, queries, nq, 1, int(budget))
}

func (s *accelSearcher) Close() error { s.a.closed++; return nil }

func (a *cpuAccel) CoresetSteps(x []float32, dim int, init []float64, weights []float32, picks int) ([]int, error) {
	a.steps++
	return coreset.RunSteps(x, dim, init, weights, picks), nil
}

func (a *cpuAccel) NoiseScores(method denoise.Discriminator, feats []float32, n, p, d, k int) ([]float32, error) {
	a.scores++
	s, err := denoise.Scores(method, feats, n, p, d, k)
	if a.short {
		s = s[1:]
	}
	return s, err
}

// TestFitterAccelerator checks that a Fitter hands the discriminator and
// the coreset's selection to FitterOptions.Accelerator (once each), builds
// Fit's model from what it returns, and rejects a wrong number of scores.
func TestFitterAccelerator(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	const nImg, pos, d = 10, 9, 24
	feats, _ := plantedFeats(r, nImg, pos, d)
	cfg := Config{Coreset: 0.2, Threshold: 0.15, Discriminator: denoise.Nearest, SoftWeight: true, Seed: 3}
	want, err := Fit(cfg, feats, nImg, pos, d)
	if err != nil {
		t.Fatal(err)
	}
	for _, short := range []bool{false, true} {
		a := &cpuAccel{short: short}
		f, err := NewFitter(cfg, nImg, pos, d, FitterOptions{Accelerator: a})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Add(feats, nImg); err != nil {
			t.Fatal(err)
		}
		got, err := f.Fit()
		f.Close()
		if short {
			if err == nil || !strings.Contains(err.Error(), "scores") {
				t.Errorf("short scores: err = %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if a.steps != 1 || a.scores != 1 {
			t.Errorf("accelerator called %d times for the coreset, %d for the discriminator; want 1 and 1", a.steps, a.scores)
		}
		if !slices.Equal(got.Indices, want.Indices) || !slices.Equal(got.Weights, want.Weights) || got.Excluded != want.Excluded {
			t.Errorf("model differs from Fit's: indices %v vs %v", got.Indices, want.Indices)
		}
	}
}
