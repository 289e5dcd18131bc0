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
