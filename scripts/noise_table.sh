#!/usr/bin/env bash
# Clean vs noisy (noise ratio 0.1, overlap) cells on the generated dataset, one `softpatch eval`
# per cell, and a Markdown table of pixel and image AUROC (the issue-4 end-to-end check: with
# overlap, PatchCore's bank holds the test anomalies themselves, SoftPatch should drop them).
# Developer check, not CI (minutes per cell on a CPU). Cells already written are kept.
#
#   scripts/noise_table.sh OUT_DIR [CLASSES] [EXTRA EVAL FLAGS...]
set -euo pipefail
out=$1; classes=${2:-wood,pill}; shift $(( $# >= 2 ? 2 : 1 ))
here=$(cd "$(dirname "$0")/.." && pwd)
make -C "$here" -s build
sp="$here/bin/softpatch"
mkdir -p "$out"
[ -d "$out/data" ] || "$sp" synth --out "$out/data" --classes "$classes" >/dev/null
methods="patchcore softpatch-nearest softpatch-gaussian softpatch-lof"
for c in ${classes//,/ }; do
  for setting in clean noisy; do
    flags=(); [ "$setting" = noisy ] && flags=(--noise 0.1 --overlap)
    for m in $methods; do
      j="$out/$c-$setting-$m.json"
      [ -s "$j" ] && continue
      "$sp" eval --data "$out/data" --class "$c" --method "$m" "${flags[@]}" "$@" --json "$j" 2>"$j.log" | tail -1
    done
  done
done
python3 - "$out" "$classes" $methods <<'PY'
import json, sys
out, classes, methods = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
for metric in ("pixel_auroc", "image_auroc"):
    print(f"\n{metric.replace('_', ' ')} (clean -> noise 0.1 with overlap)\n")
    print("| class | " + " | ".join(methods) + " |")
    print("|---" * (len(methods) + 1) + "|")
    for c in classes:
        row = []
        for m in methods:
            r = [json.load(open(f"{out}/{c}-{s}-{m}.json"))[metric] for s in ("clean", "noisy")]
            row.append(f"{r[0]:.3f} -> {r[1]:.3f}")
        print(f"| {c} | " + " | ".join(row) + " |")
mark = json.load(open(f"{out}/{classes[0]}-clean-{methods[0]}.json")).get("mark", "")
if mark:
    print(f"\n({mark})")
PY
