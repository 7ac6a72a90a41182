#!/usr/bin/env bash
# Distributed testing with torchrun (CPU: gloo, CUDA: nccl; chosen by the config).
#   bash tools/dist_test.sh CONFIG CHECKPOINT NPROC [tools/test.py options...]
# Environment: NNODES, NODE_RANK, MASTER_ADDR, PORT, PYTHON (default: python).
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG CHECKPOINT NPROC [test.py options...]" >&2
  exit 2
fi
exec bash "$(dirname "$0")/dist_launch.sh" test.py "$3" "$1" "$2" --launcher pytorch "${@:4}"
