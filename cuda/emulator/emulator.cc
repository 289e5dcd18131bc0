// A CPU stand-in for the CUDA driver and cuBLAS, for tests on machines
// without a GPU: `make emulator` builds it as build/emulator/libcuda.so.1,
// and SOFTPATCH_LIBCUDA / SOFTPATCH_CUBLAS pointed at that file make the
// cuda package run on it. It implements exactly the driver entry points
// cuda/driver.c resolves and the four cuBLAS ones, compiles kernels.cu for
// the host (prelude.h supplies the CUDA names) and runs each launch's
// threads on the CPU: kernels without barriers thread after thread, those
// with barriers (REG_SYNC below) as one fiber per thread of a block,
// switched at every sync_threads. Device memory is host memory that ends
// at a page boundary followed by an inaccessible page, so a kernel that
// reads or writes past the end of a buffer faults at once.
//
// $SOFTPATCH_EMULATOR_FAIL names a kernel whose launches fail
// (CUDA_ERROR_LAUNCH_FAILED), to test the callers' fallbacks.
//
// What it checks: each kernel's indexing and arithmetic, the host code's
// launch arguments, copies and buffer sizes, block barriers and the
// block-to-block reduction order of one-launch kernels. What it cannot:
// anything about a real GPU's speed, memory model, warp scheduling or
// PTX JIT (the PTX in the binary is accepted without being read).
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#define SOFTPATCH_EMULATOR 1
#include "../kernels.cu"
#include "../driver.h" // the driver API's types, as cuda/driver.c sees them

emu_dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace {

enum {
	kSuccess = 0,
	kInvalidValue = 1,
	kOutOfMemory = 2,
	kNotFound = 500,
	kLaunchFailed = 719,
};

// ---- kernels ---------------------------------------------------------

// invoke calls a kernel with its parameters unpacked from the driver's
// void** array (each entry points at the argument's value).
template <typename... A, size_t... I>
void invoke(void (*f)(A...), void **p, std::index_sequence<I...>) {
	f(*static_cast<std::remove_reference_t<A> *>(p[I])...);
}

struct Kernel {
	const char *name;
	bool sync; // uses sync_threads: run as fibers
	void (*call)(void *fn, void **params);
	void *fn;
};

template <typename... A>
Kernel make_kernel(const char *name, void (*f)(A...), bool sync) {
	return Kernel{name, sync,
		[](void *fn, void **p) { invoke(reinterpret_cast<void (*)(A...)>(fn), p, std::index_sequence_for<A...>{}); },
		reinterpret_cast<void *>(f)};
}

// The kernels of kernels.cu and its .cuh files. REG_SYNC: the kernel
// calls sync_threads.
const std::map<std::string, Kernel> &kernels() {
	static const std::map<std::string, Kernel> m = {
#define REG(k) {#k, make_kernel(#k, k, false)},
#define REG_SYNC(k) {#k, make_kernel(#k, k, true)},
#include "kernels.inc"
#undef REG
#undef REG_SYNC
	};
	return m;
}

// ---- fibers ------------------------------------------------------------

// sp_switch saves the callee-saved registers on the current stack, stores
// the stack pointer in *from, and resumes the context whose stack pointer
// is to (x86-64 System V).
extern "C" void sp_switch(void **from, void *to);
asm(R"(
	.text
	.p2align 4
	.type sp_switch, @function
sp_switch:
	pushq %rbp
	pushq %rbx
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, (%rdi)
	movq %rsi, %rsp
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %rbx
	popq %rbp
	ret
	.size sp_switch, .-sp_switch
)");

const size_t kStack = 256 << 10;

struct Fiber {
	std::vector<char> stack;
	void *sp = nullptr;
	bool done = false;
	emu_dim3 tid{};
};

std::vector<Fiber> fibers;
void *sched_sp;
int current = -1; // the running fiber, -1 outside fibers
const Kernel *running;
void **running_params;

void fiber_entry() {
	running->call(running->fn, running_params);
	fibers[current].done = true;
	sp_switch(&fibers[current].sp, sched_sp);
	abort(); // a finished fiber is never resumed
}

// start prepares fiber t to run fiber_entry on its own stack.
void start(Fiber &f) {
	if (f.stack.empty()) {
		f.stack.resize(kStack);
	}
	uintptr_t top = (reinterpret_cast<uintptr_t>(f.stack.data()) + kStack) & ~uintptr_t(15);
	void **s = reinterpret_cast<void **>(top);
	*--s = nullptr;                                   // fiber_entry's return address (never used)
	*--s = reinterpret_cast<void *>(&fiber_entry);    // sp_switch's ret
	for (int i = 0; i < 6; i++) *--s = nullptr;       // rbp rbx r12-r15
	f.sp = s;
	f.done = false;
}

// run_block runs one block: as plain calls, or as fibers switched at each
// barrier until every thread has finished.
void run_block(const Kernel &k, void **params) {
	unsigned nt = blockDim.x * blockDim.y * blockDim.z;
	if (!k.sync) {
		for (unsigned z = 0; z < blockDim.z; z++)
			for (unsigned y = 0; y < blockDim.y; y++)
				for (unsigned x = 0; x < blockDim.x; x++) {
					threadIdx = emu_dim3{x, y, z};
					k.call(k.fn, params);
				}
		return;
	}
	if (fibers.size() < nt) fibers.resize(nt);
	running = &k;
	running_params = params;
	for (unsigned t = 0; t < nt; t++) {
		start(fibers[t]);
		fibers[t].tid = emu_dim3{t % blockDim.x, t / blockDim.x % blockDim.y, t / (blockDim.x * blockDim.y)};
	}
	for (unsigned left = nt; left > 0;) {
		left = 0;
		for (unsigned t = 0; t < nt; t++) {
			if (fibers[t].done) continue;
			current = (int)t;
			threadIdx = fibers[t].tid;
			sp_switch(&sched_sp, fibers[t].sp);
			left += !fibers[t].done;
		}
	}
	current = -1;
}

std::mutex mu;

// ---- memory --------------------------------------------------------------

struct Mapping {
	void *base;
	size_t len;
	size_t bytes;
};
std::map<uintptr_t, Mapping> allocs; // by device pointer

// inside reports whether [p, p+n) lies within one allocation.
bool inside(uintptr_t p, size_t n) {
	auto it = allocs.upper_bound(p);
	if (it == allocs.begin()) return false;
	--it;
	return p >= it->first && p + n <= it->first + it->second.bytes;
}

} // namespace

void sync_threads() {
	if (current < 0) {
		fprintf(stderr, "cuda emulator: sync_threads in a kernel registered with REG instead of REG_SYNC\n");
		abort();
	}
	sp_switch(&fibers[current].sp, sched_sp);
}

// ---- the driver API ------------------------------------------------------

extern "C" {

CUresult cuInit(unsigned int) { return kSuccess; }
CUresult cuDriverGetVersion(int *v) {
	*v = 13000;
	return kSuccess;
}
CUresult cuDeviceGetCount(int *n) {
	*n = 1;
	return kSuccess;
}
CUresult cuDeviceGet(CUdevice *d, int i) {
	if (i != 0) return kInvalidValue;
	*d = 0;
	return kSuccess;
}
CUresult cuDeviceGetName(char *s, int n, CUdevice) {
	snprintf(s, n, "softpatch CPU emulator (not a GPU)");
	return kSuccess;
}
CUresult cuDeviceGetAttribute(int *v, int a, CUdevice) {
	switch (a) {
	case 75: *v = 9; break; // compute capability major
	case 76: *v = 0; break; // minor
	case 16: *v = 2; break; // multiprocessors
	default: *v = 0;
	}
	return kSuccess;
}
CUresult cuDeviceTotalMem_v2(size_t *b, CUdevice) {
	*b = size_t(8) << 30;
	return kSuccess;
}
static int ctx_token;
CUresult cuDevicePrimaryCtxRetain(CUcontext *c, CUdevice) {
	*c = &ctx_token;
	return kSuccess;
}
CUresult cuDevicePrimaryCtxRelease_v2(CUdevice) { return kSuccess; }
CUresult cuCtxSetCurrent(CUcontext) { return kSuccess; }
static int stream_token;
CUresult cuStreamCreate(CUstream *s, unsigned int) {
	*s = &stream_token;
	return kSuccess;
}
CUresult cuStreamDestroy_v2(CUstream) { return kSuccess; }
CUresult cuStreamSynchronize(CUstream) { return kSuccess; }

CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n) {
	std::lock_guard<std::mutex> g(mu);
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t bytes = (n + 7) & ~size_t(7); // 8-byte aligned ends
	size_t len = (bytes + page - 1) / page * page + page;
	void *base = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) return kOutOfMemory;
	char *guard = static_cast<char *>(base) + len - page;
	mprotect(guard, page, PROT_NONE);
	uintptr_t ptr = reinterpret_cast<uintptr_t>(guard) - bytes;
	allocs[ptr] = Mapping{base, len, bytes};
	*p = ptr;
	return kSuccess;
}
CUresult cuMemFree_v2(CUdeviceptr p) {
	std::lock_guard<std::mutex> g(mu);
	auto it = allocs.find(p);
	if (it == allocs.end()) return kInvalidValue;
	munmap(it->second.base, it->second.len);
	allocs.erase(it);
	return kSuccess;
}
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void *h, size_t n, CUstream) {
	std::lock_guard<std::mutex> g(mu);
	if (!inside(d, n)) return kInvalidValue;
	memcpy(reinterpret_cast<void *>(d), h, n);
	return kSuccess;
}
CUresult cuMemcpyDtoHAsync_v2(void *h, CUdeviceptr d, size_t n, CUstream) {
	std::lock_guard<std::mutex> g(mu);
	if (!inside(d, n)) return kInvalidValue;
	memcpy(h, reinterpret_cast<void *>(d), n);
	return kSuccess;
}
CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, CUstream) {
	std::lock_guard<std::mutex> g(mu);
	if (!inside(d, n)) return kInvalidValue;
	memset(reinterpret_cast<void *>(d), v, n);
	return kSuccess;
}

static int module_token;
CUresult cuModuleLoadDataEx(CUmodule *m, const void *img, unsigned int, int *, void **) {
	if (!img || !strstr(static_cast<const char *>(img), ".entry")) return kInvalidValue;
	*m = &module_token;
	return kSuccess;
}
CUresult cuModuleUnload(CUmodule) { return kSuccess; }
CUresult cuModuleGetFunction(CUfunction *f, CUmodule, const char *name) {
	auto it = kernels().find(name);
	if (it == kernels().end()) {
		fprintf(stderr, "cuda emulator: kernel %s is not registered (cuda/emulator/kernels.inc)\n", name);
		return kNotFound;
	}
	*f = const_cast<Kernel *>(&it->second);
	return kSuccess;
}
CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
	unsigned shared, CUstream, void **params, void **extra) {
	std::lock_guard<std::mutex> g(mu);
	if (!f || extra || shared != 0 || gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0 ||
		(unsigned long long)bx * by * bz > 1024 || gy > 65535 || gz > 65535 || bz > 64) {
		return kInvalidValue;
	}
	const Kernel &k = *static_cast<const Kernel *>(f);
	// Fault injection for tests of the fallback paths: launches of the
	// kernel named by $SOFTPATCH_EMULATOR_FAIL fail.
	const char *fail = getenv("SOFTPATCH_EMULATOR_FAIL");
	if (fail && strcmp(fail, k.name) == 0) return kLaunchFailed;
	gridDim = emu_dim3{gx, gy, gz};
	blockDim = emu_dim3{bx, by, bz};
	for (unsigned z = 0; z < gz; z++)
		for (unsigned y = 0; y < gy; y++)
			for (unsigned x = 0; x < gx; x++) {
				blockIdx = emu_dim3{x, y, z};
				run_block(k, params);
			}
	return kSuccess;
}
CUresult cuGetErrorName(CUresult r, const char **s) {
	switch (r) {
	case kSuccess: *s = "CUDA_SUCCESS"; break;
	case kInvalidValue: *s = "CUDA_ERROR_INVALID_VALUE"; break;
	case kOutOfMemory: *s = "CUDA_ERROR_OUT_OF_MEMORY"; break;
	case kNotFound: *s = "CUDA_ERROR_NOT_FOUND"; break;
	case kLaunchFailed: *s = "CUDA_ERROR_LAUNCH_FAILED"; break;
	default: *s = "CUDA_ERROR_UNKNOWN"; break;
	}
	return kSuccess;
}

// ---- cuBLAS ----------------------------------------------------------------

static int blas_token;
int cublasCreate_v2(void **h) {
	*h = &blas_token;
	return 0;
}
int cublasDestroy_v2(void *) { return 0; }
int cublasSetStream_v2(void *, CUstream) { return 0; }
// cublasSgemm_v2: column-major C = alpha op(A) op(B) + beta C, by
// OpenBLAS; op 0 is N, 1 is T. Every operand must lie in device memory.
int cublasSgemm_v2(void *, int ta, int tb, int m, int n, int k, const float *alpha, const float *a, int lda,
	const float *b, int ldb, const float *beta, float *c, int ldc) {
	std::lock_guard<std::mutex> g(mu);
	if (ta < 0 || ta > 1 || tb < 0 || tb > 1 || m < 0 || n < 0 || k < 0) return 7; // CUBLAS_STATUS_INVALID_VALUE
	size_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
	if ((m && n && k) && (lda < (int)ar || ldb < (int)br || ldc < m ||
		!inside((uintptr_t)a, ((ac - 1) * lda + ar) * 4) || !inside((uintptr_t)b, ((bc - 1) * ldb + br) * 4) ||
		!inside((uintptr_t)c, ((size_t)(n - 1) * ldc + m) * 4))) {
		return 7;
	}
	cblas_sgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, *alpha, a, lda, b,
		ldb, *beta, c, ldc);
	return 0;
}

// cublasSgemmStridedBatched: count cublasSgemm_v2 products, operand i at
// X + i*strideX.
int cublasSgemmStridedBatched(void *h, int ta, int tb, int m, int n, int k, const float *alpha, const float *a, int lda,
	long long sa, const float *b, int ldb, long long sb, const float *beta, float *c, int ldc, long long sc, int count) {
	if (count < 0 || sa < 0 || sb < 0 || sc < 0) return 7;
	for (int i = 0; i < count; i++) {
		int s = cublasSgemm_v2(h, ta, tb, m, n, k, alpha, a + i * sa, lda, b + i * sb, ldb, beta, c + i * sc, ldc);
		if (s) return s;
	}
	return 0;
}

} // extern "C"
