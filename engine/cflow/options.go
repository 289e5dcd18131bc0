package cflow

import (
	"fmt"
	"slices"

	"github.com/softpatch/softpatch/engine/backbone"
)

// Options are CFLOW's settings: a sweep config's top-level cflow section,
// or eval's --set cflow.KEY=VALUE. The defaults are the published ones
// (DefaultOptions).
type Options struct {
	// MetaEpochs and SubEpochs are the schedule's length: the learning
	// rate follows a cosine over the meta-epochs, each of SubEpochs passes
	// over the training images.
	MetaEpochs int `yaml:"meta_epochs" json:"meta_epochs"`
	SubEpochs  int `yaml:"sub_epochs" json:"sub_epochs"`
	// WarmEpochs are the meta-epochs of linear warm-up (published: 2).
	WarmEpochs int `yaml:"warm_epochs" json:"warm_epochs"`
	// LR is Adam's peak learning rate.
	LR float64 `yaml:"lr" json:"lr"`
	// CouplingBlocks is the number of coupling blocks of every decoder.
	CouplingBlocks int `yaml:"coupling_blocks" json:"coupling_blocks"`
	// ConditionDim is the positional encoding's dimension (a multiple of
	// 4).
	ConditionDim int `yaml:"condition_dim" json:"condition_dim"`
	// FiberBatch is the number of fibers of one Adam step; ImageBatch the
	// images whose fibers are shuffled together (the published loader's
	// batch; an incomplete last batch is dropped, as there).
	FiberBatch int `yaml:"fiber_batch" json:"fiber_batch"`
	ImageBatch int `yaml:"image_batch" json:"image_batch"`
	// Layers are the backbone layers with a decoder each.
	Layers []string `yaml:"layers" json:"layers"`
}

// DefaultOptions are the published settings: 25 meta-epochs of 8
// sub-epochs, lr 2e-4 with 2 warm-up meta-epochs, 8 coupling blocks, a
// 128-dim condition, 256 fibers a step, 32 images a batch, decoders on
// layer2, layer3 and layer4.
func DefaultOptions() *Options {
	s := PublishedSchedule
	return &Options{MetaEpochs: s.MetaEpochs, SubEpochs: s.SubEpochs, WarmEpochs: s.WarmEpochs, LR: s.LR, CouplingBlocks: 8,
		ConditionDim: 128, FiberBatch: 256, ImageBatch: 32, Layers: []string{"layer2", "layer3", "layer4"}}
}

// Check reports the first invalid setting, named by its config key.
func (o *Options) Check() error {
	switch {
	case o.MetaEpochs < 1:
		return fmt.Errorf("cflow.meta_epochs: %d is not at least 1", o.MetaEpochs)
	case o.SubEpochs < 1:
		return fmt.Errorf("cflow.sub_epochs: %d is not at least 1", o.SubEpochs)
	case o.WarmEpochs < 0 || o.WarmEpochs >= o.MetaEpochs && o.WarmEpochs > 0:
		return fmt.Errorf("cflow.warm_epochs: %d is not below meta_epochs %d (a schedule this short wants cflow.warm_epochs=0 or 1)", o.WarmEpochs, o.MetaEpochs)
	case !(o.LR > 0 && o.LR < 1):
		return fmt.Errorf("cflow.lr: %v is not in (0, 1)", o.LR)
	case o.CouplingBlocks < 1:
		return fmt.Errorf("cflow.coupling_blocks: %d is not at least 1", o.CouplingBlocks)
	case o.ConditionDim < 4 || o.ConditionDim%4 != 0:
		return fmt.Errorf("cflow.condition_dim: %d is not a positive multiple of 4", o.ConditionDim)
	case o.FiberBatch < 1:
		return fmt.Errorf("cflow.fiber_batch: %d is not at least 1", o.FiberBatch)
	case o.ImageBatch < 1:
		return fmt.Errorf("cflow.image_batch: %d is not at least 1", o.ImageBatch)
	case len(o.Layers) == 0:
		return fmt.Errorf("cflow.layers: none given")
	}
	last := -1
	for _, l := range o.Layers {
		s, err := backbone.LayerIndex(l)
		if err != nil {
			return fmt.Errorf("cflow.layers: %w", err)
		}
		if s <= last {
			return fmt.Errorf("cflow.layers: %v are not distinct layers from shallow to deep", o.Layers)
		}
		last = s
	}
	return nil
}

// schedule is the learning-rate schedule the options set.
func (o *Options) schedule() Schedule {
	return Schedule{LR: o.LR, MetaEpochs: o.MetaEpochs, SubEpochs: o.SubEpochs, WarmEpochs: o.WarmEpochs}
}

// clone returns a deep copy.
func (o *Options) clone() *Options {
	c := *o
	c.Layers = slices.Clone(o.Layers)
	return &c
}
