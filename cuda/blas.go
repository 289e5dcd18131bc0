package cuda

/*
#include <stdlib.h>
#include "driver.h"
*/
import "C"

import (
	"fmt"
	"os"
	"unsafe"
)

// blasHandle is a cuBLAS handle bound to the device's stream.
type blasHandle struct {
	h unsafe.Pointer
}

// openBLAS loads cuBLAS (libcublas.so.13, .12, .11 or libcublas.so on the
// library path, or the file $SOFTPATCH_CUBLAS) and creates a handle on d's
// stream.
func openBLAS(d *Device) (*blasHandle, error) {
	path := C.CString(os.Getenv("SOFTPATCH_CUBLAS"))
	defer C.free(unsafe.Pointer(path))
	if e := C.sp_load_cublas(path); e != nil {
		return nil, fmt.Errorf("cuda: no cuBLAS: %s", C.GoString(e))
	}
	b := &blasHandle{}
	err := d.bound(func() error {
		if s := C.sp_cublasCreate(&b.h); s != 0 {
			return fmt.Errorf("cuda: cublasCreate: status %d", int(s))
		}
		if s := C.sp_cublasSetStream(b.h, d.stream); s != 0 {
			C.sp_cublasDestroy(b.h)
			return fmt.Errorf("cuda: cublasSetStream: status %d", int(s))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (b *blasHandle) close() error {
	if s := C.sp_cublasDestroy(b.h); s != 0 {
		return fmt.Errorf("cuda: cublasDestroy: status %d", int(s))
	}
	return nil
}

// HasBLAS reports whether cuBLAS was found (Sgemm needs it).
func (d *Device) HasBLAS() bool { return d.blas != nil }

// Sgemm computes C = alpha*op(A)*op(B) + beta*C on row-major float32
// matrices in device memory (op(A) m x k, op(B) k x n, leading dimensions
// in elements), queued on the device's stream, through cuBLAS: the
// row-major product is the column-major C^T = op(B)^T op(A)^T.
func (d *Device) Sgemm(transA, transB bool, m, n, k int, alpha float32, a Buffer, lda int, b Buffer, ldb int, beta float32, c Buffer, ldc int) error {
	if err := d.blasCheck("Sgemm", m, n, k, lda, ldb, ldc); err != nil {
		return err
	}
	return d.bound(func() error {
		if s := C.sp_cublasSgemm(d.blas.h, op(transB), op(transA), C.int(n), C.int(m), C.int(k), C.float(alpha),
			C.CUdeviceptr(b.Ptr), C.int(ldb), C.CUdeviceptr(a.Ptr), C.int(lda), C.float(beta), C.CUdeviceptr(c.Ptr), C.int(ldc)); s != 0 {
			return fmt.Errorf("cuda: cublasSgemm(%dx%dx%d): status %d", m, n, k, int(s))
		}
		return nil
	})
}

// SgemmStridedBatched computes count products C_i = alpha*op(A_i)*op(B_i) +
// beta*C_i as Sgemm does, with X_i at X + i*strideX elements (a stride of
// 0 reuses one matrix), in one cuBLAS call.
func (d *Device) SgemmStridedBatched(transA, transB bool, m, n, k int, alpha float32, a Buffer, lda int, strideA int64,
	b Buffer, ldb int, strideB int64, beta float32, c Buffer, ldc int, strideC int64, count int) error {
	if err := d.blasCheck("SgemmStridedBatched", m, n, k, lda, ldb, ldc, count); err != nil {
		return err
	}
	return d.bound(func() error {
		if s := C.sp_cublasSgemmStridedBatched(d.blas.h, op(transB), op(transA), C.int(n), C.int(m), C.int(k), C.float(alpha),
			C.CUdeviceptr(b.Ptr), C.int(ldb), C.longlong(strideB), C.CUdeviceptr(a.Ptr), C.int(lda), C.longlong(strideA),
			C.float(beta), C.CUdeviceptr(c.Ptr), C.int(ldc), C.longlong(strideC), C.int(count)); s != 0 {
			return fmt.Errorf("cuda: cublasSgemmStridedBatched(%d x %dx%dx%d): status %d", count, m, n, k, int(s))
		}
		return nil
	})
}

// blasCheck says why call cannot run: no cuBLAS, or an int argument that
// does not fit cuBLAS's 32 bits.
func (d *Device) blasCheck(call string, ints ...int) error {
	if d.blas == nil {
		return fmt.Errorf("cuda: %s needs cuBLAS: %v", call, d.BLASError)
	}
	for _, v := range ints {
		if v != int(int32(v)) {
			return fmt.Errorf("cuda: %s: size %d does not fit a 32-bit int", call, v)
		}
	}
	return nil
}

// op is cuBLAS's operation for a transpose flag (CUBLAS_OP_T or _N).
func op(t bool) C.int {
	if t {
		return 1
	}
	return 0
}
