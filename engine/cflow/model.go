package cflow

import (
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
)

// Model is a fitted CFLOW: a decoder per layer of Layout, the options it
// was trained with, and its fibers' storage width (Fibers.Width).
type Model struct {
	Options  *Options
	Layout   []Layer
	Width    int
	Decoders []*Decoder

	conds [][]float32     // conditions' result, made once
	dev   []DeviceDecoder // the decoders on a device (useDevice), or nil
}

// NewModel returns an untrained model for fibers laid out as layout
// (stored width wide): each decoder drawn by NewDecoder from a seed of its
// own, derived from seed.
func NewModel(o *Options, layout []Layer, width int, seed uint64) (*Model, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	if len(layout) != len(o.Layers) {
		return nil, fmt.Errorf("cflow: %d layers of fibers for layers %v", len(layout), o.Layers)
	}
	m := &Model{Options: o.clone(), Layout: layout, Width: width}
	r := rand.New(rand.NewPCG(seed, 18))
	for _, l := range layout {
		d, err := NewDecoder(l.C, o.ConditionDim, o.CouplingBlocks, r.Uint64())
		if err != nil {
			return nil, err
		}
		m.Decoders = append(m.Decoders, d)
	}
	return m, nil
}

// layerNames returns the layers' names.
func (m *Model) layerNames() []string {
	var out []string
	for _, l := range m.Layout {
		out = append(out, l.Name)
	}
	return out
}

// offsets returns where each layer starts in an image's values and in its
// positions.
func offsets(ls []Layer) (vals, pos []int) {
	v, p := 0, 0
	for _, l := range ls {
		vals, pos = append(vals, v), append(pos, p)
		v += l.C * l.H * l.W
		p += l.H * l.W
	}
	return vals, pos
}

// conditions returns every layer's positional encodings, [H*W][P],
// computed at the first call.
func (m *Model) conditions() ([][]float32, error) {
	if m.conds != nil {
		return m.conds, nil
	}
	var out [][]float32
	for _, l := range m.Layout {
		pe, err := PositionalEncoding(m.Options.ConditionDim, l.H, l.W)
		if err != nil {
			return nil, err
		}
		p, hw := m.Options.ConditionDim, l.H*l.W
		t := make([]float32, hw*p)
		for k := range p {
			for j := range hw {
				t[j*p+k] = pe[k*hw+j]
			}
		}
		out = append(out, t)
	}
	m.conds = out
	return out, nil
}

// Train trains the decoders on the n images of st as the published code
// does (docs/method.md, section 10): per sub-epoch the images are
// shuffled into batches of ImageBatch (the last, incomplete one dropped);
// per batch and layer the fibers of its images are shuffled and fed
// FiberBatch at a time (the remainder dropped), one Adam step each, at the
// schedule's learning rate of the batch. As in the published code (one
// torch Adam over all decoders, torch before 2.0), every step also moves
// the decoders that have had a gradient before along their momentum with
// zero gradients; those steps are taken lazily (Trainer.Drift), before
// the decoder's next step and at the end of every meta-epoch. The
// shuffles come from a generator seeded with seed. progress, when set, is
// called after every image batch, epoch after every meta-epoch (with its
// number from 1 and the total).
func (m *Model) Train(st *store, seed uint64, progress func(done, total int), epoch func(e, epochs int) error) error {
	o := m.Options
	batch := min(o.ImageBatch, st.n)
	if batch < o.ImageBatch {
		slog.Warn("cflow: fewer training images than an image batch: one batch of all of them per sub-epoch", "images", st.n, "image_batch", o.ImageBatch)
	}
	batches := st.n / batch
	for _, l := range m.Layout {
		if batch*l.H*l.W < o.FiberBatch {
			slog.Warn("cflow: a layer with fewer fibers in an image batch than a fiber batch is not trained (as in the published code)",
				"layer", l.Name, "fibers", batch*l.H*l.W, "fiber_batch", o.FiberBatch)
		}
	}
	conds, err := m.conditions()
	if err != nil {
		return err
	}
	steppers := make([]stepper, len(m.Decoders))
	for l, d := range m.Decoders {
		if m.onDevice() {
			steppers[l] = m.dev[l]
			continue
		}
		t, err := NewTrainer(d, o.FiberBatch, o.LR)
		if err != nil {
			return err
		}
		defer t.Close()
		steppers[l] = cpuStepper{t}
	}
	valOff, _ := offsets(m.Layout)
	per := values(m.Layout)
	imgs := make([]float32, batch*per)
	xb, cb := make([]float32, 0), make([]float32, 0)
	r := rand.New(rand.NewPCG(seed, 19))
	sched := o.schedule()
	joint := newJoint(steppers)
	total, done := o.MetaEpochs*o.SubEpochs*batches, 0
	for e := range o.MetaEpochs {
		loss, steps := make([]float64, len(m.Layout)), make([]int, len(m.Layout))
		for sub := range o.SubEpochs {
			order := r.Perm(st.n)
			for i := range batches {
				for b, img := range order[i*batch : (i+1)*batch] {
					if err := st.image(imgs[b*per:(b+1)*per], img); err != nil {
						return err
					}
				}
				lr := sched.At(e, sub, i, batches)
				for l, ly := range m.Layout {
					hw, C, P := ly.H*ly.W, ly.C, o.ConditionDim
					// Fiber f of the batch, image-major, is position
					// f%hw of image f/hw.
					perm := r.Perm(batch * hw)
					xb, cb = grow(xb, o.FiberBatch*C), grow(cb, o.FiberBatch*P)
					for s := range batch * hw / o.FiberBatch {
						for k, f := range perm[s*o.FiberBatch : (s+1)*o.FiberBatch] {
							b, p := f/hw, f%hw
							at := b*per + valOff[l] + p*C
							copy(xb[k*C:(k+1)*C], imgs[at:at+C])
							copy(cb[k*P:(k+1)*P], conds[l][p*P:(p+1)*P])
						}
						v, err := joint.step(l, xb, cb, lr)
						if err != nil {
							return fmt.Errorf("cflow: %s: %w", ly.Name, err)
						}
						if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
							return fmt.Errorf("cflow: %s: the loss is %v at meta-epoch %d (lower cflow.lr?)", ly.Name, v, e)
						}
						loss[l] += float64(v)
						steps[l]++
					}
				}
				done++
				if progress != nil {
					progress(done, total)
				}
			}
		}
		if err := joint.flush(); err != nil {
			return err
		}
		for l, d := range m.dev { // the epoch's parameters, for the callback and Save
			if err := d.Download(); err != nil {
				return fmt.Errorf("cflow: %s: %w", m.Layout[l].Name, err)
			}
		}
		var b strings.Builder
		for l, ly := range m.Layout {
			fmt.Fprintf(&b, " %s %.4f", ly.Name, loss[l]/float64(max(1, steps[l])))
		}
		slog.Info("cflow meta-epoch", "epoch", e+1, "of", o.MetaEpochs, "lr", fmt.Sprintf("%.3g", sched.At(e, o.SubEpochs-1, batches-1, batches)), "loss", strings.TrimSpace(b.String()))
		if epoch != nil {
			if err := epoch(e+1, o.MetaEpochs); err != nil {
				return err
			}
		}
	}
	return nil
}

// grow returns s resized to n values, reusing its memory when it can.
func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// logProbs writes log p / C of every fiber of n images (data [n][per])
// into dst [n][rows]: image i's layer l positions at i*rows plus the
// positions of the layers before l. The decoders run on the device when
// they are there, else through flows.
func (m *Model) logProbs(flows []*Flow, dst, data []float32, n, rows int) error {
	conds, err := m.conditions()
	if err != nil {
		return err
	}
	valOff, posOff := offsets(m.Layout)
	per, fb := values(m.Layout), m.Options.FiberBatch
	for l, ly := range m.Layout {
		hw, C, P := ly.H*ly.W, ly.C, m.Options.ConditionDim
		xb, cb, lp := make([]float32, fb*C), make([]float32, fb*P), make([]float32, fb)
		for lo := 0; lo < n*hw; lo += fb {
			hi := min(lo+fb, n*hw)
			clear(xb)
			for k := lo; k < hi; k++ {
				i, p := k/hw, k%hw
				copy(xb[(k-lo)*C:(k-lo+1)*C], data[i*per+valOff[l]+p*C:])
				copy(cb[(k-lo)*P:(k-lo+1)*P], conds[l][p*P:(p+1)*P])
			}
			if m.onDevice() {
				if err := m.dev[l].LogProbs(lp, xb, cb); err != nil {
					return fmt.Errorf("cflow: %s: %w", ly.Name, err)
				}
			} else {
				out, err := flows[l].Forward(xb, cb)
				if err != nil {
					return fmt.Errorf("cflow: %s: %w", ly.Name, err)
				}
				copy(lp, out.LogProb)
			}
			for k := lo; k < hi; k++ {
				i, p := k/hw, k%hw
				dst[i*rows+posOff[l]+p] = lp[k-lo]
			}
		}
	}
	return nil
}

// Maps returns the published anomaly maps [size*size] of n images from
// their log p / C (patch [n][rows], as Score writes them): per layer, the
// values minus their maximum over all n images, exponentiated, upsampled
// bilinearly (corners aligned) to size x size; the layers' sum subtracted
// from its maximum over all n images. All in float64, as the published
// code computes it, rounded to float32 at the end.
func (m *Model) Maps(patch []float32, n, rows, size int) ([][]float32, error) {
	_, posOff := offsets(m.Layout)
	if len(patch) < n*rows || posOff[len(posOff)-1]+m.Layout[len(m.Layout)-1].H*m.Layout[len(m.Layout)-1].W > rows {
		return nil, fmt.Errorf("cflow: %d patch scores of %d images do not hold the model's %v", len(patch), n, m.Layout)
	}
	sum := make([]float64, n*size*size)
	for l, ly := range m.Layout {
		hw := ly.H * ly.W
		top := math.Inf(-1)
		for i := range n {
			for _, v := range patch[i*rows+posOff[l] : i*rows+posOff[l]+hw] {
				top = max(top, float64(v))
			}
		}
		prob := make([]float64, hw)
		for i := range n {
			for p, v := range patch[i*rows+posOff[l] : i*rows+posOff[l]+hw] {
				prob[p] = math.Exp(float64(v) - top)
			}
			upsampleAdd(sum[i*size*size:(i+1)*size*size], prob, ly.H, ly.W, size)
		}
	}
	top := math.Inf(-1)
	for _, v := range sum {
		top = max(top, v)
	}
	out := make([][]float32, n)
	for i := range out {
		out[i] = make([]float32, size*size)
		for j, v := range sum[i*size*size : (i+1)*size*size] {
			out[i][j] = float32(top - v)
		}
	}
	return out, nil
}

// upsampleAdd adds src [h][w] upsampled to [size][size] to dst: torch's
// bilinear interpolation with align_corners=True in float64.
func upsampleAdd(dst, src []float64, h, w, size int) {
	for y := range size {
		y0, y1, ly0, ly1 := alignedSource(y, h, size)
		for x := range size {
			x0, x1, lx0, lx1 := alignedSource(x, w, size)
			dst[y*size+x] += ly0*(lx0*src[y0*w+x0]+lx1*src[y0*w+x1]) + ly1*(lx0*src[y1*w+x0]+lx1*src[y1*w+x1])
		}
	}
}

// alignedSource returns, for output index o of size along an input axis
// of in values, the two input indices and their weights, as torch computes
// them with align_corners=True: source o (in-1)/(size-1), the second index
// clamped to the axis.
func alignedSource(o, in, size int) (i0, i1 int, l0, l1 float64) {
	scale := 0.0
	if size > 1 {
		scale = float64(in-1) / float64(size-1)
	}
	f := scale * float64(o)
	i0 = int(f)
	i1 = i0
	if i0 < in-1 {
		i1++
	}
	l1 = f - float64(i0)
	return i0, i1, 1 - l1, l1
}

// joint steps several decoders' trainers as one torch Adam over all their
// parameters does in torch before 2.0: a step of one decoder is also a
// zero-gradient step (Trainer.Drift) of every decoder that has had a
// gradient before, each counting its own steps from its first gradient.
// The zero-gradient steps are deferred until the decoder steps again or
// flush is called.
type joint struct {
	trainers []stepper
	pending  [][]float64 // learning rates of the deferred steps, per decoder
	started  []bool
}

func newJoint(trainers []stepper) *joint {
	return &joint{trainers: trainers, pending: make([][]float64, len(trainers)), started: make([]bool, len(trainers))}
}

// step trains decoder l on fibers x and conditions c at learning rate lr
// and returns the loss.
func (j *joint) step(l int, x, c []float32, lr float64) (float32, error) {
	if err := j.drift(l); err != nil {
		return 0, err
	}
	v, err := j.trainers[l].Step(x, c, lr)
	if err != nil {
		return 0, err
	}
	j.started[l] = true
	for k := range j.trainers {
		if k != l && j.started[k] {
			j.pending[k] = append(j.pending[k], lr)
		}
	}
	return v, nil
}

// drift takes decoder l's deferred steps.
func (j *joint) drift(l int) error {
	err := j.trainers[l].Drift(j.pending[l])
	j.pending[l] = j.pending[l][:0]
	return err
}

// flush takes every decoder's deferred steps, so that the parameters are
// those of the published code after the same steps.
func (j *joint) flush() error {
	for l := range j.trainers {
		if err := j.drift(l); err != nil {
			return err
		}
	}
	return nil
}
