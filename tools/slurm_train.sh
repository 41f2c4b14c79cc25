#!/usr/bin/env bash
# Training on a Slurm cluster through MMEngine's slurm launcher, as the stock script.
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py options]
# MMDetection's argument order: WORK_DIR is required (MMSegmentation's stock script has none).
# GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS, PYTHON: see slurm_run.sh.
set -euo pipefail
if [[ $# -lt 4 || "$4" == --* ]]; then
  echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py options] (WORK_DIR is required, before the options)" >&2
  exit 2
fi
exec "$(dirname "$0")/slurm_run.sh" "$1" "$2" train.py "$3" --work-dir="$4" --launcher=slurm "${@:5}"
