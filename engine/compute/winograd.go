package compute

/*
#cgo CFLAGS: -O3

// Defined in winograd.c.
int wino_supported(void);
void wino_input(const float *x, int h, int w, int pad, int th, int tw, float *v, long vs);
void wino_output(const float *m, long ms, int th, int tw, float bias, const float *res, int relu, float *y, int oh, int ow);
void wino2_input(const float *x, int h, int w, int pad, int th, int tw, float *v, long vs);
void wino2_output(const float *m, long ms, int th, int tw, float bias, const float *res, int relu, float *y, int oh, int ow);
*/
import "C"

import (
	"sync"
	"unsafe"
)

// Winograd convolution for 3x3 stride-1 layers. With F(m x m, 3x3) (m = 4
// or 2, alpha = m+2), each alpha x alpha input tile d becomes V = B^T d B,
// each filter g becomes U = G g G^T, the alpha^2 positions xi of the
// transformed tiles are alpha^2 independent GEMMs
// M[xi] = U[xi] [Out x In] times V[xi] [In x tiles] (through this package's
// SGEMM, U packed once, or OpenBLAS; see useKernel), and
// each output tile is the m x m block A^T M A. The tile transforms are in
// winograd.c.
//
// F(4x4,3x3) does 4x fewer multiplications than direct convolution, and
// F(2x2,3x3) 2.25x fewer; F(2x2) is used when F(4x4) would leave too few
// tiles per GEMM for OpenBLAS to run efficiently (small images at batch 1:
// the 14x14 layers of WRN-50-2), since then each U[xi] is packed for very
// little work.

// winoOK reports whether the CPU has the AVX2 and FMA the tile transforms
// need; without them Forward uses im2col for 3x3 convolutions too.
var winoOK = C.wino_supported() != 0

// winoVariant is F(m x m, 3x3).
type winoVariant struct {
	m, alpha int
	g        [][3]float64 // G, alpha x 3
}

var (
	winoF4 = &winoVariant{m: 4, alpha: 6, g: [][3]float64{
		{1.0 / 4, 0, 0},
		{-1.0 / 6, -1.0 / 6, -1.0 / 6},
		{-1.0 / 6, 1.0 / 6, -1.0 / 6},
		{1.0 / 24, 1.0 / 12, 1.0 / 6},
		{1.0 / 24, -1.0 / 12, 1.0 / 6},
		{0, 0, 1},
	}}
	winoF2 = &winoVariant{m: 2, alpha: 4, g: [][3]float64{
		{1, 0, 0},
		{0.5, 0.5, 0.5},
		{0.5, -0.5, 0.5},
		{0, 0, 1},
	}}
)

// winoMinTiles is the number of F(4x4) tiles per GEMM (images times tiles
// per image) below which forwardWinograd uses F(2x2) instead.
var winoMinTiles = 48

// forceWino, when not nil, makes forwardWinograd use that variant.
var forceWino *winoVariant

// winoWeights is a Conv's filter bank transformed for one Winograd variant:
// u [alpha^2][Out][In], computed from the Weight slice whose first element is
// at src; for this package's GEMM kernels (kern not OpenBLAS), each of the
// alpha^2 matrices is packed (see packA), matrix xi at xi*len(u)/alpha^2.
type winoWeights struct {
	v    *winoVariant
	kern gemmKernel
	src  *float32
	u    []float32
}

// winoMu guards the wino and packed fields of every Conv.
var winoMu sync.Mutex

// winogradWeights returns the weights transformed for v and laid out for
// kern, computing them (in float64, rounded once to float32) on first use or
// when Weight has been replaced by another slice.
func (c *Conv) winogradWeights(v *winoVariant, kern gemmKernel) []float32 {
	winoMu.Lock()
	defer winoMu.Unlock()
	for _, ww := range c.wino {
		if ww.v == v && ww.kern == kern && ww.src == &c.Weight[0] {
			return ww.u
		}
	}
	a := v.alpha
	oi := c.Out * c.In
	u := make([]float32, a*a*oi)
	ParallelFor(oi, 64, func(lo, hi int) {
		var t [6][3]float64 // G g
		for p := lo; p < hi; p++ {
			g := c.Weight[p*9 : p*9+9]
			for i := 0; i < a; i++ {
				for j := 0; j < 3; j++ {
					t[i][j] = v.g[i][0]*float64(g[j]) + v.g[i][1]*float64(g[3+j]) + v.g[i][2]*float64(g[6+j])
				}
			}
			for i := 0; i < a; i++ {
				for j := 0; j < a; j++ {
					u[(i*a+j)*oi+p] = float32(t[i][0]*v.g[j][0] + t[i][1]*v.g[j][1] + t[i][2]*v.g[j][2])
				}
			}
		}
	})
	if kern != kernelOpenBLAS {
		raw := u
		ps := packedSize(kern, c.Out, c.In)
		u = make([]float32, a*a*ps)
		ParallelFor(a*a, 1, func(lo, hi int) {
			for xi := lo; xi < hi; xi++ {
				copy(u[xi*ps:(xi+1)*ps], packA(kern, c.Out, c.In, raw[xi*oi:], c.In))
			}
		})
	}
	// Keep the other variants' weights if they are still current.
	keep := c.wino[:0:0]
	for _, ww := range c.wino {
		if (ww.v != v || ww.kern != kern) && ww.src == &c.Weight[0] {
			keep = append(keep, ww)
		}
	}
	c.wino = append(keep, &winoWeights{v: v, kern: kern, src: &c.Weight[0], u: u})
	return u
}

// winoGroupBytes bounds the scratch (V and M) one group of images uses in
// forwardWinograd, to keep it in cache; a group has at least one image.
var winoGroupBytes = 32 << 20

// forwardWinograd runs the Winograd path on groups of images: the tiles of
// the images of a group sit side by side in V [alpha^2][In][T] and
// M [alpha^2][Out][T], T = images*th*tw.
func (c *Conv) forwardWinograd(dst, x, residual []float32, n, h, w int, ws *Workspace) {
	oh, ow := c.OutputSize(h, w)
	v := winoF4
	if n*((oh+3)/4)*((ow+3)/4) < winoMinTiles {
		v = winoF2
	}
	if forceWino != nil {
		v = forceWino
	}
	u := c.winogradWeights(v, useKernel)
	a2 := v.alpha * v.alpha
	th, tw := (oh+v.m-1)/v.m, (ow+v.m-1)/v.m
	tpi := th * tw // tiles per image
	in, out := c.In, c.Out
	g := min(n, max(1, winoGroupBytes/(a2*(in+out)*tpi*4)))
	vb := grow(&ws.wino, a2*in*g*tpi)
	m := grow(&ws.out, a2*out*g*tpi)
	ihw, ohw := h*w, oh*ow
	for i0 := 0; i0 < n; i0 += g {
		gn := min(g, n-i0)
		tn := gn * tpi
		ParallelFor(gn*in, 1, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				img, ci := r/in, r%in
				winoInput(v, x[((i0+img)*in+ci)*ihw:], h, w, c.Pad, th, tw, vb[ci*tn+img*tpi:], in*tn)
			}
		})
		var gb gemmBatch
		if ours() {
			ps := len(u) / a2
			for xi := 0; xi < a2; xi++ {
				gb.addPacked(out, tn, in, xi*ps, xi*in*tn, tn, xi*out*tn, tn, -1, -1, 0)
			}
			gb.runPacked(useKernel, u, vb, m, nil, nil, false)
		} else {
			for xi := 0; xi < a2; xi++ {
				gb.add(false, false, out, tn, in, xi*out*in, in, xi*in*tn, tn, xi*out*tn, tn)
			}
			gb.run(1, u, vb, 0, m)
		}
		ParallelFor(gn*out, 1, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				img, o := r/out, r%out
				d := ((i0+img)*out + o) * ohw
				var res []float32
				if residual != nil {
					res = residual[d:]
				}
				winoOutput(v, m[o*tn+img*tpi:], out*tn, th, tw, c.Bias[o], res, c.ReLU, dst[d:], oh, ow)
			}
		})
	}
}

// winoInput transforms the plane x [h][w] into v with variant wv: element
// (k, l) of tile t at v[(alpha*k+l)*vs+t] (see wino_input in winograd.c).
func winoInput(wv *winoVariant, x []float32, h, w, pad, th, tw int, v []float32, vs int) {
	_ = x[h*w-1]
	_ = v[(wv.alpha*wv.alpha-1)*vs+th*tw-1]
	xp, vp := (*C.float)(unsafe.Pointer(&x[0])), (*C.float)(unsafe.Pointer(&v[0]))
	if wv.m == 4 {
		C.wino_input(xp, C.int(h), C.int(w), C.int(pad), C.int(th), C.int(tw), vp, C.long(vs))
	} else {
		C.wino2_input(xp, C.int(h), C.int(w), C.int(pad), C.int(th), C.int(tw), vp, C.long(vs))
	}
}

// winoOutput inverse-transforms the tiles of one output plane from m
// (element (k, l) of tile t at m[(alpha*k+l)*ms+t]) with variant wv into
// y [oh][ow], adding bias and res (nil or y's layout) and applying ReLU if
// relu is set.
func winoOutput(wv *winoVariant, m []float32, ms, th, tw int, bias float32, res []float32, relu bool, y []float32, oh, ow int) {
	_ = m[(wv.alpha*wv.alpha-1)*ms+th*tw-1]
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
	mp, yp := (*C.float)(unsafe.Pointer(&m[0])), (*C.float)(unsafe.Pointer(&y[0]))
	if wv.m == 4 {
		C.wino_output(mp, C.long(ms), C.int(th), C.int(tw), C.float(bias), rp, r, yp, C.int(oh), C.int(ow))
	} else {
		C.wino2_output(mp, C.long(ms), C.int(th), C.int(tw), C.float(bias), rp, r, yp, C.int(oh), C.int(ow))
	}
}
