#!/bin/bash
# One shard of a sweep per Slurm array task; the report once all tasks are done.
#
#   job=$(sbatch --parsable --array=0-15 configs/slurm.sh configs/paper/mvtec_noise0.1.yaml runs/mvtec)
#   sbatch --dependency=afterok:$job --wrap "softpatch report runs/mvtec"
#
# Shard i of n runs every n-th cell of the plan; each shard appends to its own results file in
# the shared results folder, and a rerun of a task skips the cells it already finished. Arguments
# after OUT_DIR go to softpatch run (e.g. --set run.cache_dir=/shared/cache for one feature cache
# on the shared file system). Array indices start at 0. To rerun some tasks of an n-task array,
# say how many shards the sweep has, since the new array's own count is smaller:
#
#   sbatch --array=5,9 --export=ALL,SOFTPATCH_SHARDS=16 configs/slurm.sh CONFIG OUT_DIR
#SBATCH --job-name=softpatch
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=12:00:00
set -euo pipefail
usage="usage: sbatch --array=0-N configs/slurm.sh CONFIG OUT_DIR [softpatch run flags...]"
config=${1:?$usage}
out=${2:?$usage}
shift 2
i=${SLURM_ARRAY_TASK_ID:?run it with sbatch --array ($usage)}
n=${SOFTPATCH_SHARDS:-${SLURM_ARRAY_TASK_COUNT:?run it with sbatch --array}}
if [ -z "${SOFTPATCH_SHARDS:-}" ] && [ "${SLURM_ARRAY_TASK_MIN:-0}" != 0 ]; then
  echo "slurm.sh: this array starts at task ${SLURM_ARRAY_TASK_MIN}: a sweep's array starts at 0, and a rerun of some of its tasks needs --export=ALL,SOFTPATCH_SHARDS=N (N: the sweep's task count)" >&2
  exit 2
fi
if [ "$i" -ge "$n" ]; then
  echo "slurm.sh: task $i of a sweep in $n shards (indices 0 to $((n - 1)))" >&2
  exit 2
fi
exec softpatch run "$config" --out "$out" --shard "$i/$n" --set run.threads="${SLURM_CPUS_PER_TASK:-0}" "$@"
