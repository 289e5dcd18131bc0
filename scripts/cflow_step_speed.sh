#!/usr/bin/env bash
# CFLOW decoder training-step speed, ours against the published code in one run, same threads,
# same machine: fibers per second of one step (forward, backward, Adam; 256 fibers, condition
# 128, 8 coupling blocks) at wide_resnet50_2's layer sizes C = 512, 1024, 2048. Ours is
# engine/cflow's BenchmarkTrainerStep (go test -cpu THREADS, decoder built outside the timing),
# the published one scripts/cflow_step_speed.py (cflow-ad's freia_cflow_head with FrEIA at
# cc5cf5e on Debian's torch 1.13, torch.set_num_threads(THREADS), OPENBLAS_NUM_THREADS=THREADS).
# Both sides run with OPENBLAS_CORETYPE=Haswell, then both with SkylakeX; within each, ours and
# the published step alternate per C so that machine noise hits both. Prints the load (uptime)
# before and after, and a table: coretype, C, ours fibers/s, published fibers/s, ours/published.
#
#   CFLOW_AD=/path/cflow-ad FREIA=/path/FrEIA scripts/cflow_step_speed.sh [THREADS]
#
# CFLOW_AD: a checkout of gudovskiy/cflow-ad; FREIA: one of vislearn/FrEIA at commit cc5cf5e.
# Takes about 8 minutes on 2 cores (FrEIA's soft permutations, scipy's special_ortho_group, take
# a good part of it at C=2048).
set -euo pipefail
: "${CFLOW_AD:?set CFLOW_AD to a checkout of gudovskiy/cflow-ad}"
: "${FREIA:?set FREIA to a checkout of vislearn/FrEIA at commit cc5cf5e}"
for d in "$CFLOW_AD/model.py" "$FREIA/FrEIA/modules"; do
  [ -e "$d" ] || { echo "cflow_step_speed.sh: $d not found (CFLOW_AD=$CFLOW_AD FREIA=$FREIA)" >&2; exit 1; }
done
threads=${1:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$here" && go test -c -o "$tmp/cflow.test" ./engine/cflow)

# Timed steps per C (ours: after go test's 1-step probe; published: after 2 warm-up steps).
declare -A ours_steps=([512]=20 [1024]=10 [2048]=5) pub_steps=([512]=20 [1024]=10 [2048]=5)

echo "load before: $(uptime)"
rows=()
for core in Haswell SkylakeX; do
  for c in 512 1024 2048; do
    line=$(cd "$here/engine/cflow" && env OPENBLAS_CORETYPE="$core" GOMAXPROCS="$threads" "$tmp/cflow.test" \
      -test.run '^$' -test.bench "^BenchmarkTrainerStep/C=$c\$" -test.benchtime "${ours_steps[$c]}x" \
      -test.cpu "$threads" | grep '^BenchmarkTrainerStep/')
    echo "ours      $core $line"
    ours=$(awk '{for (i = 2; i <= NF; i++) if ($i == "fibers/s") print $(i-1)}' <<<"$line")
    json=$(env OPENBLAS_CORETYPE="$core" OPENBLAS_NUM_THREADS="$threads" CFLOW_AD="$CFLOW_AD" FREIA="$FREIA" \
      /usr/bin/python3 "$here/scripts/cflow_step_speed.py" --threads "$threads" --channels "$c" --steps "${pub_steps[$c]}")
    echo "published $core $json"
    pub=$(sed -n 's/.*"fibers_per_second": \([0-9.eE+-]*\).*/\1/p' <<<"$json")
    rows+=("$core $c $ours $pub")
  done
done
echo "load after: $(uptime)"
echo
printf '%-10s %5s %12s %16s %8s\n' coretype C "ours fib/s" "published fib/s" ratio
for r in "${rows[@]}"; do
  read -r core c ours pub <<<"$r"
  awk -v core="$core" -v c="$c" -v o="$ours" -v p="$pub" \
    'BEGIN { printf "%-10s %5d %12.1f %16.1f %8.2f\n", core, c, o, p, o / p }'
done
