#!/usr/bin/python3
"""Golden fixtures for softpatch's backbone, checkpoint loader and patch embedding.

Purpose
    Builds a tiny ("narrow") bottleneck ResNet with wide_resnet50_2's topology
    and torchvision's exact state_dict key names, saves its weights in both
    torch.save serialisations, preprocesses three small PNG images exactly as
    PatchCore / SoftPatch do (PIL -> Resize -> CenterCrop -> ToTensor ->
    Normalize), runs the network in eval mode and writes the layer1..layer3
    outputs plus PatchCore patch embeddings (patchify 3x3/stride 1/padding 1,
    bilinear alignment to the first layer's grid, MeanMapper preprocessing,
    Aggregator). The Go golden tests load the weights with the production
    loader (engine/backbone.LoadCheckpoint) and compare against these arrays.

    The embedding code is a line-by-line transcription of
    amazon-science/patchcore-inspection (commit fcaa92f):
    src/patchcore/patchcore.py PatchCore._embed and PatchMaker.patchify,
    src/patchcore/common.py Preprocessing, MeanMapper and Aggregator,
    src/patchcore/datasets/mvtec.py (transforms, IMAGENET_MEAN/STD).

Generated with
    torch 1.13.0a0 / torchvision 0.14.1a0 (Debian's python3-torch and
    python3-torchvision), numpy 1.24, Pillow 9.4, CPU, float32, 2 threads.
    The versions actually used are recorded in manifest.json.

Rerun (from the repository root)
    /usr/bin/python3 testdata/golden/gen_model.py

    Everything is seeded, so a rerun reproduces every array and the zip
    checkpoint bit for bit on the same torch build. The legacy checkpoint's
    bytes differ between runs (torch names its storages after memory
    addresses) but its content does not; manifest.json records per-tensor
    SHA-256s of the raw little-endian data, which do not change.

See README.md in this folder for a description of every file.
"""

import copy
import hashlib
import json
import os
import sys

import numpy as np
import PIL
import PIL.Image
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision import transforms
from torchvision.models.resnet import Bottleneck, conv1x1

HERE = os.path.dirname(os.path.abspath(__file__))

# Arch{Name: "narrow_wide_resnet50_2", Blocks: [3,4,6,3], StemWidth: 2,
#      BaseWidth: 128, NumClasses: 10} in engine/backbone/arch.go terms.
ARCH = dict(name="narrow_wide_resnet50_2", blocks=[3, 4, 6, 3], stem_width=2,
            base_width=128, num_classes=10)

RESIZE = 72
IMAGESIZE = 64
PATCHSIZE = 3
PATCHSTRIDE = 1
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

EMBEDDINGS = [
    # file, layers, pretrain_embed_dimension, target_embed_dimension
    ("embed_l23_1024_1024.npy", ["layer2", "layer3"], 1024, 1024),
    ("embed_l23_40_24.npy", ["layer2", "layer3"], 40, 24),
    ("embed_l123_64_48.npy", ["layer1", "layer2", "layer3"], 64, 48),
]


class NarrowResNet(nn.Module):
    """torchvision.models.resnet.ResNet with a configurable stem width.

    torchvision's ResNet hard-codes 64 stem channels; this class is the same
    module tree (same attribute names, so the same state_dict keys) with
    planes = stem_width << stage.
    """

    def __init__(self, blocks, stem_width, base_width, num_classes):
        super().__init__()
        self.inplanes = stem_width
        self.base_width = base_width
        self.conv1 = nn.Conv2d(3, stem_width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(stem_width, blocks[0], stride=1)
        self.layer2 = self._make_layer(stem_width * 2, blocks[1], stride=2)
        self.layer3 = self._make_layer(stem_width * 4, blocks[2], stride=2)
        self.layer4 = self._make_layer(stem_width * 8, blocks[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(stem_width * 8 * Bottleneck.expansion, num_classes)
        # torchvision's ResNet.__init__ initialisation (fc keeps nn.Linear's).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes, blocks, stride):
        # As torchvision's ResNet._make_layer. The downsample condition holds
        # for every stage's first block here (layer1: 2 -> 8 channels).
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * Bottleneck.expansion, stride),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        assert downsample is not None
        layers = [Bottleneck(self.inplanes, planes, stride, downsample, base_width=self.base_width)]
        self.inplanes = planes * Bottleneck.expansion
        for _ in range(1, blocks):
            layers.append(Bottleneck(self.inplanes, planes, base_width=self.base_width))
        return nn.Sequential(*layers)

    def features(self, x):
        """Returns {"layer1": .., "layer4": ..} as torchvision's forward computes them."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = {}
        for name in ["layer1", "layer2", "layer3", "layer4"]:
            x = getattr(self, name)(x)
            out[name] = x
        return out

    def forward(self, x):
        x = self.features(x)["layer4"]
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build_model():
    torch.manual_seed(0)
    model = NarrowResNet(ARCH["blocks"], ARCH["stem_width"], ARCH["base_width"], ARCH["num_classes"])
    # Randomise every BatchNorm so that folding BN into the convolutions is
    # really exercised (torchvision's init would make BN an identity map).
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                # A non-zero counter, so loaders see a real int64 entry.
                m.num_batches_tracked.fill_(7)
    model.eval()
    return model


def make_images():
    """Three small PNGs with structured content: gray, RGB, non-square RGB."""
    rng = np.random.default_rng(0)
    paths = []

    # 1. gray 80x80 ("L" mode): diagonal gradient, a bright disc, a dark bar, noise.
    h, w = 80, 80
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    g = 40 + 120 * (xx + yy) / (h + w - 2)
    g[(yy - 30) ** 2 + (xx - 50) ** 2 < 15 ** 2] = 235
    g[55:62, 8:70] = 15
    g += rng.normal(0, 6, size=g.shape)
    gray = PIL.Image.fromarray(np.clip(g, 0, 255).round().astype(np.uint8), mode="L")
    paths.append(("img0_gray_80x80.png", gray))

    # 2. RGB 96x96: per-channel gradients, checkerboard patch, a coloured square.
    h, w = 96, 96
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * xx / (w - 1)
    gch = 255 * yy / (h - 1)
    b = 128 + 100 * np.sin(xx / 7.0) * np.cos(yy / 11.0)
    check = ((xx // 6 + yy // 6) % 2 == 0) & (xx > 55) & (yy > 55)
    r[check], gch[check], b[check] = 250, 250, 20
    r[10:30, 60:85], gch[10:30, 60:85], b[10:30, 60:85] = 30, 200, 240
    rgb = np.stack([r, gch, b], axis=-1) + rng.normal(0, 8, size=(h, w, 3))
    rgb = PIL.Image.fromarray(np.clip(rgb, 0, 255).round().astype(np.uint8), mode="RGB")
    paths.append(("img1_rgb_96x96.png", rgb))

    # 3. non-square RGB, 90 wide x 71 high: stripes, an ellipse, noise.
    h, w = 71, 90
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([
        127 + 110 * np.sign(np.sin((xx + 0.5 * yy) / 5.0)),
        90 + 60 * np.cos(yy / 6.0),
        60 + 150 * xx / (w - 1),
    ], axis=-1)
    ell = ((xx - 45) / 20.0) ** 2 + ((yy - 35) / 12.0) ** 2 < 1
    base[ell] = [255, 80, 160]
    base += rng.normal(0, 10, size=base.shape)
    ns = PIL.Image.fromarray(np.clip(base, 0, 255).round().astype(np.uint8), mode="RGB")
    paths.append(("img2_rgb_90x71.png", ns))

    for name, im in paths:
        im.save(os.path.join(HERE, name), optimize=True)
    return [name for name, _ in paths]


def load_inputs(names):
    # mvtec.py: Resize(resize), CenterCrop(imagesize), ToTensor(), Normalize.
    crop = transforms.Compose([transforms.Resize(RESIZE), transforms.CenterCrop(IMAGESIZE)])
    to_input = transforms.Compose([
        transforms.ToTensor(),
        transforms.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
    ])
    crops, tensors = [], []
    for name in names:
        image = PIL.Image.open(os.path.join(HERE, name)).convert("RGB")
        c = crop(image)
        crops.append(np.asarray(c, dtype=np.uint8))
        tensors.append(to_input(c))
    return np.stack(crops), torch.stack(tensors).to(torch.float32)


# ---- PatchCore transcription -------------------------------------------------

class PatchMaker:
    def __init__(self, patchsize, stride=None):
        self.patchsize = patchsize
        self.stride = stride

    def patchify(self, features, return_spatial_info=False):
        padding = int((self.patchsize - 1) / 2)
        unfolder = torch.nn.Unfold(
            kernel_size=self.patchsize, stride=self.stride, padding=padding, dilation=1
        )
        unfolded_features = unfolder(features)
        number_of_total_patches = []
        for s in features.shape[-2:]:
            n_patches = (
                s + 2 * padding - 1 * (self.patchsize - 1) - 1
            ) / self.stride + 1
            number_of_total_patches.append(int(n_patches))
        unfolded_features = unfolded_features.reshape(
            *features.shape[:2], self.patchsize, self.patchsize, -1
        )
        unfolded_features = unfolded_features.permute(0, 4, 1, 2, 3)
        if return_spatial_info:
            return unfolded_features, number_of_total_patches
        return unfolded_features


class MeanMapper(torch.nn.Module):
    def __init__(self, preprocessing_dim):
        super().__init__()
        self.preprocessing_dim = preprocessing_dim

    def forward(self, features):
        features = features.reshape(len(features), 1, -1)
        return F.adaptive_avg_pool1d(features, self.preprocessing_dim).squeeze(1)


class Preprocessing(torch.nn.Module):
    def __init__(self, input_dims, output_dim):
        super().__init__()
        self.preprocessing_modules = torch.nn.ModuleList(
            [MeanMapper(output_dim) for _ in input_dims])

    def forward(self, features):
        _features = []
        for module, feature in zip(self.preprocessing_modules, features):
            _features.append(module(feature))
        return torch.stack(_features, dim=1)


class Aggregator(torch.nn.Module):
    def __init__(self, target_dim):
        super().__init__()
        self.target_dim = target_dim

    def forward(self, features):
        features = features.reshape(len(features), 1, -1)
        features = F.adaptive_avg_pool1d(features, self.target_dim)
        return features.reshape(len(features), -1)


def embed(feature_maps, layers, pretrain_dim, target_dim):
    """PatchCore._embed on precomputed layer outputs; returns [N, h*w, target_dim]
    where (h, w) is the first layer's grid."""
    patch_maker = PatchMaker(PATCHSIZE, stride=PATCHSTRIDE)
    features = [feature_maps[layer] for layer in layers]
    n = features[0].shape[0]
    features = [patch_maker.patchify(x, return_spatial_info=True) for x in features]
    patch_shapes = [x[1] for x in features]
    features = [x[0] for x in features]
    ref_num_patches = patch_shapes[0]

    for i in range(1, len(features)):
        _features = features[i]
        patch_dims = patch_shapes[i]
        _features = _features.reshape(
            _features.shape[0], patch_dims[0], patch_dims[1], *_features.shape[2:]
        )
        _features = _features.permute(0, -3, -2, -1, 1, 2)
        perm_base_shape = _features.shape
        _features = _features.reshape(-1, *_features.shape[-2:])
        _features = F.interpolate(
            _features.unsqueeze(1),
            size=(ref_num_patches[0], ref_num_patches[1]),
            mode="bilinear",
            align_corners=False,
        )
        _features = _features.squeeze(1)
        _features = _features.reshape(
            *perm_base_shape[:-2], ref_num_patches[0], ref_num_patches[1]
        )
        _features = _features.permute(0, -2, -1, 1, 2, 3)
        _features = _features.reshape(len(_features), -1, *_features.shape[-3:])
        features[i] = _features
    features = [x.reshape(-1, *x.shape[-3:]) for x in features]

    feature_dims = [feature_maps[layer].shape[1] for layer in layers]
    features = Preprocessing(feature_dims, pretrain_dim)(features)
    features = Aggregator(target_dim)(features)
    return features.reshape(n, ref_num_patches[0] * ref_num_patches[1], target_dim)


# ---- output ----------------------------------------------------------------

def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tensor_record(t):
    a = t.detach().contiguous().cpu().numpy()
    le = a.astype(a.dtype.newbyteorder("<"), copy=False)
    return {
        "shape": list(a.shape),
        "dtype": str(a.dtype),
        "sha256": hashlib.sha256(le.tobytes()).hexdigest(),
    }


def main():
    torch.set_num_threads(2)
    files = {}

    def note(name, array=None, **extra):
        path = os.path.join(HERE, name)
        rec = {"bytes": os.path.getsize(path), "sha256": sha256_file(path)}
        if array is not None:
            rec["shape"] = list(array.shape)
            rec["dtype"] = str(array.dtype)
        rec.update(extra)
        files[name] = rec

    def save_npy(name, array, **extra):
        array = np.ascontiguousarray(array)
        np.save(os.path.join(HERE, name), array)
        note(name, array, **extra)

    model = build_model()
    sd = model.state_dict()
    torch.save(sd, os.path.join(HERE, "narrow_wrn50_2_zip.pth"))
    torch.save(sd, os.path.join(HERE, "narrow_wrn50_2_legacy.pth"), _use_new_zipfile_serialization=False)
    note("narrow_wrn50_2_zip.pth", serialisation="zip (torch >= 1.6 default)")
    note("narrow_wrn50_2_legacy.pth", serialisation="legacy (_use_new_zipfile_serialization=False)",
         note="bytes differ between runs (storage keys are memory addresses); content does not")

    names = make_images()
    for name in names:
        with PIL.Image.open(os.path.join(HERE, name)) as im:
            note(name, mode=im.mode, size_wh=list(im.size))
    crops, x = load_inputs(names)
    save_npy("input_uint8.npy", crops, layout="NHWC, after Resize+CenterCrop, before ToTensor")
    save_npy("input.npy", x.numpy(), layout="NCHW, normalised")

    with torch.no_grad():
        feats = model.features(x)
    for layer in ["layer1", "layer2", "layer3"]:
        save_npy(layer + ".npy", feats[layer].numpy(), layout="NCHW")

    # The published code's BatchNorm quirk: NetworkFeatureAggregator.feature_dimensions() runs one
    # forward pass of torch.ones([1, 3, imagesize, imagesize]) while the backbone is still in train
    # mode (nothing has called .eval() yet), up to the deepest extracted layer (its hook raises
    # there), so every BatchNorm up to that layer updates its running statistics once (momentum
    # 0.1, unbiased batch variance) before any image is embedded.
    for deepest, layers, out in [("layer3", ["layer1", "layer2", "layer3"], "published_l3_"),
                                 ("layer2", ["layer1", "layer2", "layer3"], "published_l2_")]:
        published = copy.deepcopy(model)
        published.train()
        with torch.no_grad():
            z = published.maxpool(published.relu(published.bn1(published.conv1(torch.ones(1, 3, IMAGESIZE, IMAGESIZE)))))
            for name in ["layer1", "layer2", "layer3"]:
                z = getattr(published, name)(z)
                if name == deepest:
                    break
        published.eval()
        with torch.no_grad():
            pfeats = published.features(x)
        for layer in layers:
            save_npy(out + layer + ".npy", pfeats[layer].numpy(), layout="NCHW",
                     note="after the published train-mode pass of a ones image up to " + deepest)
        if deepest == "layer3":
            with torch.no_grad():
                e = embed(pfeats, ["layer2", "layer3"], 1024, 1024)
            save_npy("published_l3_embed_l23_1024_1024.npy", e.numpy(),
                     layout="[N, h*w of first layer's grid, target_dim]", layers=["layer2", "layer3"],
                     note="after the published train-mode pass of a ones image up to layer3")

    embeddings = []
    with torch.no_grad():
        for name, layers, pdim, tdim in EMBEDDINGS:
            e = embed(feats, layers, pdim, tdim)
            save_npy(name, e.numpy(), layout="[N, h*w of first layer's grid, target_dim]",
                     layers=layers, pretrain_embed_dimension=pdim, target_embed_dimension=tdim)
            embeddings.append({"file": name, "layers": layers,
                               "pretrain_embed_dimension": pdim, "target_embed_dimension": tdim})

    manifest = {
        "generator": "testdata/golden/gen_model.py",
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "numpy": np.__version__,
            "pillow": PIL.__version__,
        },
        "arch": ARCH,
        "settings": {
            "images": names,
            "resize": RESIZE,
            "imagesize": IMAGESIZE,
            "interpolation": "PIL bilinear (torchvision Resize default)",
            "imagenet_mean": IMAGENET_MEAN,
            "imagenet_std": IMAGENET_STD,
            "patchsize": PATCHSIZE,
            "patchstride": PATCHSTRIDE,
            "torch_threads": 2,
            "dtype": "float32",
            "seed": 0,
            "batchnorm_randomisation": "weight U(0.5,1.5), bias N(0,0.1), running_mean N(0,0.1), "
                                       "running_var U(0.5,2), num_batches_tracked 7",
            "embeddings": embeddings,
        },
        "files": files,
        "state_dict": {k: tensor_record(v) for k, v in sd.items()},
    }
    with open(os.path.join(HERE, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=False)
        f.write("\n")

    total = sum(os.path.getsize(os.path.join(HERE, n)) for n in list(files) + ["manifest.json"])
    print("wrote %d files, %.1f KiB in all" % (len(files) + 1, total / 1024.0))


if __name__ == "__main__":
    main()
