// Patch embedding and anomaly-map kernels (engine/embed, engine/detector maps); included by kernels.cu.
