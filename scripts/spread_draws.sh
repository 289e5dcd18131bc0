#!/usr/bin/env bash
# How much a cell moves with its random draws, in the published code and in softpatch.
#
#   scripts/spread_draws.sh REF_CHECKOUT WORKDIR
#
# For each seed in SEEDS [0 1 2 3]: one published SoftPatch-lof cell with that seed and
# softpatch replaying its draws (scripts/parity_draws.sh, whose settings and REFERENCE_TOOLS
# apply: TRAIN, CORESET, ...), then softpatch with its own draws from the same seed. All cells
# share one noise list (the published noise draw of NOISE_SEED [0]), so only the projections
# and start points change between seeds. Prints each cell's image and pixel AUROC and each
# column's mean and standard deviation.
set -euo pipefail
ref=$(realpath "$1"); work=$(realpath -m "$2")
here=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
SEEDS=${SEEDS:-0 1 2 3}
export CELLS=lof NOISE_SEED=${NOISE_SEED:-0}
CLASS=${CLASS:-wood} TRAIN=${TRAIN:-800} NOISE=${NOISE:-0.1} OVERLAP=${OVERLAP:-1}
CORESET=${CORESET:-0.01} THREADS=${THREADS:-2} WIDTH=${WIDTH:-320} HEIGHT=${HEIGHT:-256}
ov=(); [ "$OVERLAP" = 1 ] && ov=(--overlap)
rows=()
for s in $SEEDS; do
  SEED=$s "$here/scripts/parity_draws.sh" "$ref" "$work" >/dev/null
  c="$work/${CLASS}_${TRAIN}_lof_coreset${CORESET}_seed$s"
  if [ ! -f "$c/own.json" ]; then
    $PY -c "import json,sys; json.dump(json.load(open(sys.argv[1]))['noise_files'], open(sys.argv[2],'w'))" \
      "$c/pub.json" "$c/noise.json"
    "$work/softpatch" eval --data "$work/data_${TRAIN}_${WIDTH}x${HEIGHT}" --class "$CLASS" --method softpatch-lof \
      --noise "$NOISE" "${ov[@]}" --noise-list "$c/noise.json" --coreset "$CORESET" --weights "$work/wrn.pth" \
      --threads "$THREADS" --seed "$s" --json "$c/own.tmp.json" 2>/dev/null
    mv "$c/own.tmp.json" "$c/own.json"
  fi
  rows+=("$s" "$c")
done
$PY - "${rows[@]}" <<'PYEOF'
import json, sys, statistics as st
a = sys.argv[1:]
cols = {k: [] for k in ("pub_img", "pub_pix", "rep_img", "rep_pix", "own_img", "own_pix")}
print("| seed | published image | published pixel | replayed image | replayed pixel | softpatch's own draws image | pixel |")
print("|---|---|---|---|---|---|---|")
for s, c in zip(a[::2], a[1::2]):
    p, r, o = (json.load(open(f"{c}/{n}.json")) for n in ("pub", "ours", "own"))
    v = (p["image_auroc"], p["pixel_auroc"], r["image_auroc"], r["pixel_auroc"], o["image_auroc"], o["pixel_auroc"])
    for k, x in zip(cols, v):
        cols[k].append(x)
    print(f"| {s} | " + " | ".join(f"{x:.4f}" for x in v) + " |")
sd = lambda x: st.stdev(x) if len(x) > 1 else 0.0
print("| mean +- sd | " + " | ".join(f"{st.mean(x):.4f} +- {sd(x):.4f}" for x in cols.values()) + " |")
PYEOF
