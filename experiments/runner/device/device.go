// Package device is the experiment runner's device policy: which device
// computes (auto: a GPU when the driver finds one, else the CPU; cpu; gpu:
// an error without one), and what a GPU failure does (with gpu it is an
// error; with auto the first failure turns the GPU off for the rest of
// the run, every later step runs on the CPU, and the failure is recorded
// in the results' device). GPU is the state the runner consults at each
// step; its Accelerator hands the detectors' work to the GPU under the
// same policy.
package device

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/softpatch/softpatch/cuda"
	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/cflow"
	"github.com/softpatch/softpatch/engine/coreset"
	"github.com/softpatch/softpatch/engine/denoise"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/engine/embed"
	"github.com/softpatch/softpatch/engine/knn"
)

// GPU is a run's GPU: the device, the backbone and the patch embedding
// on it, and what a failure does. The methods of a nil *GPU report no GPU.
type GPU struct {
	mu     sync.Mutex
	dev    *cuda.Device   // nil: no GPU, or turned off
	net    *cuda.Backbone // nil: the backbone runs on the CPU
	emb    *cuda.Embedder // embeds embed.Default()
	strict bool
	name   string       // the device, for results
	failed error        // what turned the GPU off
	opened *cuda.Device // the device opened, closed by close even after a failure
}

// Open opens the GPU for mode: auto, cpu or gpu (see the package doc).
// Without the cuBLAS that the backbone and the nearest-neighbour search
// need, gpu is an error and auto runs them on the CPU.
func Open(mode string) (*GPU, error) {
	g := &GPU{strict: mode == "gpu"}
	d, err := openDevice(mode)
	if err != nil || d == nil {
		return g, err
	}
	if !d.HasBLAS() && g.strict {
		return nil, fmt.Errorf("--device gpu: %w", d.BLASError)
	}
	g.dev, g.name, g.opened = d, d.String(), d
	return g, nil
}

// Load puts net and the default patch embedding on the GPU, when there is
// one with cuBLAS.
func (g *GPU) Load(net *backbone.Backbone) error {
	d := g.Device()
	if d == nil {
		return nil
	}
	if !d.HasBLAS() {
		slog.Warn("backbone and scoring on the CPU: no cuBLAS", "err", d.BLASError)
		return nil
	}
	e, err := d.NewEmbedder(embed.Default())
	var b *cuda.Backbone
	if err == nil {
		b, err = d.NewBackbone(net)
	}
	if err != nil {
		if g.strict {
			return err
		}
		slog.Warn("backbone on the CPU: the GPU failed", "err", err)
		return nil
	}
	g.mu.Lock()
	g.net, g.emb = b, e
	g.mu.Unlock()
	return nil
}

// Close releases the GPU backbone and the device.
func (g *GPU) Close() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.net != nil {
		g.net.Close()
	}
	var err error
	if g.opened != nil {
		err = g.opened.Close()
	}
	g.dev, g.net, g.emb, g.opened = nil, nil, nil, nil
	return err
}

// Device returns the GPU, or nil when there is none or it was turned off.
// The methods of a nil *GPU report no GPU.
func (g *GPU) Device() *cuda.Device {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.dev
}

// Backbone returns the GPU backbone and embedding, or nil.
func (g *GPU) Backbone() (*cuda.Backbone, *cuda.Embedder) {
	if g == nil {
		return nil, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.dev == nil {
		return nil, nil
	}
	return g.net, g.emb
}

// Fail handles a GPU failure in stage: strict, it returns err; otherwise
// it turns the GPU off for every later step (once, with a warning) and
// returns nil, and the caller runs the stage on the CPU.
func (g *GPU) Fail(stage string, err error) error {
	if g == nil || g.strict {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.dev == nil {
		return nil
	}
	slog.Warn("the GPU failed: "+stage+" and everything after it on the CPU", "err", err)
	if g.net != nil {
		g.net.Close()
	}
	g.dev, g.net, g.emb, g.failed = nil, nil, nil, fmt.Errorf("%s: %w", stage, err)
	return nil
}

// Describe names the GPU for results ("" when there was none): the
// device, and the failure that turned it off.
func (g *GPU) Describe() string {
	if g == nil {
		return ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.name == "":
		return ""
	case g.failed != nil:
		return "GPU " + g.name + " until it failed (" + g.failed.Error() + "), then the CPU"
	}
	return "GPU " + g.name
}

// Accelerator returns the GPU as the detectors' Accelerator, under the
// GPU's failure policy.
func (g *GPU) Accelerator() detector.Accelerator { return gpuAccel{g} }

// gpuAccel is the GPU as a detector.Accelerator.
type gpuAccel struct{ g *GPU }

// CoresetSteps selects on the GPU, or on the CPU when it is off or fails.
func (a gpuAccel) CoresetSteps(x []float32, dim int, init []float64, weights []float32, picks int) ([]int, error) {
	if d := a.g.Device(); d != nil {
		sel, err := d.CoresetSteps(x, dim, init, weights, picks)
		if err == nil {
			return sel, nil
		}
		if err := a.g.Fail("coreset", err); err != nil {
			return nil, err
		}
	}
	return coreset.RunSteps(x, dim, init, weights, picks), nil
}

// NoiseScores discriminates on the GPU, or on the CPU when it is off or
// fails.
func (a gpuAccel) NoiseScores(disc denoise.Discriminator, feats []float32, n, p, dim, k int) ([]float32, error) {
	if d := a.g.Device(); d != nil {
		s, err := d.NoiseScores(disc, feats, n, p, dim, k)
		if err == nil {
			return s, nil
		}
		if err := a.g.Fail("discriminator", err); err != nil {
			return nil, err
		}
	}
	return denoise.Scores(disc, feats, n, p, dim, k)
}

// Searcher puts a memory bank on the GPU for scoring, when there is one
// with cuBLAS; nil keeps scoring on the CPU.
func (a gpuAccel) Searcher(bank []float32, n, dim int) (detector.Searcher, error) {
	d := a.g.Device()
	if d == nil || !d.HasBLAS() {
		return nil, nil
	}
	ix, err := d.NewIndex(bank, n, dim)
	if err != nil {
		return nil, a.g.Fail("scoring", err)
	}
	return &gpuSearcher{g: a.g, ix: ix, bank: bank, n: n, dim: dim}, nil
}

// gpuSearcher scores a memory bank on the GPU (cuda.Index), or on the CPU
// (a knn.Index built when first needed) once the GPU is off or fails.
type gpuSearcher struct {
	g      *GPU
	ix     *cuda.Index
	bank   []float32
	n, dim int
	mu     sync.Mutex
	cpu    *knn.Index
}

// Search1 is detector.Searcher's.
func (s *gpuSearcher) Search1(dist []float32, idx []int32, queries []float32, nq int, budget int64) error {
	if s.g.Device() != nil && s.ix != nil {
		err := s.ix.Search1(dist, idx, queries, nq, budget)
		if err == nil {
			return nil
		}
		if err := s.g.Fail("scoring", err); err != nil {
			return err
		}
	}
	s.mu.Lock()
	if s.cpu == nil {
		s.cpu = knn.NewIndex(s.bank, s.n, s.dim)
	}
	s.mu.Unlock()
	return s.cpu.Search(dist, idx, queries, nq, 1, int(budget))
}

// Close frees the bank's GPU memory.
func (s *gpuSearcher) Close() error {
	if s.ix == nil {
		return nil
	}
	err := s.ix.Close()
	s.ix = nil
	return err
}

// Decoder puts a CFLOW decoder on the GPU (cflow.Accelerator), when there
// is one with cuBLAS; nil keeps it on the CPU.
func (a gpuAccel) Decoder(dec *cflow.Decoder, n int) (cflow.DeviceDecoder, error) {
	d := a.g.Device()
	if d == nil || !d.HasBLAS() {
		return nil, nil
	}
	f, err := d.NewFlow(dec, n)
	if err != nil {
		return nil, a.g.Fail("cflow", err)
	}
	return &gpuDecoder{g: a.g, f: f}, nil
}

// gpuDecoder is a cuda.Flow under the GPU's failure policy: a failure is
// an error with gpu, and with auto it turns the GPU off and the error
// wraps cflow.ErrDeviceOff, on which CFLOW goes on on the CPU.
type gpuDecoder struct {
	g *GPU
	f *cuda.Flow
}

// check returns err under the policy.
func (d *gpuDecoder) check(err error) error {
	if err == nil {
		return nil
	}
	if e := d.g.Fail("cflow", err); e != nil {
		return e
	}
	return fmt.Errorf("%w: %v", cflow.ErrDeviceOff, err)
}

// off is the error of a call after the GPU was turned off.
func (d *gpuDecoder) off() error {
	if d.g.Device() == nil {
		return fmt.Errorf("%w: the GPU was turned off after a failure", cflow.ErrDeviceOff)
	}
	return nil
}

func (d *gpuDecoder) Step(x, c []float32, lr float64) (float32, error) {
	if err := d.off(); err != nil {
		return 0, err
	}
	v, err := d.f.Step(x, c, lr)
	return v, d.check(err)
}

func (d *gpuDecoder) Drift(lrs []float64) error {
	if err := d.off(); err != nil {
		return err
	}
	return d.check(d.f.Drift(lrs))
}

func (d *gpuDecoder) LogProbs(dst, x, c []float32) error {
	if err := d.off(); err != nil {
		return err
	}
	return d.check(d.f.LogProbs(dst, x, c))
}

func (d *gpuDecoder) Download() error {
	if err := d.off(); err != nil {
		return err
	}
	return d.check(d.f.Download())
}

// Close frees the flow's GPU memory (the device may be off: its memory
// is freed with it).
func (d *gpuDecoder) Close() error {
	if d.g.Device() == nil {
		return nil
	}
	return d.f.Close()
}

// openDevice opens GPU 0 for device gpu (an error without one) or auto
// (the CPU, with a one-line reason, without one); cpu opens none.
func openDevice(device string) (*cuda.Device, error) {
	switch device {
	case "cpu":
		return nil, nil
	case "auto", "", "gpu":
	default:
		return nil, fmt.Errorf("--device %q: want auto, cpu or gpu", device)
	}
	d, err := cuda.Open(0)
	if err != nil {
		if device == "gpu" {
			return nil, fmt.Errorf("--device gpu: %w", err)
		}
		slog.Info("running on the CPU", "gpu", err.Error())
		return nil, nil
	}
	slog.Info("GPU", "device", d.String())
	return d, nil
}

// Info describes GPU 0 as the cuda package finds it, or why there is
// none.
func Info() string {
	d, err := cuda.Open(0)
	if err != nil {
		return "none: " + err.Error()
	}
	defer d.Close()
	s := "0: " + d.String()
	if d.BLASError != nil {
		s += "; " + d.BLASError.Error()
	}
	return s
}
