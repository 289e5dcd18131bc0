#!/usr/bin/env python3
"""Golden values for the noise augmentation (datasets/augment.go): torchvision 0.14's
functional.affine on a normalised float tensor with NEAREST interpolation and fill 0, as the
published NoiseDataset applies transforms.RandomAffine(10, (0.1, 0.1), (0.9, 1.1), 10) to the
already normalised image. Fixed parameters replace the random draw (torch's RNG is not ours).

    /usr/bin/python3 datasets/testdata/gen_affine.py   # writes datasets/testdata/affine.json
"""
import json, os
import torch, torchvision
import torchvision.transforms.functional as F

torch.manual_seed(0)
cases = []
for (c, h, w), (angle, tx, ty, scale, shear) in [
    ((2, 9, 11), (7.5, 1, -1, 1.05, 6.0)),
    ((1, 12, 8), (-9.0, -1, 1, 0.92, -8.5)),
    ((3, 16, 16), (3.3, 0, 0, 1.0, 0.0)),
    ((1, 7, 7), (0.0, 0, 0, 1.0, 0.0)),
]:
    x = torch.randn(c, h, w)
    y = F.affine(x, angle=angle, translate=[tx, ty], scale=scale, shear=[shear, 0.0],
                 interpolation=torchvision.transforms.InterpolationMode.NEAREST, fill=None)
    cases.append({"shape": [c, h, w], "angle": angle, "tx": tx, "ty": ty, "scale": scale, "shear": shear,
                  "input": x.flatten().tolist(), "output": y.flatten().tolist()})
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "affine.json")
with open(out, "w") as f:
    json.dump({"torch": torch.__version__, "torchvision": torchvision.__version__, "cases": cases}, f)
print("wrote", out)
