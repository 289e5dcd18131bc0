#!/usr/bin/env bash
# Peak memory of one BTAD-sized cell (issue 4): a generated class of 400 training and 60 test
# images at 512x512 (4,096 patches an image, 1.6 million training patches), coreset 1%,
# `softpatch eval` under /usr/bin/time -v. Developer check, not CI (about 10 minutes on 2 cores).
#
#   scripts/btad_rss.sh WORK_DIR [METHOD] [EXTRA EVAL FLAGS...]
set -euo pipefail
work=$1; method=${2:-softpatch-lof}; shift $(( $# >= 2 ? 2 : 1 ))
here=$(cd "$(dirname "$0")/.." && pwd)
make -C "$here" -s build
sp="$here/bin/softpatch"
mkdir -p "$work"
[ -d "$work/data/fabric" ] || "$sp" synth --out "$work/data" --classes fabric --size 512 --train 400 --test-good 20 --test-defect 40 >/dev/null
/usr/bin/time -v "$sp" eval --data "$work/data" --class fabric --method "$method" --coreset 0.01 \
  --resize 512 --imagesize 512 "$@" --json "$work/$method.json" 2> "$work/$method.log"
grep -E "Maximum resident set size|Elapsed \(wall" "$work/$method.log"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print('seconds per stage:', {k: round(v, 1) for k, v in r['seconds'].items()}, 'bank', r['bank_size'])" "$work/$method.json"
