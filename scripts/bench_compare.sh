#!/usr/bin/env bash
# Feature-extractor speed, ours against Debian's PyTorch 1.13 in one run, same threads, same
# machine: once with OPENBLAS_CORETYPE as the environment sets it and once with SkylakeX
# (AVX-512) for both sides. Prints one JSON line per implementation and batch size.
#
#   scripts/bench_compare.sh [THREADS] [IMAGES]
set -euo pipefail
threads=${1:-2}; images=${2:-16}
here=$(cd "$(dirname "$0")/.." && pwd)
make -C "$here" -s build
run() { # $1: label, then the command's environment assignments
  echo "== OPENBLAS_CORETYPE=$1"
  shift
  env "$@" "$here/bin/softpatch" bench features --threads "$threads" --batches 1,8 --images "$images" --json
  env "$@" /usr/bin/python3 "$here/scripts/bench_torch.py" --threads "$threads" --batches 1,8 --images "$images"
}
if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
  run "$OPENBLAS_CORETYPE" OPENBLAS_CORETYPE="$OPENBLAS_CORETYPE"
else
  run "(unset)" -u OPENBLAS_CORETYPE
fi
run SkylakeX OPENBLAS_CORETYPE=SkylakeX
