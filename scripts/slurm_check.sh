#!/usr/bin/env bash
# make slurm-check (issue 18): the quickstart sweep on a one-node Slurm cluster started here
# (scripts/slurm_cluster.sh; needs root), checked against a single process:
#
#   1. a 3-task array (configs/slurm.sh) with one shared feature cache, the tasks generating the
#      dataset together, then the dependent report job; every cell and the tables must equal a
#      single-process `softpatch run` of the same config (all fields but timings, dates and the
#      device line, whose thread count is the task's);
#   2. a task cancelled mid-sweep (scancel) and resubmitted resumes: no finished cell is run
#      again, no cell is stored twice, and the cells equal the single process's;
#   3. a task over its --mem is killed with a clear line in its log, and the rerun completes.
#
#   scripts/slurm_check.sh [WORK_DIR]    (default /tmp/softpatch-slurm-check; about 30 minutes on 2 cores)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/softpatch-slurm-check}
rm -rf "$work"
mkdir -p "$work/logs"
make -C "$here" -s build
export PATH="$here/bin:$PATH"
cluster="$work/cluster"
eval "$("$here/scripts/slurm_cluster.sh" up "$cluster")"
trap '"$here/scripts/slurm_cluster.sh" down "$cluster"' EXIT
sed "s#root: ../data/synth-quick#root: $work/data/synth-quick#" "$here/configs/quickstart.yaml" >"$work/quickstart.yaml"
cfg=$work/quickstart.yaml
res=(--cpus-per-task=1 --mem=6G) # what this machine has room for: 2 tasks at a time
cd "$here"

wait_jobs() { # until none of the jobs is queued or running
  while [ -n "$(squeue -h -j "$(IFS=,; echo "$*")" 2>/dev/null)" ]; do sleep 2; done
}
records() { cat "$@" 2>/dev/null | grep -c . || true; }
same() { # cells and tables of two results folders; "device" names the task's threads
  python3 "$here/scripts/same_cells.py" "$1" "$2" --ignore device || return 1
  softpatch report "$2" >/dev/null || return 1
  cmp "$1/tables.csv" "$2/tables.csv" || return 1
  echo "tables.csv identical"
}
fail() { echo "SLURM CHECK FAILED: $*" >&2; exit 1; }

echo "== 1. a 3-task array with a shared feature cache, then the report job"
t0=$(date +%s)
job=$(sbatch --parsable --array=0-2 "${res[@]}" -o "$work/logs/array_%a.log" configs/slurm.sh "$cfg" "$work/array" --set run.cache_dir="$work/cache")
report=$(sbatch --parsable --dependency=afterok:"$job" -o "$work/logs/report.log" --wrap "softpatch report $work/array")
wait_jobs "$job" "$report"
t1=$(date +%s)
[ -f "$work/array/tables.csv" ] || fail "the report job wrote no tables (logs in $work/logs)"
echo "array of 3 tasks and the report: $((t1 - t0)) s; $(records "$work"/array/results-*.jsonl) records in $(ls "$work"/array/results-*.jsonl | wc -l) files"
softpatch run "$cfg" --dry-run --shard 0/3 2>/dev/null | tail -n 1
t0=$(date +%s)
softpatch run "$cfg" --out "$work/single" --set run.cache_dir="$work/cache-single" >"$work/logs/single.log" 2>&1
t1=$(date +%s)
echo "single process: $((t1 - t0)) s"
softpatch report "$work/single" >/dev/null
same "$work/single" "$work/array" || fail "the array's cells differ from the single process's"

cells_in() { softpatch run "$cfg" --dry-run --shard "$1/3" 2>/dev/null | sed -n 's/^\([0-9]*\) cells in shard.*/\1/p'; }
echo "== 2. a task cancelled mid-sweep and resubmitted"
job=$(sbatch --parsable --array=0-2 "${res[@]}" -o "$work/logs/cancel_%a.log" configs/slurm.sh "$cfg" "$work/cancel" --set run.cache_dir="$work/cache")
f=$work/cancel/results-1-of-3.jsonl
until [ "$(records "$f")" -ge 3 ]; do sleep 1; done
scancel "${job}_1"
wait_jobs "$job"
done1=$(records "$f")
echo "task 1 cancelled after $done1 cells"
job=$(sbatch --parsable --array=1 --export=ALL,SOFTPATCH_SHARDS=3 "${res[@]}" -o "$work/logs/cancel_1_again.log" configs/slurm.sh "$cfg" "$work/cancel" --set run.cache_dir="$work/cache")
wait_jobs "$job"
total=$(records "$work"/cancel/results-*.jsonl)
unique=$(cat "$work"/cancel/results-*.jsonl | python3 -c 'import json,sys; print(len({json.loads(l)["key"] for l in sys.stdin if l.strip()}))')
rerun=$(grep -c "INFO cell n=" "$work/logs/cancel_1_again.log" || true)
echo "resubmitted task 1 ran $rerun cells; $total records, $unique distinct cells"
[ "$total" = 50 ] && [ "$unique" = 50 ] || fail "expected 50 records of 50 distinct cells"
left=$(( $(cells_in 1) - done1 ))
[ "$rerun" = "$left" ] || fail "the resubmitted task ran $rerun cells, $left were left"
same "$work/single" "$work/cancel" || fail "the resumed sweep's cells differ from the single process's"

echo "== 3. a task over its memory limit, then rerun"
job=$(sbatch --parsable --array=0 --export=ALL,SOFTPATCH_SHARDS=3 --cpus-per-task=1 --mem=300M -o "$work/logs/oom.log" configs/slurm.sh "$cfg" "$work/oom" --set run.cache_dir="$work/cache")
wait_jobs "$job"
state=$(scontrol show job "$job" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -1)
echo "over its --mem: job state ${state:-gone}; its log says:"
grep -iE "memory|oom|killed" "$work/logs/oom.log" | grep -v "^time=" | tail -3 || fail "no memory message in the log"
job=$(sbatch --parsable --array=0 --export=ALL,SOFTPATCH_SHARDS=3 "${res[@]}" -o "$work/logs/oom_again.log" configs/slurm.sh "$cfg" "$work/oom" --set run.cache_dir="$work/cache")
wait_jobs "$job"
n=$(records "$work/oom/results-0-of-3.jsonl")
want=$(cells_in 0)
echo "rerun with --mem=6G: $n cells of shard 0/3's $want"
[ "$n" = "$want" ] || fail "the rerun finished $n of $want cells"
echo "SLURM CHECK PASSED"
