// Patch-level noise discriminators on the GPU (engine/denoise); included by kernels.cu.
