// Package cflow is the conditional normalizing flow of CFLOW-AD (Gudovskiy
// et al., WACV 2022): per backbone layer, a stack of coupling blocks maps a
// feature vector (a "fiber") and the positional encoding of its position to
// a latent vector whose Gaussian log-likelihood scores the fiber.
//
// The flow is a gorgonia expression graph: training takes its gradients from
// gorgonia's symbolic differentiation and updates the parameters with Adam,
// as torch.optim.Adam does. The numerics follow the published code (its
// model.py and train.py, with FrEIA's AllInOneBlock at the commit it names);
// docs/method.md, section 10, states them step by step. Parameters are kept
// in torch's layouts (a Linear weight is [out][in]), so that they can be
// compared with and replayed from the published code.
package cflow
