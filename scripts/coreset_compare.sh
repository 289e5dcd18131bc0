#!/usr/bin/env bash
# Approximate greedy coreset speed, ours against the published sampler, on the same saved
# features (a `softpatch embed` .npy), same threads, one after the other in one run: once with
# OPENBLAS_CORETYPE as the environment sets it and once with SkylakeX (AVX-512) for both sides.
# The published side times MAX_PICKS picks and extrapolates (its cost per pick is constant).
# Needs the published code at $SOFTPATCH_REF (default /tmp/softpatch-ref/src).
#
#   scripts/coreset_compare.sh FEATURES.npy [RATIO] [THREADS] [MAX_PICKS]
set -euo pipefail
feats=$1; ratio=${2:-0.1}; threads=${3:-2}; maxpicks=${4:-2000}
here=$(cd "$(dirname "$0")/.." && pwd)
make -C "$here" -s build
run() { # $1: label, then the command's environment assignments
  echo "== OPENBLAS_CORETYPE=$1"
  shift
  env "$@" "$here/bin/softpatch" bench coreset --features "$feats" --ratio "$ratio" --threads "$threads" --json
  env "$@" /usr/bin/python3 "$here/scripts/coreset_published.py" "$feats" --ratio "$ratio" --threads "$threads" --max-picks "$maxpicks"
}
if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
  run "$OPENBLAS_CORETYPE" OPENBLAS_CORETYPE="$OPENBLAS_CORETYPE"
else
  run "(unset)" -u OPENBLAS_CORETYPE
fi
run SkylakeX OPENBLAS_CORETYPE=SkylakeX
