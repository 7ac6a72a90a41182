#!/usr/bin/env bash
# GPU checks of lpd-bench on an offline CUDA machine, in one call of at most ~8.5 minutes.
#
#     bash tests/perf/device_check.sh WHEEL_DIR OUT_DIR
#
# Run from the repository root. WHEEL_DIR holds, for the machine's python3 (3.12, x86-64):
# the wheels of every runtime dependency the machine lacks (mmengine, mmsegmentation, ftfy,
# prettytable, addict, yapf, platformdirs, termcolor, wcwidth), a setuptools>=77,<81 wheel (the
# mmcv build needs pkg_resources) and the mmcv 2.1.0 source distribution (mmcv-2.1.0.tar.gz: mmcv
# has no wheel for the machine's torch). Nothing is fetched: the machine has no network.
#
# Stages (each logged with a UTC time stamp and the seconds since the start; every stage's exit
# status is listed in a summary at the end of OUT_DIR/device_check.log, which gets all output):
#   env            machine, GPU, compilers, python/torch versions                   est.   5 s
#   install        wheels -> $SITE (pip --target, --no-deps, offline)             est.  10 s
#   mmcv_build     mmcv 2.1.0 with CPU ops only (GPU hidden, MAX_JOBS=nproc);      est. 100-180 s
#                  77 C++ files, ~26 core-minutes on the dev machine (13 min on 2 cores);
#                  bounded by T_MMCV_BUILD (300 s: a build that ran out at 420 s would leave
#                  ~20 s for (a)). Our models use no mmcv op.
#   mmcv_fallback  only if the build fails or times out: mmcv without compiled ops, plus a
#                  clearly named shim for mmcv.ops (the names mmseg/mmengine import; each raises
#                  NotImplementedError when used). Logged as "FALLBACK".               est.  20 s
#   import_check   mmengine/mmcv/mmseg/lpd_bench imports, mmseg.models, versions     est.  15 s
#   cuda_probe     torch.cuda available, device, a bf16 matmul                         est.   5 s
#   (a) check_cuda_fp16  tools/check_cuda.py --iters 5 (configs/lpd_bcss.py, AMP fp16) est.  30 s
#   (a) check_cuda_bf16  tools/check_cuda.py --dtype bfloat16 --iters 3                 est.  25 s
#   (b) cuda_bench       tools/benchmark.py --preset paper --device cuda --batch 10    est.  60-90 s
#                        (all 9 paper cases built at once; 1 warm-up + 3 rounds + 2 memory calls
#                        each) -> OUT_DIR/perf_cuda/perf.{md,csv}. On failure it is retried with
#                        the 3 core cases only (cuda_bench_core).
#   (c) cpu_b10          tools/benchmark.py --preset paper --device cpu --batch 10, cases
#                        backbone lpd_step_after lpd_step_after_straightforward, 1 round, no
#                        warm-up, OMP_NUM_THREADS=nproc -> OUT_DIR/perf_cpu_b10/perf.{md,csv}; the
#                        straightforward step needs >24 GiB at batch 10 (not measurable on the dev
#                        machine). 2 cores: backbone ~2-3 s, LPD step ~34 s, straightforward ~87 s;
#                        16 cores, say 3-4x faster, plus ~20 s of imports/builds.  est.  50-90 s
#                        --no-memory: its CPU probes would run each case twice more in fresh
#                        subprocesses (doubling the stage) and the 12 GiB probe cap would mark the
#                        straightforward case "over the cap, not timed"; instead the wrapper prints
#                        the benchmark process's peak RSS (an upper bound of the largest case's).
#   (d) cuda_solo_mem    lpd_step_after alone on CUDA (batch 10): its peak CUDA memory without
#                        the weights and optimizer states of the 8 other cases that cuda_bench keeps
#                        resident (cuda_bench's peaks include them). Log only, no files. est.  25 s
# Expected total ~5-7 minutes. Stages get min(own timeout, time left before TOTAL_BUDGET_S minus
# RESERVE_S); a stage with less than MIN_STAGE_S left is skipped, so the summary is always written.
# The order puts the GPU-readiness checks first, then the GPU benchmark, then the long and least
# predictable CPU stage (CPU_B10_FIRST=1 runs (c) before (b)).
#
# OUT_DIR gets at most 5 files, at most 2 folder levels down:
#   device_check.log, perf_cuda/perf.md, perf_cuda/perf.csv, perf_cpu_b10/perf.md, perf_cpu_b10/perf.csv
# Note: perf.csv rows are keyed by (preset, case, batch, input) without the device: do not merge
# perf_cuda/perf.csv into reports/perf.csv.
#
# Settings (environment variables, defaults below): PYTHON, SITE, TOTAL_BUDGET_S, RESERVE_S,
# MIN_STAGE_S, T_* (per-stage timeouts), MMCV_MODE (build: compile CPU ops, fall back to the shim
# on failure; shim: skip the build), BUILD_JOBS, CPU_THREADS, BATCH, CUDA_REPEATS, CPU_WARMUP,
# CPU_B10_FIRST, SKIP_STAGES (space-separated stage names to skip, e.g. "cpu_b10 cuda_solo_mem").
set -u
set -o pipefail

# ---------------------------------------------------------------- settings
TOTAL_BUDGET_S=${TOTAL_BUDGET_S:-510}   # the whole script, the mmcv build included (8.5 min)
RESERVE_S=${RESERVE_S:-15}              # kept for the summary (timeout's kill grace is 10 s)
MIN_STAGE_S=${MIN_STAGE_S:-20}          # a stage with less time than this left is skipped
T_INSTALL=${T_INSTALL:-120}
T_MMCV_BUILD=${T_MMCV_BUILD:-300}      # 420 would leave ~20 s for (a) if it ran out
T_MMCV_INSTALL=${T_MMCV_INSTALL:-60}
T_MMCV_FALLBACK=${T_MMCV_FALLBACK:-120}
T_IMPORT=${T_IMPORT:-120}
T_CUDA_PROBE=${T_CUDA_PROBE:-60}
T_CHECK_FP16=${T_CHECK_FP16:-150}
T_CHECK_BF16=${T_CHECK_BF16:-120}
T_CUDA_BENCH=${T_CUDA_BENCH:-240}
T_CPU_B10=${T_CPU_B10:-300}
T_CUDA_SOLO=${T_CUDA_SOLO:-90}
MMCV_MODE=${MMCV_MODE:-build}           # build | shim
PY=${PYTHON:-python3}
SITE=${SITE:-/tmp/lpd_site}             # pip --target for the wheels and mmcv
NPROC=$(nproc 2>/dev/null || echo 4)
BUILD_JOBS=${BUILD_JOBS:-$NPROC}
CPU_THREADS=${CPU_THREADS:-$NPROC}
BATCH=${BATCH:-10}
CUDA_REPEATS=${CUDA_REPEATS:-3}
CPU_WARMUP=${CPU_WARMUP:-0}             # (c): 1 adds one untimed call per case (~+40 s)
CPU_B10_FIRST=${CPU_B10_FIRST:-0}
SKIP_STAGES=${SKIP_STAGES:-}

if [ $# -ne 2 ]; then
  echo "usage: bash tests/perf/device_check.sh WHEEL_DIR OUT_DIR   (from the repository root)" >&2
  exit 2
fi
if [ ! -f tools/check_cuda.py ] || [ ! -d lpd_bench ]; then
  echo "run from the repository root (tools/check_cuda.py not found in $PWD)" >&2
  exit 2
fi
WHEEL_DIR=$(cd "$1" 2>/dev/null && pwd) || { echo "no wheel folder $1" >&2; exit 2; }
mkdir -p "$2" || exit 2
OUT_DIR=$(cd "$2" && pwd)
LOG="$OUT_DIR/device_check.log"
MMCV_SDIST="$WHEEL_DIR/mmcv-2.1.0.tar.gz"
MMCV_BUILD_LOG=/tmp/lpd_mmcv_build.log
MMCV_WHEEL_OUT=/tmp/lpd_mmcv_wheel
SHIM_MARKER=LPD_BENCH_MMCV_OPS_SHIM

T0=$(date +%s)
DEADLINE=$((T0 + TOTAL_BUDGET_S))
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_ROOT_USER_ACTION=ignore PIP_NO_INPUT=1
# ninja (torch's C++ build uses it) sits next to the venv's python3.
PATH="$(dirname "$(command -v "$PY" || echo /usr/bin/python3)"):$PATH"
export PATH

log() { printf '[device_check %s +%3ds] %s\n' "$(date -u +%H:%M:%S)" "$(( $(date +%s) - T0 ))" "$*"; }
banner() { echo; log "==================== $* ===================="; }

SUMMARY=()
FAILED=0
# run_stage NAME TIMEOUT CMD...: runs CMD under timeout (clipped to the time left), logs and
# records its status; STAGE_OUTPUT=FILE before the call sends CMD's output to FILE instead.
run_stage() {
  local name=$1 t=$2 left start rc dur status
  shift 2
  if [[ " $SKIP_STAGES " == *" $name "* ]]; then
    log "SKIP $name (SKIP_STAGES)"; SUMMARY+=("$(printf '%-18s %-24s' "$name" 'skipped (SKIP_STAGES)')")
    return 125
  fi
  left=$(( DEADLINE - $(date +%s) - RESERVE_S ))
  if (( left < MIN_STAGE_S )); then
    log "SKIP $name: only ${left}s left of the ${TOTAL_BUDGET_S}s budget"
    SUMMARY+=("$(printf '%-18s %-24s' "$name" "skipped (${left}s left)")")
    return 125
  fi
  (( t > left )) && { log "$name: timeout clipped from ${t}s to ${left}s (budget)"; t=$left; }
  banner "START $name (timeout ${t}s)"
  local arg cmd=''
  for arg in "$@"; do [[ $arg == *$'\n'* ]] && arg='<inline python>'; cmd+=" $arg"; done
  (( ${#cmd} > 400 )) && cmd="${cmd:0:400} ..."
  log "\$$cmd"
  start=$(date +%s)
  if [[ -n ${STAGE_OUTPUT:-} ]]; then
    log "(output -> $STAGE_OUTPUT)"
    timeout --kill-after=10 "$t" "$@" >"$STAGE_OUTPUT" 2>&1
  else
    timeout --kill-after=10 "$t" "$@"
  fi
  rc=$?
  dur=$(( $(date +%s) - start ))
  case $rc in
    0) status=ok ;;
    124|137) status="TIMEOUT after ${t}s" ;;
    *) status="FAILED (exit $rc)" ;;
  esac
  [[ $rc -ne 0 ]] && FAILED=1
  log "END $name: $status, ${dur}s"
  SUMMARY+=("$(printf '%-18s %-24s %4ss' "$name" "$status" "$dur")")
  return $rc
}

skip_stage() {  # NAME WHY
  log "SKIP $1: $2"
  SUMMARY+=("$(printf '%-18s %-24s' "$1" "skipped ($2)")")
}

# The fallback mmcv: pure-python mmcv 2.1.0 (MMCV_WITH_OPS=0, distribution "mmcv-lite"), else
# the package folder copied from the sdist, then the shim over mmcv/ops/__init__.py.
# shellcheck disable=SC2317  # run through `bash -c mmcv_fallback` (exported)
mmcv_fallback() {
  set -u
  rm -rf "$SITE"/mmcv "$SITE"/mmcv-*.dist-info "$SITE"/mmcv_lite-*.dist-info /tmp/lpd_mmcv_lite
  if MMCV_WITH_OPS=0 CUDA_VISIBLE_DEVICES='' "$PY" -m pip wheel -q --no-build-isolation --no-deps \
       --no-index -w /tmp/lpd_mmcv_lite "$MMCV_SDIST" \
     && "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" \
       /tmp/lpd_mmcv_lite/mmcv*.whl; then
    echo "fallback: installed mmcv-lite 2.1.0 (no compiled ops)"
  else
    echo "fallback: mmcv-lite wheel failed; copying the mmcv package folder from the sdist"
    rm -rf /tmp/lpd_mmcv_src && mkdir -p /tmp/lpd_mmcv_src \
      && tar -xzf "$MMCV_SDIST" -C /tmp/lpd_mmcv_src \
      && cp -r /tmp/lpd_mmcv_src/mmcv-2.1.0/mmcv "$SITE"/ \
      && rm -rf "$SITE"/mmcv/ops/csrc || return 1
  fi
  cat >"$SITE"/mmcv/ops/__init__.py <<'PYEOF'
"""LPD-BENCH FALLBACK SHIM, NOT mmcv.ops: written by tests/perf/device_check.sh because mmcv 2.1.0
could not be built with its compiled ops on this machine. It defines only the names that mmseg
1.2.2, mmengine 0.10.7 and mmcv import from mmcv.ops at module level or for isinstance checks;
calling or instantiating any of them raises NotImplementedError. lpd-bench's models use no mmcv op.
"""
import warnings

import torch

LPD_BENCH_MMCV_OPS_SHIM = True
warnings.warn('mmcv.ops is the lpd-bench FALLBACK SHIM (mmcv without compiled ops)')


def _missing(name):
    def op(*args, **kwargs):
        raise NotImplementedError(f'mmcv.ops.{name}: lpd-bench fallback shim, mmcv was installed '
                                  'without compiled ops (tests/perf/device_check.sh)')
    op.__name__ = op.__qualname__ = name
    return op


class _MissingOp(torch.nn.Module):
    def __init__(self, *args, **kwargs):
        raise NotImplementedError(f'mmcv.ops.{type(self).__name__}: lpd-bench fallback shim, mmcv '
                                  'was installed without compiled ops (tests/perf/device_check.sh)')


point_sample = _missing('point_sample')
sigmoid_focal_loss = _missing('sigmoid_focal_loss')
CrissCrossAttention = type('CrissCrossAttention', (_MissingOp, ), {})
PSAMask = type('PSAMask', (_MissingOp, ), {})
DeformConv2d = type('DeformConv2d', (_MissingOp, ), {})
ModulatedDeformConv2d = type('ModulatedDeformConv2d', (_MissingOp, ), {})
SyncBatchNorm = type('SyncBatchNorm', (_MissingOp, ), {})


def get_compiler_version():
    return 'n/a (lpd-bench mmcv.ops shim)'


def get_compiling_cuda_version():
    return 'n/a (lpd-bench mmcv.ops shim)'
PYEOF
  touch "$SITE/mmcv/ops/$SHIM_MARKER"
  echo "fallback: wrote the mmcv.ops shim $SITE/mmcv/ops/__init__.py"
}
export -f mmcv_fallback
export PY SITE MMCV_SDIST SHIM_MARKER

read -r -d '' IMPORT_CHECK_PY <<'PYEOF'
import importlib.metadata as md
import sys
import warnings

import torch
import mmengine
import mmcv
import mmseg
print('python', sys.version.split()[0], sys.executable)
for name in ('torch', 'torchvision', 'numpy', 'scipy', 'opencv-python-headless', 'mmengine', 'mmcv',
             'mmcv-lite', 'mmsegmentation', 'setuptools', 'ftfy', 'prettytable', 'regex', 'yapf'):
    try:
        print(f'  {name} {md.version(name)}')
    except md.PackageNotFoundError:
        pass
print('modules: torch', torch.__version__, '| mmengine', mmengine.__version__, '| mmcv',
      mmcv.__version__, mmcv.__file__, '| mmseg', mmseg.__version__)
import mmcv.ops
if getattr(mmcv.ops, 'LPD_BENCH_MMCV_OPS_SHIM', False):
    print('mmcv.ops: FALLBACK SHIM (no compiled ops)')
else:
    from mmcv.ops import get_compiler_version, get_compiling_cuda_version, nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
    keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)[1]
    print('mmcv.ops: compiled,', get_compiler_version(), '| CUDA ops:', get_compiling_cuda_version(),
          '| CPU nms keeps', keep.tolist())
from mmseg.models import *  # noqa: F401,F403  (every mmseg model module, as configs import them)
import lpd_bench, baselines  # noqa: E401  (registers the project's modules)
import lpd_bench.cli, lpd_bench.bench.harness  # noqa: E401
from mmseg.registry import MODELS
missing = [name for name in ('WeaklySupervisedSegmentor', 'PrototypeHead', 'MaskRefinerLoss',
                             'FrozenImageEncoder') if MODELS.get(name) is None]
print('import check OK: mmseg.models, lpd_bench, baselines' +
      (f'; NOT REGISTERED: {missing}' if missing else '; project models registered'))
PYEOF

read -r -d '' CUDA_PROBE_PY <<'PYEOF'
import sys
import time
import torch
print('torch', torch.__version__, '| CUDA', torch.version.cuda, '| cuDNN', torch.backends.cudnn.version())
if not torch.cuda.is_available():
    print('CUDA NOT AVAILABLE')
    sys.exit(1)
p = torch.cuda.get_device_properties(0)
print(f'{torch.cuda.device_count()} device(s); 0: {p.name}, {p.total_memory / 2**30:.1f} GiB, '
      f'sm_{p.major}{p.minor}, {p.multi_processor_count} SMs; bf16 supported: {torch.cuda.is_bf16_supported()}')
print('TF32: matmul', torch.backends.cuda.matmul.allow_tf32, '| cudnn', torch.backends.cudnn.allow_tf32)
a = torch.randn(4096, 4096, device='cuda', dtype=torch.bfloat16)
(a @ a).sum().item()
torch.cuda.synchronize()
t = time.perf_counter()
for _ in range(10):
    a @ a
torch.cuda.synchronize()
print(f'bf16 4096^3 matmul: {10 * 2 * 4096**3 / (time.perf_counter() - t) / 1e12:.0f} TFLOP/s')
PYEOF

# The CPU benchmark runs in a child so that its peak RSS (ru_maxrss of children) can be printed.
read -r -d '' MAXRSS_WRAPPER_PY <<'PYEOF'
import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:])
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f'[device_check] peak RSS of the benchmark process (ru_maxrss): {peak:.0f} MiB ({peak / 1024:.1f} GiB)')
sys.exit(rc)
PYEOF

stage_cuda_bench() {
  local out="$OUT_DIR/perf_cuda" rc
  run_stage cuda_bench "$T_CUDA_BENCH" "$PY" tools/benchmark.py --preset paper --device cuda \
    --batch "$BATCH" --repeats "$CUDA_REPEATS" --warmup 1 --out "$out"
  rc=$?
  if [[ $rc -ne 0 && $rc -ne 124 && $rc -ne 137 && $rc -ne 125 ]]; then
    log "cuda_bench failed: retrying with the three core cases only"
    run_stage cuda_bench_core "$T_CUDA_BENCH" "$PY" tools/benchmark.py --preset paper --device cuda \
      --batch "$BATCH" --repeats "$CUDA_REPEATS" --warmup 1 \
      --cases backbone lpd_step_after lpd_step_after_straightforward --out "$out"
  fi
}

stage_cpu_b10() {
  run_stage cpu_b10 "$T_CPU_B10" env OMP_NUM_THREADS="$CPU_THREADS" MKL_NUM_THREADS="$CPU_THREADS" \
    CUDA_VISIBLE_DEVICES='' "$PY" -c "$MAXRSS_WRAPPER_PY" \
    "$PY" tools/benchmark.py --preset paper --device cpu --batch "$BATCH" --repeats 1 --warmup "$CPU_WARMUP" \
    --no-memory --cases backbone lpd_step_after lpd_step_after_straightforward \
    --out "$OUT_DIR/perf_cpu_b10"
}

main() {
  banner "lpd-bench device check: wheels $WHEEL_DIR, out $OUT_DIR, budget ${TOTAL_BUDGET_S}s"
  log "settings: MMCV_MODE=$MMCV_MODE SITE=$SITE BUILD_JOBS=$BUILD_JOBS CPU_THREADS=$CPU_THREADS" \
      "BATCH=$BATCH CUDA_REPEATS=$CUDA_REPEATS CPU_WARMUP=$CPU_WARMUP CPU_B10_FIRST=$CPU_B10_FIRST SKIP_STAGES='$SKIP_STAGES'"

  # ------------------------------------------------------------ env
  banner "env"
  uname -a
  echo "nproc: $NPROC"
  grep -m1 'model name' /proc/cpuinfo
  free -g | head -2
  df -h /tmp | tail -1
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm \
    --format=csv 2>&1 | head -3
  echo "python3: $(command -v "$PY") -> $("$PY" --version 2>&1)"
  echo "c++: $(command -v c++ || echo MISSING) $(c++ --version 2>/dev/null | head -1)"
  echo "ninja: $(command -v ninja || echo MISSING) $(ninja --version 2>/dev/null)"
  echo "nvcc: $(command -v nvcc || echo none) | CUDA_HOME=${CUDA_HOME:-unset}"
  "$PY" -m pip --version
  "$PY" -c 'import setuptools; print("device setuptools", setuptools.__version__)' 2>&1 | tail -1
  git rev-parse --short HEAD 2>/dev/null || echo "(no git checkout)"
  ls -l "$WHEEL_DIR"

  # ------------------------------------------------------------ install
  local wheels=("$WHEEL_DIR"/*.whl)
  if [[ ! -e ${wheels[0]} ]]; then
    log "no wheels in $WHEEL_DIR"; SUMMARY+=("install            FAILED (no wheels)"); FAILED=1
  else
    mkdir -p "$SITE"
    run_stage install "$T_INSTALL" "$PY" -m pip install -q --no-index --no-deps --no-compile \
      --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}"
  fi
  export PYTHONPATH="$SITE:$PWD"
  log "PYTHONPATH=$PYTHONPATH"
  "$PY" -c 'import setuptools, pkg_resources; print("setuptools now", setuptools.__version__, setuptools.__file__)' \
    2>&1 | grep -v Warning | tail -1

  # ------------------------------------------------------------ mmcv
  local mmcv_ok=0
  if [[ -e "$SITE/mmcv/ops/$SHIM_MARKER" ]]; then
    log "an earlier run left the mmcv.ops shim in $SITE: building again"
    rm -rf "$SITE"/mmcv "$SITE"/mmcv-*.dist-info "$SITE"/mmcv_lite-*.dist-info
  fi
  if compgen -G "$SITE/mmcv/_ext*.so" >/dev/null && "$PY" -c 'import mmcv.ops' >/dev/null 2>&1; then
    log "mmcv with compiled ops already in $SITE (an earlier run on this machine): build skipped"
    SUMMARY+=("$(printf '%-18s %-24s' mmcv_build 'reused')")
    mmcv_ok=1
  elif [[ $MMCV_MODE == build ]]; then
    if [[ ! -f $MMCV_SDIST ]]; then
      log "missing $MMCV_SDIST"; SUMMARY+=("mmcv_build         FAILED (no sdist)"); FAILED=1
    else
      rm -rf "$MMCV_WHEEL_OUT"
      # CPU ops only: setup.py compiles the CUDA ops when torch.cuda.is_available() or FORCE_CUDA=1.
      STAGE_OUTPUT=$MMCV_BUILD_LOG run_stage mmcv_build "$T_MMCV_BUILD" \
        env CUDA_VISIBLE_DEVICES='' FORCE_CUDA=0 MMCV_WITH_OPS=1 MAX_JOBS="$BUILD_JOBS" \
        "$PY" -m pip wheel -v --no-build-isolation --no-deps --no-index --no-cache-dir \
        -w "$MMCV_WHEEL_OUT" "$MMCV_SDIST"
      local rc=$?
      grep -E '^\s*\[[0-9]+/[0-9]+\]' "$MMCV_BUILD_LOG" | tail -1 | cut -c1-160  # ninja's last step
      if [[ $rc -eq 0 ]]; then
        grep -iE 'Compiling .* only with CPU|Created wheel' "$MMCV_BUILD_LOG" | cut -c1-200
        run_stage mmcv_install "$T_MMCV_INSTALL" "$PY" -m pip install -q --no-index --no-deps \
          --no-compile --upgrade --target "$SITE" "$MMCV_WHEEL_OUT"/mmcv-2.1.0-*.whl && mmcv_ok=1
      else
        log "mmcv build log ($MMCV_BUILD_LOG): error lines, then its last 50 lines less file copies"
        grep -n -m 20 -E 'error|Error' "$MMCV_BUILD_LOG" | cut -c1-300
        grep -v -E '^\s*(copying|creating) ' "$MMCV_BUILD_LOG" | tail -n 50 | cut -c1-300
      fi
    fi
  else
    log "MMCV_MODE=$MMCV_MODE: mmcv ops build skipped"
  fi
  local mmcv_state='mmcv 2.1.0 with compiled CPU ops'
  if [[ $mmcv_ok -ne 1 ]]; then
    log "!!!!!!!! FALLBACK: mmcv without compiled ops (mmcv.ops is a shim) !!!!!!!!"
    mmcv_state='FALLBACK: mmcv 2.1.0 without compiled ops, mmcv.ops = lpd-bench shim'
    run_stage mmcv_fallback "$T_MMCV_FALLBACK" bash -c mmcv_fallback
  fi

  # ------------------------------------------------------------ imports and CUDA
  local imports_ok=0 cuda_ok=0
  run_stage import_check "$T_IMPORT" "$PY" -W ignore::DeprecationWarning -c "$IMPORT_CHECK_PY" && imports_ok=1
  run_stage cuda_probe "$T_CUDA_PROBE" "$PY" -c "$CUDA_PROBE_PY" && cuda_ok=1

  if [[ $imports_ok -ne 1 ]]; then
    for s in check_cuda_fp16 check_cuda_bf16 cuda_bench cpu_b10 cuda_solo_mem; do
      skip_stage "$s" "import check not ok"
    done
  else
    if [[ $cuda_ok -eq 1 ]]; then
      # (a) GPU readiness: AMP training steps of the paper model after the loss warm-up.
      run_stage check_cuda_fp16 "$T_CHECK_FP16" "$PY" tools/check_cuda.py --iters 5
      run_stage check_cuda_bf16 "$T_CHECK_BF16" "$PY" tools/check_cuda.py --dtype bfloat16 --iters 3
    else
      skip_stage check_cuda_fp16 "no CUDA"; skip_stage check_cuda_bf16 "no CUDA"
    fi
    if [[ $CPU_B10_FIRST == 1 ]]; then stage_cpu_b10; fi
    # (b) the paper preset's cases on the GPU.
    if [[ $cuda_ok -eq 1 ]]; then stage_cuda_bench; else skip_stage cuda_bench "no CUDA"; fi
    # (c) batch 10 on CPU: LPD step vs the straightforward implementation (>24 GiB).
    if [[ $CPU_B10_FIRST != 1 ]]; then stage_cpu_b10; fi
    # (d) clean peak CUDA memory of the LPD step (only its own model resident); log only.
    if [[ $cuda_ok -eq 1 ]]; then
      rm -rf /tmp/lpd_perf_cuda_solo
      run_stage cuda_solo_mem "$T_CUDA_SOLO" "$PY" tools/benchmark.py --preset paper --device cuda \
        --batch "$BATCH" --repeats 1 --warmup 1 --cases lpd_step_after \
        --out /tmp/lpd_perf_cuda_solo
    else
      skip_stage cuda_solo_mem "no CUDA"
    fi
  fi

  # ------------------------------------------------------------ summary
  banner "summary"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=memory.used,temperature.gpu --format=csv,noheader
  find "$OUT_DIR" -type f -printf '%P %s bytes\n' | sort
  log "mmcv: $mmcv_state"
  log "stage              status                   time"
  local line
  for line in "${SUMMARY[@]}"; do log "  $line"; done
  log "total $(( $(date +%s) - T0 ))s of the ${TOTAL_BUDGET_S}s budget; $([[ $FAILED -eq 0 ]] && echo 'no stage failed' || echo 'SOME STAGE FAILED OR TIMED OUT')"
  return $FAILED
}

main 2>&1 | tee -a "$LOG"
exit "${PIPESTATUS[0]}"
