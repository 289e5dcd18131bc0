package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/softpatch/softpatch/cuda"
	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/compute"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/engine/embed"
	"github.com/softpatch/softpatch/experiments/runner/device"
	"github.com/softpatch/softpatch/internal/buildinfo"
	"github.com/softpatch/softpatch/internal/progress"
)

// RandomInitMark labels every output of a random-init backbone.
const RandomInitMark = "random-init backbone"

// Options are the backbone, preprocessing and device settings of a run:
// a sweep config's backbone and run sections, or the CLI's flags.
type Options struct {
	// Weights is a torchvision checkpoint or a folder holding one ("":
	// the usual search, see backbone.Open; none found: random init).
	Weights string
	// Arch is the backbone's name (backbone.ArchByName).
	Arch string
	// Layers are the embedded layers of the memory-bank methods, the first
	// setting the patch grid.
	Layers []string
	// Resize, ImageSize and ResizeMode are the preprocessing
	// (datasets.Preprocess).
	Resize, ImageSize int
	ResizeMode        string
	// CheckpointBN keeps the checkpoint's BatchNorm statistics instead of
	// the published code's train-mode pass.
	CheckpointBN bool
	// PaDiMKeep and PaDiMSeed set PaDiM's channel draw.
	PaDiMKeep int
	PaDiMSeed uint64
	// Threads is the number of compute threads (0: GOMAXPROCS).
	Threads int
	// Device is "auto" (a GPU when the driver finds one), "cpu" or "gpu"
	// (an error without one).
	Device string
	// MethodOptions are the settings of the methods that have their own
	// (detector.Method.Options) by method name, for those whose features
	// depend on them (CFLOW's layers); absent: the defaults.
	MethodOptions map[string]any
}

// DefaultOptions are the published settings on the device auto picks.
func DefaultOptions() Options {
	pre := datasets.DefaultPreprocess()
	return Options{Arch: backbone.WideResNet50_2.Name, Layers: []string{"layer2", "layer3"}, Resize: pre.Resize, ImageSize: pre.ImageSize,
		ResizeMode: pre.Mode.String(), PaDiMKeep: embed.DefaultPaDiMKeep, PaDiMSeed: embed.DefaultPaDiMSeed, Device: "auto"}
}

// Backbone is an opened backbone with its preprocessing and device: the
// features of every method's pipeline come from it, one forward pass
// serving them all.
type Backbone struct {
	pre      datasets.Preprocess
	net      *backbone.Backbone
	id       backbone.Identity
	opts     Options
	deepest  int // stage of the deepest of Options.Layers
	built    int // stage of the deepest layer the backbone was built to
	gpu      *device.GPU
	pipes    map[string]*Pipeline // by feature spec (specKey)
	channels []int                // from a model file (Open's caller), for its method's Features
}

// Pipeline is one method's feature pipeline on a Backbone: the layers it
// embeds and how (detector.FeatureSpec).
type Pipeline struct {
	b    *Backbone
	spec detector.FeatureSpec
	key  string // the disk cache's key of the pipeline
}

// Open checks the options, opens the device and the backbone (deep enough
// for every method in methods), and sets up each of those methods'
// pipelines, so that a bad setting of any of them fails now. channels,
// when set, are the channels a model file records (detector.Meta).
func Open(o Options, methods []string, channels []int) (*Backbone, error) {
	mode, err := datasets.ParseResizeMode(o.ResizeMode)
	if err != nil {
		return nil, err
	}
	pre := datasets.Preprocess{Resize: o.Resize, ImageSize: o.ImageSize, Mode: mode}
	if err := pre.Validate(); err != nil {
		return nil, err
	}
	arch, err := backbone.ArchByName(o.Arch)
	if err != nil {
		return nil, err
	}
	b := &Backbone{pre: pre, opts: o, pipes: map[string]*Pipeline{}, channels: channels}
	if len(o.Layers) == 0 {
		return nil, fmt.Errorf("no backbone layers given")
	}
	for i, l := range o.Layers {
		s, err := backbone.LayerIndex(l)
		if err != nil {
			return nil, err
		}
		if slices.Contains(o.Layers[:i], l) {
			return nil, fmt.Errorf("--layers names %s twice", l)
		}
		b.deepest = max(b.deepest, s)
	}
	deepest := b.deepest
	var specs []detector.FeatureSpec
	for _, m := range methods {
		spec, err := b.featureSpec(m, arch)
		if err != nil {
			return nil, err
		}
		specs = append(specs, spec)
		for _, l := range spec.Layers {
			s, err := backbone.LayerIndex(l)
			if err != nil {
				return nil, err
			}
			deepest = max(deepest, s)
		}
	}
	if b.gpu, err = device.Open(o.Device); err != nil { // before the backbone: a bad device fails at once
		return nil, err
	}
	compute.SetThreads(o.Threads)
	// A forward pass computes only what its layers need.
	b.built = deepest
	if b.net, b.id, err = backbone.Open(arch, backbone.Options{Weights: o.Weights, PublishedBN: !o.CheckpointBN, ImageSize: o.ImageSize, Deepest: deepest}); err != nil {
		b.Close()
		return nil, err
	}
	if b.id.RandomInit {
		slog.Warn("no checkpoint found: using a " + RandomInitMark + "; results are not comparable with the paper")
	} else {
		slog.Info("backbone", "identity", b.id.String())
	}
	for _, spec := range specs {
		if _, err := b.pipeline(spec); err != nil {
			b.Close()
			return nil, err
		}
	}
	if err := b.gpu.Load(b.net); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// featureSpec is method's feature pipeline under b's options.
func (b *Backbone) featureSpec(method string, arch backbone.Arch) (detector.FeatureSpec, error) {
	m, err := detector.Lookup(method)
	if err != nil {
		return detector.FeatureSpec{}, err
	}
	return m.Features(detector.FeatureSettings{Layers: b.opts.Layers, Arch: arch, PaDiMKeep: b.opts.PaDiMKeep,
		PaDiMSeed: b.opts.PaDiMSeed, Channels: b.channels, Options: b.opts.MethodOptions[method]})
}

// pipeline returns the Pipeline of spec, the same one for equal specs.
func (b *Backbone) pipeline(spec detector.FeatureSpec) (*Pipeline, error) {
	if len(spec.Layers) == 0 || spec.Embed == nil {
		return nil, fmt.Errorf("a feature pipeline needs layers and an embedding, got %v and %T", spec.Layers, spec.Embed)
	}
	key, err := b.cacheKey(spec)
	if err != nil {
		return nil, err
	}
	if p, ok := b.pipes[key]; ok {
		return p, nil
	}
	p := &Pipeline{b: b, spec: spec, key: key}
	b.pipes[key] = p
	return p, nil
}

// Pipeline returns method's pipeline. The method must need no layer deeper
// than those of the methods Open was given.
func (b *Backbone) Pipeline(method string) (*Pipeline, error) {
	spec, err := b.featureSpec(method, b.net.Arch)
	if err != nil {
		return nil, err
	}
	for _, l := range spec.Layers {
		if s, err := backbone.LayerIndex(l); err != nil {
			return nil, err
		} else if s > b.built {
			return nil, fmt.Errorf("method %s needs %s, deeper than the %s the backbone was opened for: name the method when opening it",
				method, l, backbone.Layers[b.built])
		}
	}
	return b.pipeline(spec)
}

// Identity is the opened backbone's identity.
func (b *Backbone) Identity() backbone.Identity { return b.id }

// Mark is RandomInitMark for a random-init backbone, else "".
func (b *Backbone) Mark() string {
	if b.id.RandomInit {
		return RandomInitMark
	}
	return ""
}

// Close releases the backbone's GPU memory and device, if any. Detectors
// that score on the device are closed first.
func (b *Backbone) Close() error { return b.gpu.Close() }

// Device describes where the backbone computes, for results: the CPU's
// BLAS, kernels and threads, and the GPU when it has one.
func (b *Backbone) Device() string {
	if g := b.gpu.Describe(); g != "" {
		return compute.BLASInfo() + "; " + g
	}
	return compute.BLASInfo()
}

// cacheKey identifies what the features of an image depend on besides the
// image itself: backbone, weights (by hash), BatchNorm statistics, layers,
// preprocessing and embedding (its type and its JSON, which must hold what
// sets it apart: its exported fields). It keys the disk cache of features
// and the pipelines of a Backbone.
func (b *Backbone) cacheKey(spec detector.FeatureSpec) (string, error) {
	j, err := json.Marshal(struct {
		Version                           int
		Arch, WeightsSHA256, BNPass, Mode string
		RandomInit                        bool
		Seed                              uint64
		Layers                            []string
		Resize, ImageSize                 int
		EmbedType                         string
		Embed                             any
	}{2, b.id.Arch, b.id.SHA256, b.id.BNPass, b.pre.Mode.String(), b.id.RandomInit, b.id.Seed, spec.Layers, b.pre.Resize, b.pre.ImageSize,
		fmt.Sprintf("%T", spec.Embed), spec.Embed})
	if err != nil {
		return "", fmt.Errorf("feature cache key of a %T embedding: %w", spec.Embed, err)
	}
	h := sha256.Sum256(j)
	return hex.EncodeToString(h[:]), nil
}

// Grid returns the patch grid of one image at the pipeline's image size
// and checks that it has positions cells.
func (p *Pipeline) Grid(positions int) (int, int, error) {
	size := p.b.pre.ImageSize
	first, err := backbone.LayerIndex(p.spec.Layers[0])
	if err != nil {
		return 0, 0, err
	}
	stride := 4 << first // layer1: 4, layer2: 8, layer3: 16
	gh, gw := p.spec.Embed.Grid((size+stride-1)/stride, (size+stride-1)/stride)
	if gh*gw != positions {
		return 0, 0, fmt.Errorf("%d patch positions do not form the %dx%d grid of %s at %d px", positions, gh, gw, p.spec.Layers[0], size)
	}
	return gh, gw, nil
}

// Meta describes the pipeline for a model file with a gh x gw grid.
func (p *Pipeline) Meta(gh, gw int) detector.Meta {
	b := p.b
	return detector.Meta{
		Embedding: p.spec.Embedding, Backbone: b.id, Layers: slices.Clone(p.spec.Layers), Resize: b.pre.Resize, ImageSize: b.pre.ImageSize,
		ResizeMode: b.pre.Mode.String(), GridH: gh, GridW: gw, Channels: p.spec.Channels,
		Created: time.Now().UTC().Format(time.RFC3339), SoftpatchVersion: buildinfo.Version, Commit: buildinfo.Commit(),
	}
}

// each embeds dataset items (augmented noise images included) batch
// images at a time and calls fn with each batch's features, items[lo:hi];
// the features are reused after fn returns.
func (p *Pipeline) each(label string, items []datasets.Item, batch int, fn func(lo, hi int, f detector.Features) error) error {
	return eachOf([]*Pipeline{p}, label, items, batch, func(lo, hi int, fs []detector.Features) error { return fn(lo, hi, fs[0]) })
}

// eachOf is each for several pipelines on one backbone: one forward pass
// per batch gives every pipeline's features (featuresOf).
func eachOf(pipes []*Pipeline, label string, items []datasets.Item, batch int, fn func(lo, hi int, fs []detector.Features) error) error {
	b := pipes[0].b
	s := b.pre.ImageSize
	per := 3 * s * s
	x := make([]float32, batch*per)
	bar := progress.New(label, len(items), "images")
	defer bar.Finish()
	for lo := 0; lo < len(items); lo += batch {
		hi := min(lo+batch, len(items))
		for i, it := range items[lo:hi] {
			img, err := b.pre.LoadItem(it)
			if err != nil {
				return err
			}
			copy(x[i*per:(i+1)*per], img)
		}
		fs, err := featuresOf(pipes, x[:(hi-lo)*per], hi-lo)
		if err != nil {
			return err
		}
		if err := fn(lo, hi, fs); err != nil {
			return err
		}
		bar.Add(hi - lo)
	}
	return nil
}

// features embeds a batch of n preprocessed images ([n][3][S][S]).
func (p *Pipeline) features(x []float32, n int) (detector.Features, error) {
	fs, err := featuresOf([]*Pipeline{p}, x, n)
	if err != nil {
		return detector.Features{}, err
	}
	return fs[0], nil
}

// forward runs the backbone on a batch of n preprocessed images up to
// layers: on the GPU when there is one (with device auto a GPU failure
// turns it off and the CPU takes over), else on the CPU.
func (b *Backbone) forward(x []float32, n int, layers []string) ([]backbone.Feature, error) {
	s := b.pre.ImageSize
	if g, _ := b.gpu.Backbone(); g != nil {
		feats, err := g.Forward(x, n, s, s, layers)
		if err == nil {
			return feats, nil
		}
		if err := b.gpu.Fail("backbone", err); err != nil {
			return nil, err
		}
	}
	return b.net.Forward(x, n, s, s, layers)
}

// featuresOf computes the features of every pipeline in pipes (on one
// backbone) for a batch of n preprocessed images from one forward pass
// through the union of their layers: on the GPU when there is one (with
// device auto a GPU failure turns it off and the CPU takes over), else on
// the CPU.
func featuresOf(pipes []*Pipeline, x []float32, n int) ([]detector.Features, error) {
	b := pipes[0].b
	var layers []string
	for _, q := range pipes {
		if q.b != b {
			return nil, fmt.Errorf("features: pipelines on different backbones")
		}
		for _, l := range q.spec.Layers {
			if !slices.Contains(layers, l) {
				layers = append(layers, l)
			}
		}
	}
	if g, e := b.gpu.Backbone(); g != nil {
		fs, err := gpuFeaturesOf(g, e, pipes, x, n, layers)
		if err == nil {
			return fs, nil
		}
		if err := b.gpu.Fail("features", err); err != nil {
			return nil, err
		}
	}
	s := b.pre.ImageSize
	feats, err := b.net.Forward(x, n, s, s, layers)
	if err != nil {
		return nil, err
	}
	return embedAll(pipes, n, feats, layers, nil, nil)
}

// gpuFeaturesOf is featuresOf on the GPU: the backbone's layers stay on
// the device for PatchCore's embedding; other embeddings run on the CPU
// from the downloaded layers.
func gpuFeaturesOf(g *cuda.Backbone, e *cuda.Embedder, pipes []*Pipeline, x []float32, n int, layers []string) (fs []detector.Features, err error) {
	s := pipes[0].b.pre.ImageSize
	a, err := g.Run(x, n, s, s, layers)
	if err != nil {
		return nil, err
	}
	defer func() {
		if e := a.Close(); err == nil {
			err = e
		}
	}()
	var host []backbone.Feature
	onGPU := func(q *Pipeline) bool { c, ok := q.spec.Embed.(embed.Config); return ok && c == embed.Default() }
	for _, q := range pipes {
		if !onGPU(q) && host == nil {
			if host, err = a.Download(); err != nil {
				return nil, err
			}
		}
	}
	return embedAll(pipes, n, host, layers, onGPU, func(q *Pipeline) ([]float32, int, error) {
		v, err := a.Pick(q.spec.Layers)
		if err != nil {
			return nil, 0, err
		}
		return e.Embed(v)
	})
}

// embedAll embeds each pipeline's layers (a subset of feats, which hold
// layers in that order) of n images: with gpuEmbed for the pipelines onGPU
// accepts, else on the CPU.
func embedAll(pipes []*Pipeline, n int, feats []backbone.Feature, layers []string, onGPU func(*Pipeline) bool,
	gpuEmbed func(*Pipeline) ([]float32, int, error)) ([]detector.Features, error) {
	out := make([]detector.Features, len(pipes))
	for i, q := range pipes {
		var (
			data []float32
			pos  int
			err  error
		)
		if onGPU != nil && onGPU(q) {
			data, pos, err = gpuEmbed(q)
		} else {
			sel := make([]backbone.Feature, len(q.spec.Layers))
			for j, l := range q.spec.Layers {
				sel[j] = feats[slices.Index(layers, l)]
			}
			data, pos, err = q.spec.Embed.Embed(sel)
		}
		if err != nil {
			return nil, err
		}
		out[i] = detector.Features{Data: data, N: n, Positions: pos, Dim: len(data) / max(1, n*pos)}
	}
	return out, nil
}

// loadBatch decodes and preprocesses image files into x
// ([len(images)][3][S][S]).
func (b *Backbone) loadBatch(x []float32, images []string) error {
	per := len(x) / len(images)
	for i, path := range images {
		img, err := b.pre.LoadImage(path)
		if err != nil {
			return err
		}
		copy(x[i*per:(i+1)*per], img)
	}
	return nil
}

// CheckImages fails fast, before a backbone loads, on a missing file or
// one whose header is not that of a supported image.
func CheckImages(paths []string) error {
	for _, p := range paths {
		if _, _, err := datasets.ImageSize(p); err != nil {
			return err
		}
	}
	return nil
}
