#!/usr/bin/env bash
# Nearest-neighbour scoring, brute force against the pruned exact search, in one run (README,
# Performance): the generated wood class's features (random-init backbone, 224 px) with memory
# banks of about 15,700 and 65,700 entries (PatchCore's 10% coreset of 200 and 838 training
# images) and 80 test images each, then isotropic Gaussian data (a 65,536-row bank, the worst case
# for pruning), each under OPENBLAS_CORETYPE=Haswell and, where the CPU has AVX-512, SkylakeX.
# Developer check, not CI: about 30 minutes on 2 cores, most of it the 65k bank's brute force and
# the features.
#
#   scripts/knn_bench.sh OUT_DIR [THREADS]
set -euo pipefail
out=$1; threads=${2:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
make -C "$here" -s build
sp="$here/bin/softpatch"
mkdir -p "$out"
for train in 200 838; do
  data="$out/data-$train"
  [ -d "$data/wood" ] || "$sp" synth --out "$data" --classes wood --train "$train" >/dev/null
  [ -f "$out/wood-$train.model" ] || "$sp" fit --data "$data" --class wood --method patchcore --decision none \
    --threads "$threads" --out "$out/wood-$train.model" 2> "$out/fit-$train.log"
  [ -f "$out/test-$train.npy" ] || "$sp" embed --threads "$threads" --out "$out/test-$train.npy" "$data"/wood/test/*/*.png 2> "$out/embed-$train.log"
done
cores=Haswell
# OpenBLAS's SkylakeX kernels need AVX-512 (they stop with SIGILL without it).
if grep -q avx512f /proc/cpuinfo; then cores="Haswell SkylakeX"; else echo "no AVX-512 on this CPU: OPENBLAS_CORETYPE=Haswell only" >&2; fi
for core in $cores; do
  for train in 200 838; do
    OPENBLAS_CORETYPE=$core "$sp" bench knn --threads "$threads" --model "$out/wood-$train.model" --features "$out/test-$train.npy" --json \
      | sed "s/^{/{\"openblas_coretype\":\"$core\",/" | tee -a "$out/knn.jsonl"
  done
  OPENBLAS_CORETYPE=$core "$sp" bench knn --threads "$threads" --isotropic 65536 --images 80 --json \
    | sed "s/^{/{\"openblas_coretype\":\"$core\",/" | tee -a "$out/knn.jsonl"
done
