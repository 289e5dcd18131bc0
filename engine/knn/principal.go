package knn

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"

	"github.com/softpatch/softpatch/engine/compute"
)

// Shape of the principal coordinates the pruned search bounds with (see
// prune.go): CoarseDims leading coordinates for the first, cheap bound
// and at most PrincipalDims for the second.
const (
	// PrincipalDims is the number of principal directions NewPrincipal
	// keeps (fewer when the dimension is smaller).
	PrincipalDims = 64
	// CoarseDims is the number of leading directions of the coarse bound.
	CoarseDims = 8
)

// Principal holds a bank's leading principal directions and every bank
// row's coordinates in them: what the pruned search (Index.Search in
// Pruned mode) bounds distances with. A bank row m has centred
// coordinates x = m - Mean, principal coordinates z = Basis^T x (P of
// them) and residual norms r = sqrt(|x|^2 - |z_1..c|^2) for c = CoarseDims
// and c = P. Because Basis has orthonormal columns, for any two vectors
// |z_q - z_m|^2 + (r_q - r_m)^2 <= |q - m|^2: the bound needs nothing of
// the basis but orthonormality, which Check verifies; how much variance it
// captures only decides how much it prunes.
//
// All slices are owned by the Principal; it is not modified after
// NewPrincipal or Check and may be shared between goroutines.
type Principal struct {
	// N, D and P are the number of bank rows, their dimension and the
	// number of principal directions (1 <= P <= D).
	N, D, P int
	// Mean is the bank's mean row, [D].
	Mean []float64
	// Basis holds the P directions as orthonormal columns, [D][P]
	// row-major, in decreasing order of variance.
	Basis []float64
	// Coords holds the bank rows' principal coordinates, [N][P], rounded
	// from float64 to float32.
	Coords []float32
	// Resid holds each bank row's residual norms after the first
	// min(CoarseDims, P) and after all P coordinates, [N][2], computed in
	// float64 and rounded to float32.
	Resid []float32
}

// principalSample is the most rows the covariance is estimated from
// (evenly spaced rows of the bank).
const principalSample = 4096

// subspaceIters is the number of block power iterations on the
// covariance; oversample the extra directions they carry.
const (
	subspaceIters = 8
	oversample    = 8
)

// NewPrincipal computes the principal directions of the bank (an n x d
// row-major matrix, n >= 1) and the bank's coordinates in them. The
// directions come from the covariance of at most 4,096 evenly spaced rows
// (float32 SGEMM), refined by block power iteration from a seeded start
// and a Rayleigh-Ritz step in float64, then made orthonormal (Gram-Schmidt,
// twice); the coordinates are computed in float64 (DGEMM). It
// returns an error when the bank holds values that are not finite or so
// large that squared norms overflow float32.
func NewPrincipal(bank []float32, n, d int) (*Principal, error) {
	if n < 1 || d < 1 || len(bank) < n*d {
		return nil, fmt.Errorf("knn: principal directions of %d values for n=%d d=%d", len(bank), n, d)
	}
	bank = bank[:n*d]
	for i := range n {
		var sq float64
		for _, v := range bank[i*d : (i+1)*d] {
			if !(math.Abs(float64(v)) <= maxAbs) {
				return nil, fmt.Errorf("knn: bank value %v is not finite or exceeds %g", v, maxAbs)
			}
			sq += float64(v) * float64(v)
		}
		if !(sq <= maxNorm) {
			return nil, fmt.Errorf("knn: bank row %d has squared norm %g, over %g", i, sq, maxNorm)
		}
	}
	p := min(PrincipalDims, d)
	pr := &Principal{N: n, D: d, P: p, Mean: make([]float64, d)}
	for i := range n {
		for j, v := range bank[i*d : (i+1)*d] {
			pr.Mean[j] += float64(v)
		}
	}
	for j := range pr.Mean {
		pr.Mean[j] /= float64(n)
	}
	pr.Basis = topDirections(bank, n, d, pr.Mean, p)
	pr.Coords, pr.Resid = project(pr, bank, n)
	return pr, nil
}

// maxAbs bounds the absolute value of every bank and query element the
// pruned search accepts: squared norms of up to 2^20 dims stay far below
// float32's range.
const maxAbs = 1e15

// topDirections returns p orthonormal columns [d][p] spanning (close to)
// the leading eigenvectors of the covariance of bank's rows, in
// decreasing order of eigenvalue.
func topDirections(bank []float32, n, d int, mean []float64, p int) []float64 {
	step := max(1, n/principalSample)
	s := (n + step - 1) / step
	xc := make([]float32, s*d)
	for r, i := 0, 0; i < n; r, i = r+1, i+step {
		for j, v := range bank[i*d : (i+1)*d] {
			xc[r*d+j] = float32(float64(v) - mean[j])
		}
	}
	cov32 := make([]float32, d*d)
	compute.Sgemm(true, false, d, d, s, 1, xc, d, xc, d, 0, cov32, d)
	cov := make([]float64, d*d)
	for i, v := range cov32 {
		cov[i] = float64(v)
	}
	b := min(d, p+oversample)
	q := make([]float64, d*b)
	rng := rand.New(rand.NewPCG(0x9e3779b9, uint64(d)))
	for i := range q {
		q[i] = rng.NormFloat64()
	}
	orthonormalise(q, d, b)
	y := make([]float64, d*b)
	for range subspaceIters {
		compute.Dgemm(false, false, d, b, d, 1, cov, d, q, b, 0, y, b)
		q, y = y, q
		orthonormalise(q, d, b)
	}
	// Rayleigh-Ritz: the eigenvectors of Q^T C Q rotate Q onto the
	// directions in decreasing order of variance.
	compute.Dgemm(false, false, d, b, d, 1, cov, d, q, b, 0, y, b)
	t := make([]float64, b*b)
	compute.Dgemm(true, false, b, b, d, 1, q, b, y, b, 0, t, b)
	for i := range b {
		for j := range i {
			v := (t[i*b+j] + t[j*b+i]) / 2
			t[i*b+j], t[j*b+i] = v, v
		}
	}
	var es mat.EigenSym
	rot := make([]float64, b*p) // [b][p]: eigenvectors, largest first
	if es.Factorize(mat.NewSymDense(b, t), true) {
		var vecs mat.Dense
		es.VectorsTo(&vecs)
		for k := range p {
			for i := range b {
				rot[i*p+k] = vecs.At(i, b-1-k)
			}
		}
	} else {
		for k := range p {
			rot[k*p+k] = 1
		}
	}
	basis := make([]float64, d*p)
	compute.Dgemm(false, false, d, p, b, 1, q, b, rot, p, 0, basis, p)
	// The rotation is orthogonal only to rounding: make the columns
	// orthonormal to float64 precision again (Gram-Schmidt keeps their
	// order and, to rounding, their directions).
	orthonormalise(basis, d, p)
	return basis
}

// orthonormalise replaces the columns of a [rows][cols] (rows >= cols) by
// orthonormal columns spanning the same leading subspaces: classical
// Gram-Schmidt applied twice per column ("twice is enough": orthonormal to
// float64 rounding). A column that vanishes against the previous ones is
// replaced by a unit vector orthogonalised the same way.
func orthonormalise(a []float64, rows, cols int) {
	q := make([]float64, cols*rows) // column j at q[j*rows:]
	for j := range cols {
		v := q[j*rows : (j+1)*rows]
		for i := range rows {
			v[i] = a[i*cols+j]
		}
		for unit := 0; ; unit++ {
			n0 := norm(v)
			for range 2 {
				for t := range j {
					u := q[t*rows : (t+1)*rows]
					r := dot(u, v)
					for i := range v {
						v[i] -= r * u[i]
					}
				}
			}
			if n := norm(v); n > 1e-8*n0 && n > 0 {
				for i := range v {
					v[i] /= n
				}
				break
			}
			clear(v)
			v[(j+unit)%rows] = 1
		}
	}
	for j := range cols {
		for i := range rows {
			a[i*cols+j] = q[j*rows+i]
		}
	}
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i, v := range a {
		s += v * b[i]
	}
	return s
}

func norm(a []float64) float64 { return math.Sqrt(dot(a, a)) }

// project returns the principal coordinates [n][P] and residual norms
// [n][2] of the rows of x (n x D), computed in float64 and rounded to
// float32.
func project(pr *Principal, x []float32, n int) (coords, resid []float32) {
	coords = make([]float32, n*pr.P)
	resid = make([]float32, n*2)
	const chunk = 1024
	xc := make([]float64, min(n, chunk)*pr.D)
	z := make([]float64, min(n, chunk)*pr.P)
	sq := make([]float64, min(n, chunk))
	for r0 := 0; r0 < n; r0 += chunk {
		rows := min(chunk, n-r0)
		pr.coordinates(coords[r0*pr.P:(r0+rows)*pr.P], resid[r0*2:(r0+rows)*2], x[r0*pr.D:(r0+rows)*pr.D], rows, xc, z, sq)
	}
	return coords, resid
}

// coordinates writes the principal coordinates [rows][P] and residual
// norms [rows][2] of the rows of x ([rows][D]), using the scratch xc
// ([rows][D]), z ([rows][P]) and sq ([rows]) of at least that size.
func (pr *Principal) coordinates(coords, resid, x []float32, rows int, xc, z, sq []float64) {
	d, p := pr.D, pr.P
	compute.ParallelFor(rows, 64, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			s := 0.0
			for j, v := range x[i*d : (i+1)*d] {
				e := float64(v) - pr.Mean[j]
				xc[i*d+j] = e
				s += e * e
			}
			sq[i] = s
		}
	})
	compute.Dgemm(false, false, rows, p, d, 1, xc[:rows*d], d, pr.Basis, p, 0, z[:rows*p], p)
	for i := range rows {
		writeCoords(coords[i*p:(i+1)*p], resid[i*2:(i+1)*2], z[i*p:(i+1)*p], sq[i])
	}
}

// writeCoords rounds one row's float64 coordinates z into coords and
// writes its two residual norms (after min(CoarseDims, P) and after P
// coordinates), given its squared centred norm sq.
func writeCoords(coords, resid []float32, z []float64, sq float64) {
	c := min(CoarseDims, len(z))
	var head, all float64
	for k, v := range z {
		coords[k] = float32(v)
		all += v * v
		if k < c {
			head += v * v
		}
	}
	resid[0] = float32(math.Sqrt(max(0, sq-head)))
	resid[1] = float32(math.Sqrt(max(0, sq-all)))
}

// Check verifies that pr fits a bank of n rows of dimension d: shapes,
// finite values and a basis whose columns are orthonormal to within
// 1e-12 (NewPrincipal's are to about 1e-15). The bound needs
// orthonormality: a basis off by e moves the residual norms by up to
// sqrt(P e) |x|, which the rounding slack covers for e up to about 1e-11.
// Principal coordinates read from a file go through Check before a search
// uses them (and Index.UsePrincipal also recomputes a sample of rows).
func (pr *Principal) Check(n, d int) error {
	switch {
	case pr == nil:
		return errors.New("knn: no principal coordinates")
	case pr.N != n || pr.D != d:
		return fmt.Errorf("knn: principal coordinates of a %d x %d bank, want %d x %d", pr.N, pr.D, n, d)
	case pr.P < 1 || pr.P > d:
		return fmt.Errorf("knn: %d principal directions for dimension %d", pr.P, d)
	case len(pr.Mean) != d || len(pr.Basis) != d*pr.P || len(pr.Coords) != n*pr.P || len(pr.Resid) != 2*n:
		return fmt.Errorf("knn: principal coordinates have %d mean, %d basis, %d coordinate and %d residual values for n=%d d=%d p=%d",
			len(pr.Mean), len(pr.Basis), len(pr.Coords), len(pr.Resid), n, d, pr.P)
	}
	for _, v := range pr.Mean {
		if !(math.Abs(v) <= maxAbs) {
			return fmt.Errorf("knn: principal mean value %v is not finite", v)
		}
	}
	for _, v := range pr.Coords {
		if !(math.Abs(float64(v)) <= maxAbs*math.Sqrt(float64(d))) {
			return fmt.Errorf("knn: principal coordinate %v is not finite", v)
		}
	}
	for _, v := range pr.Resid {
		if !(v >= 0 && float64(v) <= maxAbs*math.Sqrt(float64(d))) {
			return fmt.Errorf("knn: residual norm %v is negative or not finite", v)
		}
	}
	p := pr.P
	g := make([]float64, p*p)
	compute.Dgemm(true, false, p, p, d, 1, pr.Basis, p, pr.Basis, p, 0, g, p)
	for i := range p {
		for j := range p {
			want := 0.0
			if i == j {
				want = 1
			}
			if e := math.Abs(g[i*p+j] - want); !(e <= 1e-12) {
				return fmt.Errorf("knn: principal basis is not orthonormal (column %d . column %d = %v)", i, j, g[i*p+j])
			}
		}
	}
	return nil
}

// checkRows computes the coordinates of up to 64 evenly spaced rows of
// the bank again and fails unless the stored ones agree to within their
// rounding: a model file whose coordinates do not belong to its bank
// would break the bound.
func (pr *Principal) checkRows(bank []float32) error {
	step := max(1, pr.N/64)
	rows := (pr.N + step - 1) / step
	x := make([]float32, rows*pr.D)
	for r, i := 0, 0; i < pr.N; r, i = r+1, i+step {
		copy(x[r*pr.D:(r+1)*pr.D], bank[i*pr.D:(i+1)*pr.D])
	}
	coords, resid := project(pr, x, rows)
	for r, i := 0, 0; i < pr.N; r, i = r+1, i+step {
		var sq float64
		for _, v := range coords[r*pr.P : (r+1)*pr.P] {
			sq += float64(v) * float64(v)
		}
		scale := math.Sqrt(sq+float64(resid[2*r+1])*float64(resid[2*r+1])) + 1e-30
		for k, v := range coords[r*pr.P : (r+1)*pr.P] {
			if e := math.Abs(float64(v) - float64(pr.Coords[i*pr.P+k])); !(e <= 1e-6*scale) {
				return fmt.Errorf("knn: principal coordinate %d of bank row %d is %v, computed again %v", k, i, pr.Coords[i*pr.P+k], v)
			}
		}
		for k := range 2 {
			if e := math.Abs(float64(resid[2*r+k]) - float64(pr.Resid[2*i+k])); !(e <= 1e-6*scale) {
				return fmt.Errorf("knn: residual norm %d of bank row %d is %v, computed again %v", k, i, pr.Resid[2*i+k], resid[2*r+k])
			}
		}
	}
	return nil
}
