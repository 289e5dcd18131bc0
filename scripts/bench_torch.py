#!/usr/bin/env python3
"""Times Debian's PyTorch on the same job as `softpatch bench features`: torchvision
wide_resnet50_2 (random weights: speed does not depend on them) in evaluation mode, forward to
layer3 only, float32, no_grad, at the given batch sizes and thread count.

    /usr/bin/python3 scripts/bench_torch.py --threads 2 --batches 1,8 --images 16
Prints one JSON line per batch size (seconds_per_image, images_per_second, gflop_per_second).
"""
import argparse, json, time

import torch, torchvision

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--batches", default="1,8")
ap.add_argument("--images", type=int, default=16)
ap.add_argument("--imagesize", type=int, default=224)
a = ap.parse_args()
torch.set_num_threads(a.threads)
m = torchvision.models.wide_resnet50_2().eval()
GFLOP = 18.41  # WRN-50-2 to layer3 at 224, 2 FLOPs per multiply-add (engine/backbone Arch.FLOPs)


def to_layer3(x):
    x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    return m.layer3(m.layer2(m.layer1(x)))


for b in [int(v) for v in a.batches.split(",")]:
    x = torch.randn(b, 3, a.imagesize, a.imagesize)
    with torch.no_grad():
        to_layer3(x)  # warm-up
        rounds = max(1, a.images // b)
        t0 = time.perf_counter()
        for _ in range(rounds):
            to_layer3(x)
        dt = time.perf_counter() - t0
    n = rounds * b
    print(json.dumps({"impl": "pytorch %s" % torch.__version__, "batch": b, "threads": a.threads,
                      "seconds_per_image": dt / n, "images_per_second": n / dt,
                      "gflop_per_second": GFLOP * n / dt}))
