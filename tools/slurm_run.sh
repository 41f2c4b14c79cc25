#!/usr/bin/env bash
# One of this repository's tools on a Slurm cluster, one task per GPU (slurm_train.sh and
# slurm_test.sh call it with the stock scripts' arguments).
#   tools/slurm_run.sh PARTITION JOB_NAME TOOL [tool arguments]      e.g. TOOL=train.py
# GPUS (default 8) tasks, GPUS_PER_NODE (default: GPUS, at most 8) per node, CPUS_PER_TASK
# (default 5); SRUN_ARGS are passed to srun; PYTHON (default python) runs the tool.
set -euo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: $0 PARTITION JOB_NAME TOOL [tool arguments]" >&2
  exit 2
fi
PARTITION=$1
JOB_NAME=$2
TOOL=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-$((GPUS < 8 ? GPUS : 8))}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PYTHON=${PYTHON:-python}
DIR=$(cd "$(dirname "$0")" && pwd)

# SRUN_ARGS is split into words on purpose (several srun options)
# shellcheck disable=SC2086
PYTHONPATH="$DIR/..${PYTHONPATH:+:$PYTHONPATH}" \
exec srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    "$PYTHON" -u "$DIR/$TOOL" "${@:4}"
