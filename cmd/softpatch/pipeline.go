package main

import (
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/softpatch/softpatch/cuda"
	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/compute"
	"github.com/softpatch/softpatch/engine/embed"
)

// featureFlags are the flags every verb that computes features shares.
type featureFlags struct {
	weights, arch, mode, layers string
	device                      string
	resize, imagesize, threads  int
	checkpointBN                bool
	padimKeep                   int
	padimSeed                   uint64
}

func (f *featureFlags) register(fs *flag.FlagSet) {
	def := datasets.DefaultPreprocess()
	fs.StringVar(&f.weights, "weights", "", "torchvision checkpoint (.pth) or a folder holding one; default: $SOFTPATCH_WEIGHTS, then $TORCH_HOME/hub/checkpoints, then ~/.cache/torch/hub/checkpoints; none found: random-init backbone")
	fs.StringVar(&f.arch, "arch", backbone.WideResNet50_2.Name, "backbone: resnet50, wide_resnet50_2 or wide_resnet101_2")
	fs.IntVar(&f.resize, "resize", def.Resize, "shorter side after resizing, before the centre crop (shorter mode only)")
	fs.IntVar(&f.imagesize, "imagesize", def.ImageSize, "side of the square image fed to the network")
	fs.StringVar(&f.mode, "resize-mode", def.Mode.String(), "shorter (resize the shorter side to --resize, centre crop --imagesize) or square (resize straight to imagesize x imagesize, no crop)")
	fs.StringVar(&f.layers, "layers", "layer2,layer3", "comma-separated backbone layers to embed, first sets the patch grid")
	fs.StringVar(&f.device, "device", "auto", "auto (a GPU when the driver finds one, else the CPU), cpu or gpu (fail without one); see softpatch version")
	fs.IntVar(&f.threads, "threads", 0, "compute threads (0: GOMAXPROCS, normally all cores)")
	fs.IntVar(&f.padimKeep, "padim-channels", embed.DefaultPaDiMKeep, "PaDiM: channels kept of layer1..3's concatenation (a model takes 4*positions*(c+c*(c+1)/2) bytes: 1.9 GB for 550 at 224 px)")
	fs.Uint64Var(&f.padimSeed, "padim-seed", embed.DefaultPaDiMSeed, "PaDiM: seed of the channel draw")
	fs.BoolVar(&f.checkpointBN, "checkpoint-bn", false, "use the checkpoint's BatchNorm statistics as stored, instead of the published code's one train-mode pass of a ones image (see README)")
}

// pipeline is preprocessing, backbone and one feature embedding, ready to
// run: PatchCore's patch embedding, or PaDiM's channel selection (the
// padim field of a PatchCore pipeline: the same backbone, layer1..3).
type pipeline struct {
	pre     datasets.Preprocess
	net     *backbone.Backbone
	id      backbone.Identity
	layers  []string
	deepest int // stage of the deepest layer
	embed   embedder
	// gpu is the GPU (its state is shared with the PaDiM variant, so that
	// a failure turns it off for both); never nil.
	gpu *gpuState
	// padim is the PaDiM pipeline on the same backbone, built on first use
	// (forMethod) with padimKeep channels drawn with padimSeed; nil on a
	// PaDiM pipeline.
	padim     *pipeline
	padimKeep int
	padimSeed uint64
}

// embedder turns one forward pass's layer outputs into features
// [n][positions][dim].
type embedder interface {
	Embed(feats []backbone.Feature) (data []float32, positions int, err error)
	// Grid is the position grid for a first layer of h x w.
	Grid(h, w int) (gh, gw int)
}

// isPaDiM reports whether the pipeline computes PaDiM features.
func (p *pipeline) isPaDiM() bool { _, ok := p.embed.(embed.PaDiM); return ok }

// channels returns the PaDiM pipeline's channels (nil for PatchCore's).
func (p *pipeline) channels() []int {
	if e, ok := p.embed.(embed.PaDiM); ok {
		return e.Channels
	}
	return nil
}

// withPaDiM sets p.padim: PaDiM's layers on p's backbone, keeping the
// given channels, or (channels nil) those embed.PaDiM{keep, seed} draws.
func (p *pipeline) withPaDiM(keep int, seed uint64, channels []int) error {
	if channels == nil {
		total := 0
		for _, l := range embed.PaDiMLayers {
			s, err := backbone.LayerIndex(l)
			if err != nil {
				return err
			}
			total += p.net.Arch.OutChannels(s)
		}
		var err error
		if channels, err = embed.PaDiMChannels(total, keep, seed); err != nil {
			return fmt.Errorf("padim: %w", err)
		}
	}
	q := *p
	q.layers, q.deepest, q.embed, q.padim = slices.Clone(embed.PaDiMLayers), 2, embed.PaDiM{Channels: channels}, nil
	p.padim = &q
	return nil
}

// open checks the flags, then loads the backbone.
func (f *featureFlags) open() (*pipeline, error) {
	mode, err := datasets.ParseResizeMode(f.mode)
	if err != nil {
		return nil, err
	}
	pre := datasets.Preprocess{Resize: f.resize, ImageSize: f.imagesize, Mode: mode}
	if err := pre.Validate(); err != nil {
		return nil, err
	}
	arch, err := backbone.ArchByName(f.arch)
	if err != nil {
		return nil, err
	}
	var layers []string
	deepest := 0
	for _, l := range strings.Split(f.layers, ",") {
		l = strings.TrimSpace(l)
		s, err := backbone.LayerIndex(l)
		if err != nil {
			return nil, err
		}
		if slices.Contains(layers, l) {
			return nil, fmt.Errorf("--layers names %s twice", l)
		}
		layers = append(layers, l)
		deepest = max(deepest, s)
	}
	gpu, err := openGPU(f.device) // before the backbone: a bad --device fails at once
	if err != nil {
		return nil, err
	}
	compute.SetThreads(f.threads)
	// Built to layer3 at least, for PaDiM; a forward pass computes only
	// what its layers need.
	net, id, err := backbone.Open(arch, backbone.Options{Weights: f.weights, PublishedBN: !f.checkpointBN, ImageSize: f.imagesize, Deepest: max(deepest, 2)})
	if err != nil {
		return nil, err
	}
	if id.RandomInit {
		slog.Warn("no checkpoint found: using a " + randomInitMark + "; results are not comparable with the paper")
	} else {
		slog.Info("backbone", "identity", id.String())
	}
	p := &pipeline{pre: pre, net: net, id: id, layers: layers, deepest: deepest, embed: embed.Default(),
		padimKeep: f.padimKeep, padimSeed: f.padimSeed, gpu: gpu}
	if err := gpu.load(net); err != nil {
		return nil, err
	}
	return p, nil
}

// deviceName describes where the pipeline computes, for results: the CPU's
// BLAS, kernels and threads, and the GPU when it has one.
func (p *pipeline) deviceName() string {
	if g := p.gpu.describe(); g != "" {
		return compute.BLASInfo() + "; " + g
	}
	return compute.BLASInfo()
}

// openDevice opens GPU 0 for --device gpu (an error without one) or auto
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

// features embeds a batch of n preprocessed images ([n][3][S][S]) and
// returns [n][positions][dim].
func (p *pipeline) features(x []float32, n int) ([]float32, int, error) {
	outs, pos, err := featuresOf([]*pipeline{p}, x, n)
	if err != nil {
		return nil, 0, err
	}
	return outs[0], pos[0], nil
}

// forward runs the backbone on a batch of n preprocessed images up to
// layers: on the GPU when the pipeline has one (with --device auto a GPU
// failure turns it off and the CPU takes over), else on the CPU.
func (p *pipeline) forward(x []float32, n int, layers []string) ([]backbone.Feature, error) {
	s := p.pre.ImageSize
	if b, _ := p.gpu.backbone(); b != nil {
		feats, err := b.Forward(x, n, s, s, layers)
		if err == nil {
			return feats, nil
		}
		if err := p.gpu.fail("backbone", err); err != nil {
			return nil, err
		}
	}
	return p.net.Forward(x, n, s, s, layers)
}

// featuresOf computes the features of every pipeline in pipes (on one
// backbone and preprocessing, as p and p.padim) for a batch of n
// preprocessed images from one forward pass through the union of their
// layers: on the GPU when the pipelines have one (with --device auto a GPU
// failure turns it off and the CPU takes over), else on the CPU.
func featuresOf(pipes []*pipeline, x []float32, n int) ([][]float32, []int, error) {
	var layers []string
	for _, q := range pipes {
		if q.net != pipes[0].net || q.pre != pipes[0].pre {
			return nil, nil, fmt.Errorf("features: pipelines on different backbones")
		}
		for _, l := range q.layers {
			if !slices.Contains(layers, l) {
				layers = append(layers, l)
			}
		}
	}
	if b, e := pipes[0].gpu.backbone(); b != nil {
		outs, pos, err := gpuFeaturesOf(b, e, pipes, x, n, layers)
		if err == nil {
			return outs, pos, nil
		}
		if err := pipes[0].gpu.fail("features", err); err != nil {
			return nil, nil, err
		}
	}
	s := pipes[0].pre.ImageSize
	feats, err := pipes[0].net.Forward(x, n, s, s, layers)
	if err != nil {
		return nil, nil, err
	}
	return embedAll(pipes, feats, layers, nil, nil)
}

// gpuFeaturesOf is featuresOf on the GPU: the backbone's layers stay on
// the device for PatchCore's embedding; PaDiM's runs on the CPU from the
// downloaded layers.
func gpuFeaturesOf(b *cuda.Backbone, e *cuda.Embedder, pipes []*pipeline, x []float32, n int, layers []string) (outs [][]float32, pos []int, err error) {
	s := pipes[0].pre.ImageSize
	a, err := b.Run(x, n, s, s, layers)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if e := a.Close(); err == nil {
			err = e
		}
	}()
	var host []backbone.Feature
	onGPU := func(q *pipeline) bool { c, ok := q.embed.(embed.Config); return ok && c == embed.Default() }
	for _, q := range pipes {
		if !onGPU(q) && host == nil {
			if host, err = a.Download(); err != nil {
				return nil, nil, err
			}
		}
	}
	return embedAll(pipes, host, layers, onGPU, func(q *pipeline) ([]float32, int, error) {
		v, err := a.Pick(q.layers)
		if err != nil {
			return nil, 0, err
		}
		return e.Embed(v)
	})
}

// embedAll embeds each pipeline's layers (a subset of feats, which hold
// layers in that order): with gpuEmbed for the pipelines onGPU accepts,
// else on the CPU.
func embedAll(pipes []*pipeline, feats []backbone.Feature, layers []string, onGPU func(*pipeline) bool,
	gpuEmbed func(*pipeline) ([]float32, int, error)) ([][]float32, []int, error) {
	outs, pos := make([][]float32, len(pipes)), make([]int, len(pipes))
	var err error
	for i, q := range pipes {
		if onGPU != nil && onGPU(q) {
			outs[i], pos[i], err = gpuEmbed(q)
		} else {
			sel := make([]backbone.Feature, len(q.layers))
			for j, l := range q.layers {
				sel[j] = feats[slices.Index(layers, l)]
			}
			outs[i], pos[i], err = q.embed.Embed(sel)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return outs, pos, nil
}
