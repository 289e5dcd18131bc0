package compute

/*
#cgo CFLAGS: -O3
#include "winograd.h"
*/
import "C"

import (
	"sync"
	"unsafe"
)

// Winograd F(4x4,3x3) for 3x3 stride-1 convolutions: each 6x6 input tile d
// becomes V = B^T d B, each filter g becomes U = G g G^T, the 36 positions
// xi of the transformed tiles are 36 GEMMs M[xi] = U[xi] [Out x In] times
// V[xi] [In x tiles] through OpenBLAS, and each output tile is A^T M A
// (4x4). The tile transforms are in winograd.c.

// winoWeights is a Conv's filter bank transformed for Winograd:
// u [36][Out][In], computed from the Weight slice whose first element is at
// src.
type winoWeights struct {
	src *float32
	u   []float32
}

// winoMu guards the wino field of every Conv.
var winoMu sync.Mutex

// winoG is G of F(4x4,3x3).
var winoG = [6][3]float64{
	{1.0 / 4, 0, 0},
	{-1.0 / 6, -1.0 / 6, -1.0 / 6},
	{-1.0 / 6, 1.0 / 6, -1.0 / 6},
	{1.0 / 24, 1.0 / 12, 1.0 / 6},
	{1.0 / 24, -1.0 / 12, 1.0 / 6},
	{0, 0, 1},
}

// winogradWeights returns the transformed weights, computing them (in
// float64, rounded once to float32) on first use or when Weight has been
// replaced by another slice.
func (c *Conv) winogradWeights() []float32 {
	winoMu.Lock()
	defer winoMu.Unlock()
	if c.wino != nil && c.wino.src == &c.Weight[0] && len(c.wino.u) == 36*c.Out*c.In {
		return c.wino.u
	}
	u := make([]float32, 36*c.Out*c.In)
	oi := c.Out * c.In
	parallelFor(oi, 64, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			g := c.Weight[p*9 : p*9+9]
			var t [6][3]float64 // G g
			for i := 0; i < 6; i++ {
				for j := 0; j < 3; j++ {
					t[i][j] = winoG[i][0]*float64(g[j]) + winoG[i][1]*float64(g[3+j]) + winoG[i][2]*float64(g[6+j])
				}
			}
			for i := 0; i < 6; i++ {
				for j := 0; j < 6; j++ {
					u[(i*6+j)*oi+p] = float32(t[i][0]*winoG[j][0] + t[i][1]*winoG[j][1] + t[i][2]*winoG[j][2])
				}
			}
		}
	})
	c.wino = &winoWeights{src: &c.Weight[0], u: u}
	return u
}

// winoGroupBytes bounds the scratch (V and M) one group of images uses in
// forwardWinograd, to keep it in cache; a group has at least one image.
var winoGroupBytes = 8 << 20

// forwardWinograd runs the Winograd path on groups of images: the tiles of
// the images of a group sit side by side in V [36][In][T] and
// M [36][Out][T], T = images*th*tw.
func (c *Conv) forwardWinograd(dst, x, residual []float32, n, h, w int, ws *Workspace) {
	u := c.winogradWeights()
	oh, ow := c.OutputSize(h, w)
	th, tw := (oh+3)/4, (ow+3)/4
	tpi := th * tw // tiles per image
	in, out := c.In, c.Out
	g := min(n, max(1, winoGroupBytes/(36*(in+out)*tpi*4)))
	v := grow(&ws.wino, 36*in*g*tpi)
	m := grow(&ws.out, 36*out*g*tpi)
	ihw, ohw := h*w, oh*ow
	for i0 := 0; i0 < n; i0 += g {
		gn := min(g, n-i0)
		tn := gn * tpi
		parallelFor(gn*in, 1, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				img, ci := r/in, r%in
				winoInput(x[((i0+img)*in+ci)*ihw:], h, w, c.Pad, th, tw, v[ci*tn+img*tpi:], in*tn)
			}
		})
		sgemmBatch(36, func(xi int) {
			sgemm(false, false, out, tn, in, 1, u[xi*out*in:], in, v[xi*in*tn:], tn, 0, m[xi*out*tn:], tn)
		})
		parallelFor(gn*out, 1, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				img, o := r/out, r%out
				d := ((i0+img)*out + o) * ohw
				var res []float32
				if residual != nil {
					res = residual[d:]
				}
				winoOutput(m[o*tn+img*tpi:], out*tn, th, tw, c.Bias[o], res, c.ReLU, dst[d:], oh, ow)
			}
		})
	}
}

// winoInput transforms the plane x [h][w] into v: element (k, l) of tile t
// at v[(6*k+l)*vs+t] (see wino_input in winograd.c).
func winoInput(x []float32, h, w, pad, th, tw int, v []float32, vs int) {
	_ = x[h*w-1]
	_ = v[35*vs+th*tw-1]
	C.wino_input((*C.float)(unsafe.Pointer(&x[0])), C.int(h), C.int(w), C.int(pad),
		C.int(th), C.int(tw), (*C.float)(unsafe.Pointer(&v[0])), C.long(vs))
}

// winoOutput inverse-transforms the tiles of one output plane from m
// (element (k, l) of tile t at m[(6*k+l)*ms+t]) into y [oh][ow], adding
// bias and res (nil or y's layout) and applying ReLU if relu is set.
func winoOutput(m []float32, ms, th, tw int, bias float32, res []float32, relu bool, y []float32, oh, ow int) {
	_ = m[35*ms+th*tw-1]
	_ = y[oh*ow-1]
	var rp *C.float
	if res != nil {
		_ = res[oh*ow-1]
		rp = (*C.float)(unsafe.Pointer(&res[0]))
	}
	r := C.int(0)
	if relu {
		r = 1
	}
	C.wino_output((*C.float)(unsafe.Pointer(&m[0])), C.long(ms), C.int(th), C.int(tw),
		C.float(bias), rp, r, (*C.float)(unsafe.Pointer(&y[0])), C.int(oh), C.int(ow))
}
