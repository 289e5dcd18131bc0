package cflow

import (
	"errors"
	"fmt"
)

// Accelerator puts decoders on another device (a GPU: the experiment
// runner's adapter over cuda.Flow). The detector finds it by asserting
// this interface on detector.FitOptions.Accelerator or on the one given
// to Accelerate.
type Accelerator interface {
	// Decoder puts d on the device for batches of n fibers, or returns
	// nil (and no error) when d should stay on the CPU.
	Decoder(d *Decoder, n int) (DeviceDecoder, error)
}

// DeviceDecoder is a decoder held on a device, equal to the CPU's graph
// to float32 rounding: training steps whose parameters, gradients and
// Adam state stay on the device, and evaluation with the device's current
// parameters.
type DeviceDecoder interface {
	// Step is Trainer.Step with Adam at learning rate lr.
	Step(x, c []float32, lr float64) (float32, error)
	// Drift is Trainer.Drift.
	Drift(lrs []float64) error
	// LogProbs writes log p / C of the n fibers x [n][C] with conditions
	// c [n][P] into dst[:n].
	LogProbs(dst, x, c []float32) error
	// Download copies the device's parameters into the decoder's.
	Download() error
	// Close frees the device's memory.
	Close() error
}

// ErrDeviceOff is what a DeviceDecoder's error wraps when the device
// failed and the run goes on without it: the model then trains again from
// the start, or scores, on the CPU.
var ErrDeviceOff = errors.New("the device is off")

// stepper is a decoder's trainer as Train uses it: on the CPU (Trainer)
// or on a device.
type stepper interface {
	Step(x, c []float32, lr float64) (float32, error)
	Drift(lrs []float64) error
}

// cpuStepper is a Trainer as a stepper.
type cpuStepper struct{ t *Trainer }

func (s cpuStepper) Step(x, c []float32, lr float64) (float32, error) {
	s.t.Adam().LR = lr
	return s.t.Step(x, c)
}

func (s cpuStepper) Drift(lrs []float64) error { return s.t.Drift(lrs) }

// useDevice puts the model's decoders on a's device (all or none); a nil
// a, or one that keeps a decoder on the CPU, leaves them all there.
func (m *Model) useDevice(a Accelerator) error {
	m.closeDevice()
	if a == nil {
		return nil
	}
	var dev []DeviceDecoder
	for _, d := range m.Decoders {
		dd, err := a.Decoder(d, m.Options.FiberBatch)
		if err != nil || dd == nil {
			for _, o := range dev {
				o.Close()
			}
			if err != nil {
				return fmt.Errorf("cflow: putting a decoder on the device: %w", err)
			}
			return nil
		}
		dev = append(dev, dd)
	}
	m.dev = dev
	return nil
}

// onDevice reports whether the decoders are on a device.
func (m *Model) onDevice() bool { return m.dev != nil }

// closeDevice frees the decoders' device memory; the model goes on on the
// CPU with the parameters last downloaded.
func (m *Model) closeDevice() error {
	var first error
	for _, d := range m.dev {
		if err := d.Close(); first == nil {
			first = err
		}
	}
	m.dev = nil
	return first
}
