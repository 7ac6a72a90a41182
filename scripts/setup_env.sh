#!/usr/bin/env bash
# Create (if missing) the project's virtual environment and install everything into it.
# Idempotent: a second run with an unchanged pyproject.toml returns in well under a second.
# The first run builds mmcv 2.1.0 from source (about 13 minutes on 2 cores); pip caches the
# built wheel (~/.cache/pip), so later environments reuse it in seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LPD_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment in $VENV"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

stamp="$VENV/.lpd-bench-setup-$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/setup_env.sh" | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi

start=$(date +%s)
echo "[setup] installing build prerequisites (torch 2.13.0 CPU wheel from local disk, ninja, setuptools)"
# Pinned torch: an unpinned request would download a multi-GB CUDA build.
"${PIP[@]}" install -q "torch==2.13.0" ninja "setuptools>=77,<81" wheel numpy
if ! "$VENV/bin/python" -c "import mmcv.ops" >/dev/null 2>&1; then
  echo "[setup] installing full mmcv 2.1.0 with CPU ops (first build ~13 min on 2 cores, then cached by pip)"
  MMCV_WITH_OPS=1 "${PIP[@]}" install -q --no-build-isolation "mmcv==2.1.0"
fi
echo "[setup] installing lpd-bench, its dependencies and its test extra (pytest, transformers)"
"${PIP[@]}" install -q -e "$ROOT[test]"
rm -f "$VENV"/.lpd-bench-setup-*
touch "$stamp"
echo "[setup] done in $(( $(date +%s) - start )) s"
