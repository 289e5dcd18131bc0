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
