"""Golden outputs for Preprocess.LoadMask on masks PIL opens in modes "1"
and "P" (resized with NEAREST, as Pillow forces for those modes).

Run with Pillow 9.4 and torchvision 0.14 from datasets/testdata:
    python3 gen_masks.py
It writes mask_P_23x17.png, mask_1bit_19x13.bmp and masks_nearest.json
(mask_1bit_37x29.png is made by gen_preprocess.py). Each case applies the
reference's mask transform to the file as opened, Resize + CenterCrop (or
Resize((s, s))) + ToTensor, then int(): rows of '0'/'1'.
"""
import json
import numpy as np
from PIL import Image
import torchvision.transforms as T

rng = np.random.default_rng(7)

# Palette mask: indices 0, 255 and a few others (only index 255 counts).
idx = np.zeros((17, 23), np.uint8)
idx[3:12, 4:15] = 255
idx[5:7, 6:9] = 3          # colour white but index 3: not anomalous
idx[13:16, 16:22] = 255
im = Image.fromarray(idx, "P")
pal = [0, 0, 0] * 256
pal[3 * 3:3 * 3 + 3] = [255, 255, 255]
pal[255 * 3:255 * 3 + 3] = [255, 255, 255]
im.putpalette(pal)
im.save("mask_P_23x17.png")

b = (rng.random((13, 19)) > 0.6).astype(np.uint8) * 255
Image.fromarray(b).convert("1").save("mask_1bit_19x13.bmp")

def transform(resize, size, mode):
    if mode == "square":
        return T.Resize((size, size))
    return T.Compose([T.Resize(resize), T.CenterCrop(size)])

cases = []
for name, settings in [("mask_P_23x17.png", [(16, 12, "shorter"), (40, 32, "shorter"), (0, 9, "square")]),
                       ("mask_1bit_19x13.bmp", [(24, 20, "shorter"), (10, 8, "shorter"), (0, 30, "square")]),
                       ("mask_1bit_37x29.png", [(24, 20, "shorter"), (64, 48, "shorter"), (0, 16, "square")])]:
    raw = Image.open(name)
    for resize, size, mode in settings:
        t = T.Compose([transform(resize, size, mode), T.ToTensor()])(raw)
        m = t[0].int().numpy()
        cases.append(dict(file=name, pil_mode=raw.mode, resize=resize, size=size, mode=mode,
                          rows=["".join(str(v) for v in r) for r in m]))
with open("masks_nearest.json", "w") as f:
    json.dump(cases, f, indent=1)
    f.write("\n")
