package cuda

import _ "embed"

// kernelsPTX is kernels.cu compiled to PTX for sm_70 (make ptx); the
// driver JIT-compiles it for the device when Open loads it.
//
//go:embed kernels.ptx
var kernelsPTX string
