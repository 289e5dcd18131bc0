package cflow

import (
	"fmt"
	"math"

	"github.com/softpatch/softpatch/engine/compute"
)

// Adam is torch.optim.Adam without weight decay or amsgrad, in float32 as
// torch computes it on float32 parameters: per parameter value,
//
//	m = beta1 m + (1-beta1) g,  v = beta2 v + (1-beta2) g^2
//	p -= lr/(1-beta1^t) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)
//
// with t the number of steps taken (1 at the first).
type Adam struct {
	// LR is the learning rate; it may change between steps (a schedule).
	LR float64
	// Beta1, Beta2 and Eps are the moment decays and the denominator's
	// epsilon (torch's defaults: 0.9, 0.999, 1e-8).
	Beta1, Beta2, Eps float64

	t    int
	m, v [][]float32
}

// adamChunk is the fewest parameter values a thread updates.
const adamChunk = 1 << 14

// NewAdam returns torch's default Adam at learning rate lr for parameters
// of the given sizes.
func NewAdam(lr float64, sizes []int) *Adam {
	a := &Adam{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
	for _, n := range sizes {
		a.m = append(a.m, make([]float32, n))
		a.v = append(a.v, make([]float32, n))
	}
	return a
}

// Steps is the number of steps taken.
func (a *Adam) Steps() int { return a.t }

// Step updates params[i] in place with grads[i]; both must have the sizes
// Adam was made for.
func (a *Adam) Step(params, grads [][]float32) error {
	if len(params) != len(a.m) || len(grads) != len(a.m) {
		return fmt.Errorf("cflow: adam: %d parameters and %d gradients for %d slots", len(params), len(grads), len(a.m))
	}
	for i := range params {
		if len(params[i]) != len(a.m[i]) || len(grads[i]) != len(a.m[i]) {
			return fmt.Errorf("cflow: adam: parameter %d has %d values and %d gradients, want %d", i, len(params[i]), len(grads[i]), len(a.m[i]))
		}
	}
	a.t++
	b1, b2 := float32(a.Beta1), float32(a.Beta2)
	c1, c2 := float32(1-a.Beta1), float32(1-a.Beta2)
	step := float32(a.LR / (1 - math.Pow(a.Beta1, float64(a.t))))
	bc2 := float32(math.Sqrt(1 - math.Pow(a.Beta2, float64(a.t))))
	eps := float32(a.Eps)
	for i, p := range params {
		m, v, g := a.m[i], a.v[i], grads[i]
		compute.ParallelFor(len(p), adamChunk, func(lo, hi int) {
			for j := lo; j < hi; j++ {
				m[j] = m[j]*b1 + g[j]*c1
				v[j] = v[j]*b2 + g[j]*g[j]*c2
				denom := float32(math.Sqrt(float64(v[j])))/bc2 + eps
				p[j] -= step * (m[j] / denom)
			}
		})
	}
	return nil
}

// Drift takes one step per learning rate of lrs with zero gradients, as
// torch's Adam does for parameters whose gradients an earlier zero_grad()
// left at zero (torch before 2.0, the published code's: docs/method.md,
// section 10.4): the moments decay and the parameters keep moving along
// the momentum. Each value is loaded once for all the steps, so the steps
// cost little memory traffic; the result equals len(lrs) Steps with zero
// gradients exactly.
func (a *Adam) Drift(params [][]float32, lrs []float64) error {
	if len(lrs) == 0 {
		return nil
	}
	if len(params) != len(a.m) {
		return fmt.Errorf("cflow: adam: %d parameters for %d slots", len(params), len(a.m))
	}
	b1, b2, eps := float32(a.Beta1), float32(a.Beta2), float32(a.Eps)
	step, bc2 := make([]float32, len(lrs)), make([]float32, len(lrs))
	for k, lr := range lrs {
		t := float64(a.t + k + 1)
		step[k] = float32(lr / (1 - math.Pow(a.Beta1, t)))
		bc2[k] = float32(math.Sqrt(1 - math.Pow(a.Beta2, t)))
	}
	a.t += len(lrs)
	a.LR = lrs[len(lrs)-1]
	for i, p := range params {
		if len(p) != len(a.m[i]) {
			return fmt.Errorf("cflow: adam: parameter %d has %d values, want %d", i, len(p), len(a.m[i]))
		}
		m, v := a.m[i], a.v[i]
		compute.ParallelFor(len(p), adamChunk, func(lo, hi int) {
			for j := lo; j < hi; j++ {
				mj, vj, pj := m[j], v[j], p[j]
				for k := range step {
					mj *= b1
					vj *= b2
					denom := float32(math.Sqrt(float64(vj)))/bc2[k] + eps
					pj -= step[k] * (mj / denom)
				}
				m[j], v[j], p[j] = mj, vj, pj
			}
		})
	}
	return nil
}
