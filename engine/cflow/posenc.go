package cflow

import (
	"fmt"
	"math"
)

// PositionalEncoding returns CFLOW's 2-D sine/cosine encoding of every
// position of an h x w grid, [d][h][w] row-major. d must be a positive
// multiple of 4: with k < d/4 and f_k = 10000^(-4k/d), channel 2k is
// sin(col f_k), 2k+1 cos(col f_k), d/2+2k sin(row f_k) and d/2+2k+1
// cos(row f_k), rows and columns counted from 0. As in torch, f_k and the
// products are float32; the sines and cosines are those of the float32
// products, rounded once.
func PositionalEncoding(d, h, w int) ([]float32, error) {
	if d <= 0 || d%4 != 0 || h <= 0 || w <= 0 {
		return nil, fmt.Errorf("cflow: positional encoding of %d dims over %dx%d: dims must be a positive multiple of 4, the grid not empty", d, h, w)
	}
	out := make([]float32, d*h*w)
	half := d / 2
	for k := 0; k < d/4; k++ {
		f := float32(math.Exp(float64(float32(2*k) * float32(-(math.Log(1e4) / float64(half))))))
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				at := func(ch int) int { return (ch*h+y)*w + x }
				cx, cy := float64(float32(x)*f), float64(float32(y)*f)
				out[at(2*k)] = float32(math.Sin(cx))
				out[at(2*k+1)] = float32(math.Cos(cx))
				out[at(half+2*k)] = float32(math.Sin(cy))
				out[at(half+2*k+1)] = float32(math.Cos(cy))
			}
		}
	}
	return out, nil
}
