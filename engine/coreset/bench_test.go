package coreset

import (
	"math/rand/v2"
	"testing"
)

func gaussian(n, d int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0))
	x := make([]float32, n*d)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// BenchmarkSmall is the small case of issue 4: 34,496 x 1024 Gaussian
// features, projection to 128 included, 10% (3,449 picks), 10 start points.
func BenchmarkSmall(b *testing.B) {
	n, d := 34496, 1024
	x := gaussian(n, d, 1)
	g := Greedy{Ratio: 0.1, Seed: 1}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := g.Select(x, n, d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMVTec is the MVTec-size case: 160,000 projected 128-d features,
// 10% (16,000 picks), 10 start points.
func BenchmarkMVTec(b *testing.B) {
	n, d := 160000, 128
	x := gaussian(n, d, 2)
	g := Greedy{Ratio: 0.1, Seed: 1}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := g.SelectProjected(x, n, d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMVTecLowRank is the MVTec-size case on data shaped like real
// patch features, whose variance lies mostly in a few directions: 160,000
// x 128 points from 16 latent factors of decreasing scale plus small
// isotropic noise, 10% (16,000 picks), 10 start points.
func BenchmarkMVTecLowRank(b *testing.B) {
	n, d, f := 160000, 128, 16
	r := rand.New(rand.NewPCG(3, 0))
	basis := gaussian(f, d, 4)
	x := make([]float32, n*d)
	for i := 0; i < n; i++ {
		row := x[i*d : (i+1)*d]
		for k := 0; k < f; k++ {
			a := float32(r.NormFloat64() * 4 / float64(k+1))
			for j := range row {
				row[j] += a * basis[k*d+j]
			}
		}
		for j := range row {
			row[j] += float32(r.NormFloat64() * 0.05)
		}
	}
	g := Greedy{Ratio: 0.1, Seed: 1}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := g.SelectProjected(x, n, d); err != nil {
			b.Fatal(err)
		}
	}
}
