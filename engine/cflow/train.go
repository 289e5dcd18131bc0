package cflow

import (
	"fmt"

	G "gorgonia.org/gorgonia"
)

// Trainer trains a decoder on batches of n fibers: each Step is a forward
// pass, gorgonia's gradients of the loss and one Adam step, which updates
// the decoder's parameters in place.
type Trainer struct {
	gr   *graph
	vm   G.VM
	adam *Adam
	grad [][]float32
}

// NewTrainer returns a trainer of d for batches of n fibers with torch's
// default Adam at learning rate lr.
func NewTrainer(d *Decoder, n int, lr float64) (*Trainer, error) {
	gr, err := newGraph(d, n, true)
	if err != nil {
		return nil, err
	}
	sizes := make([]int, len(gr.values))
	for i, v := range gr.values {
		sizes[i] = len(v)
	}
	// The gradients are read from the gradient nodes: binding dual values
	// to the parameters would clone and clear all of them at every run.
	return &Trainer{gr: gr, vm: G.NewTapeMachine(gr.g), adam: NewAdam(lr, sizes),
		grad: make([][]float32, len(gr.learn))}, nil
}

// Adam returns the optimiser, to set its learning rate between steps.
func (t *Trainer) Adam() *Adam { return t.adam }

// Drift takes Adam steps with zero gradients at the learning rates lrs
// (Adam.Drift).
func (t *Trainer) Drift(lrs []float64) error { return t.adam.Drift(t.gr.values, lrs) }

// Step trains on one batch: x [n][C] fibers and c [n][P] their conditions.
// It returns the batch's loss before the update; the batch's gradients
// stay in the trainer until the next Step.
func (t *Trainer) Step(x, c []float32) (float32, error) {
	if err := t.gr.load(x, c); err != nil {
		return 0, err
	}
	defer t.vm.Reset()
	if err := t.vm.RunAll(); err != nil {
		return 0, fmt.Errorf("cflow: training step: %w", err)
	}
	for i, n := range t.gr.grads {
		t.grad[i] = values32(n)
		if len(t.grad[i]) != len(t.gr.values[i]) {
			return 0, fmt.Errorf("cflow: the gradient of %s has %d values, want %d", t.gr.learn[i].Name(), len(t.grad[i]), len(t.gr.values[i]))
		}
	}
	return scalarOf(t.gr.loss), t.adam.Step(t.gr.values, t.grad)
}

// Gradients returns the last Step's gradients, per learnable parameter in
// the order of the blocks and, within a block, W1, B1, W2, B2, Scale,
// Offset. They are the trainer's: valid until the next Step.
func (t *Trainer) Gradients() [][]float32 { return t.grad }

// Close releases the trainer's machine.
func (t *Trainer) Close() error { return t.vm.Close() }

// Flow evaluates a decoder on batches of n fibers, without gradients.
type Flow struct {
	gr *graph
	vm G.VM
}

// NewFlow returns an evaluator of d for batches of n fibers. It reads the
// decoder's parameters at every call, so it follows a Trainer's updates.
func NewFlow(d *Decoder, n int) (*Flow, error) {
	gr, err := newGraph(d, n, false)
	if err != nil {
		return nil, err
	}
	return &Flow{gr: gr, vm: G.NewTapeMachine(gr.g)}, nil
}

// Output is a batch's flow outputs, n values per fiber or n x C for Z.
type Output struct {
	Z       []float32
	LogDet  []float32
	LogProb []float32 // log p / C
	Loss    float32
}

// Forward runs a batch: x [n][C] fibers and c [n][P] their conditions. The
// returned slices are copies.
func (f *Flow) Forward(x, c []float32) (Output, error) {
	if err := f.gr.load(x, c); err != nil {
		return Output{}, err
	}
	defer f.vm.Reset()
	if err := f.vm.RunAll(); err != nil {
		return Output{}, fmt.Errorf("cflow: forward: %w", err)
	}
	cp := func(n *G.Node) []float32 { return append([]float32(nil), values32(n)...) }
	return Output{Z: cp(f.gr.z), LogDet: cp(f.gr.logdet), LogProb: cp(f.gr.logprob), Loss: scalarOf(f.gr.loss)}, nil
}

// Close releases the evaluator's machine.
func (f *Flow) Close() error { return f.vm.Close() }
