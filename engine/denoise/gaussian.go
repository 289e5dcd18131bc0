package denoise

import "math"

// gaussRidge is the constant the published MultiVariateGaussian adds to the
// covariance's diagonal.
const gaussRidge = 0.01

// gaussWork is a worker's scratch space for the Gaussian discriminator.
type gaussWork struct {
	mean []float64 // [d]
	xc   []float64 // [n][d] centred vectors
	s    []float64 // [d][d] covariance, then its Cholesky factor (lower)
	y    []float64 // [d] forward-substitution result
}

// newGaussWork allocates the scratch space for groups of n vectors of dim d.
func newGaussWork(n, d int) *gaussWork {
	return &gaussWork{
		mean: make([]float64, d),
		xc:   make([]float64, n*d),
		s:    make([]float64, d*d),
		y:    make([]float64, d),
	}
}

// gaussianGroup writes 1 + the Mahalanobis distance of every row of x
// ([n][d], float64) to the group's Gaussian to dst. The Gaussian is the
// mean and the unbiased covariance (divided by n-1, torch's/numpy's default)
// plus 0.01 I, as in the published MultiVariateGaussian. The distance
// sqrt(d^T S^-1 d) is evaluated as |L^-1 d| with S = L L^T (Cholesky), in
// float64; the published code inverts S in float32 with torch.linalg.inv and
// evaluates (d^T S^-1) * d summed, which is the same quantity in exact
// arithmetic.
func gaussianGroup(ws *gaussWork, x []float64, n, d int, dst []float32) {
	mean, xc, s, y := ws.mean, ws.xc, ws.s, ws.y
	clear(mean)
	for i := range n {
		row := x[i*d : (i+1)*d]
		for c, v := range row {
			mean[c] += v
		}
	}
	for c := range mean {
		mean[c] /= float64(n)
	}
	for i := range n {
		row, dr := x[i*d:(i+1)*d], xc[i*d:(i+1)*d]
		for c, v := range row {
			dr[c] = v - mean[c]
		}
	}
	// Lower triangle of the scatter matrix, one rank-1 update per image.
	clear(s)
	for i := range n {
		dr := xc[i*d : (i+1)*d]
		for a := range d {
			va := dr[a]
			if va == 0 {
				continue
			}
			sa := s[a*d : a*d+a+1]
			for b := range sa {
				sa[b] += va * dr[b]
			}
		}
	}
	inv := 1 / float64(n-1)
	for a := range d {
		for b := 0; b <= a; b++ {
			s[a*d+b] *= inv
		}
		s[a*d+a] += gaussRidge
	}
	cholesky(s, d)
	for i := range n {
		dr := xc[i*d : (i+1)*d]
		// Forward substitution L y = dr; the score is |y|.
		var q float64
		for a := range d {
			la := s[a*d : a*d+a]
			v := dr[a]
			for b, l := range la {
				v -= l * y[b]
			}
			v /= s[a*d+a]
			y[a] = v
			q += v * v
		}
		dst[i] = float32(math.Sqrt(q) + 1)
	}
}

// cholesky overwrites the lower triangle of the symmetric positive definite
// [d][d] matrix s with its Cholesky factor L (s = L L^T). Only the lower
// triangle is read. The ridge 0.01 I keeps every pivot at least 0.01 in
// exact arithmetic; a pivot that rounding drives to zero or below is clamped
// to the smallest positive normal float64 so that the result stays finite.
func cholesky(s []float64, d int) {
	for j := range d {
		rj := s[j*d : j*d+j]
		v := s[j*d+j]
		for _, l := range rj {
			v -= l * l
		}
		if v <= 0 {
			v = 0x1p-1022
		}
		ljj := math.Sqrt(v)
		s[j*d+j] = ljj
		for i := j + 1; i < d; i++ {
			ri := s[i*d : i*d+j]
			w := s[i*d+j]
			for b, l := range ri {
				w -= l * rj[b]
			}
			s[i*d+j] = w / ljj
		}
	}
}
