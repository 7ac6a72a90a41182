#!/usr/bin/env bash
# Distributed training with torchrun (CPU: gloo, CUDA: nccl; chosen by the config).
#   bash tools/dist_train.sh CONFIG NPROC [tools/train.py options...]
# Environment: NNODES, NODE_RANK, MASTER_ADDR, PORT, PYTHON (default: python).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG NPROC [train.py options...]" >&2
  exit 2
fi
exec bash "$(dirname "$0")/dist_launch.sh" train.py "$2" "$1" --launcher pytorch "${@:3}"
