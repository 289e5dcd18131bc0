package main

import (
	"flag"
	"fmt"
	"log/slog"
	"strings"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/compute"
	"github.com/softpatch/softpatch/engine/embed"
)

// featureFlags are the flags every verb that computes features shares.
type featureFlags struct {
	weights, arch, mode, layers string
	resize, imagesize, batch    int
	threads                     int
	checkpointBN                bool
}

func (f *featureFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.weights, "weights", "", "torchvision checkpoint (.pth); default: $SOFTPATCH_WEIGHTS, then $TORCH_HOME/hub/checkpoints, then ~/.cache/torch/hub/checkpoints; none found: random-init backbone")
	fs.StringVar(&f.arch, "arch", backbone.WideResNet50_2.Name, "backbone: resnet50, wide_resnet50_2 or wide_resnet101_2")
	fs.IntVar(&f.resize, "resize", 256, "resize target (shorter side, or both sides in square mode)")
	fs.IntVar(&f.imagesize, "imagesize", 224, "centre-crop size fed to the network")
	fs.StringVar(&f.mode, "resize-mode", "shorter", "shorter (resize the shorter side, centre crop) or square (resize to imagesize x imagesize, no crop)")
	fs.StringVar(&f.layers, "layers", "layer2,layer3", "comma-separated backbone layers to embed, first sets the patch grid")
	fs.IntVar(&f.batch, "batch", 8, "images per forward pass")
	fs.IntVar(&f.threads, "threads", 0, "compute threads (0: all cores)")
	fs.BoolVar(&f.checkpointBN, "checkpoint-bn", false, "use the checkpoint's BatchNorm statistics as stored, instead of the published code's one train-mode pass of a ones image (see README)")
}

// pipeline is preprocessing, backbone and patch embedding, ready to run.
type pipeline struct {
	pre     datasets.Preprocess
	net     *backbone.Backbone
	id      backbone.Identity
	layers  []string
	deepest int // stage of the deepest layer
	embed   embed.Config
}

func (f *featureFlags) open() (*pipeline, error) {
	if f.batch < 1 {
		return nil, fmt.Errorf("--batch must be at least 1, got %d", f.batch)
	}
	if f.resize < 1 || f.imagesize < 1 {
		return nil, fmt.Errorf("--resize and --imagesize must be positive, got %d and %d", f.resize, f.imagesize)
	}
	compute.SetThreads(f.threads)
	mode, err := datasets.ParseResizeMode(f.mode)
	if err != nil {
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
		layers = append(layers, l)
		deepest = max(deepest, s)
	}
	net, id, err := backbone.Open(arch, backbone.Options{Weights: f.weights, PublishedBN: !f.checkpointBN, ImageSize: f.imagesize, Deepest: deepest})
	if err != nil {
		return nil, err
	}
	if id.RandomInit {
		slog.Warn("no checkpoint found: using a random-init backbone; results are not comparable with the paper", "arch", arch.Name)
	} else {
		slog.Info("backbone", "identity", id.String())
	}
	return &pipeline{
		pre:     datasets.Preprocess{Resize: f.resize, ImageSize: f.imagesize, Mode: mode},
		net:     net,
		id:      id,
		layers:  layers,
		deepest: deepest,
		embed:   embed.Default(),
	}, nil
}

// features embeds a batch of n preprocessed images ([n][3][S][S]) and
// returns [n][positions][dim].
func (p *pipeline) features(x []float32, n int) ([]float32, int, error) {
	s := p.pre.ImageSize
	feats, err := p.net.Forward(x, n, s, s, p.layers)
	if err != nil {
		return nil, 0, err
	}
	return p.embed.Embed(feats)
}
