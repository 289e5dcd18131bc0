#!/bin/bash
# One shard of a sweep per Slurm array task; the report once all tasks are done.
#
#   job=$(sbatch --parsable --array=0-15 configs/slurm.sh configs/paper/mvtec_noise0.1.yaml runs/mvtec)
#   sbatch --dependency=afterok:$job --wrap "softpatch report runs/mvtec"
#
# Shard i of n runs every n-th cell of the plan; each shard appends to its own results file in
# the shared results folder, and a rerun of a task skips the cells it already finished.
#SBATCH --job-name=softpatch
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=12:00:00
set -euo pipefail
config=${1:?usage: sbatch --array=0-N configs/slurm.sh CONFIG OUT_DIR}
out=${2:?usage: sbatch --array=0-N configs/slurm.sh CONFIG OUT_DIR}
n=${SLURM_ARRAY_TASK_COUNT:?run it with sbatch --array}
i=$(( SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0} ))
exec softpatch run "$config" --out "$out" --shard "$i/$n" --set run.threads="${SLURM_CPUS_PER_TASK:-0}"
