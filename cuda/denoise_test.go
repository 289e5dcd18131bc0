package cuda

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/softpatch/softpatch/engine/denoise"
)

// noiseGroups returns features [n][p][dim] of low-rank groups with the
// cases the discriminators treat specially: position 1 has a duplicate
// pair, position 2 has more than k+1 identical images (zero distances,
// LOF's 1e10 densities), position 3 is all zeros for one image.
func noiseGroups(r *rand.Rand, n, p, dim int) []float32 {
	x := lowRank(r, n*p, dim)
	row := func(i, q int) []float32 { return x[(i*p+q)*dim : (i*p+q+1)*dim] }
	if p > 3 && n > 8 {
		copy(row(5, 1), row(2, 1))
		for i := 1; i < 8; i++ {
			copy(row(i, 2), row(0, 2))
		}
		clear(row(4, 3))
	}
	return x
}

// TestNoiseScoresParity compares every discriminator on the GPU with
// denoise.Scores: identical scores expected (the kernels keep the CPU's
// float64/float32 arithmetic and order), on shapes with a d%4 tail, k
// clipped to n-1, duplicates, and a budget that forces chunks of 3
// positions.
func TestNoiseScoresParity(t *testing.T) {
	d := openOrSkip(t)
	r := rand.New(rand.NewPCG(11, 12))
	type shape struct{ n, p, dim, k int }
	for _, s := range []shape{{37, 11, 130, 5}, {9, 7, 16, 20}, {64, 5, 128, 3}} {
		feats := noiseGroups(r, s.n, s.p, s.dim)
		for _, m := range denoise.Discriminators() {
			want, err := denoise.Scores(m, feats, s.n, s.p, s.dim, s.k)
			if err != nil {
				t.Fatal(err)
			}
			for _, budget := range []int64{0, 1} {
				if budget == 1 {
					// Three positions' scratch (see NoiseScores' sizes).
					budget = 3 * noiseBytes(m, s.n, s.dim, min(s.k, s.n-1))
				}
				got, err := d.noiseScores(m, feats, s.n, s.p, s.dim, s.k, budget)
				if err != nil {
					t.Fatalf("%s %+v: %v", m, s, err)
				}
				diff := 0
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						if diff == 0 {
							t.Errorf("%s %+v budget %d: score %d (image %d, position %d) = %v, CPU %v",
								m, s, budget, i, i/s.p, i%s.p, got[i], want[i])
						}
						diff++
					}
				}
				if diff > 0 {
					t.Errorf("%s %+v budget %d: %d of %d scores differ", m, s, budget, diff, len(want))
				}
			}
		}
	}
	if _, err := d.NoiseScores(denoise.LOF, make([]float32, 10), 2, 5, 1, 0); err == nil {
		t.Error("k=0 accepted")
	}
}

// BenchmarkNoiseScores scores a generated class's training set (200
// images, 28x28 positions, 128 dims) with each discriminator and reports
// the speedup over denoise.Scores on this machine's CPUs (timed once).
func BenchmarkNoiseScores(b *testing.B) {
	d := openBench(b, false)
	r := rand.New(rand.NewPCG(13, 14))
	n, p, dim := 200, 784, 128
	feats := lowRank(r, n*p, dim)
	for _, m := range denoise.Discriminators() {
		b.Run(m.Name(), func(b *testing.B) {
			start := time.Now()
			if _, err := denoise.Scores(m, feats, n, p, dim, denoise.DefaultK); err != nil {
				b.Fatal(err)
			}
			cpu := time.Since(start)
			b.ResetTimer()
			for range b.N {
				if _, err := d.NoiseScores(m, feats, n, p, dim, denoise.DefaultK); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(cpu.Seconds()/(b.Elapsed().Seconds()/float64(b.N)), "x_cpu")
		})
	}
}
