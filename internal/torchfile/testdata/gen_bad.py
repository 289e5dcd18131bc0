#!/usr/bin/python3
"""Small torch.save fixtures for internal/torchfile's checkpoint reader tests
(engine/backbone's LoadCheckpoint tests read some of them too).

Each file is a few KB. Rerun from the repository root with
    /usr/bin/python3 internal/torchfile/testdata/gen_bad.py
(torch 1.13 / torchvision 0.14, Debian's python3-torch). Files whose names
end in _legacy.pth use the legacy serialisation
(_use_new_zipfile_serialization=False), the others the zip one.

  tiny_module_prefix.pth    {"epoch": 3, "state_dict": OrderedDict("module." + k: v)}
                            for Arch{Blocks [1,1,1,1], StemWidth 1, BaseWidth 64,
                            NumClasses 2} ("tiny" in the tests): "state_dict" wrapper
                            and DataParallel prefix.
  model_key_legacy.pth      {"model": first 3 entries of that state_dict, "note": "x"},
                            legacy: "model" wrapper.
  dtypes.pth, dtypes_legacy.pth
                            float64 / float16 / bfloat16 entries, a transposed
                            (non-contiguous) view, two views of one shared storage with
                            offsets, a 0-d scalar, an int64 bn.num_batches_tracked.
                            Expected values are in dtypes.json.
  int32.pth                 an int32 entry            -> unsupported dtype
  int64_param.pth           int64 entry not named num_batches_tracked -> unsupported dtype
  evil_system.pth           a value whose __reduce__ is os.system (pickled as
                            posix.system)             -> refused global
  evil_eval_legacy.pth      builtins.eval, legacy     -> refused global
  whole_module.pth          torch.save(nn.Linear(2, 2)) -> refused global (module class)
  list.pth                  torch.save([tensor])      -> not a state_dict
  not_tensor.pth            {"a": tensor, "b": 1.5}   -> entry b is not a tensor
"""

import collections
import json
import os

import torch
import torch.nn as nn
from torchvision.models.resnet import Bottleneck, conv1x1

HERE = os.path.dirname(os.path.abspath(__file__))


def save(obj, name):
    legacy = name.endswith("_legacy.pth")
    torch.save(obj, os.path.join(HERE, name), _use_new_zipfile_serialization=not legacy)


def tiny_state_dict():
    """torchvision key names for Blocks [1,1,1,1], stem 1, base width 64, 2 classes."""
    torch.manual_seed(1)

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.inplanes = 1
            self.conv1 = nn.Conv2d(3, 1, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(1)
            for i in range(4):
                planes = 1 << i
                ds = nn.Sequential(conv1x1(self.inplanes, planes * 4, 1 if i == 0 else 2),
                                   nn.BatchNorm2d(planes * 4))
                blk = Bottleneck(self.inplanes, planes, 1 if i == 0 else 2, ds, base_width=64)
                setattr(self, "layer%d" % (i + 1), nn.Sequential(blk))
                self.inplanes = planes * 4
            self.fc = nn.Linear(32, 2)

    return Tiny().state_dict()


class Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def main():
    sd = tiny_state_dict()
    save({"epoch": 3, "state_dict": collections.OrderedDict(("module." + k, v) for k, v in sd.items())},
         "tiny_module_prefix.pth")
    save({"model": collections.OrderedDict(list(sd.items())[:3]), "note": "x"}, "model_key_legacy.pth")

    base = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 8 - 0.7
    shared = torch.arange(10, dtype=torch.float32) * 0.25
    d = collections.OrderedDict()
    d["f64"] = (base.double() / 3)
    d["f16"] = torch.tensor([0.5, -2.0, 65504.0, 6.1e-05, 5.96e-08, 0.1], dtype=torch.float16)
    d["bf16"] = torch.tensor([1.0, -3.5, 0.1, 1e30], dtype=torch.bfloat16)
    d["transposed"] = base.t()  # shape [4,3], stride (1,4)
    d["view_a"] = shared[2:6]  # offset 2
    d["view_b"] = shared[1:9].reshape(2, 4)[:, 1:3]  # offset 2, stride (4,1)
    d["scalar"] = torch.tensor(2.5)
    d["bn.num_batches_tracked"] = torch.tensor(11)
    expect = {}
    for k, v in d.items():
        if k.endswith("num_batches_tracked"):
            continue
        expect[k] = {"shape": list(v.shape), "values": [float(x) for x in v.float().flatten().tolist()]}
    save(d, "dtypes.pth")
    save(d, "dtypes_legacy.pth")
    with open(os.path.join(HERE, "dtypes.json"), "w") as f:
        json.dump(expect, f, indent=1)
        f.write("\n")

    save({"w": torch.arange(4, dtype=torch.int32)}, "int32.pth")
    save({"step": torch.arange(3, dtype=torch.int64)}, "int64_param.pth")
    # The payloads are harmless even under Python's own unpickler.
    save({"w": Evil(os.system, "true")}, "evil_system.pth")
    save(collections.OrderedDict(w=torch.zeros(2), x=Evil(eval, "0")), "evil_eval_legacy.pth")
    save(nn.Linear(2, 2), "whole_module.pth")
    save([torch.zeros(2)], "list.pth")
    save({"a": torch.zeros(2), "b": 1.5}, "not_tensor.pth")


if __name__ == "__main__":
    main()
