// Package compute holds the numeric kernels the engine runs on the CPU:
// SGEMM through OpenBLAS (cgo), fused convolution, pooling and resizing.
//
// All tensors are float32, row-major; images are NCHW. Every kernel writes
// into a destination slice the caller allocates and owns (gonum style: the
// caller passes dst); kernels never retain dst or their inputs, except that a
// Conv caches a transformed copy of its Weight (see Conv).
//
// These are internal kernels: they panic on programmer errors (mismatched
// slice lengths or invalid sizes) with a message naming the function and the
// sizes, and otherwise do not fail.
//
// Parallelism: SetThreads sets the number of goroutines every kernel splits
// its work across, GEMMs included. OpenBLAS itself is kept single-threaded
// and each parallel GEMM is split into that many independent cblas_sgemm
// calls on disjoint blocks of the output (OpenBLAS's own thread pool
// busy-waits after each call and slows the Go-side loops that follow; see
// SetThreads). The CPUs are not oversubscribed as long as callers run one
// kernel at a time.
//
// The Winograd tile transforms are C (winograd.c) compiled for AVX2/FMA;
// on CPUs without them Conv falls back to im2col.
package compute
