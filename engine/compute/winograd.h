// Winograd F(4x4,3x3) tile transforms of package compute (see winograd.go).
#ifndef COMPUTE_WINOGRAD_H
#define COMPUTE_WINOGRAD_H

void wino_input(const float *x, int h, int w, int pad, int th, int tw, float *v, long vs);
void wino_output(const float *m, long ms, int th, int tw, float bias, const float *res, int relu, float *y, int oh, int ow);

#endif
