package cuda

/*
#include <stdlib.h>
#include "driver.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// Device attributes (CUdevice_attribute).
const (
	attrMultiprocessors = 16
	attrCCMajor         = 75
	attrCCMinor         = 76
)

// Device is one GPU through the driver API: its primary context and one
// non-blocking stream on which every copy and launch of this package runs
// in order. A Device is used from one goroutine at a time.
type Device struct {
	// Ordinal is the device's index, Name its name, Memory its global
	// memory in bytes, Major.Minor its compute capability, SMs its number
	// of multiprocessors and Driver the driver's CUDA version (e.g. 13000).
	Ordinal      int
	Name         string
	Memory       int64
	Major, Minor int
	SMs          int
	Driver       int

	dev    C.CUdevice
	ctx    C.CUcontext
	stream C.CUstream
	blas   *blasHandle // nil: cuBLAS not found (see BLASError)
	// BLASError says why cuBLAS is not used, when it is not.
	BLASError error
	kernels   *Module
}

// Open opens GPU ordinal: it loads the driver library (libcuda.so.1) at
// run time, retains the device's primary context, creates a stream, loads
// this package's kernels and, when found, cuBLAS. Without a driver or a
// device it returns an error that says which, for a one-line fallback
// message.
func Open(ordinal int) (*Device, error) {
	if err := loadDriver(); err != nil {
		return nil, err
	}
	var n C.int
	if err := driverErr("cuDeviceGetCount", C.sp_cuDeviceGetCount(&n)); err != nil {
		return nil, err
	}
	if ordinal < 0 || ordinal >= int(n) {
		return nil, fmt.Errorf("cuda: no GPU %d (the driver sees %d)", ordinal, int(n))
	}
	d := &Device{Ordinal: ordinal}
	if err := driverErr("cuDeviceGet", C.sp_cuDeviceGet(&d.dev, C.int(ordinal))); err != nil {
		return nil, err
	}
	var name [256]C.char
	if err := driverErr("cuDeviceGetName", C.sp_cuDeviceGetName(&name[0], C.int(len(name)), d.dev)); err != nil {
		return nil, err
	}
	d.Name = C.GoString(&name[0])
	var mem C.size_t
	if err := driverErr("cuDeviceTotalMem", C.sp_cuDeviceTotalMem(&mem, d.dev)); err != nil {
		return nil, err
	}
	d.Memory = int64(mem)
	for _, a := range []struct {
		attr int
		dst  *int
	}{{attrCCMajor, &d.Major}, {attrCCMinor, &d.Minor}, {attrMultiprocessors, &d.SMs}} {
		var v C.int
		if err := driverErr("cuDeviceGetAttribute", C.sp_cuDeviceGetAttribute(&v, C.int(a.attr), d.dev)); err != nil {
			return nil, err
		}
		*a.dst = int(v)
	}
	var v C.int
	if err := driverErr("cuDriverGetVersion", C.sp_cuDriverGetVersion(&v)); err != nil {
		return nil, err
	}
	d.Driver = int(v)
	if err := driverErr("cuDevicePrimaryCtxRetain", C.sp_cuDevicePrimaryCtxRetain(&d.ctx, d.dev)); err != nil {
		return nil, err
	}
	if err := d.createStream(); err != nil {
		d.Close()
		return nil, err
	}
	var err error
	if d.kernels, err = d.LoadModule(kernelsPTX); err != nil {
		d.Close()
		return nil, fmt.Errorf("cuda: loading the embedded kernels: %w", err)
	}
	d.blas, d.BLASError = openBLAS(d)
	return d, nil
}

// createStream creates the device's stream.
func (d *Device) createStream() error {
	return d.bound(func() error { return driverErr("cuStreamCreate", C.sp_cuStreamCreate(&d.stream)) })
}

// bound runs fn on a locked OS thread with the device's context current:
// the driver's current context belongs to a thread, and goroutines move
// between threads, so every call of this package into the driver or
// cuBLAS goes through bound.
func (d *Device) bound(fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := driverErr("cuCtxSetCurrent", C.sp_cuCtxSetCurrent(d.ctx)); err != nil {
		return err
	}
	return fn()
}

// String describes the device, e.g. "NVIDIA H200 (sm_90, 132 SMs, 140 GiB,
// driver 13.0, cuBLAS)".
func (d *Device) String() string {
	blas := "cuBLAS"
	if d.blas == nil {
		blas = "no cuBLAS"
	}
	return fmt.Sprintf("%s (sm_%d%d, %d SMs, %.0f GiB, driver %d.%d, %s)", d.Name, d.Major, d.Minor, d.SMs,
		float64(d.Memory)/(1<<30), d.Driver/1000, d.Driver%1000/10, blas)
}

// Close releases the stream, the kernels, cuBLAS and the primary context.
func (d *Device) Close() error {
	var first error
	keep := func(err error) {
		if first == nil {
			first = err
		}
	}
	if d.ctx == nil {
		return nil
	}
	keep(d.bound(func() error {
		if d.blas != nil {
			keep(d.blas.close())
			d.blas = nil
		}
		if d.kernels != nil {
			keep(driverErr("cuModuleUnload", C.sp_cuModuleUnload(d.kernels.m)))
			d.kernels = nil
		}
		if d.stream != nil {
			keep(driverErr("cuStreamDestroy", C.sp_cuStreamDestroy(d.stream)))
			d.stream = nil
		}
		return nil
	}))
	keep(driverErr("cuDevicePrimaryCtxRelease", C.sp_cuDevicePrimaryCtxRelease(d.dev)))
	d.ctx = nil
	return first
}

// Buffer is device memory: Bytes bytes at Ptr.
type Buffer struct {
	Ptr   uint64
	Bytes int64
}

// Alloc allocates bytes of device memory (cuMemAlloc: plain, not managed).
func (d *Device) Alloc(bytes int64) (Buffer, error) {
	var p C.CUdeviceptr
	err := d.bound(func() error {
		return driverErr(fmt.Sprintf("cuMemAlloc(%d bytes)", bytes), C.sp_cuMemAlloc(&p, C.size_t(max(bytes, 1))))
	})
	if err != nil {
		return Buffer{}, err
	}
	return Buffer{Ptr: uint64(p), Bytes: bytes}, nil
}

// Free releases b (a zero Buffer is ignored).
func (d *Device) Free(b Buffer) error {
	if b.Ptr == 0 {
		return nil
	}
	return d.bound(func() error { return driverErr("cuMemFree", C.sp_cuMemFree(C.CUdeviceptr(b.Ptr))) })
}

// buffers are device allocations freed together: alloc records the first
// error and skips the allocations after it, free releases them all.
type buffers struct {
	d    *Device
	list []Buffer
	err  error
}

func (bs *buffers) alloc(bytes int64) Buffer {
	if bs.err != nil {
		return Buffer{}
	}
	b, err := bs.d.Alloc(bytes)
	if err != nil {
		bs.err = err
		return Buffer{}
	}
	bs.list = append(bs.list, b)
	return b
}

// free waits for the work queued on the stream (which may still use the
// buffers, on an error path too), releases every buffer and returns the
// first error.
func (bs *buffers) free() error {
	first := bs.d.Sync()
	for _, b := range bs.list {
		if err := bs.d.Free(b); first == nil {
			first = err
		}
	}
	bs.list = nil
	return first
}

// Upload copies src into dst at byte offset off and waits for the copy.
func Upload[T float32 | float64 | int32 | uint32 | uint64](d *Device, dst Buffer, off int64, src []T) error {
	n := int64(len(src)) * int64(unsafe.Sizeof(src[0]))
	if len(src) == 0 {
		return nil
	}
	if off < 0 || off+n > dst.Bytes {
		return fmt.Errorf("cuda: upload of %d bytes at %d into a buffer of %d", n, off, dst.Bytes)
	}
	return d.bound(func() error {
		if err := driverErr("cuMemcpyHtoDAsync", C.sp_cuMemcpyHtoD(C.CUdeviceptr(dst.Ptr+uint64(off)), unsafe.Pointer(&src[0]), C.size_t(n), d.stream)); err != nil {
			return err
		}
		return d.syncBound() // src must stay put until the copy is done
	})
}

// Download copies len(dst) values from src at byte offset off into dst,
// after everything queued before it.
func Download[T float32 | float64 | int32 | uint32 | uint64](d *Device, dst []T, src Buffer, off int64) error {
	if len(dst) == 0 {
		return nil
	}
	n := int64(len(dst)) * int64(unsafe.Sizeof(dst[0]))
	if off < 0 || off+n > src.Bytes {
		return fmt.Errorf("cuda: download of %d bytes at %d from a buffer of %d", n, off, src.Bytes)
	}
	return d.bound(func() error {
		if err := driverErr("cuMemcpyDtoHAsync", C.sp_cuMemcpyDtoH(unsafe.Pointer(&dst[0]), C.CUdeviceptr(src.Ptr+uint64(off)), C.size_t(n), d.stream)); err != nil {
			return err
		}
		return d.syncBound()
	})
}

// Zero sets b's bytes to 0 (queued on the stream).
func (d *Device) Zero(b Buffer) error {
	return d.bound(func() error {
		return driverErr("cuMemsetD8Async", C.sp_cuMemsetD8(C.CUdeviceptr(b.Ptr), 0, C.size_t(b.Bytes), d.stream))
	})
}

// Sync waits for everything queued on the device's stream.
func (d *Device) Sync() error { return d.bound(d.syncBound) }

// syncBound waits for the stream, inside bound.
func (d *Device) syncBound() error {
	return driverErr("cuStreamSynchronize", C.sp_cuStreamSynchronize(d.stream))
}

// Module is loaded PTX (JIT-compiled by the driver for the device).
type Module struct {
	m C.CUmodule
}

// LoadModule loads PTX text.
func (d *Device) LoadModule(ptx string) (*Module, error) {
	img := C.CString(ptx)
	defer C.free(unsafe.Pointer(img))
	var m C.CUmodule
	var log [4096]C.char
	err := d.bound(func() error {
		return driverErr("cuModuleLoadDataEx", C.sp_cuModuleLoadDataLog(&m, unsafe.Pointer(img), &log[0], C.uint(len(log))))
	})
	if err != nil {
		if s := C.GoString(&log[0]); s != "" {
			err = fmt.Errorf("%w: %s", err, s)
		}
		return nil, err
	}
	return &Module{m: m}, nil
}

// Function is a kernel of a module.
type Function struct {
	name string
	f    C.CUfunction
}

// Function looks a kernel of m up by name.
func (d *Device) Function(m *Module, name string) (Function, error) {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	var f C.CUfunction
	if err := d.bound(func() error {
		return driverErr("cuModuleGetFunction("+name+")", C.sp_cuModuleGetFunction(&f, m.m, cs))
	}); err != nil {
		return Function{}, err
	}
	return Function{name: name, f: f}, nil
}

// kernel returns one of this package's kernels.
func (d *Device) kernel(name string) (Function, error) { return d.Function(d.kernels, name) }

// Launch queues fn on the device's stream with grid x block threads and
// shared bytes of dynamic shared memory. Arguments are Buffers (passed as
// their device pointers; a zero Buffer is a null pointer), int (as a
// 32-bit int), int32, int64 (a C long), uint32, uint64, float32 or
// float64, in the kernel's parameter order.
func (d *Device) Launch(fn Function, grid, block [3]uint32, shared uint32, args ...any) error {
	vals := C.malloc(C.size_t(8 * max(len(args), 1)))
	ptrs := C.malloc(C.size_t(unsafe.Sizeof(uintptr(0))) * C.size_t(max(len(args), 1)))
	defer C.free(vals)
	defer C.free(ptrs)
	vs := unsafe.Slice((*[8]byte)(vals), max(len(args), 1))
	ps := unsafe.Slice((*unsafe.Pointer)(ptrs), max(len(args), 1))
	for i := range vs {
		// Poison: a 32-bit argument that the kernel declares 64-bit reads
		// as a huge value (on the CPU emulator, which reads 8 bytes), not
		// as a plausible one.
		vs[i] = [8]byte{0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5}
	}
	for i, a := range args {
		p := unsafe.Pointer(&vs[i][0])
		switch v := a.(type) {
		case Buffer:
			*(*uint64)(p) = v.Ptr
		case int:
			if v != int(int32(v)) {
				return fmt.Errorf("cuda: launch %s: argument %d = %d does not fit a 32-bit int", fn.name, i, v)
			}
			*(*int32)(p) = int32(v)
		case int32:
			*(*int32)(p) = v
		case int64:
			*(*int64)(p) = v
		case uint32:
			*(*uint32)(p) = v
		case uint64:
			*(*uint64)(p) = v
		case float32:
			*(*float32)(p) = v
		case float64:
			*(*float64)(p) = v
		default:
			return fmt.Errorf("cuda: launch %s: argument %d has unsupported type %T", fn.name, i, a)
		}
		ps[i] = p
	}
	return d.bound(func() error {
		return driverErr("cuLaunchKernel("+fn.name+")", C.sp_cuLaunchKernel(fn.f, C.uint(grid[0]), C.uint(grid[1]), C.uint(grid[2]),
			C.uint(block[0]), C.uint(block[1]), C.uint(block[2]), C.uint(shared), d.stream, (*unsafe.Pointer)(ptrs)))
	})
}
