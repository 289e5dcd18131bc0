package denoise

// lofEps is the constant scikit-learn adds to the mean reachability
// distance in LocalOutlierFactor._local_reachability_density, so that
// duplicates give a finite density of 1e10 instead of a division by zero.
const lofEps = 1e-10

// lofWork is a worker's scratch space for the exact LOF.
type lofWork struct {
	distWork
	nbr   []int     // [n][k] neighbour indices, nearest first
	kdist []float64 // [n] k-distance (distance to the k-th neighbour)
	lrd   []float64 // [n] local reachability density
}

// newLOFWork allocates the scratch space for groups of n vectors and k
// neighbours (k already clipped to n-1).
func newLOFWork(n, k int) *lofWork {
	return &lofWork{
		distWork: distWork{dist: make([]float64, n*n)},
		nbr:      make([]int, n*k),
		kdist:    make([]float64, n),
		lrd:      make([]float64, n),
	}
}

// lofGroup writes scikit-learn's LOF score of every row of x ([n][d],
// float64) to dst: -LocalOutlierFactor(n_neighbors=k, metric="l2")
// .fit(x).negative_outlier_factor_. k must already be clipped to
// [1, n-1]: scikit-learn uses n_neighbors_ = max(1, min(k, n-1)) (warning
// only when k > n).
//
// Semantics, following sklearn/neighbors/_lof.py (1.2) line by line:
//
//   - Neighbours: fit calls kneighbors() without a query, which searches the
//     k+1 nearest training points of each training point and removes the
//     point itself (or, when more than k duplicates push it out of that
//     list, the first entry: a zero-distance duplicate). Either way the
//     result is k nearest points other than the query, distances included.
//     Here they are the k smallest of the row without the diagonal, ties
//     broken by the lower index. Which of several equidistant points becomes
//     the k-th neighbour does not change the score for the ties that can
//     occur in practice (exact duplicates share their distances and
//     densities); for ties between distinct points at exactly equal
//     distances scikit-learn's choice depends on its search algorithm.
//   - k-distance(o) = the distance from o to its k-th neighbour.
//   - reach-dist(p, o) = max(d(p, o), k-distance(o)) for o a neighbour of p.
//   - lrd(p) = 1 / (mean over p's neighbours of reach-dist(p, o) + 1e-10).
//     With more than k duplicates of p, every reach-dist is 0 and lrd is
//     1e10; points near such a clump get LOF values of order 1e9 to 1e10,
//     exactly as scikit-learn reports.
//   - LOF(p) = mean over p's neighbours o of lrd(o) / lrd(p) (the mean of the
//     ratios, as scikit-learn computes it).
//
// Distances are float64 from coordinate differences (exactly 0 between
// duplicates, as scikit-learn's KD-tree and brute-force paths give).
func lofGroup(ws *lofWork, x []float64, n, d, k int, dst []float32) {
	dist, nbr, kdist, lrd := ws.dist, ws.nbr, ws.kdist, ws.lrd
	pairwise(dist, x, n, d)
	for i := range n {
		kNearest(dist[i*n:(i+1)*n], i, nbr[i*k:(i+1)*k])
		kdist[i] = dist[i*n+nbr[i*k+k-1]]
	}
	for i := range n {
		row := dist[i*n : (i+1)*n]
		var s float64
		for _, o := range nbr[i*k : (i+1)*k] {
			s += max(row[o], kdist[o])
		}
		lrd[i] = 1 / (s/float64(k) + lofEps)
	}
	for i := range n {
		var s float64
		for _, o := range nbr[i*k : (i+1)*k] {
			s += lrd[o] / lrd[i]
		}
		dst[i] = float32(s / float64(k))
	}
}

// kNearest writes to nbr the indices of the len(nbr) smallest entries of row
// other than row[self], ordered by (distance, index): an insertion sort into
// the short output list, which is stable, so ties keep the lower index.
func kNearest(row []float64, self int, nbr []int) {
	k := len(nbr)
	m := 0
	for j, v := range row {
		if j == self {
			continue
		}
		if m == k {
			if v >= row[nbr[k-1]] {
				continue
			}
			m--
		}
		pos := m
		for pos > 0 && row[nbr[pos-1]] > v {
			nbr[pos] = nbr[pos-1]
			pos--
		}
		nbr[pos] = j
		m++
	}
}
