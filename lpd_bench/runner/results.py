"""Files of a run directory: the atomic result (ARCHITECTURE.md "Run result contract"), the
failure record, stage markers and the status shown by ``lpd-bench list``."""
import datetime
import json
from pathlib import Path

from ..engine.atomic_json import write_json_atomic  # noqa: F401  (the runner's writer too)
from ..engine.checkpoint_files import (checkpoint_number,  # noqa: F401  (the runner's too)
                                      find_resume_checkpoint)

RESULT_FILE = 'result.json'
FAILED_FILE = 'failed.json'
#: In the work dir: wall time of the last plan execution (:func:`write_plan_wall`).
PLAN_WALL_FILE = 'plan_wall.json'
SCHEMA = 1
#: Best-on-val checkpoints of a run dir (DelayedBestCheckpointHook/CheckpointHook names).
BEST_CHECKPOINT_GLOB = 'best_*.pth'
#: Checkpoint choices a result holds metrics of (``metrics_by_checkpoint``, ``checkpoints``);
#: ``metrics`` is the one of ``protocol.checkpoint`` ('last').
CHECKPOINT_CHOICES = ('last', 'best')
#: Keys a result must have to count as complete.
REQUIRED_KEYS = ('schema', 'run_id', 'method', 'seed', 'config', 'cfg_options', 'metrics', 'cost',
                 'env')


def write_plan_wall(work_dir, plan, outcome, wall_s, jobs, threads, shared_weights_s=0.0,
                    **extra) -> None:
    """``<work_dir>/plan_wall.json``: wall time of a plan execution (what the runs' own times
    cannot tell once runs overlap), read by ``lpd-bench bench`` and the report; ``outcome``:
    {run_id: status}; ``jobs``, ``threads``: runs at a time and threads (cores) each; ``extra``
    keys (e.g. the executor) go before ``finished_at``."""
    statuses = list(outcome.values())
    write_json_atomic(Path(work_dir) / PLAN_WALL_FILE, {
        'wall_s': round(wall_s, 1), 'runs': len(plan), 'executed': statuses.count('done'),
        'skipped': statuses.count('skipped'), 'failed': statuses.count('failed'),
        'jobs': jobs, 'threads': threads, 'seeds': sorted({spec.seed for spec in plan}),
        'shared_weights_s': round(shared_weights_s, 1), **extra,
        'finished_at': datetime.datetime.now().isoformat(timespec='seconds')})


def read_json(path):
    """Parsed JSON of ``path``, or None when it is missing or not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def load_result(run_dir):
    """The complete result of a run, or None (missing, truncated, wrong schema, keys missing)."""
    result = read_json(Path(run_dir) / RESULT_FILE)
    if not isinstance(result, dict) or result.get('schema') != SCHEMA:
        return None
    if any(key not in result for key in REQUIRED_KEYS):
        return None
    if not isinstance(result['metrics'], dict) or 'results' not in result['metrics']:
        return None
    return result


def valid_metrics(metrics) -> bool:
    """A metric JSON of WSSSMetric (a dict with ``results``)."""
    return isinstance(metrics, dict) and 'results' in metrics


def checkpoint_metrics(result, choice='last'):
    """The metric JSON of ``result`` for the checkpoint ``choice`` ('last' or 'best'), None when
    that checkpoint was not tested (no best saved, or a result written before both were tested:
    its ``metrics`` are the last checkpoint's)."""
    if choice not in CHECKPOINT_CHOICES:
        raise ValueError(f'checkpoint choice must be one of {CHECKPOINT_CHOICES}, got {choice!r}')
    by_checkpoint = result.get('metrics_by_checkpoint')
    if isinstance(by_checkpoint, dict) and choice in by_checkpoint:
        return by_checkpoint[choice]
    return result['metrics'] if choice == 'last' else None


def stage_marker(run_dir, stage) -> Path:
    return Path(run_dir) / f'stage_{stage}.json'


def stage_record(run_dir, stage):
    """What a finished stage recorded (its cost, checkpoint...), or None if it did not finish."""
    return read_json(stage_marker(run_dir, stage))


def last_checkpoint(run_dir):
    """Newest good checkpoint of ``run_dir`` (MMEngine's ``last_checkpoint`` pointer), or None.

    The checkpoint ``--resume`` resumes from (``lpd_bench.engine.checkpoint_files.
    find_resume_checkpoint``, the one place that decides it): the pointer's file unless it is
    missing or fails the quick check (truncated: no zip central directory, empty...), or the
    pointer is empty (MMEngine's in-place rewrite, killed) or absent; then the newest good
    ``iter_*.pth``/``epoch_*.pth`` (not newer than a bad file the pointer names), and the pointer
    is repaired to name it. None when no checkpoint is good.
    """
    return find_resume_checkpoint(run_dir).checkpoint


def best_checkpoint(run_dir):
    """The best-on-val checkpoint training saved in ``run_dir`` (MMEngine names it
    ``best_<metric>_iter_<n>.pth``, e.g. ``best_mIoU_iter_150.pth``), or None when it saved none.

    MMEngine deletes the previous best before saving a new one, so there is at most one per
    metric; should several be found, the highest-numbered is taken.
    """
    saved = sorted(Path(run_dir).glob(BEST_CHECKPOINT_GLOB), key=checkpoint_number)
    return saved[-1] if saved else None


def run_status(run_dir) -> str:
    """done (valid result) / failed (last attempt failed) / partial (has a checkpoint) / todo."""
    if load_result(run_dir) is not None:
        return 'done'
    if (Path(run_dir) / FAILED_FILE).is_file():
        return 'failed'
    if last_checkpoint(run_dir) is not None or stage_record(run_dir, 'train') is not None:
        return 'partial'
    return 'todo'


def iter_results(work_dir):
    """Complete results under ``work_dir/runs``, sorted by run id."""
    runs = Path(work_dir) / 'runs'
    if not runs.is_dir():
        return []
    return [r for r in (load_result(d) for d in sorted(runs.iterdir()) if d.is_dir()) if r]
