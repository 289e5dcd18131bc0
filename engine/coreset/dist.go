package coreset

/*
#cgo CFLAGS: -O2
#cgo LDFLAGS: -lm
#include "dist.h"
*/
import "C"

import (
	"math"
	"unsafe"
)

// kernel selects the distance kernel: 2 AVX-512F+FMA, 1 AVX2+FMA, 0
// portable C. All compute the same bits (dist.c).
var kernel = C.coreset_kind()

// dists writes into out[i] the distance from centre c (dim float32) to row
// idx[i] of x ([rows][dim]), or to row lo+i when idx is nil, for
// i < len(out). This is the package's only definition of distance:
// sqrt of the float64 sum of squared coordinate differences, accumulated
// with fused multiply-adds in eight lanes (lane l takes dimensions j with
// j%8 == l) reduced as ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)).
func dists(x []float32, dim int, c []float32, idx []int32, lo int, out []float64) {
	if len(out) == 0 {
		return
	}
	var ip *C.int32_t
	if idx != nil {
		ip = (*C.int32_t)(unsafe.Pointer(&idx[0]))
	}
	C.coreset_dists(kernel, (*C.float)(unsafe.Pointer(&x[0])), C.int(dim), (*C.float)(unsafe.Pointer(&c[0])),
		ip, C.int64_t(lo), C.int64_t(len(out)), (*C.double)(unsafe.Pointer(&out[0])))
}

// dist is the distance between two rows, as dists computes it (Go, for
// tests and small uses).
func dist(a, b []float32) float64 {
	var l [8]float64
	for j := range a {
		d := float64(a[j]) - float64(b[j])
		l[j%8] = math.FMA(d, d, l[j%8])
	}
	return math.Sqrt(((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7])))
}

// step sets keys[i] = min(keys[i], distance(x row i, c)) for i in
// [lo, lo+len) (skipping keys already 0) and returns the largest key of the
// range and its first index.
func step(x []float32, dim int, c []float32, keys []float64, lo, m int) (float64, int) {
	var bk C.double
	var bi C.int64_t
	C.coreset_step(kernel, (*C.float)(unsafe.Pointer(&x[0])), C.int(dim), (*C.float)(unsafe.Pointer(&c[0])),
		(*C.double)(unsafe.Pointer(&keys[0])), C.int64_t(lo), C.int64_t(m), &bk, &bi)
	return float64(bk), int(bi)
}
