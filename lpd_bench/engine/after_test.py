"""Work done in the test process on the model it has just tested (``tools/test.py --after-test``).

The runner's post-stages (e.g. the prototype-specialisation measure) and the report's snapshots
need the tested model again. Run as their own processes, each pays a process start, the imports,
a model build and a checkpoint load, on the CPU preset more than the work itself
(reports/calibration_v3.md, part 3). When the runner is about to test a run anyway, it writes
the pending ones to a task file and passes it to ``tools/test.py --after-test FILE``; after the
test loop, :func:`run_task_file` calls each task's function on the runner's model, in this
process.

A task file is JSON: ``{"tasks": [{"name", "function": "module:attr", "out", "args": [...]}]}``.
The function is called as ``function(model, cfg, out, args)`` (``model`` in eval mode with the
tested weights, ``cfg`` the test config, ``args`` its extra command-line arguments) and writes
``out`` as its standalone command would. The outcome of every task is written to
``<task file>.done.json``: ``[{"name", "out", "wall_s", "ok", "error"}]``. A failing task is
recorded (with its traceback) and the others still run; the test itself (its metric JSON) is
never failed by a task, so that the runner can fall back to running the task as its own stage.
"""
import importlib
import json
import time
import traceback
from pathlib import Path
from typing import Iterable, List, Mapping

from .atomic_json import write_json_atomic

DONE_SUFFIX = '.done.json'


def done_file(task_file) -> Path:
    """Where :func:`run_task_file` records the tasks' outcomes."""
    return Path(f'{task_file}{DONE_SUFFIX}')


def write_task_file(path, tasks: Iterable[Mapping]) -> Path:
    """Write ``tasks`` (dicts with ``name``, ``function``, ``out``, ``args``) to ``path``; an old
    outcome file beside it is removed."""
    tasks = [dict(name=t['name'], function=t['function'], out=str(t['out']),
                  args=[str(a) for a in t.get('args', ())]) for t in tasks]
    for task in tasks:
        if ':' not in task['function']:
            raise ValueError(f'task {task["name"]!r}: function {task["function"]!r} is not '
                             '"module:attribute"')
    done_file(path).unlink(missing_ok=True)
    write_json_atomic(path, {'tasks': tasks})
    return Path(path)


def read_outcomes(task_file) -> dict:
    """name -> outcome record of a task file's tasks ({} when the test process wrote none)."""
    try:
        rows = json.loads(done_file(task_file).read_text())
    except (OSError, ValueError):
        return {}
    return {row['name']: row for row in rows if isinstance(row, dict) and 'name' in row}


def resolve(function: str):
    module, _, attr = function.partition(':')
    return getattr(importlib.import_module(module), attr)


def unwrapped(model):
    """The model inside MMEngine's distributed wrappers."""
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


def run_tasks(model, cfg, tasks: List[Mapping], log=print) -> list:
    """Run ``tasks`` on ``model`` one after the other; their outcome records."""
    import torch
    model = unwrapped(model).eval()
    outcomes = []
    for task in tasks:
        start = time.monotonic()
        try:
            with torch.no_grad():
                resolve(task['function'])(model, cfg, task['out'], list(task.get('args', [])))
            ok, error = True, None
        except Exception:  # recorded; the runner runs the task as its own stage instead
            ok, error = False, traceback.format_exc()
            log(f'after-test task {task["name"]} failed:\n{error}')
        wall = round(time.monotonic() - start, 3)
        log(f'after-test task {task["name"]}: {"done" if ok else "FAILED"} in {wall:.1f} s')
        outcomes.append({'name': task['name'], 'out': task['out'], 'wall_s': wall, 'ok': ok,
                         'error': error})
    return outcomes


def run_task_file(task_file, model, cfg, log=print) -> list:
    """Run the tasks of ``task_file`` (main process only) and record their outcomes."""
    from mmengine.dist import is_main_process
    if not is_main_process():
        return []
    tasks = json.loads(Path(task_file).read_text())['tasks']
    outcomes = run_tasks(model, cfg, tasks, log)
    write_json_atomic(done_file(task_file), outcomes)
    return outcomes
