// The driver API, loaded at run time (dlopen of libcuda.so.1): no CUDA
// headers or libraries are needed to build.
#include <dlfcn.h>
#include "driver.h"


static void *libcuda;

#define SP_FN(ret, name, args) static ret (*p_##name) args;
#define SP_DRIVER(X) \
	X(CUresult, cuInit, (unsigned int)) \
	X(CUresult, cuDriverGetVersion, (int *)) \
	X(CUresult, cuDeviceGetCount, (int *)) \
	X(CUresult, cuDeviceGet, (CUdevice *, int)) \
	X(CUresult, cuDeviceGetName, (char *, int, CUdevice)) \
	X(CUresult, cuDeviceGetAttribute, (int *, int, CUdevice)) \
	X(CUresult, cuDeviceTotalMem_v2, (size_t *, CUdevice)) \
	X(CUresult, cuDevicePrimaryCtxRetain, (CUcontext *, CUdevice)) \
	X(CUresult, cuDevicePrimaryCtxRelease_v2, (CUdevice)) \
	X(CUresult, cuCtxSetCurrent, (CUcontext)) \
	X(CUresult, cuStreamCreate, (CUstream *, unsigned int)) \
	X(CUresult, cuStreamDestroy_v2, (CUstream)) \
	X(CUresult, cuStreamSynchronize, (CUstream)) \
	X(CUresult, cuMemAlloc_v2, (CUdeviceptr *, size_t)) \
	X(CUresult, cuMemFree_v2, (CUdeviceptr)) \
	X(CUresult, cuMemcpyHtoDAsync_v2, (CUdeviceptr, const void *, size_t, CUstream)) \
	X(CUresult, cuMemcpyDtoHAsync_v2, (void *, CUdeviceptr, size_t, CUstream)) \
	X(CUresult, cuMemsetD8Async, (CUdeviceptr, unsigned char, size_t, CUstream)) \
	X(CUresult, cuModuleLoadDataEx, (CUmodule *, const void *, unsigned int, int *, void **)) \
	X(CUresult, cuModuleUnload, (CUmodule)) \
	X(CUresult, cuModuleGetFunction, (CUfunction *, CUmodule, const char *)) \
	X(CUresult, cuLaunchKernel, (CUfunction, unsigned int, unsigned int, unsigned int, unsigned int, unsigned int, unsigned int, unsigned int, CUstream, void **, void **)) \
	X(CUresult, cuGetErrorName, (CUresult, const char **))

SP_DRIVER(SP_FN)

// sp_load opens path (libcuda.so.1 when empty) and resolves every entry
// point; it returns NULL, or what is missing.
const char *sp_load(const char *path) {
	if (libcuda) {
		return NULL;
	}
	void *h = dlopen(path && path[0] ? path : "libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		const char *e = dlerror();
		return e ? e : "dlopen of the driver library failed";
	}
#define SP_SYM(ret, name, args) \
	p_##name = (ret(*) args)dlsym(h, #name); \
	if (!p_##name) { dlclose(h); return #name; }
	SP_DRIVER(SP_SYM)
	libcuda = h;
	return NULL;
}

CUresult sp_cuInit(void) { return p_cuInit(0); }
CUresult sp_cuDriverGetVersion(int *v) { return p_cuDriverGetVersion(v); }
CUresult sp_cuDeviceGetCount(int *n) { return p_cuDeviceGetCount(n); }
CUresult sp_cuDeviceGet(CUdevice *d, int i) { return p_cuDeviceGet(d, i); }
CUresult sp_cuDeviceGetName(char *s, int n, CUdevice d) { return p_cuDeviceGetName(s, n, d); }
CUresult sp_cuDeviceGetAttribute(int *v, int a, CUdevice d) { return p_cuDeviceGetAttribute(v, a, d); }
CUresult sp_cuDeviceTotalMem(size_t *b, CUdevice d) { return p_cuDeviceTotalMem_v2(b, d); }
CUresult sp_cuDevicePrimaryCtxRetain(CUcontext *c, CUdevice d) { return p_cuDevicePrimaryCtxRetain(c, d); }
CUresult sp_cuDevicePrimaryCtxRelease(CUdevice d) { return p_cuDevicePrimaryCtxRelease_v2(d); }
CUresult sp_cuCtxSetCurrent(CUcontext c) { return p_cuCtxSetCurrent(c); }
CUresult sp_cuStreamCreate(CUstream *s) { return p_cuStreamCreate(s, 1); } // CU_STREAM_NON_BLOCKING
CUresult sp_cuStreamDestroy(CUstream s) { return p_cuStreamDestroy_v2(s); }
CUresult sp_cuStreamSynchronize(CUstream s) { return p_cuStreamSynchronize(s); }
CUresult sp_cuMemAlloc(CUdeviceptr *p, size_t n) { return p_cuMemAlloc_v2(p, n); }
CUresult sp_cuMemFree(CUdeviceptr p) { return p_cuMemFree_v2(p); }
CUresult sp_cuMemcpyHtoD(CUdeviceptr d, const void *h, size_t n, CUstream s) { return p_cuMemcpyHtoDAsync_v2(d, h, n, s); }
CUresult sp_cuMemcpyDtoH(void *h, CUdeviceptr d, size_t n, CUstream s) { return p_cuMemcpyDtoHAsync_v2(h, d, n, s); }
CUresult sp_cuMemsetD8(CUdeviceptr d, unsigned char v, size_t n, CUstream s) { return p_cuMemsetD8Async(d, v, n, s); }
// sp_cuModuleLoadDataLog loads PTX, with the JIT's error log in log
// (CU_JIT_ERROR_LOG_BUFFER = 5, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6).
CUresult sp_cuModuleLoadDataLog(CUmodule *m, const void *img, char *log, unsigned int size) {
	int opts[2] = {5, 6};
	void *vals[2] = {log, (void *)(size_t)size};
	log[0] = 0;
	return p_cuModuleLoadDataEx(m, img, 2, opts, vals);
}
CUresult sp_cuModuleUnload(CUmodule m) { return p_cuModuleUnload(m); }
CUresult sp_cuModuleGetFunction(CUfunction *f, CUmodule m, const char *name) { return p_cuModuleGetFunction(f, m, name); }
CUresult sp_cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
		unsigned shared, CUstream s, void **params) {
	return p_cuLaunchKernel(f, gx, gy, gz, bx, by, bz, shared, s, params, NULL);
}
const char *sp_cuGetErrorName(CUresult r) {
	const char *s = NULL;
	if (!p_cuGetErrorName || p_cuGetErrorName(r, &s) != 0 || !s) {
		return "unknown CUDA error";
	}
	return s;
}

// cuBLAS, loaded at run time as well. Its handle and status are an opaque
// pointer and an int; operations: 0 = N, 1 = T.
static void *libcublas;
static int (*p_cublasCreate_v2)(void **);
static int (*p_cublasDestroy_v2)(void *);
static int (*p_cublasSetStream_v2)(void *, CUstream);
static int (*p_cublasSgemm_v2)(void *, int, int, int, int, int, const float *, const float *, int, const float *, int,
	const float *, float *, int);
static int (*p_cublasSgemmStridedBatched)(void *, int, int, int, int, int, const float *, const float *, int, long long,
	const float *, int, long long, const float *, float *, int, long long, int);

const char *sp_load_cublas(const char *path) {
	if (libcublas) {
		return NULL;
	}
	const char *names[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"};
	void *h = NULL;
	if (path && path[0]) {
		h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	} else {
		for (int i = 0; i < 4 && !h; i++) {
			h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
		}
	}
	if (!h) {
		const char *e = dlerror();
		return e ? e : "libcublas not found";
	}
#define SP_BLAS(name) \
	*(void **)&p_##name = dlsym(h, #name); \
	if (!p_##name) { dlclose(h); return #name; }
	SP_BLAS(cublasCreate_v2)
	SP_BLAS(cublasDestroy_v2)
	SP_BLAS(cublasSetStream_v2)
	SP_BLAS(cublasSgemm_v2)
	SP_BLAS(cublasSgemmStridedBatched)
	libcublas = h;
	return NULL;
}

int sp_cublasCreate(void **h) { return p_cublasCreate_v2(h); }
int sp_cublasDestroy(void *h) { return p_cublasDestroy_v2(h); }
int sp_cublasSetStream(void *h, CUstream s) { return p_cublasSetStream_v2(h, s); }
int sp_cublasSgemm(void *h, int ta, int tb, int m, int n, int k, float alpha, CUdeviceptr a, int lda, CUdeviceptr b,
		int ldb, float beta, CUdeviceptr c, int ldc) {
	return p_cublasSgemm_v2(h, ta, tb, m, n, k, &alpha, (const float *)a, lda, (const float *)b, ldb, &beta, (float *)c, ldc);
}
int sp_cublasSgemmStridedBatched(void *h, int ta, int tb, int m, int n, int k, float alpha, CUdeviceptr a, int lda,
		long long sa, CUdeviceptr b, int ldb, long long sb, float beta, CUdeviceptr c, int ldc, long long sc, int count) {
	return p_cublasSgemmStridedBatched(h, ta, tb, m, n, k, &alpha, (const float *)a, lda, sa, (const float *)b, ldb, sb, &beta,
		(float *)c, ldc, sc, count);
}
