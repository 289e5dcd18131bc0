package main

import (
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/compute"
	"github.com/softpatch/softpatch/engine/embed"
)

// featureFlags are the flags every verb that computes features shares.
type featureFlags struct {
	weights, arch, mode, layers string
	resize, imagesize, threads  int
	checkpointBN                bool
}

func (f *featureFlags) register(fs *flag.FlagSet) {
	def := datasets.DefaultPreprocess()
	fs.StringVar(&f.weights, "weights", "", "torchvision checkpoint (.pth) or a folder holding one; default: $SOFTPATCH_WEIGHTS, then $TORCH_HOME/hub/checkpoints, then ~/.cache/torch/hub/checkpoints; none found: random-init backbone")
	fs.StringVar(&f.arch, "arch", backbone.WideResNet50_2.Name, "backbone: resnet50, wide_resnet50_2 or wide_resnet101_2")
	fs.IntVar(&f.resize, "resize", def.Resize, "shorter side after resizing, before the centre crop (shorter mode only)")
	fs.IntVar(&f.imagesize, "imagesize", def.ImageSize, "side of the square image fed to the network")
	fs.StringVar(&f.mode, "resize-mode", def.Mode.String(), "shorter (resize the shorter side to --resize, centre crop --imagesize) or square (resize straight to imagesize x imagesize, no crop)")
	fs.StringVar(&f.layers, "layers", "layer2,layer3", "comma-separated backbone layers to embed, first sets the patch grid")
	fs.IntVar(&f.threads, "threads", 0, "compute threads (0: GOMAXPROCS, normally all cores)")
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
	compute.SetThreads(f.threads)
	net, id, err := backbone.Open(arch, backbone.Options{Weights: f.weights, PublishedBN: !f.checkpointBN, ImageSize: f.imagesize, Deepest: deepest})
	if err != nil {
		return nil, err
	}
	if id.RandomInit {
		slog.Warn("no checkpoint found: using a " + randomInitMark + "; results are not comparable with the paper")
	} else {
		slog.Info("backbone", "identity", id.String())
	}
	return &pipeline{pre: pre, net: net, id: id, layers: layers, deepest: deepest, embed: embed.Default()}, nil
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
