#!/usr/bin/env bash
# Peak memory of one CFLOW cell of 200 training images (issue 16): the generated `wood` class
# (200 training and 80 test images, 256 px, cropped to 224), all three decoders (layer2..4 of
# wide_resnet50_2), `softpatch eval --method cflow` under /usr/bin/time -v with a one-sub-epoch
# schedule: the peak (training features, decoders, Adam state, graphs, the test set's scores) is
# reached in the first image batch, so a longer schedule only takes longer. Developer check, not
# CI (about 8 minutes on 2 cores).
#
#   scripts/cflow_rss.sh WORK_DIR [EXTRA EVAL FLAGS...]
set -euo pipefail
work=$1; shift
here=$(cd "$(dirname "$0")/.." && pwd)
make -C "$here" -s build
sp="$here/bin/softpatch"
mkdir -p "$work"
[ -d "$work/data/wood" ] || "$sp" synth --out "$work/data" --classes wood >/dev/null
/usr/bin/time -v "$sp" eval --data "$work/data" --class wood --method cflow \
  --set cflow.meta_epochs=1 --set cflow.sub_epochs=1 --set cflow.warm_epochs=0 "$@" \
  --json "$work/cflow.json" 2> "$work/cflow.log"
grep -E "Maximum resident set size|Elapsed \(wall" "$work/cflow.log"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print('seconds per stage:', {k: round(v, 1) for k, v in r['seconds'].items()}, 'train', r['train_images'], 'test', r['test_images'])" "$work/cflow.json"
