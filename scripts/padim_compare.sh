#!/usr/bin/env bash
# PaDiM fit and test-scoring speed, ours (softpatch bench padim) against the published PaDiM
# steps (scripts/padim_published.py: numpy/scipy per position, SAMPLE positions timed and
# extrapolated), on features of the same size, same threads, one after the other in one run:
# once with OPENBLAS_CORETYPE as the environment sets it and once with SkylakeX (AVX-512).
#
#   scripts/padim_compare.sh [TRAIN] [TEST] [THREADS] [SAMPLE]
set -euo pipefail
train=${1:-220}; test=${2:-80}; threads=${3:-2}; sample=${4:-128}
here=$(cd "$(dirname "$0")/.." && pwd)
make -C "$here" -s build
run() { # $1: label, then the command's environment assignments
  echo "== OPENBLAS_CORETYPE=$1"
  shift
  env "$@" "$here/bin/softpatch" bench padim --train "$train" --test "$test" --threads "$threads" --json
  env "$@" /usr/bin/python3 "$here/scripts/padim_published.py" --train "$train" --test "$test" --threads "$threads" --sample "$sample"
}
if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
  run "$OPENBLAS_CORETYPE" OPENBLAS_CORETYPE="$OPENBLAS_CORETYPE"
else
  run "(unset)" -u OPENBLAS_CORETYPE
fi
run SkylakeX OPENBLAS_CORETYPE=SkylakeX
