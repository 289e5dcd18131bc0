package denoise

import "math"

// denseEps is the constant the published lof_gpu adds to every entry of its
// distance matrix (float32).
const denseEps float32 = 1e-6

// denseWork is a worker's scratch space for the dense float32 LOF.
type denseWork struct {
	xx    []float32 // [n] squared norms
	dist  []float32 // [n][n] distances
	nbr   []int     // [n][k] neighbour indices
	top   []int     // [k+1] top-(k+1) buffer of one row
	kdist []float32 // [n]
	lrd   []float32 // [n]
}

// newDenseWork allocates the scratch space for groups of n vectors and k
// neighbours (k already clipped to n-1).
func newDenseWork(n, k int) *denseWork {
	return &denseWork{
		xx:    make([]float32, n),
		dist:  make([]float32, n*n),
		nbr:   make([]int, n*k),
		top:   make([]int, k+1),
		kdist: make([]float32, n),
		lrd:   make([]float32, n),
	}
}

// dot32 is the float32 dot product used for both the squared norms and the
// Gram matrix, so that |a|^2 + |a|^2 - 2 a.a is exactly 0 in float32.
func dot32(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += float32(a[i] * b[i])
		s1 += float32(a[i+1] * b[i+1])
		s2 += float32(a[i+2] * b[i+2])
		s3 += float32(a[i+3] * b[i+3])
	}
	for ; i < len(a); i++ {
		s0 += float32(a[i] * b[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// lofDenseGroup writes the published _compute_lof_gpu score of every row
// of x ([n][d], float32) to dst, in float32 like the published code:
//
//	dist[i][j] = sqrt(|xx_i + xx_j - 2 x_i.x_j|) + 1e-6   (float32)
//	nb(i)      = the k+1 smallest entries of row i, the first one dropped
//	kdist[i]   = dist to the last of nb(i)
//	lrd[i]     = k / sum_{o in nb(i)} max(dist[i][o], kdist[o])
//	LOF[i]     = (sum_{o in nb(i)} lrd[o] / k) / lrd[i]
//
// Relation to LOF (scikit-learn): the same definition, with three
// differences. (1) The distances carry float32 rounding of the
// |a|^2+|b|^2-2ab expansion (relative error about 1e-7 |a|^2/dist^2) and an
// offset of 1e-6. (2) The density has no 1e-10; instead a group with more
// than k duplicates has reach-distances of 1e-6 (the offset), so its
// density is 1e6 rather than scikit-learn's 1e10, and LOF values next to
// such a clump are about 1e4 times smaller than scikit-learn's. (3) The
// point dropped from the top k+1 is the first in (distance, index) order
// rather than the point itself; here the squared norms and the Gram matrix
// use the same float32 dot product, so the self-distance is exactly 1e-6,
// the smallest possible value, and the dropped point is the query itself
// unless it has a duplicate of lower index (then the query may count itself
// as a neighbour; the published GPU code's choice among such ties is
// unspecified). On groups without duplicates the two methods differ only by
// float32 rounding (measured in the package tests). Differences from the
// published code itself: the float32 Gram matrix is summed in a different
// order than a GPU or CPU BLAS does, and k > n-1 is clipped to n-1 as in
// LOF, where the published torch.topk would raise.
func lofDenseGroup(ws *denseWork, x []float32, n, d, k int, dst []float32) {
	xx, dist, nbr, top, kdist, lrd := ws.xx, ws.dist, ws.nbr, ws.top, ws.kdist, ws.lrd
	for i := range n {
		a := x[i*d : (i+1)*d]
		xx[i] = dot32(a, a)
	}
	for i := range n {
		a := x[i*d : (i+1)*d]
		for j := i; j < n; j++ {
			g := dot32(a, x[j*d:(j+1)*d])
			s := float32(xx[i]+xx[j]) - float32(2*g)
			if s < 0 {
				s = -s
			}
			v := float32(math.Sqrt(float64(s))) + denseEps
			dist[i*n+j] = v
			dist[j*n+i] = v
		}
	}
	for i := range n {
		row := dist[i*n : (i+1)*n]
		topK32(row, top)
		copy(nbr[i*k:(i+1)*k], top[1:])
		kdist[i] = row[top[k]]
	}
	fk := float32(k)
	for i := range n {
		row := dist[i*n : (i+1)*n]
		var s float32
		for _, o := range nbr[i*k : (i+1)*k] {
			s += max(row[o], kdist[o])
		}
		lrd[i] = fk / s
	}
	for i := range n {
		var s float32
		for _, o := range nbr[i*k : (i+1)*k] {
			s += lrd[o]
		}
		dst[i] = (s / fk) / lrd[i]
	}
}

// topK32 writes to top the indices of the len(top) smallest entries of row
// in (value, index) order (stable insertion into the short list).
func topK32(row []float32, top []int) {
	k := len(top)
	m := 0
	for j, v := range row {
		if m == k {
			if v >= row[top[k-1]] {
				continue
			}
			m--
		}
		pos := m
		for pos > 0 && row[top[pos-1]] > v {
			top[pos] = top[pos-1]
			pos--
		}
		top[pos] = j
		m++
	}
}
