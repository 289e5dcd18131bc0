#!/usr/bin/env bash
# Cells of the published SoftPatch code against softpatch replaying their draws, one to one.
#
#   scripts/parity_draws.sh REF_CHECKOUT WORKDIR
#
# REF_CHECKOUT: a clone of TencentYoutuResearch/AnomalyDetection-SoftPatch (outside this repo).
# REFERENCE_TOOLS: the folder, outside this repository, holding make_weights.py (a seeded
# torchvision wide_resnet50_2) and run_reference.py (the published main.py flow, offline,
# with --dump_dir). Needs Debian's python3-torch, -torchvision, -pil, -sklearn, -faiss.
#
# Writes a generated class (non-square photos: the generated images stretched to WIDTHxHEIGHT),
# then for each cell in CELLS runs the published code, converts its draws
# (scripts/published_draws.py), runs `softpatch fit` and `softpatch eval` with --draws, and
# compares them (scripts/draws_compare.py). Settings (environment, defaults in brackets):
# CLASS [wood] TRAIN [800] TEST_GOOD [20] TEST_DEFECT [100] WIDTH [320] HEIGHT [256]
# NOISE [0.1] OVERLAP [1] CORESET [0.01] THREADS [2]
# SEED [0]: the published run's seed (its projections and start points); NOISE_SEED [0]: the
# seed of its noise draw, so that cells of several seeds share one noise list.
# CELLS [lof gaussian patchcore]: softpatch-lof; softpatch-gaussian; and the published
# PatchCore setting (LOF, threshold 0, no soft weight).
# DUMP_FEATURES=1 also dumps the published training features (for scripts/coreset_parting.py;
# 3.6 MB per training image). Everything goes to WORKDIR; a cell whose comparison exists is skipped (delete it to redo).
set -euo pipefail
ref=$(realpath "$1"); work=$(realpath -m "$2")
here=$(cd "$(dirname "$0")/.." && pwd)
tools=${REFERENCE_TOOLS:?set REFERENCE_TOOLS to the folder holding make_weights.py and run_reference.py}
PY=/usr/bin/python3
CLASS=${CLASS:-wood} TRAIN=${TRAIN:-800} TEST_GOOD=${TEST_GOOD:-20} TEST_DEFECT=${TEST_DEFECT:-100}
WIDTH=${WIDTH:-320} HEIGHT=${HEIGHT:-256} NOISE=${NOISE:-0.1} OVERLAP=${OVERLAP:-1}
CORESET=${CORESET:-0.01} THREADS=${THREADS:-2} CELLS=${CELLS:-lof gaussian patchcore}
SEED=${SEED:-0} NOISE_SEED=${NOISE_SEED:-0}
dumpf=(); [ "${DUMP_FEATURES:-0}" = 1 ] && dumpf=(--dump_train_features)
data="$work/data_${TRAIN}_${WIDTH}x${HEIGHT}"
mkdir -p "$work"
make -C "$here" -s build && cp "$here/bin/softpatch" "$work/softpatch"
[ -f "$work/wrn.pth" ] || $PY "$tools/make_weights.py" "$work/wrn.pth" "$work/raw" --seed 0 >/dev/null
if [ ! -d "$data/$CLASS" ]; then
  "$work/softpatch" synth --out "$data" --classes "$CLASS" --train "$TRAIN" --test-good "$TEST_GOOD" \
    --test-defect "$TEST_DEFECT" --size "$WIDTH"
  # Stretch every image (bicubic) and mask (nearest) to WIDTHxHEIGHT: non-square photos.
  $PY - "$data/$CLASS" "$WIDTH" "$HEIGHT" <<'PYEOF'
import os, sys, PIL.Image
root, w, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for d, _, files in os.walk(root):
    for f in files:
        p = os.path.join(d, f)
        im = PIL.Image.open(p)
        mask = "ground_truth" in p
        im.resize((w, h), PIL.Image.NEAREST if mask else PIL.Image.BICUBIC).save(p)
PYEOF
fi
ov=(); [ "$OVERLAP" = 1 ] && ov=(--overlap)
for cell in $CELLS; do
  case $cell in
    lof) pub=(--weight_method lof); ours=(--method softpatch-lof) ;;
    gaussian) pub=(--weight_method gaussian); ours=(--method softpatch-gaussian) ;;
    patchcore) pub=(--weight_method lof --threshold 0 --without_soft_weight)
               ours=(--method softpatch-lof --threshold 0 --no-soft-weight) ;;
    *) echo "unknown cell $cell (lof, gaussian, patchcore)" >&2; exit 2 ;;
  esac
  c="$work/${CLASS}_${TRAIN}_${cell}_coreset${CORESET}_seed${SEED}"
  [ -f "$c/compare.txt" ] && { echo "== $c (done)"; cat "$c/compare.txt"; continue; }
  mkdir -p "$c"
  echo "== $c: published"
  $PY "$tools/run_reference.py" --ref "$ref" --data_path "$data" --classname "$CLASS" --weights "$work/wrn.pth" \
    --out "$c/pub.json" --noise "$NOISE" "${ov[@]}" --sampling_ratio "$CORESET" --torch_threads "$THREADS" \
    --seed "$SEED" --noise_seed "$NOISE_SEED" --dump_dir "$c/dump" "${dumpf[@]}" --quiet "${pub[@]}"
  $PY "$here/scripts/published_draws.py" "$c/pub.json" "$c/dump" "$c/pub.draws.npz"
  echo "== $c: softpatch"
  common=(--data "$data" --class "$CLASS" --noise "$NOISE" "${ov[@]}" --coreset "$CORESET" --weights "$work/wrn.pth"
          --threads "$THREADS" --draws "$c/pub.draws.npz" "${ours[@]}")
  "$work/softpatch" fit "${common[@]}" --out "$c/ours.model"
  t0=$SECONDS
  "$work/softpatch" eval "${common[@]}" --json "$c/ours.json"
  ours_wall=$((SECONDS - t0))
  $PY "$here/scripts/draws_compare.py" "$c/pub.json" "$c/ours.json" "$c/dump" "$c/ours.model" > "$c/compare.tmp"
  $PY -c "import json,sys; print('wall: published %.0f s, softpatch eval %s s' % (json.load(open(sys.argv[1]))['timings_s']['wall_total'], sys.argv[2]))" \
    "$c/pub.json" "$ours_wall" >> "$c/compare.tmp"
  mv "$c/compare.tmp" "$c/compare.txt"
  cat "$c/compare.txt"
done
