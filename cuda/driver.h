// Declarations of driver.c: the CUDA driver API's types (as cuda.h
// declares them for 64-bit code) and our wrappers of its entry points.
#ifndef SOFTPATCH_CUDA_DRIVER_H
#define SOFTPATCH_CUDA_DRIVER_H
#include <stddef.h>

// The driver API's types, as cuda.h declares them (64-bit).
typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext;
typedef void *CUstream;
typedef void *CUmodule;
typedef void *CUfunction;
typedef unsigned long long CUdeviceptr;

const char *sp_load(const char *path);
const char *sp_cuGetErrorName(CUresult r);
CUresult sp_cuInit(void);
CUresult sp_cuDriverGetVersion(int *v);
CUresult sp_cuDeviceGetCount(int *n);
CUresult sp_cuDeviceGet(CUdevice *d, int i);
CUresult sp_cuDeviceGetName(char *s, int n, CUdevice d);
CUresult sp_cuDeviceGetAttribute(int *v, int a, CUdevice d);
CUresult sp_cuDeviceTotalMem(size_t *b, CUdevice d);
CUresult sp_cuDevicePrimaryCtxRetain(CUcontext *c, CUdevice d);
CUresult sp_cuDevicePrimaryCtxRelease(CUdevice d);
CUresult sp_cuCtxSetCurrent(CUcontext c);
CUresult sp_cuStreamCreate(CUstream *s);
CUresult sp_cuStreamDestroy(CUstream s);
CUresult sp_cuStreamSynchronize(CUstream s);
CUresult sp_cuMemAlloc(CUdeviceptr *p, size_t n);
CUresult sp_cuMemFree(CUdeviceptr p);
CUresult sp_cuMemcpyHtoD(CUdeviceptr d, const void *h, size_t n, CUstream s);
CUresult sp_cuMemcpyDtoH(void *h, CUdeviceptr d, size_t n, CUstream s);
CUresult sp_cuMemsetD8(CUdeviceptr d, unsigned char v, size_t n, CUstream s);
CUresult sp_cuModuleLoadDataLog(CUmodule *m, const void *img, char *log, unsigned int size);
CUresult sp_cuModuleUnload(CUmodule m);
CUresult sp_cuModuleGetFunction(CUfunction *f, CUmodule m, const char *name);
CUresult sp_cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
		unsigned shared, CUstream s, void **params);

const char *sp_load_cublas(const char *path);
int sp_cublasCreate(void **h);
int sp_cublasDestroy(void *h);
int sp_cublasSetStream(void *h, CUstream s);
int sp_cublasSgemm(void *h, int ta, int tb, int m, int n, int k, float alpha, CUdeviceptr a, int lda, CUdeviceptr b,
		int ldb, float beta, CUdeviceptr c, int ldc);
int sp_cublasSgemmStridedBatched(void *h, int ta, int tb, int m, int n, int k, float alpha, CUdeviceptr a, int lda,
		long long sa, CUdeviceptr b, int ldb, long long sb, float beta, CUdeviceptr c, int ldc, long long sc, int count);

#endif
