package backbone

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
)

// RandomInit returns a state_dict for arch initialised as torchvision's
// ResNet.__init__ initialises the network:
//
//   - convolutions: kaiming_normal_(mode="fan_out", nonlinearity="relu"),
//     i.e. normal with mean 0 and std sqrt(2/(out*k*k));
//   - BatchNorm: weight 1, bias 0, running_mean 0, running_var 1;
//   - fc: nn.Linear's default, weight and bias uniform in
//     [-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform_ with a=sqrt(5)).
//
// num_batches_tracked entries (Optional in Params) are not included, as
// ReadCheckpoint drops them too.
//
// The values are drawn with math/rand/v2's PCG, not torch's Mersenne
// Twister, so they follow the same distributions as torchvision's but are
// not bit-equal to torch.manual_seed(seed) ones. Each parameter has its
// own stream, seeded by (seed, FNV-1a of its name), so the result depends
// only on arch and seed, not on the order or parallelism of generation.
func RandomInit(arch Arch, seed uint64) map[string]Tensor {
	ps := arch.Params()
	fcIn := arch.OutChannels(3) // fc's in_features
	out := make(map[string]Tensor, len(ps))
	tensors := make([]Tensor, len(ps))
	work := make(chan int)
	var wg sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				tensors[i] = initParam(ps[i], seed, fcIn)
			}
		}()
	}
	for i, p := range ps {
		if !p.Optional {
			work <- i
		}
	}
	close(work)
	wg.Wait()
	for i, p := range ps {
		if !p.Optional {
			out[p.Name] = tensors[i]
		}
	}
	return out
}

// initParam draws one parameter.
func initParam(p Param, seed uint64, fcIn int) Tensor {
	n := 1
	for _, d := range p.Shape {
		n *= d
	}
	t := Tensor{Shape: append([]int{}, p.Shape...), Data: make([]float32, n)}
	h := fnv.New64a()
	h.Write([]byte(p.Name))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))
	field := p.Name[strings.LastIndexByte(p.Name, '.')+1:]
	switch {
	case strings.HasPrefix(p.Name, "fc."):
		// nn.Linear: bound 1/sqrt(in_features) for weight and bias.
		bound := 1 / math.Sqrt(float64(fcIn))
		for i := range t.Data {
			t.Data[i] = float32((2*rng.Float64() - 1) * bound)
		}
	case len(p.Shape) == 4: // convolution weight [out, in, k, k]
		std := math.Sqrt(2 / float64(p.Shape[0]*p.Shape[2]*p.Shape[3]))
		for i := range t.Data {
			t.Data[i] = float32(rng.NormFloat64() * std)
		}
	case field == "weight" || field == "running_var": // BatchNorm
		for i := range t.Data {
			t.Data[i] = 1
		}
	default: // BatchNorm bias, running_mean: zeros
	}
	return t
}
