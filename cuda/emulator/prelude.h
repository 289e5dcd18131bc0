// The CUDA names kernels.cu uses, for the host compiler: the emulator
// (emulator.cc) includes kernels.cu after this and runs each kernel's
// threads on the CPU. Kernel-side only; see emulator.cc for the driver.
#ifndef SOFTPATCH_EMULATOR_PRELUDE_H
#define SOFTPATCH_EMULATOR_PRELUDE_H

#define __global__
#define __device__
#define __shared__ static
#define __inline__ inline

// The built-in index variables of the thread being run.
struct emu_dim3 {
	unsigned x, y, z;
};
extern emu_dim3 threadIdx, blockIdx, blockDim, gridDim;

// sync_threads is a block barrier: it switches to the next thread of the
// block (emulator.cc). It aborts in a kernel not registered as using it.
void sync_threads();

// Block-to-block ordering needs no fence: blocks run one after another.
static inline void __nvvm_membar_gl() {}

// atomicInc: old = *p; *p = old >= v ? 0 : old + 1; returns old.
static inline unsigned __nvvm_atom_inc_gen_ui(unsigned *p, unsigned v) {
	unsigned old = *p;
	*p = old >= v ? 0 : old + 1;
	return old;
}

#endif
