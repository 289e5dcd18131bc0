package experiments

import (
	"math"
	"math/rand/v2"
)

// PCA2 projects the rows of x [n][d] onto their two leading principal
// directions (found by power iteration with deflation, seeded, float64)
// and returns the two coordinates of every row. For figures: the
// directions are accurate to a few digits, not to the last bit.
func PCA2(x []float32, n, d int) (xs, ys []float32) {
	xs, ys = make([]float32, n), make([]float32, n)
	if n == 0 || d == 0 {
		return xs, ys
	}
	mu := make([]float64, d)
	for i := 0; i < n; i++ {
		for j, v := range x[i*d : (i+1)*d] {
			mu[j] += float64(v)
		}
	}
	for j := range mu {
		mu[j] /= float64(n)
	}
	r := rand.New(rand.NewPCG(1, 2))
	var dirs [][]float64
	for range 2 {
		v := make([]float64, d)
		for j := range v {
			v[j] = r.NormFloat64()
		}
		for range 25 {
			// w = Xc^T (Xc v), then orthogonal to the earlier directions.
			w := make([]float64, d)
			for i := 0; i < n; i++ {
				row := x[i*d : (i+1)*d]
				s := 0.0
				for j, xv := range row {
					s += (float64(xv) - mu[j]) * v[j]
				}
				for j, xv := range row {
					w[j] += s * (float64(xv) - mu[j])
				}
			}
			for _, u := range dirs {
				dot := 0.0
				for j := range w {
					dot += w[j] * u[j]
				}
				for j := range w {
					w[j] -= dot * u[j]
				}
			}
			norm := 0.0
			for _, wj := range w {
				norm += wj * wj
			}
			if norm == 0 {
				break
			}
			norm = math.Sqrt(norm)
			for j := range w {
				v[j] = w[j] / norm
			}
		}
		dirs = append(dirs, v)
	}
	for k, out := range [][]float32{xs, ys} {
		for i := 0; i < n; i++ {
			s := 0.0
			for j, xv := range x[i*d : (i+1)*d] {
				s += (float64(xv) - mu[j]) * dirs[k][j]
			}
			out[i] = float32(s)
		}
	}
	return xs, ys
}
