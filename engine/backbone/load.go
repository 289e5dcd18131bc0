package backbone

import (
	"errors"
	"fmt"
	"path/filepath"
)

// RandomInitSeed is the seed of the random-init backbone used when no
// checkpoint is found.
const RandomInitSeed = 0

// The BatchNorm statistics a backbone runs with (Identity.BNPass).
const (
	// BNPublished: PublishedBNPass applied, as the published code does.
	BNPublished = "published"
	// BNCheckpoint: the checkpoint's running statistics as stored.
	BNCheckpoint = "checkpoint"
)

// BNPasses returns the BatchNorm passes, BNPublished first.
func BNPasses() []string { return []string{BNPublished, BNCheckpoint} }

// Identity says which network produced a result: it travels with every
// output so that a random-init run is never mistaken for a reproduction.
type Identity struct {
	Arch       string `json:"arch"`
	Weights    string `json:"weights,omitempty"`        // checkpoint path
	SHA256     string `json:"weights_sha256,omitempty"` // of the checkpoint file
	RandomInit bool   `json:"random_init"`
	Seed       uint64 `json:"seed"` // of the random initialisation
	// BNPass describes the BatchNorm statistics: BNPublished
	// (PublishedBNPass applied) or BNCheckpoint (the running statistics as
	// stored).
	BNPass string `json:"bn_pass"`
}

// Options say how Open builds a backbone.
type Options struct {
	// Weights is a checkpoint path, or "" to search the usual places.
	Weights string
	// PublishedBN applies PublishedBNPass(ImageSize, Deepest), as the
	// published code does; false keeps the checkpoint's running statistics
	// (torchvision's plain evaluation mode).
	PublishedBN bool
	ImageSize   int // input side of the published pass
	Deepest     int // deepest stage built and extracted (0 for layer1)
}

// String is a one-line description, e.g.
// "wide_resnet50_2 (wide_resnet50_2-95faca4d.pth, sha256 5f2c0b8b43a9)" or
// "wide_resnet50_2 (random-init backbone, seed 0)".
func (id Identity) String() string {
	if id.RandomInit {
		return fmt.Sprintf("%s (random-init backbone, seed %d)", id.Arch, id.Seed)
	}
	sum := id.SHA256
	if len(sum) > 12 {
		sum = sum[:12]
	}
	return fmt.Sprintf("%s (%s, sha256 %s)", id.Arch, filepath.Base(id.Weights), sum)
}

// Resolve returns the Identity that Open gives for arch and opt without
// building anything: the checkpoint FindWeights resolves and its hash, or
// the random initialisation when opt.Weights is "" and none is found, and
// the BatchNorm statistics.
func Resolve(arch Arch, opt Options) (Identity, error) {
	id := Identity{Arch: arch.Name, BNPass: BNCheckpoint}
	if opt.PublishedBN {
		id.BNPass = BNPublished
	}
	path, err := FindWeights(opt.Weights, arch)
	switch {
	case errors.Is(err, ErrNoWeights) && opt.Weights == "":
		id.RandomInit, id.Seed = true, RandomInitSeed
		return id, nil
	case err != nil:
		return id, err
	}
	if id.SHA256, err = HashFile(path); err != nil {
		return id, err
	}
	id.Weights = path
	return id, nil
}

// Open builds the backbone for arch from the checkpoint that FindWeights
// resolves for opt.Weights. When opt.Weights is "" and nothing is found,
// the network is initialised from RandomInitSeed as torchvision
// initialises it, and the Identity says so. An explicit path that fails to
// load is an error, never a fallback.
func Open(arch Arch, opt Options) (*Backbone, Identity, error) {
	id, err := Resolve(arch, opt)
	if err != nil {
		return nil, id, err
	}
	var params map[string]Tensor
	if id.RandomInit {
		params = RandomInit(arch, id.Seed)
	} else if params, err = LoadCheckpoint(id.Weights, arch); err != nil {
		return nil, id, err
	}
	if opt.PublishedBN {
		if params, err = PublishedBNPass(arch, params, opt.ImageSize, opt.Deepest); err != nil {
			return nil, id, err
		}
	}
	b, err := New(arch, params, opt.Deepest)
	if err != nil {
		return nil, id, err
	}
	return b, id, nil
}
