#!/usr/bin/env bash
# Peak resident memory and wall time of `softpatch embed` at batch 1 and 8 on real-sized images.
#
#   scripts/rss_check.sh CHECKPOINT.pth IMAGE...
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ckpt=$1; shift
make -C "$here" -s build
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for b in 1 8; do
  /usr/bin/time -f "batch $b: %M KB peak RSS, %e s wall (load included), $# images" \
    "$here/bin/softpatch" embed --weights "$ckpt" --batch "$b" --out "$out/e.npy" "$@" 2>&1 | grep -E "^batch"
done
