// Package compute holds the numeric kernels the engine runs on the CPU:
// SGEMM, fused convolution, pooling and resizing.
//
// SGEMM: the package has its own BLIS-style SGEMM in C (sgemm.c: packed
// panels, a 14x32 AVX-512 or 6x16 AVX2 register-blocked micro-kernel, each
// compiled with its own target attributes). At initialisation it picks the
// AVX-512 kernel when the CPU has AVX-512F and FMA, else the AVX2 one when
// it has AVX2 and FMA, else OpenBLAS (cgo) does every GEMM; see BLASInfo.
// With its own kernel, Conv packs its weights once (like the Winograd
// transforms) and fuses bias, residual and ReLU into the GEMM's stores.
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
// its work across, GEMMs included. Each parallel GEMM is split into that
// many independent single-threaded kernel calls (ours or cblas_sgemm, with
// OpenBLAS kept single-threaded) on disjoint blocks of the output
// (OpenBLAS's own thread pool busy-waits after each call and slows the
// Go-side loops that follow; see SetThreads). The CPUs are not oversubscribed as long as callers run one
// kernel at a time.
//
// The Winograd tile transforms are C (winograd.c) compiled for AVX2/FMA;
// on CPUs without them Conv falls back to im2col.
package compute
