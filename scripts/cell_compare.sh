#!/usr/bin/env bash
# One cell end to end, ours and the published implementation, one after the other in one run on
# the same data, checkpoint and threads (issue 4's speed check). Developer check, not CI: the
# published side takes several minutes. Needs the published code checkout (REF, with src/) and a
# checkpoint both sides load (e.g. a seeded, not pretrained, torchvision wide_resnet50_2), and
# REFERENCE_TOOLS: a folder, outside this repository, with run_reference.py, the driver that runs
# the published main.py flow offline and writes its metrics and stage timings as JSON.
#
#   scripts/cell_compare.sh REF WEIGHTS.pth OUT_DIR [CLASS] [METHOD] [THREADS]
# METHOD is one of softpatch-lof, softpatch-nearest, softpatch-gaussian, patchcore.
set -euo pipefail
ref=$1; weights=$2; out=$3; class=${4:-wood}; method=${5:-softpatch-lof}; threads=${6:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
make -C "$here" -s build
sp="$here/bin/softpatch"
mkdir -p "$out"
[ -d "$out/data/$class" ] || "$sp" synth --out "$out/data" --classes "$class" >/dev/null
case $method in
  patchcore) refargs=(--without_soft_weight --threshold 0) ;;
  softpatch-*) refargs=(--weight_method "${method#softpatch-}") ;;
  *) echo "unknown method $method" >&2; exit 2 ;;
esac
tools=${REFERENCE_TOOLS:-}
[ -f "$tools/run_reference.py" ] || { echo "set REFERENCE_TOOLS to the folder holding run_reference.py" >&2; exit 2; }
t0=$(date +%s.%N)
(cd "$out" && /usr/bin/python3 "$tools/run_reference.py" --ref "$ref" --data_path "$out/data" --classname "$class" \
  --weights "$weights" --out "$out/published.json" --torch_threads "$threads" "${refargs[@]}" > "$out/published.log" 2>&1)
t1=$(date +%s.%N)
"$sp" eval --data "$out/data" --class "$class" --method "$method" --weights "$weights" --threads "$threads" \
  --json "$out/ours.json" 2> "$out/ours.log"
t2=$(date +%s.%N)
python3 - "$out" "$t0" "$t1" "$t2" <<'PY'
import json, sys
out, t0, t1, t2 = sys.argv[1], *map(float, sys.argv[2:])
p, o = json.load(open(f"{out}/published.json")), json.load(open(f"{out}/ours.json"))
print("published seconds:", {k: round(v, 2) for k, v in p.get("timings_s", {}).items()}, "wall %.1f" % (t1 - t0))
print("softpatch seconds:", {k: round(v, 2) for k, v in o["seconds"].items()}, "wall %.1f" % (t2 - t1))
print("whole cell: %.2fx faster" % ((t1 - t0) / (t2 - t1)))
for k in ("image_auroc", "pixel_auroc"):
    print(f"{k}: published {p.get(k, float('nan')):.4f}, softpatch {o[k]:.4f}")
PY
