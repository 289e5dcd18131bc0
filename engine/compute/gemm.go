package compute

/*
#cgo LDFLAGS: -lopenblas
#include "sgemm.h"
*/
import "C"

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// gemmKernel is an SGEMM implementation: OpenBLAS, or one of this
// package's kernel sets (sgemm.c).
type gemmKernel int

const (
	kernelOpenBLAS gemmKernel = C.SG_OPENBLAS
	kernelAVX2     gemmKernel = C.SG_AVX2   // 6x16 micro-tile, AVX2+FMA
	kernelAVX512   gemmKernel = C.SG_AVX512 // 14x32 micro-tile, AVX-512F+FMA
)

// bestKernel is the kernel set the CPU supports: AVX-512F+FMA, else
// AVX2+FMA, else OpenBLAS.
var bestKernel = func() gemmKernel {
	switch {
	case cpu.X86.HasAVX512F && cpu.X86.HasFMA:
		return kernelAVX512
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		return kernelAVX2
	}
	return kernelOpenBLAS
}()

// useKernel is the SGEMM every GEMM of the package runs (tests and
// benchmarks switch it between bestKernel and kernelOpenBLAS).
var useKernel = bestKernel

// ours reports whether useKernel is one of this package's kernel sets.
func ours() bool { return useKernel != kernelOpenBLAS }

// ShapeFreeSgemm reports whether Sgemm and SgemmSerial run this package's
// kernels, which compute every element of C with the same operations
// whatever the shapes of the matrices and the position of the element:
// for each block of 256 inner indices (fixed by k alone) a chain of fused
// multiply-adds in index order, times alpha, added to the previous
// blocks' sum. A product of gathered rows then has the same bits as the
// same rows' products inside a larger one (engine/knn's pruned search
// relies on it). OpenBLAS, the fallback on CPUs without AVX2 and FMA,
// gives no such guarantee.
func ShapeFreeSgemm() bool { return ours() }

// mr returns the micro-tile height of kernel set k: the row granularity of
// packed matrices (1 for OpenBLAS).
func (k gemmKernel) mr() int { return int(C.sg_mr(C.int(k))) }

// nr returns the micro-tile width of kernel set k (1 for OpenBLAS).
func (k gemmKernel) nr() int { return int(C.sg_nr(C.int(k))) }

// String names the kernel set as BLASInfo reports it.
func (k gemmKernel) String() string {
	switch k {
	case kernelAVX512:
		return "AVX-512"
	case kernelAVX2:
		return "AVX2"
	}
	return "OpenBLAS"
}

// packA returns the m x k row-major matrix a (leading dimension lda) packed
// for kernel set kern (see sg_pack_a): panels of kern.mr() rows, panel q at
// q*k*kern.mr().
func packA(kern gemmKernel, m, k int, a []float32, lda int) []float32 {
	checkMat("packA", "A", a, m, k, lda)
	dst := make([]float32, packedSize(kern, m, k))
	C.sg_pack_a(C.int(kern), C.int(m), C.int(k), (*C.float)(unsafe.Pointer(&a[0])), C.int(lda), (*C.float)(unsafe.Pointer(&dst[0])))
	return dst
}

// packedSize returns the length of an m x k matrix packed for kern.
func packedSize(kern gemmKernel, m, k int) int {
	return int(C.sg_packed_size(C.int(kern), C.int(m), C.int(k)))
}

// gemmBatch collects independent SGEMMs on blocks of three base arrays (and
// optionally bias and residual arrays for a fused epilogue) and runs them on
// Threads() goroutines, each running its share of the jobs one after
// another on one thread (see SetThreads for why OpenBLAS's own threads are
// not used).
type gemmBatch struct {
	jobs []C.sg_job
}

// add queues C[c:] = alpha*op(A[a:])*op(B[b:]) + beta*C[c:] (row-major,
// m x n result, inner size k, leading dimensions lda, ldb, ldc). Offsets and
// sizes are the caller's to check.
func (g *gemmBatch) add(transA, transB bool, m, n, k int, a, lda, b, ldb, c, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	j := C.sg_job{m: C.int(m), n: C.int(n), k: C.int(k), lda: C.int(lda), ldb: C.int(ldb), ldc: C.int(ldc),
		a: C.long(a), b: C.long(b), c: C.long(c), bias: -1, res: -1}
	if transA {
		j.ta = 1
	}
	if transB {
		j.tb = 1
	}
	g.jobs = append(g.jobs, j)
}

// addPacked queues, for runPacked, C[c:] = act(A*B[b:] + bias[bias+i] +
// res[res:]) (row-major, m x n result, inner size k, leading dimensions
// ldb, ldc and ldr) where A is packed (see packA) and a is the offset of the
// panel holding row 0 of this job. bias or res < 0: not added.
func (g *gemmBatch) addPacked(m, n, k, a, b, ldb, c, ldc, bias, res, ldr int) {
	if m == 0 || n == 0 {
		return
	}
	g.jobs = append(g.jobs, C.sg_job{m: C.int(m), n: C.int(n), k: C.int(k), ldb: C.int(ldb), ldc: C.int(ldc), ldr: C.int(ldr),
		a: C.long(a), b: C.long(b), c: C.long(c), bias: C.long(bias), res: C.long(res)})
}

// addPackedSplit queues the product of addPacked split into parts jobs on
// blocks of rows (multiples of kern.mr(), so that each starts at a panel)
// or, when there are enough columns, of columns (multiples of kern.nr()).
func (g *gemmBatch) addPackedSplit(kern gemmKernel, parts, m, n, k, a, b, ldb, c, ldc, bias, res, ldr int) {
	mr, nr := kern.mr(), kern.nr()
	byCols := n >= parts*4*nr
	for p := 0; p < parts; p++ {
		if byCols {
			j0, j1 := splitUnits(n, parts, p, nr)
			r := res
			if r >= 0 {
				r += j0
			}
			g.addPacked(m, j1-j0, k, a, b+j0, ldb, c+j0, ldc, bias, r, ldr)
			continue
		}
		i0, i1 := splitUnits(m, parts, p, mr)
		bi, r := bias, res
		if bi >= 0 {
			bi += i0
		}
		if r >= 0 {
			r += i0 * ldr
		}
		g.addPacked(i1-i0, n, k, a+i0*k, b, ldb, c+i0*ldc, ldc, bi, r, ldr)
	}
}

// run executes the queued jobs of add with useKernel on the base arrays a,
// b and c (non-empty), split into contiguous runs of jobs over Threads()
// goroutines (one cgo call each), and empties the batch.
func (g *gemmBatch) run(alpha float32, a, b []float32, beta float32, c []float32) {
	g.exec(useKernel, alpha, a, false, b, beta, c, nil, nil, false)
}

// runPacked executes the queued jobs of addPacked with kernel set kern
// (that of the packing of a) like run, with alpha 1 and beta 0. bias and
// res may be nil when no job uses them; relu applies to every job.
func (g *gemmBatch) runPacked(kern gemmKernel, a, b, c, bias, res []float32, relu bool) {
	g.exec(kern, 1, a, true, b, 0, c, bias, res, relu)
}

func (g *gemmBatch) exec(kern gemmKernel, alpha float32, a []float32, packed bool, b []float32, beta float32, c, bias, res []float32, relu bool) {
	ap, bp, cp := (*C.float)(unsafe.Pointer(&a[0])), (*C.float)(unsafe.Pointer(&b[0])), (*C.float)(unsafe.Pointer(&c[0]))
	var biasp, resp *C.float
	if len(bias) > 0 {
		biasp = (*C.float)(unsafe.Pointer(&bias[0]))
	}
	if len(res) > 0 {
		resp = (*C.float)(unsafe.Pointer(&res[0]))
	}
	var pk, rl C.int
	if packed {
		pk = 1
	}
	if relu {
		rl = 1
	}
	ParallelFor(len(g.jobs), 1, func(lo, hi int) {
		C.sg_jobs(C.int(kern), &g.jobs[lo], C.int(hi-lo), ap, pk, bp, cp, biasp, resp, C.float(alpha), C.float(beta), rl)
	})
	g.jobs = g.jobs[:0]
}

// setBlocking sets the blocking of this package's kernels: kc inner indices,
// mc rows and nc columns per packed block (tests use small ones to exercise
// every loop). It must not run concurrently with a GEMM.
func setBlocking(kc, mc, nc int) { C.sg_set_blocking(C.int(kc), C.int(mc), C.int(nc)) }
