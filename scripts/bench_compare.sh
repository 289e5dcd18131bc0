#!/usr/bin/env bash
# Feature-extractor speed, ours against Debian's PyTorch 1.13 in one run, same threads, same
# machine, once with the environment's OPENBLAS_CORETYPE and once with SkylakeX (AVX-512) for both.
#
#   scripts/bench_compare.sh [THREADS] [IMAGES]
set -euo pipefail
threads=${1:-2}; images=${2:-16}
here=$(cd "$(dirname "$0")/.." && pwd)
(cd "$here" && go build -o bin/softpatch ./cmd/softpatch)
for core in "${OPENBLAS_CORETYPE:-unset}" SkylakeX; do
  echo "== OPENBLAS_CORETYPE=$core"
  env OPENBLAS_CORETYPE="$core" "$here/bin/softpatch" bench features --threads "$threads" --batches 1,8 --images "$images" --json 2>/dev/null
  env OPENBLAS_CORETYPE="$core" /usr/bin/python3 "$here/scripts/bench_torch.py" --threads "$threads" --batches 1,8 --images "$images"
done
