#!/usr/bin/python3
# Generates the torch goldens of golden_test.go. Written for and run with
# torch 1.13 (Debian's /usr/bin/python3: torch 1.13.0a0), CPU, float32:
#
#   /usr/bin/python3 engine/compute/testdata/gen_golden.py
#
# Inputs are not stored: both sides generate them with gen() below, which is
# exact in float32 (an integer in [-1000, 1000] divided by 1000, correctly
# rounded). Each output is written as raw little-endian float32 to
# testdata/<name>.f32, in the NCHW / row-major order of the tensor.
import os

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))


def gen(n, seed):
    i = np.arange(n, dtype=np.int64)
    v = ((i * 7919 + seed * 104729) % 2001 - 1000).astype(np.float32)
    return v / np.float32(1000)


def t(n, seed, shape):
    return torch.from_numpy(gen(n, seed).reshape(shape))


def save(name, y):
    y = y.detach().contiguous().numpy().astype("<f4")
    y.tofile(os.path.join(HERE, name + ".f32"))


# F.interpolate bilinear, align_corners=False, explicit size. Seeds 1, 2.
save("interp_14x14_28x28", F.interpolate(t(2 * 14 * 14, 1, (1, 2, 14, 14)), size=(28, 28), mode="bilinear", align_corners=False))
save("interp_5x7_9x4", F.interpolate(t(3 * 5 * 7, 2, (1, 3, 5, 7)), size=(9, 4), mode="bilinear", align_corners=False))

# F.adaptive_avg_pool1d on 2 rows each. Seed 3.
for l, out in [(4608, 1024), (9216, 1024), (2048, 1024), (144, 40), (40, 200)]:
    save("aap1d_%d_%d" % (l, out), F.adaptive_avg_pool1d(t(2 * l, 3, (1, 2, l)), out))

# F.max_pool2d(3, 2, 1) on 2x3 planes of 13x11. Seed 4.
save("maxpool_13x11", F.max_pool2d(t(2 * 3 * 13 * 11, 4, (2, 3, 13, 11)), 3, 2, 1))

# conv2d (no bias) + BatchNorm2d (eval, eps 1e-5) + ReLU: 5->4 channels,
# 3x3, stride 1, pad 1, on 2 images of 9x8. Seeds 5 (x), 6 (weight),
# 7..10 (gamma, beta, mean, var); var = |gen| + 0.1, gamma = gen + 1.5.
x = t(2 * 5 * 9 * 8, 5, (2, 5, 9, 8))
conv = torch.nn.Conv2d(5, 4, 3, stride=1, padding=1, bias=False)
bn = torch.nn.BatchNorm2d(4, eps=1e-5)
with torch.no_grad():
    conv.weight.copy_(t(4 * 5 * 3 * 3, 6, (4, 5, 3, 3)))
    bn.weight.copy_(t(4, 7, (4,)) + 1.5)
    bn.bias.copy_(t(4, 8, (4,)))
    bn.running_mean.copy_(t(4, 9, (4,)))
    bn.running_var.copy_(t(4, 10, (4,)).abs() + 0.1)
    bn.eval()
    save("conv_bn_relu", F.relu(bn(conv(x))))
