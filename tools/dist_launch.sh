#!/usr/bin/env bash
# torchrun launcher shared by dist_train.sh and dist_test.sh (CPU: gloo, CUDA: nccl; chosen by
# the config).
#   bash tools/dist_launch.sh SCRIPT NPROC [SCRIPT arguments...]
# Environment: NNODES, NODE_RANK, MASTER_ADDR, PORT, PYTHON (default: python).
set -euo pipefail
SCRIPT=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}

"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" \
    --master_port="$PORT" \
    "$(dirname "$0")/$SCRIPT" \
    "${@:3}"
