package cuda

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "driver.h"
*/
import "C"

import (
	"fmt"
	"os"
	"sync"
	"unsafe"
)

// driverErr turns a driver API status into an error naming the call, or
// nil for CUDA_SUCCESS.
func driverErr(call string, r C.CUresult) error {
	if r == 0 {
		return nil
	}
	return fmt.Errorf("cuda: %s: %s (%d)", call, C.GoString(C.sp_cuGetErrorName(r)), int(r))
}

var (
	loadOnce sync.Once
	loadErr  error
)

// loadDriver opens libcuda.so.1 (or the file $SOFTPATCH_LIBCUDA, e.g. the
// CPU emulator of cuda/emulator) and initialises the driver, once.
func loadDriver() error {
	loadOnce.Do(func() {
		path := C.CString(os.Getenv("SOFTPATCH_LIBCUDA"))
		defer C.free(unsafe.Pointer(path))
		if e := C.sp_load(path); e != nil {
			loadErr = fmt.Errorf("cuda: no usable NVIDIA driver library: %s", C.GoString(e))
			return
		}
		loadErr = driverErr("cuInit", C.sp_cuInit())
	})
	return loadErr
}
