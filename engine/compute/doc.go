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
// Parallelism: SetThreads sets both the number of OpenBLAS threads and the
// number of goroutines the Go-side loops (im2col, Winograd transforms,
// epilogues, pooling, resizing) split their work across. A kernel calls
// OpenBLAS from one goroutine at a time, so the two never oversubscribe the
// CPUs as long as callers run one kernel at a time.
package compute
