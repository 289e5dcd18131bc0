package detector

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/softpatch/softpatch/engine/denoise"
)

// fitDraws fits cfg on feats through a Fitter with draws d.
func fitDraws(t *testing.T, cfg Config, feats []float32, nImg, pos, dim int, d *Draws) (*Model, error) {
	t.Helper()
	f, err := NewFitter(cfg, nImg, pos, dim, FitterOptions{Draws: d})
	if err != nil {
		return nil, err
	}
	if err := f.Add(feats, nImg); err != nil {
		t.Fatal(err)
	}
	return f.Fit()
}

// TestDrawsReplay records the draws of a fit with seed 3, replays them in
// a fit with seed 9, and wants the seed-3 model, for every memory-bank
// method; the seed-9 model without replay differs (the test can fail).
// The recorded draws are those Fit makes without a Draws.
func TestDrawsReplay(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const nImg, pos, dim = 10, 9, 24
	feats, _ := plantedFeats(r, nImg, pos, dim)
	for _, cfg := range []Config{
		{Coreset: 0.2, Seed: 3},
		{Random: true, Coreset: 0.2, Seed: 3},
		{Coreset: 0.2, Threshold: 0.15, Discriminator: denoise.LOF, LOFK: 5, SoftWeight: true, Seed: 3},
	} {
		rec := &Draws{}
		want, err := fitDraws(t, cfg, feats, nImg, pos, dim, rec)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := Fit(cfg, feats, nImg, pos, dim)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(plain.Indices, want.Indices) {
			t.Errorf("%+v: recording changed the model", cfg)
		}
		if cfg.Random != (rec.RandomSubset != nil) || cfg.Random == (rec.CoresetProjection != nil) ||
			cfg.softPatch() != (rec.DiscriminatorProjection != nil) || cfg.Random == (rec.CoresetStartPoints != nil) {
			t.Errorf("%+v: recorded %v %v %v %v", cfg, rec.RandomSubset != nil, rec.CoresetProjection != nil, rec.DiscriminatorProjection != nil, rec.CoresetStartPoints != nil)
		}
		if len(rec.CoresetProjection) > 0 && len(rec.CoresetProjection) != 128*dim {
			t.Errorf("coreset projection of %d values", len(rec.CoresetProjection))
		}
		other := cfg
		other.Seed = 9
		seed9, err := Fit(other, feats, nImg, pos, dim)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(seed9.Indices, want.Indices) {
			t.Errorf("%+v: seeds 3 and 9 give one bank; the test cannot tell a replay", cfg)
		}
		replay := *rec
		got, err := fitDraws(t, other, feats, nImg, pos, dim, &replay)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Indices, want.Indices) || !slices.Equal(got.Weights, want.Weights) || got.Excluded != want.Excluded {
			t.Errorf("%+v: the replay gave another bank", cfg)
		}
	}
}

// TestDrawsReplayErrors checks that replayed draws that do not fit the
// cell are DrawErrors naming the key.
func TestDrawsReplayErrors(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const nImg, pos, dim = 8, 4, 24
	feats, _ := plantedFeats(r, nImg, pos, dim)
	sp := Config{Coreset: 0.25, Threshold: 0.15, Discriminator: denoise.Gaussian, Seed: 1}
	for _, c := range []struct {
		cfg   Config
		draws Draws
		key   string
	}{
		{sp, Draws{DiscriminatorProjection: make([]float32, 128*25)}, "discriminator_projection"},
		{sp, Draws{CoresetProjection: make([]float32, 127*dim)}, "coreset_projection"},
		{sp, Draws{CoresetStartPoints: []int{0, nImg * pos}}, "coreset_start_points"},
		{sp, Draws{CoresetStartPoints: []int{1, 1}}, "coreset_start_points"},
		{sp, Draws{CoresetStartPoints: make([]int, nImg*pos+1)}, "coreset_start_points"},
		{Config{Random: true, Coreset: 0.25}, Draws{RandomSubset: []int{0, 1}}, "random_subset"},
	} {
		_, err := fitDraws(t, c.cfg, feats, nImg, pos, dim, &c.draws)
		var de *DrawError
		if !errors.As(err, &de) || de.Key != c.key {
			t.Errorf("%s: %v", c.key, err)
		}
	}
	// 128-d features are not projected: a projection cannot be replayed.
	f128, _ := plantedFeats(r, nImg, pos, 128)
	_, err := fitDraws(t, sp, f128, nImg, pos, 128, &Draws{CoresetProjection: make([]float32, 128*128)})
	var de *DrawError
	if !errors.As(err, &de) || de.Key != "coreset_projection" {
		t.Errorf("128-d: %v", err)
	}
}
