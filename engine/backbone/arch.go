// Package backbone is the torchvision bottleneck ResNet family (resnet50,
// wide_resnet50_2, wide_resnet101_2) as a gorgonia expression graph whose
// nodes are the fused kernels of engine/compute, together with loading of
// torchvision checkpoints and torchvision's seeded random initialisation.
//
// Tensors are NCHW float32, row-major. BatchNorm runs in evaluation mode
// (running statistics) and is folded into the preceding convolution when a
// Backbone is built.
package backbone

import (
	"fmt"
	"strings"
)

// Arch describes one member of the torchvision bottleneck ResNet family.
// Stage i (layer1..layer4) has Blocks[i] bottleneck blocks with
// planes = StemWidth << i, an inner width of planes*BaseWidth/64 and
// planes*Expansion output channels (torchvision's Bottleneck, "ResNet V1.5":
// the stride sits on the 3x3 convolution).
type Arch struct {
	Name       string
	Blocks     [4]int // bottleneck blocks in layer1..layer4
	StemWidth  int    // conv1 output channels; torchvision: 64
	BaseWidth  int    // torchvision's width_per_group: 64 (resnet) or 128 (wide)
	NumClasses int    // fc output features; torchvision: 1000
}

// Expansion is the bottleneck's output-to-planes ratio.
const Expansion = 4

// BatchNormEps is torchvision's BatchNorm2d epsilon.
const BatchNormEps = 1e-5

// The architectures torchvision publishes weights for.
var (
	ResNet50        = Arch{Name: "resnet50", Blocks: [4]int{3, 4, 6, 3}, StemWidth: 64, BaseWidth: 64, NumClasses: 1000}
	WideResNet50_2  = Arch{Name: "wide_resnet50_2", Blocks: [4]int{3, 4, 6, 3}, StemWidth: 64, BaseWidth: 128, NumClasses: 1000}
	WideResNet101_2 = Arch{Name: "wide_resnet101_2", Blocks: [4]int{3, 4, 23, 3}, StemWidth: 64, BaseWidth: 128, NumClasses: 1000}
)

// Archs lists the named architectures, in the order Match tries them.
var Archs = []Arch{ResNet50, WideResNet50_2, WideResNet101_2}

// ArchNames returns the names of Archs, in their order.
func ArchNames() []string {
	names := make([]string, len(Archs))
	for i, a := range Archs {
		names[i] = a.Name
	}
	return names
}

// ArchByName returns the named architecture.
func ArchByName(name string) (Arch, error) {
	for _, a := range Archs {
		if a.Name == name {
			return a, nil
		}
	}
	return Arch{}, fmt.Errorf("backbone: unknown architecture %q (known: %v)", name, ArchNames())
}

// Planes returns the planes of stage s (0 for layer1).
func (a Arch) Planes(s int) int { return a.StemWidth << s }

// Width returns the inner (3x3) width of stage s's bottlenecks.
func (a Arch) Width(s int) int { return a.Planes(s) * a.BaseWidth / 64 }

// OutChannels returns the output channels of stage s.
func (a Arch) OutChannels(s int) int { return a.Planes(s) * Expansion }

// Layers are the feature layers a Backbone can return, shallowest first.
var Layers = []string{"layer1", "layer2", "layer3", "layer4"}

// LayerIndex returns the stage of a layer name ("layer1" is 0).
func LayerIndex(name string) (int, error) {
	for i, l := range Layers {
		if l == name {
			return i, nil
		}
	}
	return 0, fmt.Errorf("backbone: unknown layer %q (known: %v)", name, Layers)
}

// Param is one entry of a torchvision state_dict: its key and shape.
type Param struct {
	Name  string
	Shape []int
	// Optional marks entries that a checkpoint may lack (num_batches_tracked,
	// which torch versions before 0.4.1 did not save).
	Optional bool
}

// Params lists every state_dict entry of the architecture with its shape,
// in torchvision's order.
func (a Arch) Params() []Param {
	var ps []Param
	conv := func(name string, out, in, k int) {
		ps = append(ps, Param{Name: name + ".weight", Shape: []int{out, in, k, k}})
	}
	bn := func(name string, c int) {
		for _, f := range []string{"weight", "bias", "running_mean", "running_var"} {
			ps = append(ps, Param{Name: name + "." + f, Shape: []int{c}})
		}
		ps = append(ps, Param{Name: name + ".num_batches_tracked", Shape: []int{}, Optional: true})
	}
	conv("conv1", a.StemWidth, 3, 7)
	bn("bn1", a.StemWidth)
	in := a.StemWidth
	for s := 0; s < 4; s++ {
		w, out := a.Width(s), a.OutChannels(s)
		for b := 0; b < a.Blocks[s]; b++ {
			p := fmt.Sprintf("layer%d.%d.", s+1, b)
			conv(p+"conv1", w, in, 1)
			bn(p+"bn1", w)
			conv(p+"conv2", w, w, 3)
			bn(p+"bn2", w)
			conv(p+"conv3", out, w, 1)
			bn(p+"bn3", out)
			if b == 0 {
				conv(p+"downsample.0", out, in, 1)
				bn(p+"downsample.1", out)
			}
			in = out
		}
	}
	ps = append(ps, Param{Name: "fc.weight", Shape: []int{a.NumClasses, in}})
	ps = append(ps, Param{Name: "fc.bias", Shape: []int{a.NumClasses}})
	return ps
}

// ParamCount is the number of learnable parameters, as torch counts
// model.parameters(): convolution and fc weights, BatchNorm weights and
// biases, fc bias; the BatchNorm running statistics are buffers and are
// not counted.
func (a Arch) ParamCount() int {
	n := 0
	for _, p := range a.Params() {
		if p.Optional || strings.HasSuffix(p.Name, ".running_mean") || strings.HasSuffix(p.Name, ".running_var") {
			continue
		}
		m := 1
		for _, d := range p.Shape {
			m *= d
		}
		n += m
	}
	return n
}

// FLOPs is the number of floating-point operations (2 per multiply-add)
// of the convolutions of one h x w image up to and including stage
// deepest (0 for layer1).
func (a Arch) FLOPs(h, w, deepest int) float64 {
	total := 0.0
	conv := func(in, out, k, stride, pad int) {
		h, w = (h+2*pad-k)/stride+1, (w+2*pad-k)/stride+1
		total += 2 * float64(in*out*k*k) * float64(h*w)
	}
	conv(3, a.StemWidth, 7, 2, 3)
	h, w = (h+2-3)/2+1, (w+2-3)/2+1 // max-pool 3x3/2, pad 1
	in := a.StemWidth
	for s := 0; s <= deepest; s++ {
		wd, out := a.Width(s), a.OutChannels(s)
		for b := 0; b < a.Blocks[s]; b++ {
			stride := 1
			if s > 0 && b == 0 {
				stride = 2
			}
			h0, w0 := h, w
			conv(in, wd, 1, 1, 0)
			conv(wd, wd, 3, stride, 1)
			conv(wd, out, 1, 1, 0)
			if b == 0 {
				hh, ww := h, w
				h, w = h0, w0
				conv(in, out, 1, stride, 0)
				h, w = hh, ww
			}
			in = out
		}
	}
	return total
}
