package compute

import (
	"fmt"
	"math"
)

// FoldBatchNorm returns a convolution's weight and bias with eval-mode
// BatchNorm folded in:
//
//	scale[o] = gamma[o]/sqrt(variance[o]+eps)   (in float64, then rounded to float32)
//	w'[o,...] = weight[o,...]*scale[o]
//	b'[o]     = beta[o] - mean[o]*scale[o]
//
// weight is [out][...] (any per-channel size len(weight)/out); gamma, beta,
// mean and variance are [out]. The inputs are not modified; w and bias are
// newly allocated and belong to the caller.
func FoldBatchNorm(weight []float32, out int, gamma, beta, mean, variance []float32, eps float64) (w, bias []float32) {
	if out <= 0 || len(weight)%out != 0 || len(gamma) != out || len(beta) != out || len(mean) != out || len(variance) != out {
		panic(fmt.Sprintf("compute.FoldBatchNorm: len(weight)=%d out=%d len(gamma)=%d len(beta)=%d len(mean)=%d len(variance)=%d",
			len(weight), out, len(gamma), len(beta), len(mean), len(variance)))
	}
	per := len(weight) / out
	w = make([]float32, len(weight))
	bias = make([]float32, out)
	for o := 0; o < out; o++ {
		scale := float32(float64(gamma[o]) / math.Sqrt(float64(variance[o])+eps))
		for i := o * per; i < (o+1)*per; i++ {
			w[i] = weight[i] * scale
		}
		bias[o] = beta[o] - mean[o]*scale
	}
	return w, bias
}
