package knn

import (
	"math/rand/v2"
	"testing"

	"github.com/softpatch/softpatch/engine/compute"
)

// The benchmark shape: one PatchCore test image (28 x 28 = 784 patch
// features of 1024 dims) against a 16,000-entry coreset.
const benchNQ, benchN, benchD = 784, 16000, 1024

var benchBank, benchQueries []float32

func benchData() ([]float32, []float32) {
	if benchBank == nil {
		rng := rand.New(rand.NewPCG(5, 6))
		benchBank = randData(rng, benchN*benchD)
		benchQueries = randData(rng, benchNQ*benchD)
	}
	return benchBank, benchQueries
}

func reportGFLOPs(b *testing.B) {
	b.ReportMetric(2*float64(benchNQ)*benchN*benchD*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkSearch runs Search (k = 1, default budget) on the benchmark
// shape and reports 2*nq*n*d / time; compare with BenchmarkSgemmSameShape.
func BenchmarkSearch(b *testing.B) {
	bank, queries := benchData()
	ix := NewIndex(bank, benchN, benchD)
	dist := make([]float32, benchNQ)
	idx := make([]int32, benchNQ)
	b.ResetTimer()
	for range b.N {
		if err := ix.Search(dist, idx, queries, benchNQ, 1, 0); err != nil {
			b.Fatal(err)
		}
	}
	reportGFLOPs(b)
}

// BenchmarkSgemmSameShape times compute.Sgemm alone on the benchmark shape
// (queries x bank^T into one 784 x 16,000 matrix), the ceiling for
// BenchmarkSearch.
func BenchmarkSgemmSameShape(b *testing.B) {
	bank, queries := benchData()
	c := make([]float32, benchNQ*benchN)
	b.ResetTimer()
	for range b.N {
		compute.Sgemm(false, true, benchNQ, benchN, benchD, -2, queries, benchD, bank, benchD, 0, c, benchN)
	}
	reportGFLOPs(b)
}

var benchClustered []float32

// BenchmarkSearchPruned runs the pruned search (mode Pruned) on clustered
// data of the benchmark shape (a low-rank signal plus noise, as real patch
// features; see clustered) and reports the share of the distances
// computed; BenchmarkSearchBruteClustered is the brute force on the same
// data. Real features: softpatch bench knn (README, Performance).
func BenchmarkSearchPruned(b *testing.B) {
	benchPruned(b, clusteredData(), Pruned)
}

// BenchmarkSearchBruteClustered is BenchmarkSearch on BenchmarkSearchPruned's data.
func BenchmarkSearchBruteClustered(b *testing.B) {
	benchPruned(b, clusteredData(), Brute)
}

// BenchmarkSearchAutoIsotropic runs Auto on isotropic Gaussian data, where
// no bound prunes: it should cost about what BenchmarkSearch costs.
func BenchmarkSearchAutoIsotropic(b *testing.B) {
	bank, queries := benchData()
	benchPruned(b, append(bank[:benchN*benchD:benchN*benchD], queries...), Auto)
}

func clusteredData() []float32 {
	if benchClustered == nil {
		benchClustered = clustered(rand.New(rand.NewPCG(7, 8)), benchN+benchNQ, benchD, 200)
	}
	return benchClustered
}

// benchPruned searches the last benchNQ rows of x against its first benchN
// rows with a fresh index per iteration (principal coordinates computed
// once, outside the timing).
func benchPruned(b *testing.B, x []float32, mode Mode) {
	bank, queries := x[:benchN*benchD], x[benchN*benchD:]
	pr := mustPrincipal(b, bank, benchN, benchD)
	dist := make([]float32, benchNQ)
	idx := make([]int32, benchNQ)
	var st Stats
	b.ResetTimer()
	for range b.N {
		ix := NewIndex(bank, benchN, benchD)
		if err := ix.UsePrincipal(pr, mode); err != nil {
			b.Fatal(err)
		}
		if err := ix.Search(dist, idx, queries, benchNQ, 1, 0); err != nil {
			b.Fatal(err)
		}
		s := ix.Stats()
		st.Pairs += s.Pairs
		st.Computed += s.Computed
	}
	b.ReportMetric(float64(st.Computed)/float64(st.Pairs), "computed")
}
