#!/usr/bin/python3
"""Golden fixtures for the softpatch `datasets` package (decode + preprocess).

What it makes (all in the directory of this script):
  * small input images in many encodings, built from seeded numpy noise plus
    structure (gradients, a sharp disc, a checkerboard):
      PNG  L, RGB, RGBA, LA, P (with tRNS), P with indices beyond a short PLTE
           (hand-written), 16-bit gray (PIL mode I), 16-bit RGB, 16-bit gray+alpha,
           16-bit gray with tRNS (hand-written), masks: L and 1-bit
      JPEG RGB 4:2:0 / 4:2:2 / 4:4:4, progressive, gray, CMYK (Adobe)
      BMP  24-bit RGB, 32-bit RGBA, 8-bit palette
      TIFF RGB (raw), RGB LZW (libtiff), 16-bit gray (I;16), RGBA with
           associated alpha (hand-written)
  * golden.npz (np.savez_compressed; one .npy per key, read by the Go tests):
      dec/<file>        PIL Image.open(f).convert("RGB") as HxWx3 uint8
      gray/<file>       PIL Image.open(f).convert("L") as HxW uint8 (masks)
      out/<case>        torchvision Resize+CenterCrop (or Resize((s,s)) in
                        square mode) of dec/<file>, HxWx3 uint8
      mask/<case>       masks: convert("L") -> Resize+CenterCrop -> ToTensor
                        -> .int()  (1 iff the resized value is 255), HxW uint8
      norm/<case>       ToTensor+Normalize(ImageNet) of out/<case>, 3xHxW f32
  * cases.json: the list of cases (input file, kind, resize, size, mode, key)
    and the PIL mode each input opens as.

Versions used to generate the committed fixtures: Debian bookworm
python3-pil 9.4.0 (libjpeg-turbo 2.1.5, zlib 1.2.13, libtiff 4.5.0),
python3-torchvision 0.14.1, torch 1.13, numpy 1.24.

Rerun (from the repository root):
    /usr/bin/python3 datasets/testdata/gen_preprocess.py
It is deterministic (fixed seed); the Go tests need no Python.
"""
import hashlib
import json
import os
import struct
import zlib

import numpy as np
import PIL
import torch
import torchvision
import torchvision.transforms as T
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20240601)


def structured(h, w, ch, noise=2):
    """uint8 HxWxch: gradients, a sinusoid, a sharp disc, a checkerboard, noise."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = [
        x * 255.0 / max(w - 1, 1),
        y * 255.0 / max(h - 1, 1),
        128 + 100 * np.sin(x / 3.0) * np.cos(y / 5.0),
    ]
    disc = ((x - w * 0.6) ** 2 + (y - h * 0.4) ** 2) < (min(h, w) * 0.25) ** 2
    chk = ((x // 4 + y // 4) % 2) == 0
    out = np.empty((h, w, ch), np.float64)
    for c in range(ch):
        p = planes[c % 3].copy()
        p[disc] = 255 - p[disc] * 0.3
        if c == 1:
            p[chk & (x < w / 3)] = 10
        out[..., c] = p
    out += rng.integers(-noise, noise + 1, size=out.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def mask_array(h, w):
    y, x = np.mgrid[0:h, 0:w]
    m = ((x - w * 0.45) ** 2 / (w * 0.3) ** 2 + (y - h * 0.55) ** 2 / (h * 0.25) ** 2) < 1
    m |= (x > w * 0.75) & (y < h * 0.3)
    return m


def png_chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


def raw_png(rows, w, h, depth, ctype, extra=b""):
    """Hand-written PNG (filter 0 on every row) for encodings PIL cannot save."""
    raw = b"".join(b"\x00" + r for r in rows)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra
            + png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b""))


def raw_tiff_rgba(a, extra_samples):
    """Hand-written little-endian uncompressed RGBA TIFF with the given
    ExtraSamples value (1 = associated/premultiplied alpha)."""
    h, w, _ = a.shape
    data = a.tobytes()
    tags = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 4, None), (259, 3, 1, 1),
            (262, 3, 1, 2), (273, 4, 1, None), (277, 3, 1, 4), (278, 3, 1, h),
            (279, 4, 1, len(data)), (284, 3, 1, 1), (338, 3, 1, extra_samples)]
    ifd_off = 8
    ifd_len = 2 + 12 * len(tags) + 4
    bps_off = ifd_off + ifd_len
    data_off = bps_off + 8
    out = b"II*\x00" + struct.pack("<I", ifd_off) + struct.pack("<H", len(tags))
    for tag, typ, cnt, val in tags:
        if tag == 258:
            val = bps_off
            out += struct.pack("<HHII", tag, typ, cnt, val)
        elif tag == 273:
            out += struct.pack("<HHII", tag, typ, cnt, data_off)
        elif typ == 3:
            out += struct.pack("<HHIHH", tag, typ, cnt, val, 0)
        else:
            out += struct.pack("<HHII", tag, typ, cnt, val)
    out += struct.pack("<I", 0) + struct.pack("<4H", 8, 8, 8, 8)
    return out + data


def path(name):
    return os.path.join(HERE, name)


inputs = {}  # file -> kind ("rgb" or "mask")


def save(img, name, kind="rgb", **kw):
    img.save(path(name), **kw)
    inputs[name] = kind


def save_bytes(data, name, kind="rgb"):
    with open(path(name), "wb") as f:
        f.write(data)
    inputs[name] = kind


# ---------------------------------------------------------------- inputs
big = structured(257, 300, 3, noise=1)
save(Image.fromarray(big), "rgb_300x257.png", optimize=True)
save(Image.fromarray(structured(29, 37, 1)[..., 0]), "gray_37x29.png")
save(Image.fromarray(structured(41, 23, 4), "RGBA"), "rgba_23x41.png")
save(Image.fromarray(structured(29, 37, 2), "LA"), "la_37x29.png")
pal = Image.fromarray(structured(61, 61, 3, noise=6)).quantize(colors=40, dither=Image.Dither.NONE)
save(pal, "pal_61x61.png", transparency=3)
# palette with 5 entries but indices up to 11 (PIL pads its palette with a gray ramp)
idx = (np.arange(12 * 9).reshape(9, 12) % 12).astype(np.uint8)
save_bytes(raw_png([r.tobytes() for r in idx], 12, 9, 8, 3,
                   png_chunk(b"PLTE", bytes(range(10, 25)))), "palshort_12x9.png")
g16 = (structured(29, 37, 1, noise=3)[..., 0].astype(np.uint32) * 4 + 3).astype(np.uint16)
save(Image.fromarray(g16), "gray16_37x29.png")
rgb16 = structured(41, 23, 3).astype(np.uint16) * 257 + rng.integers(0, 257, (41, 23, 3)).astype(np.uint16)
save_bytes(raw_png([r.astype(">u2").tobytes() for r in rgb16], 23, 41, 16, 2), "rgb16_23x41.png")
la16 = rng.integers(0, 65536, (9, 12, 2)).astype(">u2")
save_bytes(raw_png([r.tobytes() for r in la16], 12, 9, 16, 4), "la16_12x9.png")
g16t = rng.integers(0, 600, (9, 12)).astype(">u2")
save_bytes(raw_png([r.tobytes() for r in g16t], 12, 9, 16, 0,
                   png_chunk(b"tRNS", struct.pack(">H", int(g16t[0, 0])))), "gray16trns_12x9.png")
save(Image.fromarray(mask_array(61, 61).astype(np.uint8) * 255), "mask_L_61x61.png", kind="mask")
save(Image.fromarray(mask_array(29, 37)).convert("1"), "mask_1bit_37x29.png", kind="mask")

save(Image.fromarray(structured(61, 61, 3, noise=6)), "rgb420_61x61.jpg", quality=90)
save(Image.fromarray(structured(29, 37, 3, noise=6)), "rgb422_37x29.jpg", quality=90, subsampling=1)
save(Image.fromarray(structured(41, 23, 3, noise=6)), "rgb444_23x41.jpg", quality=90, subsampling=0)
save(Image.fromarray(structured(50, 67, 3, noise=6)), "prog_67x50.jpg", quality=85, progressive=True)
save(Image.fromarray(structured(41, 23, 1, noise=6)[..., 0]), "gray_23x41.jpg", quality=90)
save(Image.fromarray(structured(29, 37, 4, noise=6), "CMYK"), "cmyk_37x29.jpg", quality=90)

save(Image.fromarray(structured(29, 37, 3)), "rgb_37x29.bmp")
save(Image.fromarray(structured(41, 23, 3, noise=6)).quantize(colors=30, dither=Image.Dither.NONE), "pal_23x41.bmp")
save(Image.fromarray(structured(61, 61, 3)), "rgb_61x61.tif")
save(Image.fromarray(structured(29, 37, 3)), "rgblzw_37x29.tif", compression="tiff_lzw")
save(Image.fromarray(g16[:, :23].copy()), "gray16_23x29.tif")
rgba = structured(29, 37, 4)
rgba[..., :3] = (rgba[..., :3].astype(np.uint32) * rgba[..., 3:] // 255).astype(np.uint8)  # premultiply
rgba[0, :4, 3] = [0, 255, 1, 2]
save_bytes(raw_tiff_rgba(rgba, 1), "rgbassoc_37x29.tif")
save(Image.fromarray(structured(41, 23, 4), "RGBA"), "rgba_23x41.bmp")

# ---------------------------------------------------------------- cases
SMALL = [(36, 32, "shorter"), (40, 32, "shorter"), (32, 32, "shorter"),
         (28, 32, "shorter"), (0, 24, "square"), (64, 56, "shorter")]
FEW = [(36, 32, "shorter"), (0, 24, "square")]
FULL = {"gray_37x29.png", "rgba_23x41.png", "rgb_37x29.bmp", "rgb_61x61.tif",
        "rgb420_61x61.jpg", "mask_L_61x61.png", "mask_1bit_37x29.png"}
settings = {name: (SMALL if name in FULL else FEW) for name in inputs}
settings["rgb_300x257.png"] = [(256, 224, "shorter"), (0, 224, "square"), (40, 32, "shorter")]


def transform(resize, size, mode):
    if mode == "shorter":
        return T.Compose([T.Resize(resize), T.CenterCrop(size)])
    return T.Resize((size, size))


arrays = {}
cases = []
modes = {}
for name, kind in inputs.items():
    im = Image.open(path(name))
    modes[name] = im.mode
    rgb = im.convert("RGB")
    arrays["dec/" + name] = np.asarray(rgb)
    if kind == "mask":
        arrays["gray/" + name] = np.asarray(Image.open(path(name)).convert("L"))
    for resize, size, mode in settings[name]:
        key = f"{name}/{resize}_{size}_{mode}"
        cases.append(dict(file=name, kind=kind, resize=resize, size=size, mode=mode, key=key))
        if kind == "rgb":
            arrays["out/" + key] = np.asarray(transform(resize, size, mode)(rgb))
        else:
            L = Image.open(path(name)).convert("L")
            t = T.Compose([transform(resize, size, mode), T.ToTensor()])(L)
            arrays["mask/" + key] = t[0].int().numpy().astype(np.uint8)

# ToTensor + Normalize (ImageNet statistics) on the resized+cropped PIL image.
norm_keys = ["gray_37x29.png/36_32_shorter", "rgb_300x257.png/40_32_shorter"]
to_norm = T.Compose([T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
for k in norm_keys:
    arrays["norm/" + k] = to_norm(Image.fromarray(arrays["out/" + k])).numpy()

# Informational: the unconverted mode-"1" mask would be resized with NEAREST by
# PIL (Image.resize forces NEAREST for modes "1" and "P").
for c in cases:
    if c["file"] == "mask_1bit_37x29.png":
        raw = Image.open(path(c["file"]))
        t = T.Compose([transform(c["resize"], c["size"], c["mode"]), T.ToTensor()])(raw)
        near = (t[0] == 1).numpy().astype(np.uint8)
        diff = int((near != arrays["mask/" + c["key"]]).sum())
        print(f"info: {c['key']}: mode-1 NEAREST vs convert('L') bilinear: {diff} pixels differ")



def predict_encode(a):
    """Residuals of the gradient predictor (left + up - upleft, mod 256) over
    the first two axes of a uint8 array; makes the arrays compress like PNGs.
    The Go reader inverts it for keys ending in "~pred"."""
    a = a.astype(np.int32)
    p = np.zeros_like(a)
    p[:, 1:] += a[:, :-1]
    p[1:, :] += a[:-1, :]
    p[1:, 1:] -= a[:-1, :-1]
    return ((a - p) % 256).astype(np.uint8)


stored = {}
for k, a in arrays.items():
    if k == "dec/rgb_300x257.png":
        # the 8-bit RGB PNG decodes to exactly the array written; keep a digest only
        stored["sha256/" + k] = np.frombuffer(hashlib.sha256(np.ascontiguousarray(a).tobytes()).digest(), np.uint8)
    elif a.dtype == np.uint8 and a.ndim >= 2:
        stored[k + "~pred"] = predict_encode(a)
    else:
        stored[k] = a
np.savez_compressed(path("golden.npz"), **stored)
with open(path("cases.json"), "w") as f:
    json.dump(dict(pil=PIL.__version__, torchvision=torchvision.__version__,
                   torch=torch.__version__, modes=modes, norm=norm_keys,
                   cases=cases), f, indent=1)

total = sum(os.path.getsize(path(n)) for n in list(inputs) + ["golden.npz", "cases.json"])
print(f"{len(inputs)} inputs, {len(cases)} cases, fixtures {total / 1024:.1f} KiB")
