#!/usr/bin/env bash
# Full-size parity check of `softpatch embed` against the published SoftPatch pipeline
# (a seeded, not pretrained, torchvision wide_resnet50_2; real-sized images).
#
#   scripts/fullsize_check.sh REF_CHECKOUT WORKDIR
#
# REF_CHECKOUT: a clone of TencentYoutuResearch/AnomalyDetection-SoftPatch (outside this repo).
# Needs Debian's python3-torch, python3-torchvision, python3-pil, python3-numpy and
# REFERENCE_TOOLS: a folder, outside this repository, with make_weights.py (writes a seeded
# torchvision wide_resnet50_2) and embed_reference.py (runs the published SoftPatch._embed on
# images). The 276 MB checkpoint it writes stays in WORKDIR; nothing is written into the repo.
set -euo pipefail
ref=$(realpath "$1"); work=$(realpath -m "$2")
here=$(cd "$(dirname "$0")/.." && pwd)
tools=${REFERENCE_TOOLS:?set REFERENCE_TOOLS to the folder holding make_weights.py and embed_reference.py}
PY=/usr/bin/python3
mkdir -p "$work/images"
[ -f "$work/wrn50_2_seed0.pth" ] || $PY "$tools/make_weights.py" "$work/wrn50_2_seed0.pth" "$work/raw" --seed 0
# The same weights in torch's legacy serialisation, the format of torchvision's original file.
[ -f "$work/wrn50_2_seed0_legacy.pth" ] || $PY -c "
import torch,sys; sd=torch.load(sys.argv[1]); torch.save(sd, sys.argv[2], _use_new_zipfile_serialization=False)" \
  "$work/wrn50_2_seed0.pth" "$work/wrn50_2_seed0_legacy.pth"
$PY - "$work/images" <<'PYEOF'
import sys, numpy as np, PIL.Image
out = sys.argv[1]
rng = np.random.default_rng(0)
for i, (w, h, mode) in enumerate([(320, 256, "RGB"), (256, 256, "RGB"), (400, 300, "L"), (300, 420, "RGB")]):
    y, x = np.mgrid[0:h, 0:w]
    base = 128 + 60*np.sin(x/7.0 + i)*np.cos(y/5.0) + rng.normal(0, 12, (h, w))
    if mode == "RGB":
        a = np.stack([base, base*0.8 + 30, 255 - base], -1)
    else:
        a = base
    PIL.Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), mode).save(f"{out}/img{i}_{w}x{h}.png")
PYEOF
imgs=("$work"/images/*.png)
$PY "$tools/embed_reference.py" --ref "$ref" --weights "$work/wrn50_2_seed0.pth" --out "$work/reference.npy" --threads 2 --repeat 3 "${imgs[@]}"
make -C "$here" -s build && cp "$here/bin/softpatch" "$work/softpatch"
for fmt in "" _legacy; do
  "$work/softpatch" embed --weights "$work/wrn50_2_seed0$fmt.pth" --threads 2 --batch 8 --out "$work/ours$fmt.npy" "${imgs[@]}"
  $PY - "$work/reference.npy" "$work/ours$fmt.npy" <<'PYEOF'
import json, sys, numpy as np
r, o = np.load(sys.argv[1]), np.load(sys.argv[2])
info = json.load(open(sys.argv[2][:-4] + ".json"))
print("softpatch seconds_per_image %.4f (decode to embedding, batch 8, load excluded)" % (info["seconds"] / len(info["images"])))
assert r.shape == o.shape, (r.shape, o.shape)
print("%s: shape %s, max abs error %.3g, max abs value %.3g, relative %.3g"
      % (sys.argv[2], o.shape, np.abs(r - o).max(), np.abs(r).max(), np.abs(r - o).max() / np.abs(r).max()))
PYEOF
done
# Speed on the same images, each embedded 3 times as the reference's --repeat 3 did (load excluded;
# includes the one-time graph build and weight transforms of the first batch).
"$work/softpatch" embed --weights "$work/wrn50_2_seed0.pth" --threads 2 --batch 8 --out "$work/timing.npy" \
  "${imgs[@]}" "${imgs[@]}" "${imgs[@]}" 2>/dev/null
$PY -c "import json,sys; i=json.load(open(sys.argv[1])); print('softpatch seconds_per_image %.4f over %d images (same images x3, batch 8)' % (i['seconds']/len(i['images']), len(i['images'])))" "$work/timing.json"
