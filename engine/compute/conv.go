package compute

import "fmt"

// Conv is a 2-D convolution (square kernel, the same stride and padding on
// both axes, groups=1, no dilation) with eval-mode BatchNorm already folded
// into Weight and Bias (see FoldBatchNorm):
//
//	y = conv(x, Weight) + Bias[o]; then + residual (if given); then ReLU (if set).
//
// Forward picks the algorithm from the shape: a plain GEMM per image for 1x1
// stride-1 unpadded convolutions; Winograd for 3x3 stride-1 ones
// (F(4x4,3x3), or F(2x2,3x3) when the batch has fewer than 48 4x4 output
// tiles, e.g. 14x14 at batch 1; needs AVX2 and FMA); im2col+GEMM otherwise
// (the stem, strided 3x3, and strided 1x1, whose im2col is a strided
// gather). Winograd's float32 error is a few 1e-6 relative per layer (see
// the tests).
//
// The Winograd path caches the transformed weights (4x the size of Weight
// for F(4x4,3x3), 16/9x for F(2x2,3x3); both when used with both) inside
// the Conv on first use; Weight must not be modified in place after the
// first Forward (assigning a new slice is fine: the cache is keyed by the
// slice). With the package's own SGEMM (see BLASInfo), the other paths
// likewise cache a copy of Weight packed for the kernel (Weight's size, Out
// rounded up to the micro-tile height), and the Winograd cache holds the
// transformed weights in that packed layout. A Conv may be used by several goroutines at once, each with its
// own Workspace.
type Conv struct {
	In, Out, Kernel, Stride, Pad int
	Weight                       []float32 // [Out][In][Kernel][Kernel]
	Bias                         []float32 // [Out]
	ReLU                         bool

	wino   []*winoWeights // transformed weights of the Winograd path, built lazily
	packed *packedWeights // Weight packed for this package's GEMM kernel, built lazily
}

// packedWeights is a Conv's Weight, as an [Out] x [In*Kernel*Kernel]
// matrix, packed for a kernel set (see packA), from the Weight slice whose
// first element is at src.
type packedWeights struct {
	kern gemmKernel
	src  *float32
	a    []float32
}

// packedWeights returns c.Weight packed for kern, packing it on first use
// or when Weight has been replaced by another slice.
func (c *Conv) packedWeights(kern gemmKernel) []float32 {
	winoMu.Lock()
	defer winoMu.Unlock()
	if p := c.packed; p != nil && p.kern == kern && p.src == &c.Weight[0] {
		return p.a
	}
	kk := c.In * c.Kernel * c.Kernel
	c.packed = &packedWeights{kern: kern, src: &c.Weight[0], a: packA(kern, c.Out, kk, c.Weight, kk)}
	return c.packed.a
}

// Workspace holds the scratch buffers of Conv.Forward, reused across calls
// and grown on demand. Its zero value is ready to use. A Workspace must not
// be used by two Forward calls at the same time.
type Workspace struct {
	col  []float32 // im2col matrix
	out  []float32 // batched im2col GEMM output, or Winograd M
	wino []float32 // Winograd V (transformed input tiles)
}

// grow returns (*p)[:n], reallocating when the capacity is short.
func grow(p *[]float32, n int) []float32 {
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	return (*p)[:n]
}

// convPath names an algorithm of Conv.Forward.
type convPath int

const (
	pathAuto     convPath = iota
	pathGEMM1x1           // 1x1, stride 1, pad 0: one GEMM per image
	pathIm2col            // im2col (a strided gather for 1x1) + GEMM
	pathWinograd          // Winograd F(4x4,3x3) or F(2x2,3x3), 3x3 stride 1
)

// forcePath, when not pathAuto, makes Forward use that path wherever it
// applies (tests use it to exercise every path).
var forcePath = pathAuto

// batchIm2col makes the im2col path lay all images side by side and run a
// single GEMM when n > 1.
var batchIm2col = true

// path returns the algorithm Forward uses for c.
func (c *Conv) path() convPath {
	k, s, p := c.Kernel, c.Stride, c.Pad
	can1x1 := k == 1 && s == 1 && p == 0
	canWino := k == 3 && s == 1 && winoOK
	switch {
	case forcePath == pathGEMM1x1 && can1x1, forcePath == pathIm2col:
		return forcePath
	case forcePath == pathWinograd && canWino:
		return pathWinograd
	case can1x1:
		return pathGEMM1x1
	case canWino:
		return pathWinograd
	}
	return pathIm2col
}

// OutputSize returns the spatial output size for an h x w input, as torch
// computes it: (h+2*Pad-Kernel)/Stride+1 (floor division).
func (c *Conv) OutputSize(h, w int) (oh, ow int) {
	return (h+2*c.Pad-c.Kernel)/c.Stride + 1, (w+2*c.Pad-c.Kernel)/c.Stride + 1
}

// Forward writes dst [n][Out][oh][ow] (oh, ow from OutputSize) from
// x [n][In][h][w]. residual is nil or has dst's shape; it is added after the
// bias and before the ReLU. ws holds scratch buffers reused across calls;
// nil allocates fresh ones. dst must not overlap x or residual. All slices
// belong to the caller.
func (c *Conv) Forward(dst, x, residual []float32, n, h, w int, ws *Workspace) {
	if c.In <= 0 || c.Out <= 0 || c.Kernel <= 0 || c.Stride <= 0 || c.Pad < 0 {
		panic(fmt.Sprintf("compute.Conv.Forward: invalid conv In=%d Out=%d Kernel=%d Stride=%d Pad=%d", c.In, c.Out, c.Kernel, c.Stride, c.Pad))
	}
	if nw := c.Out * c.In * c.Kernel * c.Kernel; len(c.Weight) != nw || len(c.Bias) != c.Out {
		panic(fmt.Sprintf("compute.Conv.Forward: len(Weight)=%d len(Bias)=%d, want %d and %d for Out=%d In=%d Kernel=%d", len(c.Weight), len(c.Bias), nw, c.Out, c.Out, c.In, c.Kernel))
	}
	oh, ow := c.OutputSize(h, w)
	if n <= 0 || h <= 0 || w <= 0 || oh <= 0 || ow <= 0 {
		panic(fmt.Sprintf("compute.Conv.Forward: invalid input n=%d h=%d w=%d (output %dx%d) for Kernel=%d Stride=%d Pad=%d", n, h, w, oh, ow, c.Kernel, c.Stride, c.Pad))
	}
	if len(x) != n*c.In*h*w {
		panic(fmt.Sprintf("compute.Conv.Forward: len(x)=%d, want n*In*h*w=%d*%d*%d*%d=%d", len(x), n, c.In, h, w, n*c.In*h*w))
	}
	if len(dst) != n*c.Out*oh*ow {
		panic(fmt.Sprintf("compute.Conv.Forward: len(dst)=%d, want n*Out*oh*ow=%d*%d*%d*%d=%d", len(dst), n, c.Out, oh, ow, n*c.Out*oh*ow))
	}
	if residual != nil && len(residual) != len(dst) {
		panic(fmt.Sprintf("compute.Conv.Forward: len(residual)=%d, want len(dst)=%d", len(residual), len(dst)))
	}
	if ws == nil {
		ws = new(Workspace)
	}
	switch c.path() {
	case pathGEMM1x1:
		c.forward1x1(dst, x, residual, n, h*w)
	case pathWinograd:
		c.forwardWinograd(dst, x, residual, n, h, w, ws)
	default:
		c.forwardIm2col(dst, x, residual, n, h, w, oh, ow, ws)
	}
}

// forward1x1 runs a 1x1 stride-1 unpadded convolution as
// dst[i] = W [Out x In] * x[i] [In x hw]: GEMMs per image and block of
// output channels (enough blocks for every thread) straight into dst, then
// the epilogue in place; with this package's kernels, the weights are
// packed once and the epilogue is fused into the GEMM's stores.
func (c *Conv) forward1x1(dst, x, residual []float32, n, hw int) {
	parts := max(1, (Threads()+n-1)/n)
	var g gemmBatch
	if ours() {
		pw := c.packedWeights(useKernel)
		for img := 0; img < n; img++ {
			d := img * c.Out * hw
			g.addPackedSplit(useKernel, parts, c.Out, hw, c.In, 0, img*c.In*hw, hw, d, hw, 0, resOffset(residual, d), hw)
		}
		g.runPacked(useKernel, pw, x, dst, c.Bias, residual, c.ReLU)
		return
	}
	for img := 0; img < n; img++ {
		for p := 0; p < parts; p++ {
			o0, o1 := splitBlock(c.Out, parts, p)
			g.add(false, false, o1-o0, hw, c.In, o0*c.In, c.In, img*c.In*hw, hw, (img*c.Out+o0)*hw, hw)
		}
	}
	g.run(1, c.Weight, x, 0, dst)
	c.epilogue(dst, nil, residual, n, hw)
}

// forwardIm2col runs im2col + GEMM. With batching (n > 1) the columns of all
// images sit side by side ([In*K*K] x [n*oh*ow]) and the GEMM writes
// [Out] x [n*oh*ow] into scratch, from which the epilogue scatters to NCHW;
// otherwise each image in turn gets its own im2col and a GEMM straight into
// dst. The GEMM is split into Threads() blocks of output channels. With
// this package's kernels (see im2colGEMM), the GEMMs write every image
// straight into dst with the epilogue fused, batched or not.
func (c *Conv) forwardIm2col(dst, x, residual []float32, n, h, w, oh, ow int, ws *Workspace) {
	kk := c.In * c.Kernel * c.Kernel
	ohw := oh * ow
	chw := c.In * h * w
	parts := Threads()
	var g gemmBatch
	if n > 1 && batchIm2col {
		ld := n * ohw
		col := grow(&ws.col, kk*ld)
		ParallelFor(kk*n, 8, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				row, img := r/n, r%n
				c.im2colRow(col[row*ld+img*ohw:row*ld+(img+1)*ohw], x[img*chw:(img+1)*chw], row, h, w, oh, ow)
			}
		})
		if ours() {
			c.im2colGEMM(&g, dst, col, residual, n, ld, ohw, 0)
			return
		}
		out := grow(&ws.out, c.Out*ld)
		for p := 0; p < parts; p++ {
			o0, o1 := splitBlock(c.Out, parts, p)
			g.add(false, false, o1-o0, ld, kk, o0*kk, kk, 0, ld, o0*ld, ld)
		}
		g.run(1, c.Weight, col, 0, out)
		c.epilogue(dst, out, residual, n, ohw)
		return
	}
	col := grow(&ws.col, kk*ohw)
	for img := 0; img < n; img++ {
		xi := x[img*chw : (img+1)*chw]
		ParallelFor(kk, 8, func(lo, hi int) {
			for row := lo; row < hi; row++ {
				c.im2colRow(col[row*ohw:(row+1)*ohw], xi, row, h, w, oh, ow)
			}
		})
		if ours() {
			c.im2colGEMM(&g, dst, col, residual, 1, ohw, ohw, img)
			continue
		}
		for p := 0; p < parts; p++ {
			o0, o1 := splitBlock(c.Out, parts, p)
			g.add(false, false, o1-o0, ohw, kk, o0*kk, kk, 0, ohw, (img*c.Out+o0)*ohw, ohw)
		}
		g.run(1, c.Weight, col, 0, dst)
	}
	if !ours() {
		c.epilogue(dst, nil, residual, n, ohw)
	}
}

// im2colGEMM runs the GEMM of the im2col path with this package's kernel
// (useKernel): for each of the n images img0.. whose columns sit side by
// side in col ([In*K*K] x [ld], ohw columns per image), dst[img] =
// act(W * col[:, image] + Bias + residual[img]), the epilogue fused into the
// GEMM's stores, each image split over enough jobs for every thread.
func (c *Conv) im2colGEMM(g *gemmBatch, dst, col, residual []float32, n, ld, ohw, img0 int) {
	kk := c.In * c.Kernel * c.Kernel
	pw := c.packedWeights(useKernel)
	parts := max(1, (Threads()+n-1)/n)
	for i := 0; i < n; i++ {
		d := (img0 + i) * c.Out * ohw
		g.addPackedSplit(useKernel, parts, c.Out, ohw, kk, 0, i*ohw, ld, d, ohw, 0, resOffset(residual, d), ohw)
	}
	g.runPacked(useKernel, pw, col, dst, c.Bias, residual, c.ReLU)
}

// resOffset returns off, or -1 (no residual) when residual is nil.
func resOffset(residual []float32, off int) int {
	if residual == nil {
		return -1
	}
	return off
}

// im2colRow fills dst [oh*ow] with row (ci, ky, kx) of the im2col matrix of
// one image x [In][h][w]: dst[oy*ow+ox] = x[ci][oy*s-p+ky][ox*s-p+kx], or 0
// where that falls in the padding.
func (c *Conv) im2colRow(dst, x []float32, row, h, w, oh, ow int) {
	k, s, p := c.Kernel, c.Stride, c.Pad
	kx := row % k
	ky := (row / k) % k
	ci := row / (k * k)
	plane := x[ci*h*w : (ci+1)*h*w]
	// Valid output columns: 0 <= ox*s-p+kx < w.
	x0 := 0
	if p-kx > 0 {
		x0 = (p - kx + s - 1) / s
	}
	x1 := 0
	if w+p-kx > 0 {
		x1 = min(ow, (w+p-kx+s-1)/s)
	}
	x0 = min(x0, x1)
	for oy := 0; oy < oh; oy++ {
		d := dst[oy*ow : (oy+1)*ow]
		iy := oy*s - p + ky
		if iy < 0 || iy >= h {
			clear(d)
			continue
		}
		src := plane[iy*w : (iy+1)*w]
		clear(d[:x0])
		clear(d[x1:])
		ix := x0*s - p + kx
		if s == 1 {
			copy(d[x0:x1], src[ix:])
			continue
		}
		for ox := x0; ox < x1; ox++ {
			d[ox] = src[ix]
			ix += s
		}
	}
}

// epilogue finishes dst [n][Out][hw]: dst = act(y + Bias[o] + residual),
// where y is src laid out [Out][n*hw] when src is not nil and dst itself
// otherwise. It runs in parallel over the n*Out rows.
func (c *Conv) epilogue(dst, src, residual []float32, n, hw int) {
	ParallelFor(n*c.Out, max(1, 4096/hw), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			img, o := r/c.Out, r%c.Out
			d := dst[r*hw : (r+1)*hw]
			y := d
			if src != nil {
				y = src[(o*n+img)*hw : (o*n+img+1)*hw]
			}
			var res []float32
			if residual != nil {
				res = residual[r*hw : (r+1)*hw]
			}
			epilogueRow(d, y, res, c.Bias[o], c.ReLU)
		}
	})
}

// epilogueRow sets d[i] = act(y[i] + b + res[i]); res may be nil and y may
// be d. All have the same length.
func epilogueRow(d, y, res []float32, b float32, relu bool) {
	y = y[:len(d)]
	switch {
	case res == nil && !relu:
		for i, v := range y {
			d[i] = v + b
		}
	case res == nil:
		for i, v := range y {
			d[i] = max(v+b, 0)
		}
	case !relu:
		res = res[:len(d)]
		for i, v := range y {
			d[i] = v + b + res[i]
		}
	default:
		res = res[:len(d)]
		for i, v := range y {
			d[i] = max(v+b+res[i], 0)
		}
	}
}
