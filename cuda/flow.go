package cuda

import (
	"fmt"
	"math"

	"github.com/softpatch/softpatch/engine/cflow"
)

// Flow is a CFLOW decoder (cflow.Decoder) on the GPU for batches of n
// fibers: its parameters and rotations in device memory, the forward pass
// (LogProbs), and training steps (Step, Drift) whose gradients and Adam
// state stay on the device; Download copies the parameters back into the
// host decoder. The arithmetic is engine/cflow's graph, op for op: cuBLAS
// for the products, the kernels of flow.cuh for the rest. A step uploads
// its fibers and conditions and downloads the batch's n log-probabilities
// (its loss): one round trip. A Flow is used from one goroutine at a time.
type Flow struct {
	d   *Device
	dec *cflow.Decoder
	n   int
	// The decoder's shape: ch channels (c1 passive, c2 transformed), pd
	// condition dims, subnets of in inputs and hid hidden units, per
	// learnable values per block.
	ch, pd, c1, c2, in, hid, per, blocks int

	params Buffer // [blocks][per]: W1, B1, W2, B2, Scale, Offset
	rot    Buffer // [blocks][C][C]
	x, c   Buffer // the batch: [n][C] (the first block's input in hs), [n][P]
	// The forward pass's values, kept for the backward pass: hs [blocks+1]
	// [n][C] (each block's input, then z), and per block sin [n][in], r
	// [n][hid], a [n][2 C2], u0 [n][C], sigma [C] and logsum [1].
	hs, sin, r, a, u0, sigma, logsum Buffer
	u                                Buffer // a block's output before the rotation [n][C]
	logdet, logprob, dld             Buffer // [n]
	mem                              *buffers

	// Training state, allocated at the first Step: the gradients [blocks]
	// [per], Adam's moments, the backward pass's scratch, Drift's per-step
	// constants (drift: room for driftCap steps), Adam's step count t.
	grads, m, v           Buffer
	dh, dh2, du, da, dr   Buffer
	dsin, drift           Buffer
	driftCap              int
	train                 *buffers
	t                     int
	hostLP                []float32
	fns                   map[string]Function
	b1, b2, eps, c1f, c2f float32
}

// flowKernels are the kernels a Flow launches.
var flowKernels = []string{"flow_subnet_in", "bias_act", "flow_sigma", "flow_coupling", "flow_head", "flow_coupling_grad",
	"flow_affine_grad", "col_sums", "relu_grad", "flow_add_passive", "adam_step", "adam_drift"}

// The offsets of a block's parameters in its per values.
func (f *Flow) offW1() int64     { return 0 }
func (f *Flow) offB1() int64     { return int64(f.hid) * int64(f.in) }
func (f *Flow) offW2() int64     { return f.offB1() + int64(f.hid) }
func (f *Flow) offB2() int64     { return f.offW2() + 2*int64(f.c2)*int64(f.hid) }
func (f *Flow) offScale() int64  { return f.offB2() + 2*int64(f.c2) }
func (f *Flow) offOffset() int64 { return f.offScale() + int64(f.ch) }

// NewFlow puts dec on the device for batches of n fibers (cuBLAS
// needed). It copies the decoder's parameters: later changes to dec are
// not seen.
func (d *Device) NewFlow(dec *cflow.Decoder, n int) (f *Flow, err error) {
	if err := dec.Check(); err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, fmt.Errorf("cuda: a flow for batches of %d fibers", n)
	}
	if !d.HasBLAS() {
		return nil, fmt.Errorf("cuda: a flow needs cuBLAS: %v", d.BLASError)
	}
	c1, c2 := dec.Split()
	f = &Flow{d: d, dec: dec, n: n, ch: dec.C, pd: dec.P, c1: c1, c2: c2, in: c1 + dec.P, hid: dec.Hidden(), blocks: len(dec.Blocks),
		fns: map[string]Function{}, b1: 0.9, b2: 0.999, eps: 1e-8, c1f: float32(1 - 0.9), c2f: float32(1 - 0.999)}
	f.per = int(f.offOffset()) + f.ch
	for _, name := range flowKernels {
		if f.fns[name], err = d.kernel(name); err != nil {
			return nil, err
		}
	}
	f.mem = &buffers{d: d}
	defer func() {
		if err != nil {
			f.mem.free()
		}
	}()
	B, N, C := int64(f.blocks), int64(n), int64(f.ch)
	fl := func(count int64) Buffer { return f.mem.alloc(count * 4) }
	f.params, f.rot = fl(B*int64(f.per)), fl(B*C*C)
	f.c = fl(N * int64(f.pd))
	f.hs, f.sin, f.r = fl((B+1)*N*C), fl(B*N*int64(f.in)), fl(B*N*int64(f.hid))
	f.x = floatsAt(f.hs, 0, N*C)
	f.a, f.u0, f.sigma, f.logsum = fl(B*N*2*int64(c2)), fl(B*N*C), fl(B*C), fl(B)
	f.u, f.logdet, f.logprob, f.dld = fl(N*C), fl(N), fl(N), fl(N)
	if f.mem.err != nil {
		return nil, f.mem.err
	}
	host := make([]float32, f.per)
	for k, b := range dec.Blocks {
		at := 0
		for _, p := range [][]float32{b.W1, b.B1, b.W2, b.B2, b.Scale, b.Offset} {
			at += copy(host[at:], p)
		}
		if err := Upload(d, f.params, int64(k)*int64(f.per)*4, host); err != nil {
			return nil, err
		}
		if err := Upload(d, f.rot, int64(k)*C*C*4, b.Rot); err != nil {
			return nil, err
		}
	}
	f.hostLP = make([]float32, n)
	return f, nil
}

// floatsAt is count float32s of b from value off on.
func floatsAt(b Buffer, off, count int64) Buffer {
	return Buffer{Ptr: b.Ptr + uint64(off)*4, Bytes: count * 4}
}

// flowRun queues a pass's launches and products, keeping the first error.
type flowRun struct {
	f   *Flow
	err error
}

func (r *flowRun) launch(name string, grid, block [3]uint32, args ...any) {
	if r.err == nil {
		r.err = r.f.d.Launch(r.f.fns[name], grid, block, 0, args...)
	}
}

// threads launches name over total items (grid-stride, 256 threads).
func (r *flowRun) threads(name string, total int64, args ...any) {
	r.launch(name, grid(total), [3]uint32{256, 1, 1}, args...)
}

// rows launches name with a block of 256 threads per row.
func (r *flowRun) rows(name string, args ...any) {
	r.launch(name, [3]uint32{uint32(min(r.f.n, 1<<16)), 1, 1}, [3]uint32{256, 1, 1}, args...)
}

// gemm is C = op(A) op(B) (row-major, Device.Sgemm).
func (r *flowRun) gemm(ta, tb bool, m, n, k int, a Buffer, lda int, b Buffer, ldb int, c Buffer, ldc int) {
	if r.err == nil {
		r.err = r.f.d.Sgemm(ta, tb, m, n, k, 1, a, lda, b, ldb, 0, c, ldc)
	}
}

// block returns block k's parameter p (offset off, count values) in buf
// (params or grads).
func (f *Flow) block(buf Buffer, k int, off, count int64) Buffer {
	return floatsAt(buf, int64(k)*int64(f.per)+off, count)
}

// load uploads a batch.
func (f *Flow) load(x, c []float32) error {
	if len(x) != f.n*f.ch || len(c) != f.n*f.pd {
		return fmt.Errorf("cuda: a flow batch of %d feature and %d condition values, want %d x %d and %d x %d", len(x), len(c), f.n, f.ch, f.n, f.pd)
	}
	if err := Upload(f.d, f.x, 0, x); err != nil {
		return err
	}
	return Upload(f.d, f.c, 0, c)
}

// forward queues the forward pass of the uploaded batch and log p / C;
// with grads, also the loss's gradients dz (into dh) and dld.
func (f *Flow) forward(r *flowRun, grads bool) {
	N, C, hid, in, w2 := int64(f.n), int64(f.ch), int64(f.hid), int64(f.in), 2*int64(f.c2)
	for k := range f.blocks {
		hin, hout := f.hsAt(k), f.hsAt(k+1)
		sin, rk, ak := floatsAt(f.sin, int64(k)*N*in, N*in), floatsAt(f.r, int64(k)*N*hid, N*hid), floatsAt(f.a, int64(k)*N*w2, N*w2)
		sigma, logsum := floatsAt(f.sigma, int64(k)*C, C), floatsAt(f.logsum, int64(k), 1)
		r.threads("flow_subnet_in", N*in, hin, f.c, f.n, f.ch, f.c1, f.pd, sin)
		r.gemm(false, true, f.n, f.hid, f.in, sin, f.in, f.block(f.params, k, f.offW1(), hid*in), f.in, rk, f.hid)
		r.threads("bias_act", N*hid, rk, f.block(f.params, k, f.offB1(), hid), Buffer{}, N, f.hid, 1, 1)
		r.gemm(false, true, f.n, int(w2), f.hid, rk, f.hid, f.block(f.params, k, f.offW2(), w2*hid), f.hid, ak, int(w2))
		r.threads("bias_act", N*w2, ak, f.block(f.params, k, f.offB2(), w2), Buffer{}, N, int(w2), 1, 0)
		r.launch("flow_sigma", [3]uint32{1, 1, 1}, [3]uint32{256, 1, 1}, f.block(f.params, k, f.offScale(), C), f.ch, sigma, logsum)
		first := 0
		if k == 0 {
			first = 1
		}
		r.rows("flow_coupling", hin, ak, sigma, f.block(f.params, k, f.offOffset(), C), logsum, f.n, f.ch,
			floatsAt(f.u0, int64(k)*N*C, N*C), f.u, f.logdet, first)
		r.gemm(false, true, f.n, f.ch, f.ch, f.u, f.ch, floatsAt(f.rot, int64(k)*C*C, C*C), f.ch, hout, f.ch)
	}
	g := 0
	if grads {
		g = 1
	}
	r.rows("flow_head", f.hsAt(f.blocks), f.logdet, f.n, f.ch, f.logprob, f.dh, f.dld, g)
}

// hsAt is block k's input (k = blocks: z).
func (f *Flow) hsAt(k int) Buffer {
	nc := int64(f.n) * int64(f.ch)
	return floatsAt(f.hs, int64(k)*nc, nc)
}

// backward queues the gradients of the loss with respect to every
// learnable parameter, into grads, from dh and dld (forward with grads).
func (f *Flow) backward(r *flowRun) {
	N, C, hid, in, w2 := int64(f.n), int64(f.ch), int64(f.hid), int64(f.in), 2*int64(f.c2)
	for k := f.blocks - 1; k >= 0; k-- {
		sin, rk, ak := floatsAt(f.sin, int64(k)*N*in, N*in), floatsAt(f.r, int64(k)*N*hid, N*hid), floatsAt(f.a, int64(k)*N*w2, N*w2)
		sigma := floatsAt(f.sigma, int64(k)*C, C)
		// du = dh Rot (the block's output is u Rot^T).
		r.gemm(false, false, f.n, f.ch, f.ch, f.dh, f.ch, floatsAt(f.rot, int64(k)*C*C, C*C), f.ch, f.du, f.ch)
		r.threads("flow_affine_grad", C, f.du, floatsAt(f.u0, int64(k)*N*C, N*C), sigma, f.block(f.params, k, f.offScale(), C), f.dld,
			f.n, f.ch, f.block(f.grads, k, f.offScale(), C), f.block(f.grads, k, f.offOffset(), C))
		r.threads("flow_coupling_grad", N*C, f.hsAt(k), ak, sigma, f.du, f.dld, f.n, f.ch, f.dh2, f.da)
		r.threads("col_sums", w2, f.da, f.n, int(w2), f.block(f.grads, k, f.offB2(), w2))
		r.gemm(true, false, int(w2), f.hid, f.n, f.da, int(w2), rk, f.hid, f.block(f.grads, k, f.offW2(), w2*hid), f.hid)
		r.gemm(false, false, f.n, f.hid, int(w2), f.da, int(w2), f.block(f.params, k, f.offW2(), w2*hid), f.hid, f.dr, f.hid)
		r.threads("relu_grad", N*hid, f.dr, rk, N*hid)
		r.threads("col_sums", hid, f.dr, f.n, f.hid, f.block(f.grads, k, f.offB1(), hid))
		r.gemm(true, false, f.hid, f.in, f.n, f.dr, f.hid, sin, f.in, f.block(f.grads, k, f.offW1(), hid*in), f.in)
		if k > 0 { // the fibers themselves need no gradient
			r.gemm(false, false, f.n, f.in, f.hid, f.dr, f.hid, f.block(f.params, k, f.offW1(), hid*in), f.in, f.dsin, f.in)
			r.threads("flow_add_passive", N*int64(f.c1), f.dh2, f.dsin, f.n, f.ch, f.c1, f.in)
		}
		f.dh, f.dh2 = f.dh2, f.dh
	}
}

// startTraining allocates the training state (once).
func (f *Flow) startTraining() error {
	if f.train != nil {
		return f.train.err
	}
	f.train = &buffers{d: f.d}
	N, C := int64(f.n), int64(f.ch)
	fl := func(count int64) Buffer { return f.train.alloc(count * 4) }
	total := int64(f.blocks) * int64(f.per)
	f.grads, f.m, f.v = fl(total), fl(total), fl(total)
	f.dh, f.dh2, f.du = fl(N*C), fl(N*C), fl(N*C)
	f.da, f.dr, f.dsin = fl(N*2*int64(f.c2)), fl(N*int64(f.hid)), fl(N*int64(f.in))
	if f.train.err != nil {
		return f.train.err
	}
	if err := f.d.Zero(f.m); err != nil {
		return err
	}
	return f.d.Zero(f.v)
}

// Step trains on one batch as cflow's Trainer.Step does with Adam at
// learning rate lr: x [n][C] fibers, c [n][P] their conditions. It returns
// the batch's loss before the update (the mean of softplus(-log p / C),
// computed on the host from the downloaded log-probabilities).
func (f *Flow) Step(x, c []float32, lr float64) (float32, error) {
	if err := f.startTraining(); err != nil {
		return 0, err
	}
	if err := f.load(x, c); err != nil {
		return 0, err
	}
	r := &flowRun{f: f}
	f.forward(r, true)
	f.backward(r)
	f.t++
	step := float32(lr / (1 - math.Pow(0.9, float64(f.t))))
	bc2 := float32(math.Sqrt(1 - math.Pow(0.999, float64(f.t))))
	total := int64(f.blocks) * int64(f.per)
	r.threads("adam_step", total, f.params, f.grads, f.m, f.v, total, f.b1, f.b2, f.c1f, f.c2f, step, bc2, f.eps)
	if r.err != nil {
		return 0, fmt.Errorf("cuda: flow step: %w", r.err)
	}
	if err := Download(f.d, f.hostLP, f.logprob, 0); err != nil {
		return 0, err
	}
	loss := 0.0
	for _, lp := range f.hostLP {
		v := -float64(lp)
		loss += max(v, 0) + math.Log1p(math.Exp(-math.Abs(v)))
	}
	return float32(loss / float64(f.n)), nil
}

// Drift takes Adam steps with zero gradients at the learning rates lrs,
// as cflow's Adam.Drift does.
func (f *Flow) Drift(lrs []float64) error {
	if len(lrs) == 0 {
		return nil
	}
	if err := f.startTraining(); err != nil {
		return err
	}
	if len(lrs) > f.driftCap {
		if err := f.d.Free(f.drift); err != nil {
			return err
		}
		f.driftCap = max(len(lrs), 2*f.driftCap)
		b, err := f.d.Alloc(int64(2*f.driftCap) * 4)
		if err != nil {
			return err
		}
		f.drift = b
	}
	consts := make([]float32, 2*len(lrs)) // steps, then bc2
	for k, lr := range lrs {
		t := float64(f.t + k + 1)
		consts[k] = float32(lr / (1 - math.Pow(0.9, t)))
		consts[len(lrs)+k] = float32(math.Sqrt(1 - math.Pow(0.999, t)))
	}
	f.t += len(lrs)
	if err := Upload(f.d, f.drift, 0, consts); err != nil {
		return err
	}
	total := int64(f.blocks) * int64(f.per)
	r := &flowRun{f: f}
	r.threads("adam_drift", total, f.params, f.m, f.v, total, f.b1, f.b2, f.eps, f.drift,
		bufferAt(f.drift, int64(len(lrs))*4), len(lrs))
	return r.err
}

// LogProbs writes log p / C of the batch x [n][C], c [n][P] into dst [n]
// with the device's current parameters.
func (f *Flow) LogProbs(dst, x, c []float32) error {
	if len(dst) < f.n {
		return fmt.Errorf("cuda: %d values for the log-probabilities of %d fibers", len(dst), f.n)
	}
	if err := f.load(x, c); err != nil {
		return err
	}
	r := &flowRun{f: f}
	f.forward(r, false)
	if r.err != nil {
		return fmt.Errorf("cuda: flow forward: %w", r.err)
	}
	return Download(f.d, dst[:f.n], f.logprob, 0)
}

// Download copies the device's parameters into the host decoder's.
func (f *Flow) Download() error {
	host := make([]float32, f.per)
	for k := range f.dec.Blocks {
		if err := Download(f.d, host, f.params, int64(k)*int64(f.per)*4); err != nil {
			return err
		}
		b := &f.dec.Blocks[k]
		at := 0
		for _, p := range [][]float32{b.W1, b.B1, b.W2, b.B2, b.Scale, b.Offset} {
			at += copy(p, host[at:])
		}
	}
	return nil
}

// Close frees the flow's device memory.
func (f *Flow) Close() error {
	err := f.mem.free()
	if f.train != nil {
		if e := f.train.free(); err == nil {
			err = e
		}
		if e := f.d.Free(f.drift); err == nil {
			err = e
		}
		f.train, f.drift = nil, Buffer{}
	}
	return err
}
