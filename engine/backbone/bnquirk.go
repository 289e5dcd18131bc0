package backbone

import (
	"fmt"
	"math"

	"github.com/softpatch/softpatch/engine/compute"
)

// BatchNormMomentum is torch's default BatchNorm2d momentum.
const BatchNormMomentum = 0.1

// PublishedBNPass reproduces a quirk of the published PatchCore and
// SoftPatch code. Before any image is embedded, its
// NetworkFeatureAggregator.feature_dimensions() runs one forward pass of
// torch.ones([1, 3, imageSize, imageSize]) through the backbone while the
// backbone is still in train mode (nothing has called .eval() yet). The
// pass stops after the deepest extracted layer (a forward hook raises
// there), and every BatchNorm it went through normalises with the batch's
// statistics and updates its running statistics once:
//
//	running_mean = (1-m)*running_mean + m*mean
//	running_var  = (1-m)*running_var  + m*var*n/(n-1)   (m = 0.1, n = values per channel)
//
// Every later evaluation-mode pass, and so every published feature, uses
// these updated statistics. PublishedBNPass returns a copy of params with
// the BatchNorm running statistics of the stem and of stages 0..deepest
// updated as that pass does; params is not modified. Batch statistics are
// accumulated in float64, as torch does on the CPU.
func PublishedBNPass(arch Arch, params map[string]Tensor, imageSize, deepest int) (map[string]Tensor, error) {
	if deepest < 0 || deepest > 3 || imageSize < 32 {
		return nil, fmt.Errorf("backbone: published BatchNorm pass needs a stage in 0..3 and an image of at least 32 px, got stage %d, %d px", deepest, imageSize)
	}
	out := make(map[string]Tensor, len(params))
	for k, v := range params {
		out[k] = v
	}
	p := &trainPass{params: out}
	x := fmap{c: 3, h: imageSize, w: imageSize, data: make([]float32, 3*imageSize*imageSize)}
	for i := range x.data {
		x.data[i] = 1
	}
	var err error
	if x, err = p.convBN(x, "conv1", "bn1", 2, 3); err != nil {
		return nil, err
	}
	relu(x.data)
	oh, ow := compute.MaxPoolOutputSize(x.h, x.w, 3, 2, 1)
	pooled := fmap{c: x.c, h: oh, w: ow, data: make([]float32, x.c*oh*ow)}
	compute.MaxPool2D(pooled.data, x.data, x.c, x.h, x.w, 3, 2, 1)
	x = pooled
	for s := 0; s <= deepest; s++ {
		for b := 0; b < arch.Blocks[s]; b++ {
			stride := 1
			if s > 0 && b == 0 {
				stride = 2
			}
			if x, err = p.bottleneck(x, fmt.Sprintf("layer%d.%d.", s+1, b), stride, b == 0); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// fmap is one image's feature map, [c][h][w].
type fmap struct {
	c, h, w int
	data    []float32
}

// trainPass runs the train-mode forward pass, writing updated running
// statistics into params.
type trainPass struct {
	params map[string]Tensor
	ws     compute.Workspace
}

func (p *trainPass) bottleneck(x fmap, prefix string, stride int, downsample bool) (fmap, error) {
	y, err := p.convBN(x, prefix+"conv1", prefix+"bn1", 1, 0)
	if err != nil {
		return fmap{}, err
	}
	relu(y.data)
	if y, err = p.convBN(y, prefix+"conv2", prefix+"bn2", stride, 1); err != nil {
		return fmap{}, err
	}
	relu(y.data)
	if y, err = p.convBN(y, prefix+"conv3", prefix+"bn3", 1, 0); err != nil {
		return fmap{}, err
	}
	identity := x
	if downsample {
		if identity, err = p.convBN(x, prefix+"downsample.0", prefix+"downsample.1", stride, 0); err != nil {
			return fmap{}, err
		}
	}
	for i := range y.data {
		y.data[i] += identity.data[i]
	}
	relu(y.data)
	return y, nil
}

// convBN is a bias-free convolution followed by a train-mode BatchNorm
// that normalises with the batch statistics and updates the running ones.
func (p *trainPass) convBN(x fmap, conv, bn string, stride, pad int) (fmap, error) {
	w, ok := p.params[conv+".weight"]
	if !ok || len(w.Shape) != 4 || w.Shape[1] != x.c {
		return fmap{}, fmt.Errorf("backbone: published BatchNorm pass: %s.weight missing or not [out %d k k]", conv, x.c)
	}
	c := compute.Conv{In: x.c, Out: w.Shape[0], Kernel: w.Shape[2], Stride: stride, Pad: pad, Weight: w.Data, Bias: make([]float32, w.Shape[0])}
	oh, ow := c.OutputSize(x.h, x.w)
	y := fmap{c: c.Out, h: oh, w: ow, data: make([]float32, c.Out*oh*ow)}
	c.Forward(y.data, x.data, nil, 1, x.h, x.w, &p.ws)

	gamma, beta := p.params[bn+".weight"].Data, p.params[bn+".bias"].Data
	rm, rv := p.params[bn+".running_mean"], p.params[bn+".running_var"]
	if len(gamma) != c.Out || len(beta) != c.Out || len(rm.Data) != c.Out || len(rv.Data) != c.Out {
		return fmap{}, fmt.Errorf("backbone: published BatchNorm pass: %s does not have %d channels", bn, c.Out)
	}
	newMean := Tensor{Shape: rm.Shape, Data: make([]float32, c.Out)}
	newVar := Tensor{Shape: rv.Shape, Data: make([]float32, c.Out)}
	n := oh * ow
	if n < 2 {
		// torch raises "Expected more than 1 value per channel when training".
		return fmap{}, fmt.Errorf("backbone: published BatchNorm pass: %s sees a %dx%d map, one value per channel; use a larger image size", bn, oh, ow)
	}
	for ch := 0; ch < c.Out; ch++ {
		plane := y.data[ch*n : (ch+1)*n]
		var sum float64
		for _, v := range plane {
			sum += float64(v)
		}
		mean := sum / float64(n)
		var ss float64
		for _, v := range plane {
			d := float64(v) - mean
			ss += d * d
		}
		biased := ss / float64(n)
		newMean.Data[ch] = float32((1-BatchNormMomentum)*float64(rm.Data[ch]) + BatchNormMomentum*mean)
		newVar.Data[ch] = float32((1-BatchNormMomentum)*float64(rv.Data[ch]) + BatchNormMomentum*ss/float64(n-1))
		scale := float64(gamma[ch]) / math.Sqrt(biased+BatchNormEps)
		for i, v := range plane {
			plane[i] = float32((float64(v)-mean)*scale + float64(beta[ch]))
		}
	}
	p.params[bn+".running_mean"] = newMean
	p.params[bn+".running_var"] = newVar
	return y, nil
}

func relu(v []float32) {
	for i, x := range v {
		if x < 0 {
			v[i] = 0
		}
	}
}
