package denoise

import "math"

// distWork is a worker's scratch space for a group's distance matrix.
type distWork struct {
	dist []float64 // [n][n] Euclidean distances, symmetric, zero diagonal
}

// newDistWork allocates the distance matrix for groups of n vectors.
func newDistWork(n int) *distWork { return &distWork{dist: make([]float64, n*n)} }

// pairwise fills dist ([n][n]) with the Euclidean distances between the rows
// of x ([n][d], float64), computed from the coordinate differences so that
// identical rows are exactly 0 apart and the diagonal is exactly 0.
func pairwise(dist, x []float64, n, d int) {
	for i := range n {
		dist[i*n+i] = 0
		a := x[i*d : (i+1)*d]
		for j := i + 1; j < n; j++ {
			s := math.Sqrt(sqDiff(a, x[j*d:(j+1)*d]))
			dist[i*n+j] = s
			dist[j*n+i] = s
		}
	}
}

// sqDiff returns the squared Euclidean distance between a and b (same
// length), summed in four interleaved float64 accumulators.
func sqDiff(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		d0 := a[i] - b[i]
		d1 := a[i+1] - b[i+1]
		d2 := a[i+2] - b[i+2]
		d3 := a[i+3] - b[i+3]
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; i < len(a); i++ {
		d0 := a[i] - b[i]
		s0 += d0 * d0
	}
	return (s0 + s1) + (s2 + s3)
}

// nearestGroup writes 1 + (the sum of the two smallest entries of each
// row of the group's distance matrix) to dst: the published
// _compute_nearest_distance (topk(k=2, largest=False).sum) plus 1. The
// diagonal is exactly 0, so this is 1 + the distance to the nearest other
// member, and exactly 1 for a row with a duplicate.
func nearestGroup(ws *distWork, x []float64, n, d int, dst []float32) {
	pairwise(ws.dist, x, n, d)
	for i := range n {
		row := ws.dist[i*n : (i+1)*n]
		m0, m1 := math.Inf(1), math.Inf(1) // two smallest, m0 <= m1
		for _, v := range row {
			if v < m0 {
				m0, m1 = v, m0
			} else if v < m1 {
				m1 = v
			}
		}
		dst[i] = float32(m0 + m1 + 1)
	}
}
