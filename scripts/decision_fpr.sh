#!/usr/bin/env bash
# The decision threshold's realised false-positive rate (issue 17; docs/method.md#11-decision-threshold):
# the four generated classes with 100 training and 100 normal test images at 64 px (random-init
# backbone), PatchCore and SoftPatch-lof, holdout thresholds at a false-positive rate of 0.05,
# 0.1 and 0.2, one round (the default) and five (every training image held out once). Prints
# one line per cell: class, method, rounds, FPR asked, threshold, test FPR, test FNR.
# Developer check, not CI (about 5 minutes on 2 cores).
#
#   scripts/decision_fpr.sh WORK_DIR
set -euo pipefail
work=$1
here=$(cd "$(dirname "$0")/.." && pwd)
make -C "$here" -s build
sp="$here/bin/softpatch"
mkdir -p "$work"
[ -d "$work/data/fabric" ] || "$sp" synth --out "$work/data" --train 100 --test-good 100 --test-defect 4 --size 64 >/dev/null
printf "class\tmethod\trounds\tfpr\tthreshold\ttest_fpr\ttest_fnr\n"
for class in fabric wood pill nut; do
  for method in patchcore softpatch-lof; do
    for rounds in 1 5; do
      for fpr in 0.05 0.1 0.2; do
        out="$work/$class-$method-$rounds-$fpr.json"
        "$sp" eval --data "$work/data" --class "$class" --method "$method" --imagesize 64 --resize 72 \
          --decision holdout --decision-fpr "$fpr" --decision-rounds "$rounds" --json "$out" >/dev/null 2>&1
        python3 -c "import json,sys; d=json.load(open(sys.argv[1]))['decision']; print('\t'.join(sys.argv[2:] + ['%.4g' % d['threshold'], '%.3f' % d['test_fpr'], '%.3f' % d['test_fnr']]))" \
          "$out" "$class" "$method" "$rounds" "$fpr"
      done
    done
  done
done
