#!/usr/bin/env bash
# Run a tool of this folder in NUM_PROCESSES processes through torchrun (MMEngine's pytorch
# launcher), as the stock dist_train.sh / dist_test.sh do; they call this script:
#   tools/dist_run.sh TOOL NUM_PROCESSES [TOOL arguments]      (TOOL: train.py or test.py)
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT as in MMSegmentation / MMDetection.
# Without a GPU the processes run on the CPU with the gloo backend.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 TOOL NUM_PROCESSES [TOOL arguments]" >&2
  exit 2
fi
TOOL=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}
DIR=$(cd "$(dirname "$0")" && pwd)

PYTHONPATH="$DIR/..${PYTHONPATH:+:$PYTHONPATH}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" --master_port="$PORT" \
    "$DIR/$TOOL" "${@:3}"
